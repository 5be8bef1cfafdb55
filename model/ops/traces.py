"""Trace events: the answer to "did my data land, and what happened to it?".

Every component that completes or fails an entity (the importer's handshake, a bundle ingest,
the exporter's sync) records one event under the trace ID of the run that moved it. Events are
only ever inserted, so a trace is an append-only history that either site can be asked about.

A trace is FINISHED when the latest event of every thing it touched is FINISHED (nothing is
half-way), and FAILED when any of its events failed: one lost file must never hide behind a
thousand that landed.
"""

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Iterable

from sqlalchemy import Connection, and_, func, insert, or_, select

from model.protocol.errors import Invalid
from model.protocol.vocabulary import EVENT, FILE, STATUS
from model.store import schema
from model.store.database import Database, now_ms

OK, FAILED = "OK", "FAILED"
CONTINUE, FINISHED = "CONTINUE", "FINISHED"
BUNDLE = "bundle"                                 # a bundle ingest or a sync run
DOMAINS = (EVENT, FILE, STATUS, BUNDLE)           # docs/wire.md "Traces"
# Operations that put an entity into the archive; `trace_of_file` looks for these.
STORING_OPERATIONS = ("store",)
_TRACE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class TraceIdError(Invalid):
    """A trace ID a client sent is not usable (the message says why)."""


def new_trace_id() -> str:
    return uuid.uuid4().hex


def check_trace_id(value: str) -> str:
    """Trace IDs come from clients (X-Trace-Id): opaque, but short and printable."""
    if not _TRACE_ID.fullmatch(value or ""):
        raise TraceIdError("a trace ID is 1 to 64 letters, digits or '_.:-', got "
                           f"{value[:70]!r}")
    return value


@dataclass
class TraceEvent:
    """What happened to one thing (`domain`, `domain_id`) under a trace."""
    trace_id: str
    domain: str
    domain_id: str
    operation: str
    component: str
    user: str = ""
    trace_event_status: str = OK
    trace_status: str = FINISHED
    start_time: int = field(default_factory=now_ms)
    end_time: int | None = None
    status_body: str = ""
    meta: dict = field(default_factory=dict)
    exception: str = ""
    errors: list = field(default_factory=list)
    trace_event_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self):
        if self.domain not in DOMAINS:
            raise ValueError(f"trace domain must be one of {DOMAINS}, got {self.domain!r}")
        if self.trace_event_status not in (OK, FAILED):
            raise ValueError("trace_event_status must be OK or FAILED")
        if self.trace_status not in (CONTINUE, FINISHED):
            raise ValueError("trace_status must be CONTINUE or FINISHED")
        if self.end_time is None:
            self.end_time = max(now_ms(), self.start_time)

    @property
    def duration(self) -> int:
        return self.end_time - self.start_time

    def to_json(self) -> dict:
        """The wire form of docs/wire.md "Traces" (every key present, none null)."""
        return {
            "trace_event_id": self.trace_event_id, "trace_id": self.trace_id,
            "domain": self.domain, "domain_id": self.domain_id,
            "start_time": self.start_time, "end_time": self.end_time,
            "trace_status": self.trace_status, "trace_event_status": self.trace_event_status,
            "user": self.user, "component": self.component, "operation": self.operation,
            "status_body": self.status_body, "meta": self.meta, "duration": self.duration,
            "exception": self.exception, "errors": self.errors,
        }


class _Clock:
    """Strictly increasing microseconds in this process: events recorded one after the other
    keep their order even when they start in the same millisecond."""

    def __init__(self):
        self._last = 0
        self._lock = threading.Lock()

    def tick(self) -> int:
        with self._lock:
            self._last = max(time.time_ns() // 1000, self._last + 1)
            return self._last


_clock = _Clock()


def _row(event: TraceEvent) -> dict:
    wire = event.to_json()
    wire["meta"] = json.dumps(event.meta, sort_keys=True)
    wire["errors"] = json.dumps(list(event.errors))
    wire["recorded_us"] = _clock.tick()
    return wire


def _from_row(row) -> TraceEvent:
    return TraceEvent(
        trace_id=row.trace_id, domain=row.domain, domain_id=row.domain_id,
        operation=row.operation, component=row.component, user=row.user,
        trace_event_status=row.trace_event_status, trace_status=row.trace_status,
        start_time=row.start_time, end_time=row.end_time, status_body=row.status_body,
        meta=json.loads(row.meta), exception=row.exception, errors=json.loads(row.errors),
        trace_event_id=row.trace_event_id)


class Traces:
    def __init__(self, database: Database):
        self.db = database

    def record(self, *events: TraceEvent) -> None:
        """Insert events in one transaction of their own."""
        self.record_many(events)

    def record_many(self, events: Iterable[TraceEvent], tx: Connection | None = None) -> None:
        """Insert events; inside `tx` when given, so that they commit (or vanish) together
        with the write they describe."""
        rows = [_row(event) for event in events]
        if not rows:
            return
        if tx is not None:
            tx.execute(insert(schema.trace_events), rows)
            return
        with self.db.transaction() as own:
            own.execute(insert(schema.trace_events), rows)

    def history(self, trace_id: str) -> list[TraceEvent]:
        """Every event of the trace, oldest first."""
        t = schema.trace_events.c
        with self.db.reading() as conn:
            rows = conn.execute(select(schema.trace_events).where(t.trace_id == trace_id)
                                .order_by(t.start_time, t.recorded_us, t.trace_event_id))
            return [_from_row(row) for row in rows]

    def summary(self, trace_id: str) -> dict | None:
        """`{"done", "trace_id", "trace_status", "trace_event_status"}`, or None if unknown.
        Computed in the database: a sync's trace may hold a hundred thousand events."""
        t = schema.trace_events.c
        later = schema.trace_events.alias("later")
        newer_event = select(later.c.trace_event_id).where(
            later.c.trace_id == t.trace_id, later.c.domain == t.domain,
            later.c.domain_id == t.domain_id,
            or_(later.c.start_time > t.start_time,
                and_(later.c.start_time == t.start_time,
                     later.c.recorded_us > t.recorded_us))).exists()
        in_trace = t.trace_id == trace_id
        with self.db.reading() as conn:
            if conn.scalar(select(func.count()).where(in_trace)) == 0:
                return None
            failed = conn.scalar(select(func.count()).where(
                in_trace, t.trace_event_status == FAILED)) > 0
            running = conn.scalar(select(func.count()).where(
                in_trace, t.trace_status == CONTINUE, ~newer_event)) > 0
        return {"done": not running, "trace_id": trace_id,
                "trace_status": CONTINUE if running else FINISHED,
                "trace_event_status": FAILED if failed else OK}

    def trace_of_file(self, file_id: str) -> str | None:
        """The trace that brought the file's record in: its own `store` event, or that of the
        event it belongs to."""
        t = schema.trace_events.c
        stored = and_(t.trace_event_status == OK, t.operation.in_(STORING_OPERATIONS))
        with self.db.reading() as conn:
            trace_id = conn.scalar(
                select(t.trace_id).where(t.domain == FILE, t.domain_id == file_id, stored)
                .order_by(t.start_time, t.recorded_us).limit(1))
            if trace_id is not None:
                return trace_id
            event_id = conn.scalar(select(schema.files.c.event_id)
                                   .where(schema.files.c.file_id == file_id))
            if event_id is None:
                return None
            return conn.scalar(
                select(t.trace_id).where(t.domain == EVENT, t.domain_id == event_id, stored)
                .order_by(t.start_time, t.recorded_us).limit(1))
