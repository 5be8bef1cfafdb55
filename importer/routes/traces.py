"""GET /status/<trace_id>, /status/<trace_id>/history, /status-from-path/<file_id>: what
happened to data on this site, by the trace ID of the run that moved it (role `user`)."""

from flask import Blueprint, jsonify

from importer import tracing
from importer.auth import require_role
from importer.errors import ApiError
from importer.state import current
from model.ops.traces import Traces
from model.protocol.codec import uuid_hex


def blueprint() -> Blueprint:
    bp = Blueprint("traces", __name__)
    tracing.install(bp)
    bp.add_url_rule("/status/<trace_id>", view_func=summary)
    bp.add_url_rule("/status/<trace_id>/history", view_func=history)
    bp.add_url_rule("/status-from-path/<file_id>", view_func=trace_of_file)
    return bp


def _traces() -> Traces:
    return current().site.traces


def _unknown(trace_id: str) -> ApiError:
    return ApiError(404, f"no trace {trace_id[:70]!r} on this site")


@require_role("user")
def summary(trace_id):
    found = _traces().summary(trace_id)
    if found is None:
        raise _unknown(trace_id)
    return jsonify(found)


@require_role("user")
def history(trace_id):
    events = _traces().history(trace_id)
    if not events:
        raise _unknown(trace_id)
    return jsonify([event.to_json() for event in events])


@require_role("user")
def trace_of_file(file_id):
    file_id = uuid_hex(file_id, "file_id")       # an EntityError: 400 (importer.errors)
    trace_id = _traces().trace_of_file(file_id)
    if trace_id is None:
        raise ApiError(404, f"no trace brought file {file_id} to this site")
    return jsonify({"trace_id": trace_id})
