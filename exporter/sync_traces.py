"""Trace events of a sync, on the exporting site: one per run to a target and one per entity
it tried, under the run's trace ID (the same ID the importer records under, from X-Trace-Id),
so that `skyrelay status TRACE_ID` answers "what did this sync do" on both sites.

A run is a `bundle`-domain event (docs/wire.md has four domains; a run moves a set of entities
together) with `operation` `sync` and the target's name as ID: CONTINUE when it starts,
FINISHED when it ends (OK only if every entity it tried arrived). An entity is `send` (it
arrived after this run sent it), `held` (the importer had it), or FAILED `send` / `deferred`
(the target stopped) with the reason. Statuses the importer asked for are recorded as `send`.
Writing a trace event never stops a sync: a failure to write is logged.
"""

import json
import logging

from exporter.report import TargetReport
from model.export.targets import Target
from model.ops.traces import BUNDLE, CONTINUE, FAILED, FINISHED, OK, TraceEvent, Traces
from model.protocol.vocabulary import (COMPLETE, CONTINUE as ANSWER_CONTINUE,
                                       FAILED as ANSWER_FAILED, STATUS, Complete, Outcome,
                                       answer as answer_body, answer_text, state_of)
from model.store.database import now_ms

log = logging.getLogger("skyrelay.exporter")
COMPONENT = "exporter"


class SyncTracer:
    def __init__(self, traces: Traces, trace_id: str, target: Target):
        self.traces = traces
        self.trace_id, self.target = trace_id, target
        self.started = now_ms()

    def run_started(self) -> None:
        self._record(BUNDLE, self.target.name, "sync", OK, self.started,
                     trace_status=CONTINUE, meta={"target": self.target.name,
                                                  "url": self.target.url})

    def run_finished(self, report: TargetReport) -> None:
        meta = {"target": self.target.name, "url": self.target.url, "sent": report.sent,
                "already_present": report.already_present, "failed": report.failed,
                "not_tried": report.deferred, "bytes": report.bytes,
                "requests": report.requests}
        status = OK if report.ok else FAILED
        self._record(BUNDLE, self.target.name, "sync", status, self.started, meta=meta,
                     exception="" if report.problem is None or report.ok else report.problem,
                     errors=[report.problem] if report.problem else [])

    def entity(self, kind: str, entity_id: str, started: int,
               outcome: Outcome) -> None:
        self._record_many([self._entity_event(kind, entity_id, started, outcome)])

    def _entity_event(self, kind: str, entity_id: str, started: int,
                      outcome: Outcome) -> TraceEvent:
        if isinstance(outcome, Complete):
            return self._event(kind, entity_id, "held" if outcome.already_present else "send",
                               OK, started, status_body=answer_text(COMPLETE))
        return self._event(kind, entity_id, "send", FAILED, started, exception=outcome.reason,
                           status_body=json.dumps(answer_body(ANSWER_FAILED,
                                                              message=outcome.reason)))

    def entities(self, outcomes: list[tuple[str, str, Outcome]],
                 started: int) -> None:
        """A version 2 batch: one event per entity, written in one transaction."""
        self._record_many([self._entity_event(kind, entity_id, started, outcome)
                           for kind, entity_id, outcome in outcomes])

    def deferred(self, kind: str, entity_id: str, started: int, reason: str) -> None:
        """The target (not the entity) failed; the entity waits for a later run."""
        self._record(kind, entity_id, "deferred", FAILED, started, exception=reason)

    def deferred_many(self, keys: list[tuple[str, str]], started: int, reason: str) -> None:
        self._record_many([self._event(kind, entity_id, "deferred", FAILED, started,
                                       exception=reason) for kind, entity_id in keys])

    def status_sent(self, status_id: str, answer, started: int) -> None:
        ok = state_of(answer) in (ANSWER_CONTINUE, COMPLETE)
        self._record(STATUS, status_id, "send", OK if ok else FAILED, started,
                     status_body=json.dumps(answer, separators=(",", ":")),
                     exception="" if ok else f"the importer answered {str(answer)[:200]}")

    def _record(self, *args, **kwargs) -> None:
        self._record_many([self._event(*args, **kwargs)])

    def _event(self, domain, domain_id, operation, status, started, trace_status=FINISHED,
               status_body="", meta=None, exception="", errors=None) -> TraceEvent:
        return TraceEvent(
            trace_id=self.trace_id, domain=domain, domain_id=domain_id, operation=operation,
            component=COMPONENT, user=self.target.user, trace_event_status=status,
            trace_status=trace_status, start_time=started, status_body=status_body,
            meta=meta or {}, exception=exception,
            errors=errors if errors is not None else ([exception] if exception else []))

    def _record_many(self, events: list[TraceEvent]) -> None:
        try:
            self.traces.record_many(events)
        except Exception:  # noqa: BLE001 - the sync itself must go on
            log.exception("could not record %d trace events", len(events))
