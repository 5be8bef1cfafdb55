"""Trace events of the version 1 handshake: one per entity the importer completes or fails,
under the request's `X-Trace-Id` (a new ID when it has none; either way the answer carries it
back in `X-Trace-Id`).

Terminal answers only: `complete` (operation `store` when this request stored the entity,
`held` when it was held before, `conflict` — FAILED, with both hashes — when it was held with
other content), `continue` to a status (a status has no later answer), `failed`, and a 400 for
an entity that could be identified (operation `refuse`). `need_*` answers are steps, not
outcomes. The event is written right after the store (its own transaction): a trace write that
fails is logged and never turns an import into an error.
"""

import json
import logging

from flask import Blueprint, g, request

from importer.errors import bad_request
from importer.handshake import Answer
from model.ops.traces import FAILED, OK, TraceEvent, TraceIdError, Traces, check_trace_id, \
    new_trace_id
from model.protocol.codec import EntityError, uuid_hex
from model.protocol.vocabulary import (COMPLETE, CONTINUE, FAILED as ANSWER_FAILED, KINDS,
                                       STATUS, answer as answer_body)

log = logging.getLogger("skyrelay.importer")
COMPONENT = "importer"


def request_trace_id() -> str:
    """The request's trace ID (400 if malformed), remembered for the answer's header."""
    raw = request.headers.get("X-Trace-Id")
    try:
        g.trace_id = check_trace_id(raw) if raw is not None else new_trace_id()
    except TraceIdError as exc:
        raise bad_request(f"X-Trace-Id: {exc}") from None
    return g.trace_id


def install(bp: Blueprint) -> None:
    """Every answer to a request that has a trace carries its ID back."""
    @bp.after_app_request
    def trace_header(response):
        trace_id = g.get("trace_id")
        if trace_id and "X-Trace-Id" not in response.headers:
            response.headers["X-Trace-Id"] = trace_id
        return response


def record_answer(traces: Traces, entity, answer: Answer, held_before: str | None,
                  started: int) -> None:
    """Record the entity's outcome if `answer` is one (see the module docstring)."""
    event = answer_event(entity, answer, held_before, started)
    if event is not None:
        _record(traces, event)


def answer_event(entity, answer: Answer, held_before: str | None,
                 started: int) -> TraceEvent | None:
    """The trace event of the entity's outcome, or None if `answer` is a step."""
    kind = entity.kind
    terminal = answer.state in (COMPLETE, ANSWER_FAILED) or (
        kind == STATUS and answer.state == CONTINUE)
    if not terminal:
        return None
    new_hash = entity.content_hash
    meta, exception, status = {}, "", OK
    if answer.state == ANSWER_FAILED:
        operation, status, exception = "import", FAILED, answer.message or ANSWER_FAILED
    elif held_before is None:
        operation = "store"
    elif held_before == new_hash:
        operation = "held"
    else:
        operation, status = "conflict", FAILED
        meta = {"held_hash": held_before, "new_hash": new_hash}
        exception = (f"{kind} {entity.id} is held with other content (held {held_before}, "
                     f"sent {new_hash}); the held version is kept")
    return TraceEvent(
        trace_id=g.trace_id, domain=kind, domain_id=entity.id, operation=operation,
        component=COMPONENT, user=g.user.name, trace_event_status=status, start_time=started,
        status_body=json.dumps(answer.to_json(), separators=(",", ":")), meta=meta,
        exception=exception, errors=[exception] if exception else [])


def refusal_event(kind: str, raw_id, message: str, started: int) -> TraceEvent | None:
    """A refused entity whose ID can be read: FAILED `refuse` (None without an ID)."""
    if not isinstance(raw_id, str) or not raw_id:
        return None
    try:
        entity_id = uuid_hex(raw_id, "id")
    except EntityError:
        entity_id = raw_id[:64]
    return TraceEvent(
        trace_id=g.trace_id, domain=kind, domain_id=entity_id, operation="refuse",
        component=COMPONENT, user=g.user.name, trace_event_status=FAILED, start_time=started,
        status_body=json.dumps(answer_body(ANSWER_FAILED, message=message)), exception=message,
        errors=[message])


def record_events(traces: Traces, events) -> None:
    """Many events in one transaction (a version 2 batch); never fails the request."""
    events = [event for event in events if event is not None]
    try:
        traces.record_many(events)
    except Exception:  # noqa: BLE001 - the import itself succeeded or failed already
        log.exception("could not record %d trace events", len(events))


def record_refusal(traces: Traces, body, message: str, started: int) -> None:
    """A 400 for an entity whose kind and ID can be read from the body: FAILED `refuse`."""
    if not isinstance(body, dict) or body.get("type") not in KINDS:
        return
    kind = body["type"]
    entity = body.get(kind)
    raw_id = entity.get(f"{kind}_id") if isinstance(entity, dict) else None
    event = refusal_event(kind, raw_id, message, started)
    if event is not None:
        _record(traces, event)


def _record(traces: Traces, event: TraceEvent) -> None:
    try:
        traces.record(event)
    except Exception:  # noqa: BLE001 - the import itself succeeded or failed already
        log.exception("could not record trace event for %s %s", event.domain, event.domain_id)
