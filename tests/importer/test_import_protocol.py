"""Version 1 of docs/wire.md, row by row: every answer of the answer table and the rules
around them, over Flask's test client (SQLite, PostgreSQL) and the served program."""

import logging

from tests.importer_fixtures import (event_json, file_json, md5_of, new_id, scene,
                                     status_json)
from model.protocol.entities import content_hash


def _complete(http, s) -> None:
    """Drive a scene to completion the way an exporter does."""
    assert http.answer({"type": "status", "status": s.status}) == {"state": "continue"}
    for file_id, data in s.data.items():
        assert http.upload(file_id, md5_of(data), data).json()["received"] is True
    assert http.answer({"type": "event", "event": s.event}) == {"state": "complete"}


# -- the answer table -----------------------------------------------------------------------

def test_event_with_unknown_status_needs_status(http):
    s = scene()
    before = http.counts()
    assert http.answer({"type": "event", "event": s.event}) == \
        {"state": "need_status", "status_id": s.status["status_id"]}
    assert http.counts() == before


def test_status_is_stored_and_answered_continue(http):
    s = scene()
    before = http.counts()
    assert http.answer({"type": "status", "status": s.status}) == {"state": "continue"}
    assert http.counts()["statuses"] == before["statuses"] + 1
    # Sent again (held now): still continue, nothing added.
    assert http.answer({"type": "status", "status": s.status}) == {"state": "continue"}
    assert http.counts()["statuses"] == before["statuses"] + 1


def test_need_file_data_names_the_first_missing_file_in_list_order(http):
    s = scene(n_files=3)
    first, second, third = (f["file_id"] for f in s.event["files"])
    http.answer({"type": "status", "status": s.status})
    cached = {"type": "cached_entity", "cached_entity_id": s.event["event_id"]}
    assert http.answer({"type": "event", "event": s.event}) == \
        {"state": "need_file_data", "file_id": first}
    # Bytes of the last file arrive first: the first one is still the one asked for.
    http.upload(third, md5_of(s.data[third]), s.data[third])
    assert http.answer(cached) == {"state": "need_file_data", "file_id": first}
    http.upload(first, md5_of(s.data[first]), s.data[first])
    assert http.answer(cached) == {"state": "need_file_data", "file_id": second}


def test_flow_ends_complete_and_stores_event_with_all_files_at_once(http):
    s = scene(n_files=2)
    before = http.counts()
    event = {"type": "event", "event": s.event}
    cached = {"type": "cached_entity", "cached_entity_id": s.event["event_id"]}
    assert http.answer(event)["state"] == "need_status"
    assert http.answer({"type": "status", "status": s.status}) == {"state": "continue"}
    for record in s.event["files"]:
        assert http.answer(cached) == {"state": "need_file_data", "file_id": record["file_id"]}
        assert http.counts()["events"] == before["events"]   # nothing half-stored
        data = s.data[record["file_id"]]
        assert http.upload(record["file_id"], md5_of(data), data).json() == \
            {"state": "continue", "received": True}
    assert http.answer(cached) == {"state": "complete"}
    after = http.counts()
    assert (after["events"], after["files"], after["staged"]) == \
        (before["events"] + 1, before["files"] + 2, before["staged"])


def test_held_event_answers_complete(http):
    s = scene()
    _complete(http, s)
    before = http.counts()
    assert http.answer({"type": "event", "event": s.event}) == {"state": "complete"}
    assert http.answer({"type": "event", "event": s.event}, user="other") == \
        {"state": "complete"}
    assert http.counts() == before


def test_standalone_file_record_follows_the_same_rules(http):
    status = status_json()
    data = b"standalone bytes"
    record = file_json(status["status_id"], data)
    body = {"type": "file", "file": record}
    cached = {"type": "cached_entity", "cached_entity_id": record["file_id"]}
    assert http.answer(body) == {"state": "need_status", "status_id": status["status_id"]}
    http.answer({"type": "status", "status": status})
    assert http.answer(cached) == {"state": "need_file_data", "file_id": record["file_id"]}
    http.upload(record["file_id"], md5_of(data), data)
    before = http.counts()
    assert http.answer(cached) == {"state": "complete"}
    assert http.counts()["files"] == before["files"] + 1
    assert http.answer(body) == {"state": "complete"}


def test_cached_entity_miss_answers_continue_nocache(http):
    before = http.counts()
    assert http.answer({"type": "cached_entity", "cached_entity_id": new_id()}) == \
        {"state": "continue-nocache"}
    assert http.counts() == before


def test_cached_entity_accepts_dashed_upper_case_ids(http):
    s = scene()
    http.answer({"type": "event", "event": s.event})
    raw = s.event["event_id"].upper()
    dashed = f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"
    assert http.answer({"type": "cached_entity", "cached_entity_id": dashed}) == \
        {"state": "need_status", "status_id": s.status["status_id"]}


def test_cached_entity_naming_a_status_is_complete_once_stored(http):
    status = status_json()
    cached = {"type": "cached_entity", "cached_entity_id": status["status_id"]}
    assert http.answer({"type": "status", "status": status}) == {"state": "continue"}
    assert http.answer(cached) == {"state": "complete"}


def test_event_whose_file_id_is_held_by_another_event_fails(http):
    first = scene(n_files=1)
    _complete(http, first)
    thief = event_json(first.status["status_id"], first.event["files"])
    before = http.counts()
    answer = http.answer({"type": "event", "event": thief})
    assert answer["state"] == "failed"
    assert first.event["files"][0]["file_id"] in answer["message"]
    assert http.counts() == before


# -- immutability and conflicts -------------------------------------------------------------

def test_conflicting_resend_answers_complete_keeps_held_and_logs_both_hashes(http, caplog):
    s = scene(n_files=1)
    _complete(http, s)
    changed = dict(s.event, event_type="meteorpi:changed")
    before = http.counts()
    with caplog.at_level(logging.WARNING, logger="skyrelay.importer"):
        assert http.answer({"type": "event", "event": changed}) == {"state": "complete"}
    assert http.counts() == before
    stored = http.request("GET", f"/api/events/{s.event['event_id']}", user="reader").json()
    assert stored["event_type"] == "meteorpi:meteor"
    if http.name != "served":  # the served program logs to its own stderr
        text = caplog.text
    else:
        text = http.server.log()
    assert s.event["event_id"] in text and "conflict" in text
    assert content_hash(changed) in text
    assert content_hash(stored) in text


def test_conflicting_status_answers_continue_and_keeps_held(http):
    status = status_json()
    http.answer({"type": "status", "status": status})
    other = dict(status, lens="another lens")
    assert http.answer({"type": "status", "status": other}) == {"state": "continue"}
    stored = http.request("GET", f"/api/statuses/{status['status_id']}", user="reader").json()
    assert "lens" not in stored


# -- the entity cache -----------------------------------------------------------------------

def test_cache_is_per_user(http):
    shared_id = new_id()
    mine = event_json(new_id(), event_id=shared_id)
    theirs = event_json(new_id(), event_id=shared_id)
    cached = {"type": "cached_entity", "cached_entity_id": shared_id}
    assert http.answer({"type": "event", "event": mine})["status_id"] == mine["status_id"]
    # The other user cannot resolve my entry ...
    assert http.answer(cached, user="other") == {"state": "continue-nocache"}
    # ... nor overwrite it by sending an entity under the same ID.
    assert http.answer({"type": "event", "event": theirs}, user="other")["status_id"] == \
        theirs["status_id"]
    assert http.answer(cached)["status_id"] == mine["status_id"]
    assert http.answer(cached, user="other")["status_id"] == theirs["status_id"]


def test_full_entity_replaces_the_cached_one(http):
    event_id = new_id()
    first, second = event_json(new_id(), event_id=event_id), event_json(new_id(),
                                                                         event_id=event_id)
    cached = {"type": "cached_entity", "cached_entity_id": event_id}
    http.answer({"type": "event", "event": first})
    http.answer({"type": "event", "event": second})
    assert http.answer(cached) == {"state": "need_status", "status_id": second["status_id"]}


# -- uploads --------------------------------------------------------------------------------

def test_wrong_md5_is_not_staged_and_the_same_file_is_asked_again(http):
    s = scene(n_files=1)
    (file_id, data), = s.data.items()
    cached = {"type": "cached_entity", "cached_entity_id": s.event["event_id"]}
    http.answer({"type": "status", "status": s.status})
    assert http.answer({"type": "event", "event": s.event})["file_id"] == file_id
    before = http.counts()
    reply = http.upload(file_id, md5_of(data), data + b"corrupted").json()
    assert reply["state"] == "continue" and reply["received"] is False
    assert md5_of(data) in reply["message"]
    assert http.counts() == before
    assert http.answer(cached) == {"state": "need_file_data", "file_id": file_id}


def test_raw_octet_stream_upload_is_accepted(http):
    data = b"raw body bytes"
    file_id = new_id()
    before = http.counts()
    reply = http.upload(file_id, md5_of(data), data, how="raw")
    assert reply.status == 200
    assert reply.json() == {"state": "continue", "received": True}
    assert http.counts()["staged"] == before["staged"] + 1


def test_chunked_raw_upload_is_accepted(http):
    data = [b"chunk one,", b"chunk two"]
    file_id, md5 = new_id(), md5_of(b"".join(data))
    reply = http.request("POST", f"/import/data/{file_id}/{md5}", user="exporter",
                         data=data, chunked=True,
                         headers={"Content-Type": "application/octet-stream"})
    assert reply.json() == {"state": "continue", "received": True}


def test_bytes_stage_once_per_file_id_and_md5(http):
    data = b"same bytes twice"
    file_id = new_id()
    before = http.counts()
    for _ in range(2):
        assert http.upload(file_id, md5_of(data), data).json()["received"] is True
    after = http.counts()
    assert after["staged"] == before["staged"] + 1


def test_event_without_files_needs_only_its_status(http):
    status = status_json()
    event = event_json(status["status_id"])
    assert http.answer({"type": "event", "event": event})["state"] == "need_status"
    http.answer({"type": "status", "status": status})
    before = http.counts()
    assert http.answer({"type": "cached_entity", "cached_entity_id": event["event_id"]}) == \
        {"state": "complete"}
    assert http.counts()["events"] == before["events"] + 1


def test_dashed_upper_case_ids_in_entities_are_normalised(http):
    s = scene(n_files=0)

    def shout(hex_id: str) -> str:
        raw = hex_id.upper()
        return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"

    event = dict(s.event, event_id=shout(s.event["event_id"]),
                 status_id=shout(s.status["status_id"]))
    assert http.answer({"type": "event", "event": event}) == \
        {"state": "need_status", "status_id": s.status["status_id"]}
    http.answer({"type": "status", "status": dict(s.status,
                                                  status_id=shout(s.status["status_id"]))})
    assert http.answer({"type": "cached_entity", "cached_entity_id": event["event_id"]}) == \
        {"state": "complete"}
    stored = http.request("GET", f"/api/events/{s.event['event_id']}", user="reader").json()
    assert (stored["event_id"], stored["status_id"]) == \
        (s.event["event_id"], s.status["status_id"])


def test_capabilities_advertise_version_2(http):
    """(Version 2 is on by default; with `importer.max_protocol: 1` the route answers 404, so
    exporters fall back to version 1: see test_batch.py.)"""
    reply = http.request("GET", "/import/capabilities", user="exporter")
    assert reply.status == 200
    assert reply.json()["protocol"] == [1, 2]
