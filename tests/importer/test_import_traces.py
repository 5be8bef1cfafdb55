"""The version 1 handshake records one trace event per entity it completes or fails, under
the request's X-Trace-Id; the trace routes answer from them (Flask on SQLite and PostgreSQL,
and the served program)."""

import copy

from tests.importer_fixtures import md5_of, new_id, scene

EVENT_KEYS = ["trace_event_id", "trace_id", "domain", "domain_id", "start_time", "end_time",
              "trace_status", "trace_event_status", "user", "component", "operation",
              "status_body", "meta", "duration", "exception", "errors"]


def send(http, body, trace_id, status=200):
    reply = http.request("POST", http.import_path, user="exporter", json=body,
                         headers={"X-Trace-Id": trace_id})
    assert reply.status == status, reply.body
    assert reply.headers["X-Trace-Id"] == trace_id
    return reply.json()


def get(http, path, status=200):
    reply = http.request("GET", path, user="reader")
    assert reply.status == status, reply.body
    return reply.json()


def replicate(http, sc, trace_id):
    """What a version 1 exporter does for one event, step by step."""
    event_id = sc.event["event_id"]
    assert send(http, {"type": "event", "event": sc.event}, trace_id)["state"] == "need_status"
    assert send(http, {"type": "status", "status": sc.status}, trace_id)["state"] == "continue"
    cached = {"type": "cached_entity", "cached_entity_id": event_id}
    for record in sc.event["files"]:
        assert send(http, cached, trace_id) == {"state": "need_file_data",
                                                "file_id": record["file_id"]}
        data = sc.data[record["file_id"]]
        assert http.upload(record["file_id"], md5_of(data), data).status == 200
    assert send(http, cached, trace_id) == {"state": "complete"}


def test_a_replicated_event_is_traced_and_found_by_its_files(http):
    sc, trace_id = scene(2), "sync-" + new_id()
    replicate(http, sc, trace_id)

    assert get(http, f"/status/{trace_id}") == {
        "done": True, "trace_id": trace_id, "trace_status": "FINISHED",
        "trace_event_status": "OK"}
    history = get(http, f"/status/{trace_id}/history")
    assert all(list(event) == EVENT_KEYS for event in history)
    assert [(e["domain"], e["domain_id"], e["operation"]) for e in history] == [
        ("status", sc.status["status_id"], "store"), ("event", sc.event["event_id"], "store")]
    assert {(e["user"], e["component"], e["trace_event_status"]) for e in history} == {
        ("exporter", "importer", "OK")}
    assert history[1]["status_body"] == '{"state":"complete"}'
    for record in sc.event["files"]:
        assert get(http, f"/status-from-path/{record['file_id']}") == {"trace_id": trace_id}


def test_a_resend_is_held_and_a_different_one_a_failed_conflict_with_both_hashes(http):
    sc = scene(1)
    replicate(http, sc, "first-" + new_id())
    trace_id = "again-" + new_id()
    assert send(http, {"type": "event", "event": sc.event}, trace_id) == {"state": "complete"}
    changed = copy.deepcopy(sc.event)
    changed["meta"] = [{"type": "string", "key": "meteorpi:note", "value": "edited"}]
    assert send(http, {"type": "event", "event": changed}, trace_id) == {"state": "complete"}

    held, conflict = get(http, f"/status/{trace_id}/history")
    assert (held["operation"], held["trace_event_status"]) == ("held", "OK")
    assert (conflict["operation"], conflict["trace_event_status"]) == ("conflict", "FAILED")
    assert conflict["meta"]["held_hash"] != conflict["meta"]["new_hash"]
    assert conflict["meta"]["held_hash"] in conflict["exception"]
    assert conflict["meta"]["new_hash"] in conflict["exception"]
    assert get(http, f"/status/{trace_id}")["trace_event_status"] == "FAILED"


def test_without_a_trace_id_the_answer_names_the_new_one(http):
    sc = scene(0)
    reply = http.request("POST", http.import_path, user="exporter",
                         json={"type": "status", "status": sc.status})
    assert reply.status == 200
    trace_id = reply.headers["X-Trace-Id"]
    [stored] = get(http, f"/status/{trace_id}/history")
    assert (stored["domain_id"], stored["operation"]) == (sc.status["status_id"], "store")


def test_a_refused_entity_is_a_failed_trace_event_with_the_reason(http):
    sc, trace_id = scene(1), "bad-" + new_id()
    sc.event["files"][0]["md5"] = "not an md5"
    answer = send(http, {"type": "event", "event": sc.event}, trace_id, status=400)
    [refused] = get(http, f"/status/{trace_id}/history")
    assert (refused["domain"], refused["domain_id"], refused["operation"],
            refused["trace_event_status"]) == ("event", sc.event["event_id"], "refuse", "FAILED")
    assert refused["exception"] == answer["message"] and "files[0].md5" in answer["message"]


def test_a_malformed_trace_id_is_refused(http):
    reply = http.request("POST", http.import_path, user="exporter",
                         json={"type": "status", "status": scene(0).status},
                         headers={"X-Trace-Id": "two words"})
    assert reply.status == 400 and "X-Trace-Id" in reply.json()["message"]
