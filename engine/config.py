"""Typed Config from a user's config.yaml; every error names the key and its file:line."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError, register_secret
from .yaml_source import Reader, load_yaml

SYNC_MODES = ("full_refresh", "incremental")
SCHEDULE_TYPES = ("basic", "cron", "manual")
# RudderStack's CRON schedules allowed no two runs closer than this.
MIN_CRON_GAP = timedelta(minutes=15)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Earliest start_date: cursors before the Unix epoch are not data, and bounds moved back from year 1 overflow.
EARLIEST_START = datetime(1970, 1, 1, tzinfo=timezone.utc)
_DATE_SHAPED = re.compile(r"^\d{4}-\d\d-\d\d\b")
# Re-reading more than ten years behind a saved cursor is a full refresh in disguise (and bounds overflow).
MAX_LOOKBACK_DAYS = 3650
_INTERVAL = re.compile(r"^(\d+)\s*(m|min|minutes?|h|hours?|d|days?)$")
# RudderStack's Basic schedule offered exactly these intervals; each divides a day, so the grid anchored
# at start_time is the same every day.
BASIC_INTERVALS = tuple(timedelta(minutes=m) for m in (5, 10, 15, 30, 60, 180, 360, 720, 1440))


class Secret:
    """A value that never shows itself in logs, errors or reprs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)  # masked in every KlxError and log line from now on

    def reveal(self) -> str:
        """The secret itself; call only where it is sent."""
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceConfig:
    """Where and what to read."""

    api_key: Secret
    start_date: datetime  # aware, UTC
    base_url: str | None
    spec: Path
    where: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationConfig:
    """Which warehouse; destination-specific options are validated by the destination."""

    type: str
    table_prefix: str
    options: dict[str, Any]
    where: str
    base_dir: Path = Path(".")  # the config file's folder: relative paths in options resolve against it
    table_prefix_where: str | None = None  # file:line of table_prefix (None: not given)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleConfig:
    """When syncs run (the scheduler itself is a later issue)."""

    type: str
    every: timedelta | None = None
    start_time: time | None = None
    cron: str | None = None
    where: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceConfig:
    """One selected resource and how it syncs."""

    name: str
    sync_mode: str
    lookback: timedelta | None
    leave_out: tuple[str, ...] = ()  # optional items the spec lets this resource's requests go without
    where: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """A whole config.yaml."""

    source: SourceConfig
    destination: DestinationConfig
    schedule: ScheduleConfig
    resources: tuple[ResourceConfig, ...]
    path: Path

    @classmethod
    def from_yaml(cls, path: Path, env: dict[str, str] | None = None) -> "Config":
        """Load and validate `path`; ${VAR} expands from `env` (default: the process environment)."""
        env = dict(os.environ) if env is None else env
        raw = load_yaml(path, ConfigError)
        top = Reader(raw, "", ConfigError, str(path))
        config = cls(
            source=_source(top.child("source"), env, path),
            destination=_destination(top.child("destination"), path.parent, env),
            schedule=_schedule(top.child("schedule", {"type": "manual"})),
            resources=_resources(top.child("resources")),
            path=path,
        )
        top.done()
        return config


def _expand(value: str, reader: Reader, key: str, env: dict[str, str]) -> str:
    """`value` with each ${VAR} replaced from `env`; a `${` that does not open a whole ${VAR} is refused."""
    if "${" in _ENV_REF.sub("", value):
        # Sent as it stands, `${KLAVIYO_API_KEY` would reach Klaviyo as the key and come back a 401.
        # The value is not shown: it may be a secret typed in place.
        raise reader.fail(key, "a '${' without a variable name and its closing '}'; write ${VAR}")

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise reader.fail(key, f"environment variable {name} is not set")
        if env[name] == "":  # set but empty (KLAVIYO_API_KEY= in an env file): not what a missing export needs
            raise reader.fail(key, f"environment variable {name} is empty")
        return env[name]

    return _ENV_REF.sub(sub, value)


def _source(r: Reader, env: dict[str, str], path: Path) -> SourceConfig:
    raw_key = r.get("api_key", str, required=True, secret=True)
    api_key = _expand(raw_key, r, "api_key", env).strip()
    if not api_key:
        raise r.fail("api_key", "is empty")
    if not re.fullmatch(r"[\x21-\x7e]+", api_key):
        # It goes into an HTTP header: a stray newline would break it and land in the HTTP library's error text.
        raise r.fail("api_key", "must be printable ASCII without spaces, line breaks or control characters")
    start = r.get("start_date", (str, date, int), required=True)
    if isinstance(start, int):  # unquoted 20240101 (ISO-8601's basic form) or 2024: read as the text written
        start = str(start)
    base_url = r.get("base_url", str, None)
    if base_url is not None:
        base_url = _expand(base_url, r, "base_url", env).rstrip("/")
        problem = url_problem(base_url)
        if problem:
            raise r.fail("base_url", problem)
    spec = r.get("spec", str, None)
    spec_path = (path.parent / spec) if spec else default_spec_path()
    source = SourceConfig(
        api_key=Secret(api_key),
        start_date=_parse_start(start, r),
        base_url=base_url,
        spec=spec_path,
        where=r.where,
    )
    r.done()
    return source


def url_problem(url: str) -> str | None:
    """What is wrong with `url` as a base URL (scheme and host, optionally a path), or None."""
    if any(c.isspace() or not c.isprintable() for c in url):
        return f"{url!r} contains a space or control character"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL (like https://a.example.com)"
    if "@" in parts.netloc:
        # Not shown: what is before the @ may be a password or the key. The HTTP client refuses such a URL (the key
        # header is the only credential sent), which surfaced as a puzzling "not an absolute http(s) URL" later.
        return "must not hold a user name or password (user:password@host); the API key goes in source.api_key"
    if parts.query or parts.fragment:
        return f"{url!r} must not have a query or fragment"
    try:
        parts.port
    except ValueError:
        return f"{url!r} has an invalid port"
    return None


def default_spec_path() -> Path:
    """The Klaviyo spec shipped with klx."""
    return Path(__file__).resolve().parent.parent / "specs" / "klaviyo.yaml"


def _parse_start(value: str | date, r: Reader) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    else:
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError as err:
            if _DATE_SHAPED.match(value.strip()):  # 2024-13-01: say which part is wrong
                raise r.fail("start_date", f"{value!r} is not a valid date: {err}") from err
            raise r.fail("start_date", f"{value!r} is not a date (use YYYY-MM-DD or an ISO-8601 datetime)") from err
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    shown = parsed.isoformat() if parsed.time() != time(0) or parsed.utcoffset() else parsed.date().isoformat()
    today = datetime.now(timezone.utc)
    try:
        utc = parsed.astimezone(timezone.utc)
    except OverflowError:  # year 1 or 9999 shifted by its offset out of datetime's range
        utc = EARLIEST_START - timedelta(days=1) if parsed.year == 1 else today + timedelta(days=1)
    if utc < EARLIEST_START:
        raise r.fail("start_date", f"{shown} is before {EARLIEST_START.date()}; use a date on or after it")
    if utc > today:
        # A future start bound filters out every record: tables would be emptied, not filled.
        raise r.fail("start_date", f"{shown} is in the future (today is {today.date()}); nothing would be read")
    return utc


# Destination options that may carry a secret: kept in a Secret once ${VAR} is expanded.
SECRET_OPTIONS = frozenset({"password", "dsn", "private_key", "private_key_passphrase"})


def _destination(r: Reader, base_dir: Path, env: dict[str, str]) -> DestinationConfig:
    kind = r.get("type", str, "duckdb")
    prefix = r.get("table_prefix", str, "")
    if prefix and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", prefix):
        raise r.fail("table_prefix", f"{prefix!r} must be letters, digits and _ (not starting with a digit)")
    options = type(r.mapping)()
    if hasattr(r.mapping, "where"):
        options.where = r.mapping.where
        options.key_where = {k: v for k, v in r.mapping.key_where.items() if k not in ("type", "table_prefix")}
    for key, value in r.mapping.items():
        if key not in ("type", "table_prefix"):
            if isinstance(value, str):
                value = _expand(value, r, key, env)
                value = Secret(value) if key in SECRET_OPTIONS else value
            options[key] = value
    prefix_where = r.at("table_prefix") if r.has("table_prefix") else None
    return DestinationConfig(type=kind, table_prefix=prefix, options=options, where=r.where, base_dir=base_dir, table_prefix_where=prefix_where)


def _schedule(r: Reader) -> ScheduleConfig:
    kind = r.get("type", str, required=True)
    if kind not in SCHEDULE_TYPES:
        raise r.fail("type", f"{kind!r} is not one of {', '.join(SCHEDULE_TYPES)}")
    if kind == "manual":
        schedule = ScheduleConfig(type=kind, where=r.where)
    elif kind == "basic":
        every = _interval(r.get("every", str, required=True), r)
        start_time = _time_of_day(r.get("start_time", str, "00:00"), r)
        schedule = ScheduleConfig(type=kind, every=every, start_time=start_time, where=r.where)
    else:
        cron = r.get("cron", str, required=True)
        _check_cron(cron, r)
        schedule = ScheduleConfig(type=kind, cron=cron, where=r.where)
    r.done()
    return schedule


def _interval(text: str, r: Reader) -> timedelta:
    match = _INTERVAL.match(text.strip())
    if not match:
        raise r.fail("every", f"{text!r} is not an interval like 30m, 6h or 1d")
    amount, unit = int(match.group(1)), match.group(2)[0]
    every = {"m": timedelta(minutes=amount), "h": timedelta(hours=amount), "d": timedelta(days=amount)}[unit]
    if every not in BASIC_INTERVALS:
        raise r.fail("every", f"{text!r} is not one of 5m, 10m, 15m, 30m, 1h, 3h, 6h, 12h, 24h")
    return every


def _time_of_day(text: str, r: Reader) -> time:
    written = text.strip()
    if re.fullmatch(r"\d:\d\d", written):  # 2:30, as people write it
        written = "0" + written
    try:
        moment = time.fromisoformat(written)
    except ValueError as err:
        raise r.fail("start_time", f"{text!r} is not a time of day like 02:30") from err
    if moment.utcoffset():  # the grid is UTC: an offset would be dropped without a word
        raise r.fail("start_time", f"{text!r} has a UTC offset; start_time is UTC: write the UTC time, like 02:30")
    return moment.replace(tzinfo=None)


def _check_cron(expression: str, r: Reader) -> None:
    # croniter parses standard 5-field expressions; runs closer than 15 minutes are refused,
    # checked over a whole week so day-of-week fields are covered.
    from croniter import croniter, CroniterBadCronError, CroniterBadDateError, CroniterNotAlphaError

    try:
        if len(expression.split()) != 5:
            raise CroniterBadCronError("expected 5 fields")
        it = croniter(expression, datetime(2026, 1, 4, 23, 59, 59, tzinfo=timezone.utc))
        previous = it.get_next(datetime)
        end = previous + timedelta(days=8)
        while previous < end:
            current = it.get_next(datetime)
            if current - previous < MIN_CRON_GAP:
                raise r.fail("cron", f"{expression!r} runs {previous:%H:%M} and {current:%H:%M}; runs must be at least 15 minutes apart")
            previous = current
    except CroniterBadDateError as err:  # five valid fields, but no date has that day in those months (31 February)
        raise r.fail("cron", f"{expression!r} never fires: no date matches its day-of-month and month fields") from err
    except (CroniterBadCronError, CroniterNotAlphaError, ValueError, KeyError) as err:
        field = _bad_cron_field(expression)
        if field is not None:  # five fields, one of them wrong: say which, not "not a 5-field expression"
            raise r.fail("cron", f"{expression!r}: {field}") from err
        raise r.fail("cron", f"{expression!r} is not a 5-field CRON expression") from err


CRON_FIELDS = (("minute", "0-59"), ("hour", "0-23"), ("day-of-month", "1-31"), ("month", "1-12 or JAN-DEC"),
               ("day-of-week", "0-7 or SUN-SAT"))


def _bad_cron_field(expression: str) -> str | None:
    """For five fields croniter refuses, which one it refuses and the values that field takes."""
    from croniter import croniter

    fields = expression.split()
    if len(fields) != len(CRON_FIELDS):
        return None
    for position, ((name, values), text) in enumerate(zip(CRON_FIELDS, fields)):
        alone = ["*"] * len(CRON_FIELDS)
        alone[position] = text
        if not croniter.is_valid(" ".join(alone)):
            return f"the {name} field {text!r} is not valid (it takes {values}, lists, ranges and steps)"
    return None


def _resources(r: Reader) -> tuple[ResourceConfig, ...]:
    if not r.mapping:
        raise ConfigError("resources: select at least one resource", where=r.where)
    resources = []
    for name in r.mapping:
        value = r.get(name, (str, dict))
        leave_out: tuple[str, ...] = ()
        if isinstance(value, str):
            mode, lookback = value, None
            mode_reader = r
            mode_key = name
        else:
            sub = r.child(name)
            mode = sub.get("sync_mode", str, required=True)
            days = sub.get("lookback_days", int, None)
            if days is not None and not 0 <= days <= MAX_LOOKBACK_DAYS:
                raise sub.fail("lookback_days", f"{days} is not between 0 and {MAX_LOOKBACK_DAYS} (ten years)")
            lookback = timedelta(days=days) if days is not None else None
            leave_out = tuple(sub.get("leave_out", list, []))
            if not all(isinstance(item, str) and item for item in leave_out) or len(set(leave_out)) != len(leave_out):
                raise sub.fail("leave_out", "must be a list of distinct names (see config.example.yaml)")
            sub.done()
            mode_reader, mode_key = sub, "sync_mode"
        if mode not in SYNC_MODES:
            raise mode_reader.fail(mode_key, f"{mode!r} is not one of {', '.join(SYNC_MODES)}")
        resources.append(ResourceConfig(name=name, sync_mode=mode, lookback=lookback, leave_out=leave_out, where=r.at(name)))
    return tuple(resources)
