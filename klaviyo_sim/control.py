"""Unauthenticated /_sim/... control endpoints (documented in klaviyo_sim/README.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from klaviyo_sim.faults import KINDS, FaultConfig
from klaviyo_sim.jsonapi import iso

if TYPE_CHECKING:
    from klaviyo_sim.server import Simulator


def _int(value: object) -> int:
    return int(value or 0)


def control(sim: Simulator, method: str, path: str, query: dict[str, str], body: dict) -> tuple[int, dict]:
    """(status, JSON body) for one control request; query args and JSON body fields are merged."""
    args = {**query, **body}
    path = path.rstrip("/")
    if path == "/_sim/health":
        return 200, {"ok": True, "url": sim.url, "seed": sim.seed, "scale": sim.scale,
                     "now": iso(sim.store.now_us), "clock": iso(sim.store.clock_us)}
    if path == "/_sim/truth":
        records = sim.truth(args["resource"], args.get("start_date") or None)
        return 200, {"resource": args["resource"], "start_date": args.get("start_date"), "records": records}
    if path == "/_sim/mutate" and method == "POST":
        changed = sim.mutate(args["resource"], update=_int(args.get("update")), create=_int(args.get("create")),
                             delete=_int(args.get("delete")), suppress=_int(args.get("suppress")),
                             lift=_int(args.get("lift")), resuppress=_int(args.get("resuppress")))
        return 200, {"resource": args["resource"], "clock": iso(sim.store.clock_us), **changed}
    if path == "/_sim/faults" and method == "POST":
        current = sim.faults.config
        kinds = args.get("kinds", current.kinds)
        sim.faults.configure(FaultConfig(
            rate=float(args.get("rate", current.rate)),
            kinds=tuple(kinds.split(",") if isinstance(kinds, str) else kinds),
            seed=int(args.get("seed", current.seed)),
            slow_seconds=float(args.get("slow_seconds", current.slow_seconds))))
        queued = args.get("queue", [])
        sim.faults.queue(queued.split(",") if isinstance(queued, str) else list(queued))
        return 200, {"rate": sim.faults.config.rate, "kinds": list(sim.faults.config.kinds), "known": list(KINDS)}
    if path == "/_sim/config" and method == "POST":
        if "latency" in args:
            sim.latency = float(args["latency"])
        if "rate_limits" in args:
            sim.rate_limits = str(args["rate_limits"]).lower() in ("1", "true", "yes", "on")
        if "limit_fraction" in args:
            sim.limiter.fraction = float(args["limit_fraction"])
        return 200, {"latency": sim.latency, "rate_limits": sim.rate_limits, "limit_fraction": sim.limiter.fraction}
    if path == "/_sim/limits":
        limiter = sim.limiter
        return 200, {"fraction": limiter.fraction, "refused": limiter.refused,
                     "buckets": {name: {"counted": n, "burst": limiter.tiers[name][0], "steady": limiter.tiers[name][1]}
                                 for name, n in limiter.counted.items()}}
    if path == "/_sim/requests":
        if method == "DELETE":
            sim.request_log.clear()
        return 200, {"requests": [{"method": m, "path": p, "query": q} for m, p, q in sim.request_log]}
    return 404, {"error": f"unknown control endpoint {method} {path}",
                 "endpoints": ["GET /_sim/health", "GET /_sim/truth?resource=&start_date=",
                               "POST /_sim/mutate", "POST /_sim/faults", "POST /_sim/config", "GET /_sim/limits",
                               "GET|DELETE /_sim/requests"]}
