"""`klx sim` / `python -m klaviyo_sim`: serve the simulator until Ctrl-C."""

from __future__ import annotations

import argparse
import errno
import sys
import threading
from datetime import timedelta

from klaviyo_sim.faults import KINDS, FaultConfig
from klaviyo_sim.filters import parse_datetime_literal
from klaviyo_sim.jsonapi import EPOCH


def _port(text: str) -> int:
    """A TCP port, 0 to 65535 (argparse names the option otherwise)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0 to 65535; 0 picks a free one)")
    return port


def _scale(text: str) -> float:
    """A data scale above 0."""
    try:
        scale = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < scale < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not above 0 (1 is about 1k profiles and 10k events)")
    return scale


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the simulator's flags on `parser` (the klx CLI mounts this as a subcommand)."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=0, help="port; 0 picks a free one (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    parser.add_argument("--scale", type=_scale, default=1.0, help="1 ≈ 1k profiles, 10k events (default 1)")
    parser.add_argument("--api-key", default="pk_sim_demo_key", help="accepted private key")
    parser.add_argument("--now", help="sim 'now' as ISO-8601 UTC (default: current minute)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every /api request")
    parser.add_argument("--rate-limits", action="store_true", help="enforce Klaviyo's per-endpoint 429s")
    parser.add_argument("--limit-fraction", type=float, default=1.0,
                        help="cut every rate limit to this share, at least 1 (default 1; 0.25 = a quarter)")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of /api requests that fail")
    parser.add_argument("--fault-kinds", default=",".join(KINDS), help=f"comma list from {', '.join(KINDS)}")
    parser.add_argument("--fault-seed", type=int, default=None, help="seed for fault draws (default: --seed)")
    parser.add_argument("--slow-seconds", type=float, default=2.0, help="delay of the 'slow' fault")
    parser.add_argument("--cache-responses", action="store_true",
                        help="keep each /api 200 body and serve it again for the same request while the data is "
                             "unchanged (benchmarks: leaves the cores to the client being measured)")


def register(commands: argparse._SubParsersAction) -> None:
    """Mount `klx sim` on the klx CLI (entry point group klx.commands)."""
    sim = commands.add_parser("sim", help="serve the local Klaviyo simulator", description="Serve a local Klaviyo API simulator on 127.0.0.1.")
    add_arguments(sim)
    sim.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Start the simulator from parsed flags and serve until interrupted."""
    from klaviyo_sim.server import Simulator

    now = None
    if args.now:
        us = parse_datetime_literal(args.now)
        if us is None:
            print(f"error: --now: cannot parse {args.now!r} as ISO-8601", file=sys.stderr)
            return 2
        now = EPOCH + timedelta(microseconds=us)
    faults = FaultConfig(rate=args.fault_rate, kinds=tuple(k for k in args.fault_kinds.split(",") if k),
                         seed=args.seed if args.fault_seed is None else args.fault_seed,
                         slow_seconds=args.slow_seconds)
    sim = Simulator(seed=args.seed, scale=args.scale, now=now, api_key=args.api_key, latency=args.latency,
                    rate_limits=args.rate_limits, faults=faults, host=args.host,
                    limit_fraction=args.limit_fraction, cache_responses=args.cache_responses)
    try:
        url = sim.start(port=args.port)
    except OSError as err:  # the port taken (a simulator left running), or a host this machine does not have
        print(f"error: cannot serve on {args.host}:{args.port}: {err.strerror or err}", file=sys.stderr)
        if err.errno == errno.EADDRINUSE:
            print("  hint: pick another --port, or --port 0 for a free one", file=sys.stderr)
        return 2
    print(f"klaviyo_sim serving {url} (seed={args.seed} scale={args.scale} now={sim.now.isoformat()})", flush=True)
    print(f"  key: {args.api_key}   control: {url}/_sim/health   Ctrl-C to stop", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point."""
    parser = argparse.ArgumentParser(prog="klaviyo_sim", description="Local Klaviyo REST API simulator")
    add_arguments(parser)
    return run(parser.parse_args(argv))


__all__ = ["add_arguments", "main", "run"]
