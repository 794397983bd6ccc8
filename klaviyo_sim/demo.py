"""`klx demo`: the simulator, one sync into DuckDB with config.example.yaml's settings, and what to query next."""

from __future__ import annotations

import argparse
import dataclasses
from datetime import datetime, timezone
from pathlib import Path

from engine.errors import ConfigError
from engine.starter import example_config_path

# Put before the table prefix of a config the demo is given: the simulator's records, cursors and state then
# land in tables of their own, never in those the config's real runs load.
DEMO_PREFIX = "demo_"


def demo(config_path: Path | None, *, scale: float, seed: int, log_format: str = "text", verbose: bool = False) -> int:
    """Serve the simulator on a free local port, sync every configured resource, stop the simulator.

    Without `config_path` the bundled config.example.yaml is used, its database in the current folder. With
    one, its destination is used with DEMO_PREFIX before its table prefix: merged into the tables (and cursors)
    of the config's real runs, the simulator's made-up records would stay there, and its cursors would make the
    next real run skip real records.
    """
    # Imported here: klx loads this module for its `demo` command on every start, whatever the command.
    from engine.commands.sync import sync_once
    from engine.config import Config
    from engine.destinations import config_relative
    from klaviyo_sim import Simulator

    bundled = config_path is None
    config_path = example_config_path() if bundled else config_path
    if not config_path.exists():
        raise ConfigError(f"{config_path} not found; pass an existing config to --config, or none for the bundled example", where=str(config_path))
    # The simulator's data is generated relative to "now": today's midnight keeps it the same all day,
    # so running the demo again is a true incremental sync.
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    sim = Simulator(seed=seed, scale=scale, now=today)
    sim.start(port=0)
    try:
        print(f"Klaviyo simulator serving at {sim.url} (seed {seed}, scale {scale})")
        config = Config.from_yaml(config_path, env={"KLAVIYO_API_KEY": sim.api_key})
        config = dataclasses.replace(config, source=dataclasses.replace(config.source, base_url=sim.url))
        if bundled:  # the example's relative database path lands here, not inside the installed package
            config = dataclasses.replace(config, destination=dataclasses.replace(config.destination, base_dir=Path(".")))
        else:
            prefix = DEMO_PREFIX + config.destination.table_prefix
            config = dataclasses.replace(config, destination=dataclasses.replace(config.destination, table_prefix=prefix))
            print(f"Tables get the prefix {prefix}: the simulator's made-up data stays out of the tables {config_path} loads.")
        summary = sync_once(config, lock=False, log_format=log_format, verbose=verbose)
    finally:
        sim.stop()
    destination = config.destination
    schema = destination.options.get("schema")
    # Unqualified names find the tables only in the connection's default schema (main, public, PUBLIC).
    schema = None if destination.type == "duckdb" and schema == "main" else schema
    tables = f"{schema}.{destination.table_prefix}rudder_" if schema else f"{destination.table_prefix}rudder_"
    queries = [f"select count(*) from {tables}profiles", f"select metric_name, count(*) from {tables}events group by 1 order by 2 desc"]
    print()
    if destination.type == "duckdb":
        database = config_relative(destination, destination.options.get("path", "klaviyo.duckdb"))
        print(f"Loaded into {database}. Query it, for example:")
        for query in queries:
            print(f"  python -c \"import duckdb; print(duckdb.connect('{database}').sql('{query}'))\"")
    else:  # no DuckDB file: the tables are in the warehouse the config names
        print(f"Loaded into the {destination.type} destination of {config_path}, tables {tables}*. Query it, for example:")
        for query in queries:
            print(f"  {query};")
    print("Run it again for an incremental sync; the simulator stopped, the data stays.")
    return summary.exit_code


def register(commands: argparse._SubParsersAction) -> None:
    """Mount `klx demo` on the klx CLI (entry point group klx.commands)."""
    demo_parser = commands.add_parser(
        "demo",
        help="sync the bundled Klaviyo simulator into a local DuckDB file",
        description="Start the local Klaviyo simulator, sync all ten resources with config.example.yaml's settings into DuckDB "
        "(with --config: that config's resources into its destination), and stop.",
    )
    demo_parser.add_argument("--config", type=Path, default=None, help="config to run against the simulator, into tables prefixed demo_ (default: the bundled config.example.yaml, database in the current folder)")
    demo_parser.add_argument("--scale", type=float, default=1.0, help="simulator data scale (1 = thousands of records)")
    demo_parser.add_argument("--seed", type=int, default=0, help="simulator seed")
    demo_parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    return demo(args.config, scale=args.scale, seed=args.seed, log_format=args.log_format, verbose=args.verbose)
