"""Bad config and spec input through the real `klx run`: exit 2, one exact line naming file:line, nothing written.

Each case pairs an input with the message a user sees (dlt's INVALID_CONFIGS). Config cases edit a good
config.yaml; spec cases edit a copy of specs/klaviyo.yaml that the config points at. `{line}` in a message
is the line of the case's marker text in the edited file, so messages stay exact while specs evolve.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine.destinations import _install_hint

from engine.cli import main
from tests.klx_testing import ROOT, READ_ONLY_WAYS, read_only_folder

TODAY = datetime.now(timezone.utc).date().isoformat()
CONFIG = """\
source:
  api_key: ${KLAVIYO_API_KEY}
  start_date: 2024-01-01
  spec: spec.yaml
  base_url: http://127.0.0.1:9  # nothing listens: a check that regresses fails fast, offline
destination:
  type: duckdb
  path: out.duckdb
  table_prefix: kl_
resources:
  profiles: incremental
  segments: incremental
  segments_profiles: full_refresh
"""
SPEC = (ROOT / "specs" / "klaviyo.yaml").read_text()


def run_klx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, config: str | bytes,
            spec: str = SPEC, args: tuple[str, ...] = (), api_key: str = "pk_test_0123456789abcdef") -> tuple[int, str, str]:
    """`klx run config.yaml` in an empty folder with KLAVIYO_API_KEY=`api_key`; exit code, stdout, stderr."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KLAVIYO_API_KEY", api_key)
    Path("config.yaml").write_bytes(config if isinstance(config, bytes) else config.encode())
    Path("spec.yaml").write_text(spec)
    code = main(["run", "config.yaml", *args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(tmp_path: Path, code: int, out: str, err: str, message: str) -> None:
    """Exit 2, exactly `message` on stderr, no traceback, no output, no database created."""
    assert "Traceback" not in err
    assert (code, out, err) == (2, "", f"error: {message}\n")
    # The run lock beside the config (engine/lock.py) is no output: it holds no data and stays by design.
    written = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith("klx.lock"))
    assert written == ["config.yaml", "spec.yaml"]


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# (config text, args, expected message). Messages are exact.
BAD_CONFIGS = [
    pytest.param(edit(CONFIG, "2024-01-01", "2205-01-01"), (),
                 f"config.yaml:3: source.start_date: 2205-01-01 is in the future (today is {TODAY}); nothing would be read",
                 id="future-start-date"),
    pytest.param(edit(CONFIG, "2024-01-01", "2024-13-01"), (),
                 "config.yaml:3: source.start_date: '2024-13-01' is not a valid date: month must be in 1..12", id="start-month-13"),
    pytest.param(edit(CONFIG, "2024-01-01", "'0001-01-01T00:00:00+01:00'"), (),
                 "config.yaml:3: source.start_date: 0001-01-01T00:00:00+01:00 is before 1970-01-01; use a date on or after it",
                 id="start-year-1-with-offset"),
    pytest.param(edit(CONFIG, "2024-01-01", "9999-12-31"), (),
                 f"config.yaml:3: source.start_date: 9999-12-31 is in the future (today is {TODAY}); nothing would be read",
                 id="start-year-9999"),
    pytest.param(edit(CONFIG, "  profiles: incremental\n", "  profiles: {sync_mode: incremental, lookback_days: 1000000000}\n"), (),
                 "config.yaml:11: resources.profiles.lookback_days: 1000000000 is not between 0 and 3650 (ten years)",
                 id="lookback-days-huge"),
    pytest.param(edit(CONFIG, "  profiles: incremental\n", "  profiles: {sync_mode: incremental, lookback_days: -1}\n"), (),
                 "config.yaml:11: resources.profiles.lookback_days: -1 is not between 0 and 3650 (ten years)",
                 id="lookback-days-negative"),
    pytest.param(edit(CONFIG, "  profiles: incremental\n", "  profiles: {sync_mode: incremental, leave_out: [predictive_analitics]}\n"), (),
                 "config.yaml:11: resources.profiles.leave_out: 'predictive_analitics' cannot be left out; this resource offers "
                 "predictive_analytics", id="leave-out-typo"),
    pytest.param(edit(CONFIG, "  segments: incremental\n", "  segments: {sync_mode: incremental, leave_out: [tags]}\n"), (),
                 "config.yaml:12: resources.segments.leave_out: 'tags' cannot be left out; this resource offers nothing",
                 id="leave-out-nothing-offered"),
    pytest.param(edit(CONFIG, "  profiles: incremental\n", "  profiles: {sync_mode: incremental, leave_out: predictive_analytics}\n"), (),
                 "config.yaml:11: resources.profiles.leave_out: expected a list, got str 'predictive_analytics'", id="leave-out-not-a-list"),
    pytest.param(edit(CONFIG, "2024-01-01", "2024-01-01  # caf\xe9").encode("latin-1"), (),
                 "config.yaml:3: not UTF-8 text (byte 0xe9); save the file as UTF-8", id="not-utf8"),
    pytest.param(edit(CONFIG, "http://127.0.0.1:9", "'http://127.0.0.1:9 /api'"), (),
                 "config.yaml:5: source.base_url: 'http://127.0.0.1:9 /api' contains a space or control character",
                 id="base-url-space"),
    pytest.param(edit(CONFIG, "http://127.0.0.1:9", "127.0.0.1:9"), (),
                 "config.yaml:5: source.base_url: '127.0.0.1:9' is not an http(s) URL (like https://a.example.com)",
                 id="base-url-no-scheme"),
    pytest.param(edit(CONFIG, "http://127.0.0.1:9", "http://127.0.0.1:99999"), (),
                 "config.yaml:5: source.base_url: 'http://127.0.0.1:99999' has an invalid port", id="base-url-bad-port"),
    pytest.param(edit(CONFIG, "  table_prefix: kl_\n", "  tabel_prefix: kl_\n"), (),
                 "config.yaml:9: destination.tabel_prefix: unknown option for 'duckdb'; did you mean 'table_prefix'?",
                 id="destination-key-typo"),
    pytest.param(edit(CONFIG, "  start_date:", "  start_dat:"), (),
                 "config.yaml:3: source.start_dat: unknown key; did you mean 'start_date'?", id="required-key-typo"),
    pytest.param(edit(CONFIG, "  spec: spec.yaml\n", "  spec: spec.yaml\n  spce: x\n"), (),
                 "config.yaml:5: source.spce: unknown key; did you mean 'spec'?", id="optional-key-typo"),
    pytest.param(CONFIG + "schedul:\n  type: manual\n", (),
                 "config.yaml:14: schedul: unknown key; did you mean 'schedule'?", id="top-level-key-typo"),
    pytest.param(edit(CONFIG, "  type: duckdb\n", "  type: duckdb\n    path: x\n"), (),
                 "config.yaml:8: invalid YAML: unexpected ':' on this line (wrong indentation, or a value containing ': ' that needs quotes)",
                 id="yaml-indented-too-far"),
    pytest.param(edit(CONFIG, "  path: out.duckdb\n", " path: out.duckdb\n"), (),
                 "config.yaml:8: invalid YAML: bad indentation: this line does not line up with the keys above it",
                 id="yaml-indented-too-little"),
    pytest.param(edit(CONFIG, "  path: out.duckdb\n", "\tpath: out.duckdb\n"), (),
                 "config.yaml:8: invalid YAML: a tab character; YAML indents with spaces only", id="yaml-tab"),
    pytest.param(edit(CONFIG, "  table_prefix: kl_\n", "  table_prefix kl_\n"), (),
                 "config.yaml:9: invalid YAML: expected 'key: value' (is a ':' missing, or is this line indented wrongly?)",
                 id="yaml-missing-colon"),
    pytest.param(edit(CONFIG, "table_prefix: kl_", "table_prefix: 'kl_\x07'"), (),
                 "config.yaml:9: invalid YAML: control character #x0007 is not allowed", id="yaml-control-character"),
    pytest.param("", (), "config.yaml: expected a mapping of 'key: value' lines, got nothing (null)", id="empty-file"),
    pytest.param(edit(CONFIG, "${KLAVIYO_API_KEY}", "'pk_abc def'"), (),
                 "config.yaml:2: source.api_key: must be printable ASCII without spaces, line breaks or control characters",
                 id="api-key-with-space"),
    # A key typed in place as a number: its type is named, never its digits (they may be the key).
    pytest.param(edit(CONFIG, "${KLAVIYO_API_KEY}", "12345678901234567890"), (),
                 "config.yaml:2: source.api_key: expected a string, got int", id="api-key-a-number"),
    pytest.param(edit(CONFIG, "${KLAVIYO_API_KEY}", "${KLAVIYO_API_KEY"), (),
                 "config.yaml:2: source.api_key: a '${' without a variable name and its closing '}'; write ${VAR}",
                 id="api-key-env-unterminated"),
    pytest.param(edit(CONFIG, "path: out.duckdb", "path: ${KLX_DATA/out.duckdb"), (),
                 "config.yaml:8: destination.path: a '${' without a variable name and its closing '}'; write ${VAR}",
                 id="destination-env-unterminated"),
    pytest.param(edit(CONFIG, "http://127.0.0.1:9", "'http://${1HOST}:9'"), (),
                 "config.yaml:5: source.base_url: a '${' without a variable name and its closing '}'; write ${VAR}",
                 id="base-url-env-bad-name"),
    pytest.param(edit(CONFIG, "${KLAVIYO_API_KEY}", "${KLAVIYO_KEY}"), (),
                 "config.yaml:2: source.api_key: environment variable KLAVIYO_KEY is not set", id="api-key-env-unset"),
    pytest.param(edit(CONFIG, "  segments: incremental\n", "  segment: incremental\n"), (),
                 "config.yaml:12: resources.segment: unknown resource; did you mean 'segments'?", id="unknown-resource"),
    pytest.param(edit(CONFIG, "  segments: incremental\n", "  nothing_like_it: incremental\n"), (),
                 "config.yaml:12: resources.nothing_like_it: unknown resource; known: campaigns, email_templates, events, "
                 "flows, global_exclusions, lists, metrics, profiles, segments, segments_profiles", id="unknown-resource-far"),
    pytest.param(edit(CONFIG, "segments_profiles: full_refresh", "segments_profiles: incremental"), (),
                 "config.yaml:13: resources.segments_profiles: incremental is not supported; use full_refresh",
                 id="unsupported-sync-mode"),
    # The report is written after the sync: a path that cannot take it is refused before anything is read.
    pytest.param(CONFIG, ("--report", "/proc/nope/r.json"), "--report /proc/nope/r.json: folder /proc/nope does not exist",
                 id="report-folder-missing"),
    pytest.param(CONFIG, ("--report", "/tmp"), "--report /tmp: is a folder; name a file in it, e.g. /tmp/run.json", id="report-a-folder"),
    pytest.param(CONFIG, ("--streams", "profile"),
                 "--streams: 'profile' is not among the resources in config.yaml; did you mean 'profiles'?", id="streams-typo"),
    pytest.param(CONFIG, ("--streams", "events"),
                 "--streams: 'events' is not selected under resources in config.yaml; selected: profiles, segments, segments_profiles",
                 id="streams-not-selected"),
    pytest.param(CONFIG, ("--streams", "profiles,nope"),
                 "--streams: 'nope' is not among the resources in config.yaml; known: profiles, segments, segments_profiles",
                 id="streams-unknown"),
]


@pytest.mark.parametrize(("config", "args", "message"), BAD_CONFIGS)
def test_bad_config_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, config: str, args: tuple, message: str
) -> None:
    code, out, err = run_klx(tmp_path, monkeypatch, capsys, config, args=args)
    assert_refused(tmp_path, code, out, err, message)


def test_an_api_key_variable_set_but_empty_is_called_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    # KLAVIYO_API_KEY= in an env file: "not set" would send the user looking for a missing export.
    code, out, err = run_klx(tmp_path, monkeypatch, capsys, CONFIG, api_key="")
    assert_refused(tmp_path, code, out, err, "config.yaml:2: source.api_key: environment variable KLAVIYO_API_KEY is empty")


# (text replaced in specs/klaviyo.yaml, replacement, marker, message). The error must point at the
# first line of the edited spec that contains `marker`: `{line}` in the message.
BAD_SPECS = [
    pytest.param("  segments:\n    path: /api/segments\n",
                 "  segments:\n    path: /api/segments\n    parent: {stream: segments_profiles, fields: {id: child_id}}\n",
                 "parent: {stream: segments_profiles",
                 "streams.segments.parent.stream: parents form a loop: segments -> segments_profiles -> segments", id="parent-loop"),
    pytest.param("      stream: segments\n", "      stream: segments_profiles\n", "stream: segments_profiles",
                 "streams.segments_profiles.parent.stream: parents form a loop: segments_profiles -> segments_profiles",
                 id="self-parent"),
    pytest.param("      stream: segments\n", "      stream: segment\n", "stream: segment",
                 "streams.segments_profiles.parent.stream: unknown stream 'segment'; did you mean 'segments'?", id="parent-typo"),
    pytest.param("XS: {burst: 1,", "XS: {burst: 0,", "XS: {burst: 0",
                 "api.rate_limit_tiers.XS.burst: 0 is not between 1 and 1000000", id="burst-zero"),
    pytest.param("steady: 15}", "steady: -1}", "steady: -1",
                 "api.rate_limit_tiers.XS.steady: -1 is not between 1 and 60000000", id="steady-negative"),
    pytest.param('"/api/segments/{parent.id}/profiles"', '"/api/segments/{segment}/profiles"', "{segment}",
                 "streams.segments_profiles.path: unknown placeholder {segment}; only {parent.<field>} is filled",
                 id="path-unknown-placeholder"),
    pytest.param("    path: /api/lists\n", "    path: /api/lists/{parent.id}\n", "/api/lists/{parent.id}",
                 "streams.lists.path: uses {parent.id} but the stream has no parent", id="path-parent-without-parent"),
    pytest.param("    path: /api/lists\n", "    path: /api/lists/{parent.id\n", "/api/lists/{parent.id",
                 "streams.lists.path: '/api/lists/{parent.id' has an unmatched brace", id="path-unmatched-brace"),
    pytest.param("  base_url: https://a.klaviyo.com\n", "  base_url: a.klaviyo.com\n", "base_url: a.klaviyo.com",
                 "api.base_url: 'a.klaviyo.com' is not an http(s) URL (like https://a.example.com)", id="api-base-url-no-scheme"),
    pytest.param("    next: links.next\n", "    next: 5\n", "next: 5",
                 "api.pagination.next: expected a non-empty string, got 5", id="pagination-next-number"),
    pytest.param("    next: links.next\n", "    next: 'links.[next'\n", "next: 'links.[next'",
                 "api.pagination.next: invalid jmespath 'links.[next': Invalid jmespath expression: Incomplete expression: \"links.[next\" ^", id="pagination-next-bad-jmespath"),
    pytest.param("    next: links.next\n", "    next: links.next\n    limit: 10\n", "limit: 10",
                 "api.pagination.limit: unknown option for type next_link; known: next", id="pagination-unknown-option"),
    pytest.param("    primary_key: [id]\n    sync_modes: [full_refresh]\n",
                 "    primary_key: [id]\n    sync_modes: [full_refresh]\n    pagination: {type: offset, limit: 0}\n",
                 "pagination: {type: offset",
                 "streams.metrics.pagination.limit: expected an integer of at least 1, got 0", id="stream-paginator-bad-limit"),
    pytest.param("    primary_key: [id]\n    sync_modes: [full_refresh]\n",
                 "    primary_key: [id]\n    sync_modes: [full_refresh]\n    pagination: {type: cursorish}\n",
                 "pagination: {type: cursorish",
                 "streams.metrics.pagination.type: unknown 'cursorish'; known: next_link, offset, page_number",
                 id="stream-paginator-unknown-type"),
    pytest.param("    statuses: [429, 500, 502, 503, 504]\n", '    statuses: ["abc"]\n', 'statuses: ["abc"]',
                 "api.retry.statuses: 'abc' is not an HTTP status (an integer from 100 to 599)", id="statuses-string"),
    pytest.param("    statuses: [429, 500, 502, 503, 504]\n", "    statuses: [429, 700]\n", "statuses: [429, 700]",
                 "api.retry.statuses: 700 is not an HTTP status (an integer from 100 to 599)", id="statuses-out-of-range"),
    pytest.param("  flatten_depth: 3\n", "  flatten_depth: -1\n", "flatten_depth: -1",
                 "api.flatten_depth: -1 is not between 0 and 10", id="flatten-depth-negative"),
    pytest.param("    max_wait_seconds: ", "    max_wait_seconds: -1\n    x_unused: ", "max_wait_seconds: -1",
                 "api.retry.max_wait_seconds: -1 is not between 0 and 3600", id="max-wait-negative"),
    pytest.param("    max_attempts: 8\n", "    max_attempts: 0\n", "max_attempts: 0",
                 "api.retry.max_attempts: 0 is not between 1 and 100", id="max-attempts-zero"),
    pytest.param("    max_attempts: 8\n", "    max_attempts: 100000\n", "max_attempts: 100000",
                 "api.retry.max_attempts: 100000 is not between 1 and 100", id="max-attempts-huge"),
    pytest.param("    primary_key: [segment_id, id]\n", "    primary_key: [segment, id]\n", "primary_key: [segment, id]",
                 "streams.segments_profiles.primary_key: 'segment' is not a column every record has; use id, segment_id "
                 "(see specs/README.md)", id="primary-key-absent"),
    pytest.param("        values: [email, sms, mobile_push]\n", "        values: [email, [sms], mobile_push]\n", "values: [email, [sms]",
                 "streams.campaigns.partitions[0].values: ['sms'] is not a string, number or true/false",
                 id="partition-value-list"),
    pytest.param("        values: [email, sms, mobile_push]\n", "        values: [email, sms, email]\n", "values: [email, sms, email]",
                 "streams.campaigns.partitions[0].values: lists a value twice", id="partition-value-twice"),
    pytest.param("      metric: {name: metric_name}\n", "      metric: name\n", "metric: name",
                 "streams.events.include.metric: expected a mapping of attribute: column, got 'name'", id="include-not-mapping"),
    pytest.param("      metric: {name: metric_name}\n", "      metric: {name: [metric_name]}\n", "metric: {name: [",
                 "streams.events.include.metric.name: ['metric_name'] is not a column name", id="include-column-list"),
    pytest.param("    scopes: [flows:read]\n", "    scopes: [flows:read, 5]\n", "scopes: [flows:read, 5]",
                 "streams.flows.scopes: 5 is not a non-empty string", id="scope-number"),
    pytest.param("    page_size: 50\n", "    page_size: 1000000\n", "page_size: 1000000",
                 "streams.flows.page_size: 1000000 is not between 1 and 100000", id="page-size-huge"),
    pytest.param("    primary_key: [id]\n    sync_modes: [full_refresh]\n", "    primary_kye: [id]\n    sync_modes: [full_refresh]\n",
                 "primary_kye", "streams.metrics.primary_kye: unknown key; did you mean 'primary_key'?", id="spec-key-typo"),
    pytest.param('  table: "rudder_{stream}"\n', '  table: "rudder_{stream}_{account}"\n', "table:",
                 "api.table: unknown placeholder {account}; use {stream}", id="table-unknown-placeholder"),
    pytest.param('    revision: "2026-07-15"\n', '    revision: "2026-07-15\\nX-Injected: 1"\n', "revision:",
                 "api.headers.revision: contains a line break or control character", id="header-line-break"),
    pytest.param("      lookback: 3d\n", "      lookback: 99999999999d\n", "lookback: 99999999999d",
                 "streams.events.cursor.lookback: '99999999999d' is longer than 3650 days", id="lookback-overflow"),
    pytest.param("      slice: 30d\n", "      slice: 30m\n", "slice: 30m",
                 "streams.events.cursor.slice: 30m is shorter than 1h; each window costs at least one request", id="slice-too-short"),
    pytest.param("      slice: 30d\n", "      slice: weekly\n", "slice: weekly",
                 "streams.events.cursor.slice: 'weekly' is not a duration like 1s, 15m, 6h or 3d", id="slice-not-a-duration"),
    pytest.param("      slice: 30d\n", "      slice: 99999d\n", "slice: 99999d",
                 "streams.events.cursor.slice: '99999d' is longer than 3650 days", id="slice-overflow"),
    pytest.param("      lt: less-than\n", "", "slice: 30d",
                 "streams.events.cursor.slice: needs a less-than filter to end each window: api.filter.operators has no 'lt'",
                 id="slice-without-less-than"),
    pytest.param('      "fields[metric]": name\n', '      "fields[metric]": [name]\n', '"fields[metric]": [name]',
                 "streams.events.params.fields[metric]: ['name'] is not a string or number", id="param-list"),
    pytest.param("    extends: profiles\n", "    extends: [profiles]\n", "extends: [profiles]",
                 "streams.global_exclusions.extends: expected a stream name, got ['profiles']", id="extends-not-a-name"),
    pytest.param("    extends: profiles\n", "    extends: profile\n", "extends: profile",
                 "streams.global_exclusions.extends: unknown stream 'profile'; did you mean 'profiles'?", id="extends-typo"),
    # The inherited item is reported at its own line, in the stream it came from.
    pytest.param("    optional: {}  # asks for no predictive analytics to leave out\n", "", 'predictive_analytics: {param: "additional',
                 "streams.global_exclusions.optional.predictive_analytics: 'predictive_analytics' is not in the comma list of "
                 "params['additional-fields[profile]'] ('subscriptions')", id="optional-inherited-item-not-sent"),
    pytest.param('      predictive_analytics: {param: "additional-fields[profile]"}\n    primary_key: [id]\n    cursor:\n      field: updated',
                 '      predictive_analytics: {param: "fields[profile]"}\n    primary_key: [id]\n    cursor:\n      field: updated',
                 'predictive_analytics: {param: "fields[profile]"}',
                 "streams.profiles.optional.predictive_analytics: 'predictive_analytics' is not in the comma list of "
                 "params['fields[profile]'] (the stream sends no such parameter)", id="optional-param-not-sent"),
    pytest.param('      predictive_analytics: {param: "additional-fields[profile]"}\n    primary_key: [id]\n    cursor:\n      field: updated',
                 '      predictive_analytics: true\n    primary_key: [id]\n    cursor:\n      field: updated',
                 "predictive_analytics: true",
                 "streams.profiles.optional.predictive_analytics: expected {param: <query parameter>}, got True", id="optional-not-mapping"),
    pytest.param('    params:\n      "additional-fields[profile]": subscriptions\n', "    params:  # a list\n      - subscriptions\n",
                 "params:  # a list",
                 "streams.global_exclusions.params: expected a mapping, got a list", id="params-not-mapping"),
    pytest.param("        values: [email, sms, mobile_push]\n",
                 "        values: [&a [x, x, x, x, x, x, x, x], &b [*a, *a, *a, *a, *a, *a, *a, *a], &c [*b, *b, *b, *b, *b, *b, *b, *b],"
                 " &d [*c, *c, *c, *c, *c, *c, *c, *c], &e [*d, *d, *d, *d, *d, *d, *d, *d], &f [*e, *e, *e, *e, *e, *e, *e, *e]]\n",
                 "values: [&a", "streams.campaigns.partitions[0].values: ['x', 'x', 'x', 'x', 'x', 'x', ...] is not a string, number or "
                 "true/false", id="yaml-alias-bomb"),
    pytest.param("  records: data\n", "  records: data\n   record_format: jsonapi\n", "   record_format",
                 "invalid YAML: unexpected ':' on this line (wrong indentation, or a value containing ': ' that needs quotes)",
                 id="spec-yaml-indentation"),
]


@pytest.mark.parametrize(("old", "new", "marker", "message"), BAD_SPECS)
def test_bad_spec_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, old: str, new: str, marker: str, message: str
) -> None:
    spec = edit(SPEC, old, new)
    line = next(i for i, row in enumerate(spec.splitlines(), 1) if marker in row)
    code, out, err = run_klx(tmp_path, monkeypatch, capsys, CONFIG, spec=spec)
    assert_refused(tmp_path, code, out, err, f"spec.yaml:{line}: {message}")


@pytest.mark.parametrize("how", READ_ONLY_WAYS)
def test_a_report_in_a_read_only_folder_is_refused_before_the_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, how: str
) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    with read_only_folder(folder, how, monkeypatch):
        code, out, err = run_klx(tmp_path, monkeypatch, capsys, CONFIG, args=("--report", str(folder / "r.json")))
    assert (code, out, err) == (2, "", f"error: --report {folder / 'r.json'}: cannot write it: Permission denied\n")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith("klx.lock")) == ["config.yaml", "reports", "spec.yaml"]
    assert list(folder.iterdir()) == []


# destination.type of an optional driver, the module it imports, the options it needs, the extra that installs it.
DRIVERS = [
    pytest.param("postgres", "psycopg", "  database: test\n", "postgres", id="postgres"),
    pytest.param("snowflake", "snowflake.connector", "  account: a\n  user: u\n  password: p\n  database: d\n", "snowflake", id="snowflake"),
]


@pytest.mark.parametrize(("kind", "module", "options", "extra"), DRIVERS)
def test_a_destination_whose_driver_is_not_installed_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, kind: str, module: str, options: str, extra: str
) -> None:
    # A plain `pip install klx` has no psycopg or snowflake-connector-python: None in sys.modules makes the import fail.
    monkeypatch.setitem(sys.modules, module, None)
    config = edit(CONFIG, "  type: duckdb\n  path: out.duckdb\n", f"  type: {kind}\n{options}")
    code, out, err = run_klx(tmp_path, monkeypatch, capsys, config)
    assert_refused(tmp_path, code, out, err, f"config.yaml:7: destination.type: {kind!r} needs the {module} driver, which is not installed"
                                             f"\n  hint: {_install_hint(extra)}")
    # The driver's own requirement, into this Python: `pip install 'klx[...]'` would fetch PyPI's klx, whatever that is.
    assert f"{sys.executable} -m pip install " in err and "klx[" not in err


def test_there_are_at_least_forty_bad_input_cases() -> None:
    assert len(BAD_CONFIGS) + len(BAD_SPECS) >= 40


def test_schedule_refuses_a_bad_resource_before_its_first_tick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.commands import schedule as schedule_cmd
    from engine.errors import ConfigError
    from engine.schedule import Stop
    from tests.test_schedule import FakeClock, at

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KLAVIYO_API_KEY", "pk_test_0123456789abcdef")
    Path("config.yaml").write_text(edit(CONFIG, "  segments: incremental\n", "  segment: incremental\n") + "schedule:\n  type: basic\n  every: 15m\n")
    Path("spec.yaml").write_text(SPEC)
    ticks: list = []
    stop = Stop()
    with pytest.raises(ConfigError) as raised:
        schedule_cmd.serve(Path("config.yaml"), clock=FakeClock(at("2026-11-30 10:07"), stop), stop=stop, sync=ticks.append, max_runs=1)
    assert str(raised.value) == "config.yaml:12: resources.segment: unknown resource; did you mean 'segments'?"
    assert ticks == []
