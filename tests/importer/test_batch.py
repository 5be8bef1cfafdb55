"""`GET {base}/capabilities` and `POST {base}/batch` (protocol version 2), over the Flask test
client on SQLite and PostgreSQL and against `skyrelay serve` (the `http` fixture)."""

import copy

import pytest

from tests.importer_fixtures import (SETTINGS, event_json, file_json, http,  # noqa: F401
                                     md5_of, new_id, scene, site_config, status_json)
from importer.app import create_app
from importer.entity_cache import EntityCache
from importer.routes.batch import SentBefore, parse_batch

BATCH = "/import/batch"


def batch(http, body, user="exporter"):
    return http.request("POST", BATCH, user=user, json=body)


def results(http, body) -> list[dict]:
    reply = batch(http, body)
    assert reply.status == 200, reply.body
    return reply.json()["results"]


def upload_blobs(http, data: dict[str, bytes]) -> list[dict]:
    fields = {f"{file_id}.{md5_of(payload)}": ("blob", payload)
              for file_id, payload in data.items()}
    reply = http.multipart("/import/blobs", fields, "exporter")
    assert reply.status == 200, reply.body
    return reply.json()["results"]


def test_capabilities_shape(http):
    reply = http.request("GET", "/import/capabilities", user="exporter")
    assert reply.status == 200
    assert reply.json() == {"protocol": [1, 2], "max_batch": 500,
                            "max_body_bytes": SETTINGS["importer.max_body_bytes"],
                            "max_file_bytes": SETTINGS["importer.max_file_bytes"],
                            "hashes": ["md5", "sha256"], "uploads": "/import/uploads"}


def test_mixed_batch_every_state(http):
    ready, needy, orphan = scene(2), scene(2), scene(1)
    upload_blobs(http, ready.data)                       # bytes of `ready` are here already
    ready.event["status_id"] = needy.event["status_id"] = needy.status["status_id"]
    for record in ready.event["files"]:
        record["status_id"] = needy.status["status_id"]
    lone_bytes = b"a standalone file"
    lone = file_json(needy.status["status_id"], lone_bytes)
    upload_blobs(http, {lone["file_id"]: lone_bytes})
    invalid = event_json(needy.status["status_id"])
    del invalid["event_time"]
    before = http.counts()
    answer = results(http, {"statuses": [needy.status], "files": [lone],
                            "events": [ready.event, needy.event, orphan.event, invalid]})
    assert answer == [
        {"type": "status", "id": needy.status["status_id"], "state": "complete"},
        {"type": "file", "id": lone["file_id"], "state": "complete"},
        {"type": "event", "id": ready.event["event_id"], "state": "complete"},
        {"type": "event", "id": needy.event["event_id"], "state": "need_file_data",
         "file_ids": [f["file_id"] for f in needy.event["files"]]},
        {"type": "event", "id": orphan.event["event_id"], "state": "need_status",
         "status_id": orphan.status["status_id"]},
        {"type": "event", "id": invalid["event_id"], "state": "failed",
         "message": answer[5]["message"]},
    ]
    assert "event_time" in answer[5]["message"]
    after = http.counts()
    assert after["events"] == before["events"] + 1
    assert after["files"] == before["files"] + 3         # ready's two and the standalone one
    assert after["statuses"] == before["statuses"] + 1
    # The bytes, then the entities that were not complete: all complete, held ones too.
    assert all(r["received"] for r in upload_blobs(http, needy.data))
    again = results(http, {"statuses": [orphan.status],
                           "events": [needy.event, orphan.event, ready.event]})
    assert [r["state"] for r in again] == ["complete", "complete", "need_file_data",
                                           "complete"]
    assert results(http, {"events": [orphan.event]}) == [
        {"type": "event", "id": orphan.event["event_id"], "state": "need_file_data",
         "file_ids": [orphan.event["files"][0]["file_id"]]}]


def test_a_failed_entity_does_not_block_the_others(http):
    first = scene(1)
    upload_blobs(http, first.data)
    results(http, {"statuses": [first.status], "events": [first.event]})
    thief = event_json(first.status["status_id"], files=first.event["files"])  # same file
    fine = scene(0)
    answer = results(http, {"statuses": [fine.status],
                            "events": [thief, fine.event, "not an object"]})
    assert answer[1]["state"] == "failed" and "another entity" in answer[1]["message"]
    assert answer[2] == {"type": "event", "id": fine.event["event_id"], "state": "complete"}
    assert answer[3]["state"] == "failed" and "id" not in answer[3]
    assert http.request("GET", f"/api/events/{thief['event_id']}", user="reader").status == 404


def test_duplicates_within_a_batch(http):
    first = scene(2)
    upload_blobs(http, first.data)
    thief = event_json(first.status["status_id"], files=first.event["files"][:1])
    lone = first.event["files"][1]
    answer = results(http, {"statuses": [first.status], "files": [lone],
                            "events": [first.event, first.event, thief]})
    states = [(r["type"], r["state"]) for r in answer]
    # The standalone record comes first (files before events) and takes its file ID, so the
    # event that lists it fails (twice); the one that lists only the other file is stored.
    assert states == [("status", "complete"), ("file", "complete"), ("event", "failed"),
                      ("event", "failed"), ("event", "complete")]
    assert all("another entity" in r["message"] for r in answer[2:4])


def test_over_max_batch_is_400_and_stores_nothing(http):
    before = http.counts()
    statuses = [status_json() for _ in range(100)]      # valid, yet not stored
    events = [{}] * 401                                  # 501 entities in all
    reply = batch(http, {"statuses": statuses, "events": events})
    assert reply.status == 400
    assert "max_batch" in reply.json()["message"] and reply.json()["state"] == "failed"
    assert http.counts() == before


@pytest.mark.parametrize("body, words", [
    ([], "JSON object"),
    ({"events": {"a": 1}}, "events: expected a list"),
    ({"statuses": "x"}, "statuses: expected a list"),
])
def test_bad_batches(http, body, words):
    before = http.counts()
    reply = batch(http, body)
    assert reply.status == 400 and words in reply.json()["message"]
    assert http.counts() == before


def test_batch_limits_and_roles(http):
    huge = [event_json(new_id(), meta=[{"type": "string", "key": "a:b", "value": "x" * 1000}])
            for _ in range(80)]
    assert batch(http, {"events": huge}).status == 413
    assert batch(http, {"events": []}, user=None).status == 401
    assert batch(http, {"events": []}, user="reader").status == 403
    assert results(http, {}) == []


def test_version_2_can_be_switched_off(sqlite_site, tmp_path):
    from tests.v2_helpers import PASSWORD, basic
    sqlite_site.users.add("cam", PASSWORD, ["import"])
    config = site_config(tmp_path, {"importer.max_protocol": 1})
    client = create_app(config, sqlite_site).test_client()
    for method, path in (("GET", "/import/capabilities"), ("POST", "/import/batch"),
                         ("POST", "/import/blobs"), ("POST", "/import/uploads"),
                         ("OPTIONS", "/import/uploads")):
        reply = client.open(path, method=method, headers={**basic("cam"),
                                                          "Tus-Resumable": "1.0.0"})
        assert reply.status_code == 404, (method, path)
        assert reply.get_json()["state"] == "failed"


def test_a_batch_is_traced_one_event_per_outcome(http):
    s = scene(1)
    upload_blobs(http, s.data)
    waiting = scene(1)
    broken = event_json(s.status["status_id"])
    del broken["event_type"]
    trace = new_id()
    reply = http.request("POST", BATCH, user="exporter", headers={"X-Trace-Id": trace},
                         json={"statuses": [s.status],
                               "events": [s.event, waiting.event, broken]})
    assert reply.status == 200 and reply.headers["X-Trace-Id"] == trace
    history = http.request("GET", f"/status/{trace}/history", user="reader").json()
    outcomes = {(e["domain"], e["domain_id"]): (e["operation"], e["trace_event_status"])
                for e in history}
    assert outcomes == {("status", s.status["status_id"]): ("store", "OK"),
                        ("event", s.event["event_id"]): ("store", "OK"),
                        ("event", broken["event_id"]): ("refuse", "FAILED")}


def test_a_resent_body_reuses_the_entity_and_a_changed_one_is_validated_again():
    """A second round resends the same bodies: the entity parsed in the first is reused
    (per user); any change, however small, goes through validation again."""
    cache = EntityCache(16)
    known = SentBefore(cache, "exporter")
    status = status_json()
    event = event_json(status["status_id"], [file_json(status["status_id"], b"bytes")])
    first = parse_batch({"events": [event]}, 10, known)[0].entity
    assert parse_batch({"events": [copy.deepcopy(event)]}, 10, known)[0].entity is first
    someone_else = parse_batch({"events": [event]}, 10, SentBefore(cache, "other"))[0]
    assert someone_else.entity is not first and someone_else.entity == first
    changed = copy.deepcopy(event)
    changed["files"][0]["file_size"] = "large"
    item = parse_batch({"events": [changed]}, 10, known)[0]
    assert item.entity is None and "events[0].files[0].file_size" in item.error
