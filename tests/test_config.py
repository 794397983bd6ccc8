"""Config loading: the documented shape works, and every mistake is named with file:line."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine.config import Config
from engine.errors import ConfigError

GOOD = """\
source:
  api_key: ${KLAVIYO_API_KEY}
  start_date: 2024-01-01
destination:
  type: duckdb
  path: klaviyo.duckdb
  table_prefix: kl_
schedule:
  type: manual
resources:
  profiles: incremental
  metrics: full_refresh
"""
ENV = {"KLAVIYO_API_KEY": "pk_test_0123456789abcdef"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_documented_shape_loads(tmp_path: Path) -> None:
    config = Config.from_yaml(write(tmp_path, GOOD), env=ENV)
    assert config.source.api_key.reveal() == ENV["KLAVIYO_API_KEY"]
    assert config.source.start_date == datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert config.destination.type == "duckdb"
    assert config.destination.table_prefix == "kl_"
    assert dict(config.destination.options) == {"path": "klaviyo.duckdb"}
    assert [(r.name, r.sync_mode) for r in config.resources] == [("profiles", "incremental"), ("metrics", "full_refresh")]


def test_api_key_never_shows_in_repr(tmp_path: Path) -> None:
    config = Config.from_yaml(write(tmp_path, GOOD), env=ENV)
    assert ENV["KLAVIYO_API_KEY"] not in repr(config)
    assert ENV["KLAVIYO_API_KEY"] not in str(config.source.api_key)


def test_example_config_loads_with_every_resource() -> None:
    config = Config.from_yaml(Path(__file__).parent.parent / "config.example.yaml", env=ENV)
    assert {r.name for r in config.resources} == {
        "campaigns", "email_templates", "events", "flows", "global_exclusions",
        "lists", "metrics", "segments", "segments_profiles", "profiles",
    }
    assert next(r for r in config.resources if r.name == "events").lookback == timedelta(days=3)


def test_start_date_accepts_the_iso_basic_form_unquoted(tmp_path: Path) -> None:
    # YAML reads 20240101 as an int; it is ISO-8601's basic form of 2024-01-01, as it would be quoted.
    config = Config.from_yaml(write(tmp_path, GOOD.replace("start_date: 2024-01-01", "start_date: 20240101")), env=ENV)
    assert config.source.start_date == datetime(2024, 1, 1, tzinfo=timezone.utc)


def test_start_date_accepts_datetime_with_offset(tmp_path: Path) -> None:
    text = GOOD.replace("start_date: 2024-01-01", "start_date: '2024-01-01T02:00:00+02:00'")
    config = Config.from_yaml(write(tmp_path, text), env=ENV)
    assert config.source.start_date == datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("  type: basic\n  every: 6h\n  start_time: '02:30'\n", ("basic", timedelta(hours=6), "02:30:00", None)),
        ("  type: basic\n  every: 5m\n", ("basic", timedelta(minutes=5), "00:00:00", None)),
        ("  type: basic\n  every: 1d\n", ("basic", timedelta(hours=24), "00:00:00", None)),
        ("  type: cron\n  cron: '*/15 * * * *'\n", ("cron", None, None, "*/15 * * * *")),
        # Unquoted, YAML 1.1 reads 14:30 as the base-60 number 870: "expected a string, got int 870".
        ("  type: basic\n  every: 6h\n  start_time: 14:30\n", ("basic", timedelta(hours=6), "14:30:00", None)),
        ("  type: basic\n  every: 6h\n  start_time: 2:30\n", ("basic", timedelta(hours=6), "02:30:00", None)),
        ("  type: basic\n  every: 6h\n  start_time: '02:30Z'\n", ("basic", timedelta(hours=6), "02:30:00", None)),
    ],
)
def test_schedules_load(tmp_path: Path, schedule: str, expected: tuple) -> None:
    text = GOOD.replace("  type: manual\n", schedule)
    s = Config.from_yaml(write(tmp_path, text), env=ENV).schedule
    assert (s.type, s.every, s.start_time.isoformat() if s.start_time else None, s.cron) == expected


# Each bad config with the exact message a user sees (file:line: key: what is wrong).
INVALID_CONFIGS = [
    (GOOD.replace("profiles: incremental", "profiles: incremantal"),
     "config.yaml:11: resources.profiles: 'incremantal' is not one of full_refresh, incremental"),
    (GOOD.replace("  start_date: 2024-01-01\n", "  start_date: yesterday\n"),
     "config.yaml:3: source.start_date: 'yesterday' is not a date (use YYYY-MM-DD or an ISO-8601 datetime)"),
    # Unquoted digits are a YAML int: "expected a string or date, got int 2024" did not say what a date looks like.
    (GOOD.replace("  start_date: 2024-01-01\n", "  start_date: 2024\n"),
     "config.yaml:3: source.start_date: '2024' is not a date (use YYYY-MM-DD or an ISO-8601 datetime)"),
    (GOOD.replace("  start_date: 2024-01-01\n", ""), "config.yaml:2: source.start_date: required"),
    (GOOD.replace("${KLAVIYO_API_KEY}", "${MISSING_KEY}"),
     "config.yaml:2: source.api_key: environment variable MISSING_KEY is not set"),
    (GOOD.replace("  type: manual\n", "  type: hourly\n"),
     "config.yaml:9: schedule.type: 'hourly' is not one of basic, cron, manual"),
    (GOOD.replace("  type: manual\n", "  type: cron\n  cron: '*/5 * * * *'\n"),
     "config.yaml:10: schedule.cron: '*/5 * * * *' runs 00:00 and 00:05; runs must be at least 15 minutes apart"),
    (GOOD.replace("  type: manual\n", "  type: cron\n  cron: 'every day'\n"),
     "config.yaml:10: schedule.cron: 'every day' is not a 5-field CRON expression"),
    # Five fields, one out of range: the message names that field, not "not a 5-field expression".
    (GOOD.replace("  type: manual\n", "  type: cron\n  cron: '60 * * * *'\n"),
     "config.yaml:10: schedule.cron: '60 * * * *': the minute field '60' is not valid (it takes 0-59, lists, ranges and steps)"),
    (GOOD.replace("  type: manual\n", "  type: cron\n  cron: '0 2 * * 8'\n"),
     "config.yaml:10: schedule.cron: '0 2 * * 8': the day-of-week field '8' is not valid (it takes 0-7 or SUN-SAT, lists, ranges and steps)"),
    (GOOD.replace("  type: manual\n", "  type: cron\n  cron: '0 0 31 2 *'\n"),
     "config.yaml:10: schedule.cron: '0 0 31 2 *' never fires: no date matches its day-of-month and month fields"),
    # The grid is UTC: an offset was dropped without a word, so 02:00+01:00 ran at 02:00 UTC, not 01:00.
    (GOOD.replace("  type: manual\n", "  type: basic\n  every: 6h\n  start_time: '02:00+01:00'\n"),
     "config.yaml:11: schedule.start_time: '02:00+01:00' has a UTC offset; start_time is UTC: write the UTC time, like 02:30"),
    (GOOD.replace("  type: manual\n", "  type: basic\n  every: 20m\n"),
     "config.yaml:10: schedule.every: '20m' is not one of 5m, 10m, 15m, 30m, 1h, 3h, 6h, 12h, 24h"),
    (GOOD.replace("  table_prefix: kl_\n", "  table_prefix: 'kl-'\n"),
     "config.yaml:7: destination.table_prefix: 'kl-' must be letters, digits and _ (not starting with a digit)"),
    (GOOD + "extra: 1\n", "config.yaml:13: extra: unknown key; known: destination, resources, schedule, source"),
    (GOOD.replace("  base_url", "  x").replace("  start_date: 2024-01-01\n", "  start_date: 2024-01-01\n  base_url: ftp://x\n"),
     "config.yaml:4: source.base_url: 'ftp://x' is not an http(s) URL (like https://a.example.com)"),
    # A user:password@ in the URL: refused here, naming the key, never echoing what it holds (it may be the key).
    (GOOD.replace("  base_url", "  x").replace("  start_date: 2024-01-01\n", "  start_date: 2024-01-01\n  base_url: https://pk_live_secret:x@a.klaviyo.com\n"),
     "config.yaml:4: source.base_url: must not hold a user name or password (user:password@host); the API key goes in source.api_key"),
    (GOOD.replace("resources:\n  profiles: incremental\n  metrics: full_refresh\n", "resources: {}\n"),
     "config.yaml:10: resources: select at least one resource"),
    (GOOD.replace("  profiles: incremental\n", "  profiles: {sync_mode: incremental, lookback_days: -1}\n"),
     "config.yaml:11: resources.profiles.lookback_days: -1 is not between 0 and 3650 (ten years)"),
    ("source: [1]\n", "config.yaml:1: source: expected a mapping, got a list"),
    ("source:\n  api_key: x\n  start_date: 2024-01-01\n bad: indent\n", "config.yaml:4: invalid YAML: bad indentation: this line does not line up with the keys above it"),
]


@pytest.mark.parametrize(("text", "message"), INVALID_CONFIGS, ids=[m.split(": ")[1] for _, m in INVALID_CONFIGS])
def test_invalid_config_names_key_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as raised:
        Config.from_yaml(Path("config.yaml") if write(tmp_path, text) else None, env=ENV)
    assert str(raised.value) == message


TODAY = datetime.now(timezone.utc).date()


@pytest.mark.parametrize(
    ("start", "message"),
    [
        # A future start bound filters out every record: tables would silently be emptied.
        ("2205-01-01", f"2205-01-01 is in the future (today is {TODAY}); nothing would be read"),
        (str(TODAY + timedelta(days=2)), f"{TODAY + timedelta(days=2)} is in the future (today is {TODAY}); nothing would be read"),
        ("'9999-12-31T23:00:00-01:00'", f"9999-12-31T23:00:00-01:00 is in the future (today is {TODAY}); nothing would be read"),
        ("'0001-01-01T00:00:00+01:00'", "0001-01-01T00:00:00+01:00 is before 1970-01-01; use a date on or after it"),
        ("1969-12-31", "1969-12-31 is before 1970-01-01; use a date on or after it"),
    ],
)
def test_start_date_out_of_range_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, GOOD.replace("start_date: 2024-01-01", f"start_date: {start}"))
    with pytest.raises(ConfigError) as raised:
        Config.from_yaml(Path("config.yaml"), env=ENV)
    assert str(raised.value) == f"config.yaml:3: source.start_date: {message}"


def test_start_date_today_is_accepted(tmp_path: Path) -> None:
    config = Config.from_yaml(write(tmp_path, GOOD.replace("2024-01-01", str(TODAY))), env=ENV)
    assert config.source.start_date.date() == TODAY
