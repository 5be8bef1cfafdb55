"""Traces (docs/wire.md "Traces" — not marked as an extension, so part of the contract) and the
conflict trace event of "Entities" ("if the content differs it records the conflict as a trace
event with trace_event_status FAILED and operation conflict")."""

import uuid

import pytest

from tests.blackbox.helpers import (
    assert_error, event, event_form, file_record, new_camera, status, status_form)

HISTORY_KEYS = {"trace_event_id", "trace_id", "domain", "domain_id", "start_time", "end_time",
                "trace_status", "trace_event_status", "user", "component", "operation",
                "status_body", "meta", "duration", "exception", "errors"}


def _trace() -> str:
    return uuid.uuid4().hex


def _replicate(site, trace, e, s, blobs):
    """The version 1 flow with X-Trace-Id on every request."""
    headers = {"X-Trace-Id": trace}
    answer = site.handshake(event_form(e), headers=headers)
    while answer["state"] != "complete":
        if answer["state"] == "need_status":
            assert site.handshake(status_form(s), headers=headers) == {"state": "continue"}
        elif answer["state"] == "need_file_data":
            site.upload_ok(answer["file_id"], blobs[answer["file_id"]], headers=headers)
        else:
            pytest.fail(f"unexpected answer {answer}")
        answer = site.handshake({"type": "cached_entity", "cached_entity_id": e["event_id"]},
                                headers=headers)


def _history(site, trace):
    response = site.get(f"/status/{trace}/history")
    assert response.status_code == 200, (response.status_code, response.text)
    history = response.json()
    assert isinstance(history, list), history
    for item in history:
        assert HISTORY_KEYS <= set(item), sorted(HISTORY_KEYS - set(item))
        assert item["trace_id"] == trace
        assert item["domain"] in ("event", "file", "status", "bundle")
        assert item["trace_event_status"] in ("OK", "FAILED")
    starts = [item["start_time"] for item in history]
    assert starts == sorted(starts), "history must be oldest first"
    return history


@pytest.fixture(scope="module")
def traced(site):
    cam = new_camera()
    s = status(cam)
    data = b"traced bytes"
    f = file_record(cam, s["status_id"], data)
    e = event(cam, s["status_id"], [f])
    trace = _trace()
    _replicate(site, trace, e, s, {f["file_id"]: data})
    return trace, e


def test_status_of_a_trace(site, traced):
    trace, _ = traced
    response = site.get(f"/status/{trace}")
    assert response.status_code == 200, (response.status_code, response.text)
    body = response.json()
    assert body["done"] is True and body["trace_id"] == trace, body
    assert body["trace_status"] in ("CONTINUE", "FINISHED"), body
    assert body["trace_event_status"] == "OK", body


def test_history_has_one_ok_event_for_the_completed_event(site, traced):
    trace, e = traced
    history = _history(site, trace)
    mine = [h for h in history if h["domain"] == "event" and h["domain_id"] == e["event_id"]]
    assert len(mine) == 1, history
    assert mine[0]["trace_event_status"] == "OK"


def test_status_from_path_names_the_trace(site, traced):
    trace, e = traced
    response = site.get(f"/status-from-path/{e['files'][0]['file_id']}")
    assert response.status_code == 200, (response.status_code, response.text)
    assert response.json() == {"trace_id": trace}


def test_conflict_is_recorded_as_failed_trace_event(site, traced):
    _, e = traced
    trace = _trace()
    changed = dict(e, event_type="meteorpi:changed")
    assert site.handshake(event_form(changed), headers={"X-Trace-Id": trace}) == {
        "state": "complete"}
    history = _history(site, trace)
    conflicts = [h for h in history if h["operation"] == "conflict"]
    assert len(conflicts) == 1, history
    assert conflicts[0]["trace_event_status"] == "FAILED"
    assert conflicts[0]["domain"] == "event" and conflicts[0]["domain_id"] == e["event_id"]


@pytest.mark.parametrize("path", ["/status/{t}", "/status/{t}/history",
                                  "/status-from-path/{f}"])
def test_status_routes_need_the_user_role(site, traced, path):
    trace, e = traced
    url = path.format(t=trace, f=e["files"][0]["file_id"])
    response = site.get(url, user=None)
    assert_error(response, 401)
    assert response.headers["WWW-Authenticate"].split()[0] == "Basic"
    assert_error(site.get(url, user="exporter"), 403)
    assert site.get(url, user="reader").status_code == 200
