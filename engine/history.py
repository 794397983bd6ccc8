"""Run history: what each run did, per stream, kept in <prefix>klx_runs and written as a JSON report."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from .progress import Progress

RUN_STATUSES = ("succeeded", "failed", "interrupted")
# How a stream of a run ended: done; failed on its own error; interrupted, cut short by the run stopping (Ctrl-C,
# SIGTERM, another stream's error that stops the run: a refused key, an unreachable API, a warehouse gone);
# not_started, the run stopped before it started.
STREAM_STATUSES = ("done", "failed", "interrupted", "not_started")
# Rows older klx wrote: a stream the run never started was kept as queued (and an interrupted one as failed,
# which no row can tell apart now).
_OLD_STATUSES = {"queued": "not_started"}
# What a run that ended without Progress.stopped() (an unexpected error) left a stream in.
_UNENDED = {"running": "interrupted", "queued": "not_started"}


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamRecord:
    """One stream of one run."""

    stream: str
    mode: str
    status: str  # one of STREAM_STATUSES
    records: int = 0  # records the API returned
    rows: int = 0  # records loaded
    rejected: int = 0  # records read but not stored (no usable key)
    inserted: int = 0
    updated: int = 0
    columns_added: tuple[str, ...] = ()
    pages: int = 0
    requests: int = 0
    retries: int = 0
    http_429: int = 0
    waited_seconds: float = 0.0  # waiting on rate limits
    seconds: float = 0.0
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """One run."""

    run_id: str
    started_at: datetime
    ended_at: datetime
    status: str
    streams: tuple[StreamRecord, ...] = field(default=())
    error: str | None = None

    @property
    def records(self) -> int:
        """Records over all streams."""
        return sum(s.records for s in self.streams)

    def to_json(self) -> dict[str, Any]:
        """The report: what --report writes and --log-format json prints last."""
        return {
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "status": self.status,
            "error": self.error,
            "streams": [{**asdict(s), "columns_added": list(s.columns_added), "waited_seconds": round(s.waited_seconds, 3),
                         "seconds": round(s.seconds, 3)} for s in self.streams],
        }

    def rows(self) -> list[tuple[Any, ...]]:
        """One row per stream in sql.RUNS_COLUMNS order."""
        return [
            (
                self.run_id, self.started_at, self.ended_at, self.status, s.stream, s.mode, s.status, s.records, s.rows, s.rejected,
                s.inserted, s.updated, json.dumps(list(s.columns_added)), s.pages, s.requests, s.retries, s.http_429,
                s.waited_seconds, s.seconds, s.error,
            )
            for s in self.streams
        ]


def record_of(progress: Progress, *, run_id: str, started_at: datetime, ended_at: datetime, status: str, error: str | None) -> RunRecord:
    """The run as the progress counters and the finished streams' summaries saw it."""
    streams = []
    for p in progress.snapshot():
        summary = p.summary
        streams.append(
            StreamRecord(
                stream=p.stream,
                mode=p.mode,
                status=_UNENDED.get(p.state, p.state),
                records=summary.events if summary is not None else p.records,
                rows=summary.rows if summary is not None else 0,
                rejected=getattr(summary, "rejected", 0),
                inserted=getattr(summary, "inserted", 0),
                updated=getattr(summary, "updated", 0),
                columns_added=tuple(getattr(summary, "columns_added", ())),
                pages=summary.pages if summary is not None else p.pages,
                requests=p.requests,
                retries=p.retries,
                http_429=p.http_429,
                waited_seconds=p.waited,
                seconds=summary.seconds if summary is not None else p.seconds(progress.clock()),
                error=p.error,
            )
        )
    return RunRecord(run_id=run_id, started_at=started_at, ended_at=ended_at, status=status, streams=tuple(streams), error=error)


def records_from_rows(rows: list[dict[str, Any]]) -> list[RunRecord]:
    """Rows of <prefix>klx_runs (newest first) grouped back into runs."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        runs.setdefault(row["run_id"], []).append(row)
    records = []
    for run_id, found in runs.items():
        first = found[0]
        started, ended = _timestamp(first["started_at"]), _timestamp(first["ended_at"])
        streams = tuple(
            StreamRecord(
                stream=r["stream"], mode=r["mode"], status=_OLD_STATUSES.get(r["status"], r["status"]), records=r["records"], rows=r["rows"],
                rejected=r["rejected"] or 0,
                inserted=r["inserted"],
                updated=r["updated"], columns_added=tuple(json.loads(r["columns_added"] or "[]")), pages=r["pages"],
                requests=r["requests"], retries=r["retries"], http_429=r["http_429"], waited_seconds=r["waited_seconds"],
                seconds=r["seconds"], error=r["error"],
            )
            for r in found
        )
        error = next((s.error for s in streams if s.error), None)
        records.append(RunRecord(run_id=run_id, started_at=started, ended_at=ended, status=first["run_status"],
                                 streams=streams, error=error))
    return records


def _timestamp(value: Any) -> datetime:
    """A warehouse timestamp read as text ("2026-11-30 09:20:30+00") or as a datetime."""
    if isinstance(value, datetime):
        return value
    text = str(value).strip()
    if len(text) > 3 and text[-3] in "+-" and text[-3:].replace("+", "").replace("-", "").isdigit():
        text += ":00"  # "+00" -> "+00:00"
    return datetime.fromisoformat(text)
