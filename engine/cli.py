"""Command line: argparse -> run(); a KlxError becomes one message and its exit code."""

from __future__ import annotations

import argparse
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .errors import CleanFormatter, ConfigError, JsonLogFormatter, KlxError, bug_text, json_error, json_line, traceback_text
from .memory import return_large_blocks

LOG_FORMATS = ("text", "json")
EXIT_STDOUT_CLOSED = 141  # 128 + SIGPIPE: what a shell reports for any command whose reader stopped early (`| head`)
SYNCING = ("run", "schedule", "demo")  # the commands that load batches
PLUGIN_GROUP = "klx.commands"  # entry points: name -> callable(subparsers) that adds one subcommand


def build_parser(*, plugins: bool = True) -> argparse.ArgumentParser:
    """The klx argument parser with every subcommand (with `plugins` False, without those other packages add)."""
    parser = argparse.ArgumentParser(
        prog="klx",
        description="Sync Klaviyo (or any API described by a klx spec) into a warehouse.",
        epilog="Start with `klx demo`, then `klx init` (writes config.yaml to edit), `klx check config.yaml` and `klx run config.yaml`.",
    )
    parser.add_argument("--version", action="version", version=f"klx {__version__}")
    _global_flags(parser, default=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run one sync", description="Run one sync of the resources selected in CONFIG.")
    run.add_argument("config", type=Path, help="path to config.yaml (`klx init` writes one)")
    run.add_argument("--streams", default=None, help="comma-separated resources to sync (default: all selected in the config)")
    run.add_argument("--full-refresh", action="store_true", help="ignore saved cursors and replace every table's contents")
    run.add_argument("--allow-empty", action="store_true", help="let a full refresh replace a table that has rows with an empty one")
    run.set_defaults(handler=_run)

    _add_ops_commands(commands)

    statements = commands.add_parser(
        "sql", help="print the SQL a run executes", description="Print the DDL, upsert and state statements a first run of CONFIG executes."
    )
    statements.add_argument("config", type=Path, help="path to config.yaml")
    statements.add_argument("--dialect", default=None, help="duckdb, postgres, snowflake, bigquery, redshift or databricks (default: the destination's)")
    statements.add_argument("--streams", default=None, help="comma-separated resources (default: all selected in the config)")
    statements.set_defaults(handler=_sql)

    if plugins:
        _add_plugin_commands(commands)
    for subcommand in commands.choices.values():
        # Also after the subcommand (`klx run config.yaml -v`); SUPPRESS keeps a flag given before it.
        _global_flags(subcommand, default=argparse.SUPPRESS)
    return parser


def _global_flags(parser: argparse.ArgumentParser, *, default: object) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", default=default, help="log every request and retry")
    parser.add_argument("--debug", action="store_true", default=default, help="show the traceback of an error")
    log_format = "text" if default is False else default
    parser.add_argument("--log-format", choices=LOG_FORMATS, default=log_format, help="text (default) or json: one JSON object a line, for orchestrators")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `klx` console script."""
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # what is still buffered: a reader gone shows here, not in Python's own flush at exit
    except BrokenPipeError:  # stdout's reader stopped early (`klx discover | head`): end quietly
        try:  # Python flushes stdout again at exit: into nothing now, so it has nothing to complain about
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # a stdout without a file descriptor
            pass
        return EXIT_STDOUT_CLOSED


def _main(argv: Sequence[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(plugins=False)
    if not _names_a_command(parser, argv):  # a plugin's command, --help or a mistake: every command is listed
        parser = build_parser()
    args = parser.parse_args(argv)
    return_large_blocks()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        if args.log_format == "json":  # one JSON object a line, on stderr as the text lines go
            handler.setFormatter(JsonLogFormatter())
        elif not isinstance(handler.formatter, CleanFormatter):
            handler.setFormatter(CleanFormatter(handler.formatter))
    logging.getLogger("klx").setLevel(logging.DEBUG if args.debug else logging.NOTSET)
    try:
        return args.handler(args)
    except KlxError as err:
        _traceback(args)
        if args.log_format == "json":
            print(json_error("error", err, exit_code=err.exit_code), file=sys.stderr)
        else:
            print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        # Only a sync has batches to keep or roll back; Ctrl-C on a hung `klx check` or `klx plan` is just interrupted.
        said = "interrupted; committed batches are kept, the rest is rolled back" if args.command in SYNCING else "interrupted"
        print(json_line("interrupted", message=said, exit_code=130) if args.log_format == "json" else said, file=sys.stderr)
        return 130
    except Exception as err:  # a bug: one line unless --debug
        if isinstance(err, BrokenPipeError) and _stdout_is_a_pipe():
            raise  # stdout's reader went away: main() ends quietly
        _traceback(args)
        hint = "" if args.debug else " (run with --debug for the traceback)"
        text = bug_text(err)
        print(json_line("internal error", message=text, exit_code=1) if args.log_format == "json" else f"internal error: {text}{hint}", file=sys.stderr)
        return 1


def _stdout_is_a_pipe() -> bool:
    """Whether stdout is a pipe or socket, so a BrokenPipeError may be its reader going away (klx's own sockets,
    to Klaviyo and the warehouse, raise their libraries' errors)."""
    try:
        mode = os.fstat(sys.stdout.fileno()).st_mode
    except (OSError, ValueError, AttributeError):  # (io.UnsupportedOperation is a ValueError and an OSError)
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _traceback(args: argparse.Namespace) -> None:
    if args.debug:
        print(traceback_text(), file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    from .commands.sync import parse_window, sync_once
    from .config import Config

    config = Config.from_yaml(args.config)
    only = _streams(args.streams)
    summary = sync_once(
        config, only=only, full_refresh=args.full_refresh, allow_empty=args.allow_empty,
        log_format=args.log_format, verbose=args.verbose, report=args.report, window=parse_window(args.start, args.end),
    )
    return summary.exit_code


def _streams(text: str | None) -> tuple[str, ...]:
    """--streams a,b as ("a", "b"); () without the flag. Given but naming none (`--streams "$EMPTY"`), it is refused:
    read as "all", it would sync every stream of a config a script meant to narrow."""
    if text is None:
        return ()
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise ConfigError(f"--streams: {text!r} names no resource; name one or more (a,b), or leave the flag out for all")
    return names


def _sql(args: argparse.Namespace) -> int:
    from .commands.sql_preview import print_sql

    return print_sql(args.config, dialect=args.dialect, only=_streams(args.streams), as_json=args.log_format == "json")


def _names_a_command(parser: argparse.ArgumentParser, argv: Sequence[str]) -> bool:
    """Whether the first word of `argv` that is not a flag is one of `parser`'s commands. For klx's own commands
    the plugin commands are not looked for: reading every installed distribution's entry points and importing
    the simulator took 40-60 ms of `klx run`'s start."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    valued = {flag for a in parser._actions if a.nargs != 0 and a.option_strings for flag in a.option_strings}  # --log-format json
    words = iter(argv)
    for word in words:
        if not word.startswith("-"):
            return word in commands.choices
        if word in valued:
            next(words, None)
    return False


def _add_plugin_commands(commands: argparse._SubParsersAction) -> None:
    """Commands other packages mount through the `klx.commands` entry point group (the simulator's sim and demo).

    engine/ never imports them by name; an install without them simply lacks those commands.
    """
    from importlib.metadata import entry_points

    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        if entry.name in commands.choices:
            continue  # the same distribution seen twice on sys.path (an editable install beside a checkout)
        try:
            register = entry.load()
        except ImportError:
            continue
        register(commands)


def _add_ops_commands(commands: argparse._SubParsersAction) -> None:
    """init, schedule and the other operating commands; each command's logic lives in engine/commands/."""
    run = commands.choices["run"]
    run.add_argument("--report", type=Path, metavar="FILE", help="write what the run did (per stream) as JSON to FILE")
    run.add_argument("--start", metavar="DATE", help="backfill: re-read incremental streams from DATE (saved cursors are not moved back)")
    run.add_argument("--end", metavar="DATE", help="backfill: up to DATE, exclusive (default: now)")
    init = commands.add_parser("init", help="write a starter config.yaml", description="Write the documented example config as a starter config.yaml.")
    init.add_argument("path", nargs="?", default="config.yaml",
                      help="file or folder to write (default: config.yaml); a path ending in / is a folder, created if missing")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(handler=_init)

    schedule = commands.add_parser(
        "schedule",
        help="run syncs on the config's schedule until stopped",
        description="Run syncs at the times schedule: in CONFIG gives (basic or cron, UTC) until SIGINT/SIGTERM.",
    )
    schedule.add_argument("config", type=Path, help="path to config.yaml")
    schedule.add_argument("--next", type=_at_least_one, metavar="N", default=None, help="print the next N run times and exit")
    schedule.add_argument("--now", action="store_true", help="also sync once right away")
    schedule.set_defaults(handler=_schedule)

    runs = commands.add_parser("runs", help="list recent runs", description="List the recent runs recorded in <prefix>klx_runs, newest first.")
    runs.add_argument("config", type=Path, help="path to config.yaml")
    runs.add_argument("--limit", type=_at_least_one, default=20, metavar="N", help="how many runs (default 20)")
    runs.set_defaults(handler=_runs)

    discover = commands.add_parser(
        "discover", help="list the resources the spec offers", description="List each resource of the spec: sync modes, key, cursor, endpoint, rate limit, scopes."
    )
    discover.add_argument("config", type=Path, nargs="?", help="config.yaml (default: the bundled Klaviyo spec, no config needed)")
    discover.add_argument("--columns", action="store_true", help="also list each selected table's columns as last loaded")
    discover.set_defaults(handler=_discover)

    state = commands.add_parser("state", help="show or reset saved cursors", description="Show the saved cursors of each stream, or reset them.")
    state.add_argument("action", choices=("show", "reset"), help="show: print cursors; reset: forget them (the next run reads from start_date)")
    state.add_argument("config", type=Path, help="path to config.yaml")
    state.add_argument("--streams", default=None, help="comma-separated resources (default: every resource in the config)")
    state.set_defaults(handler=_state)

    check = commands.add_parser(
        "check", help="check config, key, scopes and destination", description="Check the config and spec, the API key, each resource's scope and the destination; one line per check."
    )
    check.add_argument("config", type=Path, help="path to config.yaml")
    check.set_defaults(handler=_check)

    plan = commands.add_parser(
        "plan", help="estimate requests and time before a run", description="Per selected resource: the requests this run makes and the least time the rate limits allow."
    )
    plan.add_argument("config", type=Path, help="path to config.yaml")
    plan.set_defaults(handler=_plan)


def _at_least_one(text: str) -> int:
    """An option's whole number of 1 or more (argparse exits 2 naming the option otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return value


def _init(args: argparse.Namespace) -> int:
    from .starter import init

    written = init(args.path, force=args.force)
    print(f"wrote {written}; set KLAVIYO_API_KEY, choose resources and schedule, then: klx check {written}")
    return 0


def _schedule(args: argparse.Namespace) -> int:
    from .commands import schedule

    if args.next is not None:
        return schedule.print_next(args.config, args.next)
    return schedule.serve(args.config, run_now=args.now, log_format=args.log_format, verbose=args.verbose, debug=args.debug)


def _runs(args: argparse.Namespace) -> int:
    from .commands.runs import list_runs

    return list_runs(args.config, limit=args.limit, as_json=args.log_format == "json")


def _discover(args: argparse.Namespace) -> int:
    from .commands.discover import discover

    return discover(args.config, columns=args.columns, as_json=args.log_format == "json")


def _state(args: argparse.Namespace) -> int:
    from .commands import state

    only = _streams(args.streams)
    if args.action == "show":
        return state.show(args.config, only, as_json=args.log_format == "json")
    return state.reset(args.config, only)


def _check(args: argparse.Namespace) -> int:
    from .commands.check import check

    return check(args.config, as_json=args.log_format == "json")


def _plan(args: argparse.Namespace) -> int:
    from .commands.estimate import print_plan

    return print_plan(args.config, as_json=args.log_format == "json")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
