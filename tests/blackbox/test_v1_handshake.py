"""Version 1 handshake (docs/wire.md "Version 1: the handshake", "Entity cache",
"Conventions", "Entities"), over HTTP against a real `skyrelay serve`."""

import concurrent.futures

from tests.blackbox.helpers import (
    cached_form, dashed_upper, event, event_form, file_form, file_record, md5, new_camera,
    new_id, status, status_form)


# -- request forms and the answer table -------------------------------------------------------

def test_status_form_is_answered_continue_and_stored(site):
    s = status(new_camera())
    response = site.post(status_form(s))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"state": "continue"}
    assert site.read("statuses", s["status_id"]) == s


def test_status_form_already_held_is_answered_continue(site):
    s = status(new_camera())
    site.store_status(s)
    assert site.handshake(status_form(s)) == {"state": "continue"}


def test_standalone_file_record_full_cycle(site):
    cam, data = new_camera(), b"standalone bytes"
    s = status(cam)
    f = file_record(cam, s["status_id"], data)
    assert site.handshake(file_form(f)) == {"state": "need_status", "status_id": s["status_id"]}
    assert site.handshake(status_form(s)) == {"state": "continue"}
    assert site.handshake(cached_form(f["file_id"])) == {"state": "need_file_data",
                                                          "file_id": f["file_id"]}
    site.upload_ok(f["file_id"], data)
    assert site.handshake(cached_form(f["file_id"])) == {"state": "complete"}
    assert site.read("files", f["file_id"]) == f
    assert site.data(f["file_id"]) == data


def test_event_full_cycle(site):
    cam = new_camera()
    s = status(cam)
    blobs = [b"first file", b"second file bytes"]
    files = [file_record(cam, s["status_id"], b) for b in blobs]
    e = event(cam, s["status_id"], files)
    assert site.handshake(event_form(e)) == {"state": "need_status", "status_id": s["status_id"]}
    assert site.handshake(status_form(s)) == {"state": "continue"}
    assert site.handshake(cached_form(e["event_id"])) == {"state": "need_file_data",
                                                          "file_id": files[0]["file_id"]}
    site.upload_ok(files[0]["file_id"], blobs[0])
    assert site.handshake(cached_form(e["event_id"])) == {"state": "need_file_data",
                                                          "file_id": files[1]["file_id"]}
    site.upload_ok(files[1]["file_id"], blobs[1], raw=True)
    assert site.handshake(cached_form(e["event_id"])) == {"state": "complete"}
    assert site.read("events", e["event_id"]) == e
    for f, b in zip(files, blobs):
        assert site.read("files", f["file_id"]) == f
        assert site.data(f["file_id"]) == b


def test_event_without_files_and_known_status_is_complete_at_once(site):
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    e = event(cam, s["status_id"], [], meta=[])
    assert site.handshake(event_form(e)) == {"state": "complete"}
    assert site.read("events", e["event_id"]) == e


def test_cached_entity_never_sent_is_continue_nocache(site):
    assert site.handshake(cached_form(new_id())) == {"state": "continue-nocache"}


# -- the event decision order -----------------------------------------------------------------

def test_status_unknown_comes_before_missing_bytes(site):
    cam = new_camera()
    s = status(cam)
    e = event(cam, s["status_id"], [file_record(cam, s["status_id"], b"x")])
    assert site.handshake(event_form(e)) == {"state": "need_status", "status_id": s["status_id"]}


def test_need_file_data_names_first_missing_file_in_list_order(site):
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    blobs = [b"one", b"two", b"three"]
    files = [file_record(cam, s["status_id"], b) for b in blobs]
    e = event(cam, s["status_id"], files)
    # The last file's bytes arrive first: the first missing one in list order is still files[0].
    site.upload_ok(files[2]["file_id"], blobs[2])
    assert site.handshake(event_form(e)) == {"state": "need_file_data",
                                             "file_id": files[0]["file_id"]}
    site.upload_ok(files[0]["file_id"], blobs[0])
    assert site.handshake(cached_form(e["event_id"])) == {"state": "need_file_data",
                                                          "file_id": files[1]["file_id"]}
    site.upload_ok(files[1]["file_id"], blobs[1])
    assert site.handshake(cached_form(e["event_id"])) == {"state": "complete"}


def test_bytes_sent_before_the_record_count_as_present(site):
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    blobs = [b"early a", b"early b"]
    files = [file_record(cam, s["status_id"], b) for b in blobs]
    for f, b in zip(files, blobs):
        site.upload_ok(f["file_id"], b)
    e = event(cam, s["status_id"], files)
    assert site.handshake(event_form(e)) == {"state": "complete"}


def test_already_held_comes_first(site):
    """Held → complete even if the resent version names an unknown status and new files."""
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    e = event(cam, s["status_id"], [])
    assert site.handshake(event_form(e)) == {"state": "complete"}
    other = dict(e, status_id=new_id(),
                 files=[file_record(cam, s["status_id"], b"never sent")])
    assert site.handshake(event_form(other)) == {"state": "complete"}
    assert site.read("events", e["event_id"]) == e


def test_standalone_file_decision_matches_event(site):
    cam = new_camera()
    s = status(cam)
    data = b"standalone early"
    f = file_record(cam, s["status_id"], data)
    site.upload_ok(f["file_id"], data)
    assert site.handshake(file_form(f)) == {"state": "need_status", "status_id": s["status_id"]}
    site.store_status(s)
    assert site.handshake(cached_form(f["file_id"])) == {"state": "complete"}
    assert site.handshake(file_form(f)) == {"state": "complete"}


def test_event_with_zero_byte_file(site):
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    f = file_record(cam, s["status_id"], b"")
    assert f["md5"] == "d41d8cd98f00b204e9800998ecf8427e" and f["file_size"] == 0
    e = event(cam, s["status_id"], [f])
    assert site.handshake(event_form(e)) == {"state": "need_file_data", "file_id": f["file_id"]}
    site.upload_ok(f["file_id"], b"", raw=True)
    assert site.handshake(cached_form(e["event_id"])) == {"state": "complete"}
    assert site.data(f["file_id"]) == b""


# -- the entity cache -------------------------------------------------------------------------

def test_cached_entity_of_another_user_is_continue_nocache(site):
    cam = new_camera()
    s = status(cam)
    e = event(cam, s["status_id"], [])
    assert site.handshake(event_form(e), "exporter")["state"] == "need_status"
    site.store_status(s, "exporter")
    assert site.handshake(cached_form(e["event_id"]), "exporter2") == {
        "state": "continue-nocache"}
    # ... and that miss evicted nothing: the owner still reaches its entry.
    assert site.handshake(cached_form(e["event_id"]), "exporter") == {"state": "complete"}
    assert site.read("events", e["event_id"]) == e


def test_another_user_cannot_overwrite_my_cached_entity(site):
    cam = new_camera()
    s = status(cam)
    mine = event(cam, s["status_id"], [], event_type="meteorpi:mine")
    theirs = dict(mine, event_type="meteorpi:theirs")
    assert site.handshake(event_form(mine), "exporter")["state"] == "need_status"
    assert site.handshake(event_form(theirs), "exporter2")["state"] == "need_status"
    site.store_status(s)
    assert site.handshake(cached_form(mine["event_id"]), "exporter") == {"state": "complete"}
    assert site.read("events", mine["event_id"])["event_type"] == "meteorpi:mine"


def test_full_entity_replaces_the_cached_one(site):
    cam = new_camera()
    s = status(cam)
    first = event(cam, s["status_id"], [], event_type="meteorpi:first")
    second = dict(first, event_type="meteorpi:second")
    assert site.handshake(event_form(first))["state"] == "need_status"
    assert site.handshake(event_form(second))["state"] == "need_status"
    site.store_status(s)
    assert site.handshake(cached_form(first["event_id"])) == {"state": "complete"}
    assert site.read("events", first["event_id"]) == second


def test_cached_entity_accepts_dashed_upper_case_id(site):
    cam = new_camera()
    s = status(cam)
    e = event(cam, s["status_id"], [])
    assert site.handshake(event_form(e))["state"] == "need_status"
    site.store_status(s)
    assert site.handshake(cached_form(dashed_upper(e["event_id"]))) == {"state": "complete"}


def test_status_does_not_disturb_the_cached_event(site):
    """docs/protocol.md: sending a status does not touch the cached event or file."""
    cam = new_camera()
    s = status(cam)
    data = b"cached across a status"
    f = file_record(cam, s["status_id"], data)
    e = event(cam, s["status_id"], [f])
    assert site.handshake(event_form(e))["state"] == "need_status"
    assert site.handshake(status_form(s)) == {"state": "continue"}
    assert site.handshake(cached_form(e["event_id"])) == {"state": "need_file_data",
                                                          "file_id": f["file_id"]}


def test_cached_entity_naming_a_status_completes(site):
    """docs/protocol.md: `cached_entity` naming a status answers complete once it is held."""
    s = status(new_camera())
    assert site.handshake(status_form(s)) == {"state": "continue"}
    assert site.handshake(cached_form(s["status_id"])) == {"state": "complete"}


def test_concurrent_identical_events_all_complete(site):
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    data = b"concurrent"
    f = file_record(cam, s["status_id"], data)
    site.upload_ok(f["file_id"], data)
    e = event(cam, s["status_id"], [f])
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: site.post(event_form(e)), range(12)))
    assert [(a.status_code, a.json()) for a in answers] == [(200, {"state": "complete"})] * 12
    assert site.read("events", e["event_id"]) == e


def test_concurrent_cache_use_by_two_users(site):
    """The cache is keyed by (user, ID) and safe under concurrent requests."""
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    events = [event(cam, s["status_id"], []) for _ in range(10)]

    def run(args):
        user, e = args
        first = site.handshake(event_form(e), user)
        again = site.handshake(cached_form(e["event_id"]), user)
        return first, again

    jobs = [(u, e) for e in events for u in ("exporter", "exporter2")]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for first, again in pool.map(run, jobs):
            assert first == {"state": "complete"} and again == {"state": "complete"}


# -- conventions: IDs, namespaces, null keys --------------------------------------------------

def test_dashed_upper_case_ids_are_normalised(site):
    cam = new_camera()
    sid, fid, eid = new_id(), new_id(), new_id()
    data = b"normalise me"
    s = status(cam, dashed_upper(sid))
    assert site.handshake(status_form(s)) == {"state": "continue"}
    f = file_record(cam, dashed_upper(sid), data, file_id=dashed_upper(fid))
    e = event(cam, dashed_upper(sid), [f], event_id=dashed_upper(eid))
    # The answer names the file by its normalised ID.
    assert site.handshake(event_form(e)) == {"state": "need_file_data", "file_id": fid}
    site.upload_ok(dashed_upper(fid), data)
    assert site.handshake(cached_form(eid)) == {"state": "complete"}
    stored = site.read("events", eid)
    assert stored["event_id"] == eid and stored["status_id"] == sid
    assert stored["files"][0]["file_id"] == fid and stored["files"][0]["status_id"] == sid
    assert site.read("statuses", sid)["status_id"] == sid
    assert site.read("files", fid)["file_id"] == fid


def test_need_status_names_the_normalised_status_id(site):
    cam = new_camera()
    sid = new_id()
    e = event(cam, dashed_upper(sid), [])
    assert site.handshake(event_form(e)) == {"state": "need_status", "status_id": sid}


def test_read_api_accepts_dashed_upper_case_ids(site):
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    assert site.read("statuses", dashed_upper(s["status_id"])) == s


def test_names_without_colon_get_the_meteorpi_namespace(site):
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    data = b"namespaced"
    f = file_record(cam, s["status_id"], data, semantic_type="triggers/image",
                    meta=[{"type": "string", "key": "exposure_note", "value": "x"}])
    e = event(cam, s["status_id"], [f], event_type="meteor",
              meta=[{"type": "number", "key": "brightness", "value": 3},
                    {"type": "string", "key": "other:key", "value": "kept"}])
    site.store_event(e, {f["file_id"]: data})
    stored = site.read("events", e["event_id"])
    assert stored["event_type"] == "meteorpi:meteor"
    assert [m["key"] for m in stored["meta"]] == ["meteorpi:brightness", "other:key"]
    assert stored["files"][0]["semantic_type"] == "meteorpi:triggers/image"
    assert stored["files"][0]["meta"][0]["key"] == "meteorpi:exposure_note"
    assert site.read("files", f["file_id"])["semantic_type"] == "meteorpi:triggers/image"


def test_absent_optional_keys_stay_absent(site):
    cam = new_camera()
    s = {"status_id": new_id(), "camera_id": cam, "valid_from": 1,
         "location": {"lat": 1.5, "long": 2.5}, "orientation": {"alt": 10.0, "az": 20.0}}
    site.store_status(s)
    assert site.read("statuses", s["status_id"]) == s
    data = b"minimal"
    f = file_record(cam, s["status_id"], data, meta=[])
    del f["file_name"]
    e = event(cam, s["status_id"], [f], meta=[])
    site.store_event(e, {f["file_id"]: data})
    stored = site.read("events", e["event_id"])
    assert stored == e and "file_name" not in stored["files"][0]
    assert "file_name" not in site.read("files", f["file_id"])


def test_null_values_are_left_out(site):
    """An absent optional key means null; a key whose value would be null is left out."""
    cam = new_camera()
    s = status(cam, lens=None, sensor=None, valid_to=None, inst_url=None)
    site.store_status(s)
    stored = site.read("statuses", s["status_id"])
    assert None not in stored.values()
    for key in ("lens", "sensor", "valid_to", "inst_url"):
        assert key not in stored
    data = b"null name"
    f = file_record(cam, s["status_id"], data, file_name=None)
    e = event(cam, s["status_id"], [f])
    site.store_event(e, {f["file_id"]: data})
    assert "file_name" not in site.read("files", f["file_id"])
    assert "file_name" not in site.read("events", e["event_id"])["files"][0]


def test_numbers_are_kept_as_sent(site):
    """JSON parser, never YAML: 1e-05 stays a number; docs: 30 stays 30, 30.0 stays 30.0."""
    cam = new_camera()
    s = status(cam, location={"lat": 30, "long": 20.0, "gps": False, "error": 1e-05})
    site.store_status(s)
    stored = site.read("statuses", s["status_id"])
    assert stored["location"] == s["location"]
    assert isinstance(stored["location"]["lat"], int)
    assert isinstance(stored["location"]["long"], float)
    assert isinstance(stored["location"]["error"], float)
    e = event(cam, s["status_id"], [], meta=[
        {"type": "number", "key": "meteorpi:tiny", "value": 1e-05},
        {"type": "date", "key": "meteorpi:when", "value": 1427891400000}])
    assert site.handshake(event_form(e)) == {"state": "complete"}
    assert site.read("events", e["event_id"])["meta"] == e["meta"]


def test_raw_body_without_json_content_type_is_parsed_as_json(site):
    """docs/protocol.md: the body is parsed as JSON whatever its Content-Type."""
    import json
    s = status(new_camera())
    response = site.post(None, data=json.dumps(status_form(s)).encode(),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200 and response.json() == {"state": "continue"}


# -- immutability -----------------------------------------------------------------------------

def test_status_immutable(site):
    s = status(new_camera())
    site.store_status(s)
    changed = dict(s, lens="another lens")
    assert site.handshake(status_form(changed)) == {"state": "continue"}
    assert site.read("statuses", s["status_id"]) == s


def test_event_resend_is_complete_and_original_kept(site):
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    data = b"immutable"
    f = file_record(cam, s["status_id"], data)
    e = event(cam, s["status_id"], [f])
    site.store_event(e, {f["file_id"]: data})
    assert site.handshake(event_form(e)) == {"state": "complete"}
    changed = dict(e, event_type="meteorpi:changed", event_time=e["event_time"] + 1)
    assert site.handshake(event_form(changed)) == {"state": "complete"}
    assert site.handshake(cached_form(e["event_id"])) == {"state": "complete"}
    assert site.read("events", e["event_id"]) == e


def test_file_record_resend_is_complete_and_original_kept(site):
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    data = b"immutable file"
    f = file_record(cam, s["status_id"], data)
    site.upload_ok(f["file_id"], data)
    assert site.handshake(file_form(f)) == {"state": "complete"}
    other = b"other bytes entirely"
    changed = dict(f, md5=md5(other), file_size=len(other), mime_type="text/plain")
    assert site.handshake(file_form(changed)) == {"state": "complete"}
    assert site.read("files", f["file_id"]) == f
    assert site.data(f["file_id"]) == data


# -- the `failed` answer, file statuses, the cache bound, {base}/ -----------------------------

def test_event_naming_a_file_held_by_another_event_is_failed(site):
    """Answer table: {"state": "failed", "message": …} = this entity cannot be imported
    (docs/protocol.md: an event naming a file ID already held as another entity's record)."""
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    data = b"owned by the first event"
    f = file_record(cam, s["status_id"], data)
    first = event(cam, s["status_id"], [f])
    site.store_event(first, {f["file_id"]: data})
    second = event(cam, s["status_id"], [f])
    response = site.post(event_form(second))
    assert response.status_code == 200
    answer = response.json()
    assert answer["state"] == "failed" and answer["message"], answer
    assert set(answer) == {"state", "message"}, answer
    assert site.read("events", second["event_id"]) is None


def test_event_naming_a_held_standalone_file_is_failed(site):
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    data = b"standalone first"
    f = file_record(cam, s["status_id"], data)
    site.upload_ok(f["file_id"], data)
    assert site.handshake(file_form(f)) == {"state": "complete"}
    e = event(cam, s["status_id"], [f])
    answer = site.handshake(event_form(e))
    assert answer["state"] == "failed" and answer["message"], answer
    assert site.read("events", e["event_id"]) is None


def test_unknown_status_of_a_file_record_is_asked_for(site):
    """A file record is stored only with its status known ("its status unknown →
    need_status"; a standalone record is the same). docs/protocol.md: an event is stored only
    when its status and every file record's status are held; the first one missing is asked
    for: the event's, then each file's in the order of `files` (before any bytes)."""
    cam = new_camera()
    s, file_status = status(cam), status(cam)
    site.store_status(s)
    data = b"file with its own status"
    f = file_record(cam, file_status["status_id"], data)
    e = event(cam, s["status_id"], [f])
    assert site.handshake(event_form(e)) == {"state": "need_status",
                                             "status_id": file_status["status_id"]}
    assert site.handshake(status_form(file_status)) == {"state": "continue"}
    assert site.handshake(cached_form(e["event_id"])) == {"state": "need_file_data",
                                                          "file_id": f["file_id"]}
    site.upload_ok(f["file_id"], data)
    assert site.handshake(cached_form(e["event_id"])) == {"state": "complete"}
    assert site.read("events", e["event_id"]) == e


def test_unknown_status_of_a_file_record_with_bytes_present(site):
    """Bytes already there: the event must still reach need_status for its file's status
    (never a 5xx: "the importer never answers 500 to bad input")."""
    cam = new_camera()
    s, file_status = status(cam), status(cam)
    site.store_status(s)
    data = b"bytes first, file status unknown"
    f = file_record(cam, file_status["status_id"], data)
    site.upload_ok(f["file_id"], data)
    e = event(cam, s["status_id"], [f])
    response = site.post(event_form(e))
    assert (response.status_code, response.json()) == (
        200, {"state": "need_status", "status_id": file_status["status_id"]})
    assert site.handshake(status_form(file_status)) == {"state": "continue"}
    assert site.handshake(cached_form(e["event_id"])) == {"state": "complete"}


def test_failed_comes_before_asking_for_bytes(site):
    """docs/protocol.md: an event naming a held file ID answers failed and asks for no bytes."""
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    data = b"held by the first event"
    held = file_record(cam, s["status_id"], data)
    site.store_event(event(cam, s["status_id"], [held]), {held["file_id"]: data})
    fresh = file_record(cam, s["status_id"], b"never uploaded")
    e = event(cam, s["status_id"], [fresh, held])
    answer = site.handshake(event_form(e))
    assert answer["state"] == "failed" and answer["message"], answer


def test_standalone_form_of_a_file_held_in_an_event_is_complete(site):
    """The ID is already held, with the same content: complete."""
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    data = b"inside an event"
    f = file_record(cam, s["status_id"], data)
    e = event(cam, s["status_id"], [f])
    site.store_event(e, {f["file_id"]: data})
    assert site.handshake(file_form(f)) == {"state": "complete"}
    assert site.read("events", e["event_id"]) == e


def test_unknown_keys_are_ignored(site):
    """docs/protocol.md: unknown keys in an entity are ignored and not stored."""
    cam = new_camera()
    s = status(cam)
    site.store_status(dict(s, colour="blue"))
    assert site.read("statuses", s["status_id"]) == s


def test_base_with_trailing_slash(site):
    """docs/protocol.md: `{base}/` works like `{base}`."""
    import requests
    s = status(new_camera())
    response = requests.post(site.base + "/", json=status_form(s), auth=site.auth("exporter"),
                             timeout=10)
    assert response.status_code == 200 and response.json() == {"state": "continue"}


def test_entity_cache_is_a_bounded_lru(tiny_site):
    """importer.cache_size (2 here) bounds the cache; the least recently used entry goes
    first; a miss evicts nothing else. Statuses are never sent here, so only events occupy
    the cache."""
    small = tiny_site
    cam = new_camera()
    sid = new_id()
    e1, e2, e3 = (event(cam, sid, []) for _ in range(3))
    need = {"state": "need_status", "status_id": sid}
    nocache = {"state": "continue-nocache"}
    assert small.handshake(event_form(e1)) == need
    assert small.handshake(event_form(e2)) == need
    assert small.handshake(cached_form(e1["event_id"])) == need  # e1 most recent now
    assert small.handshake(cached_form(new_id())) == nocache     # a miss evicts nothing
    assert small.handshake(cached_form(e2["event_id"])) == need
    assert small.handshake(cached_form(e1["event_id"])) == need  # order: e2, e1
    assert small.handshake(event_form(e3)) == need               # evicts e2
    assert small.handshake(cached_form(e2["event_id"])) == nocache
    assert small.handshake(cached_form(e1["event_id"])) == need
    assert small.handshake(cached_form(e3["event_id"])) == need


def test_md5_is_served_lowercase(site):
    """MD5 digests are 32 lowercase hex digits: a record sent with an upper-case MD5 is either
    refused (400) or stored, answered and served in lower case."""
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    data = b"upper-case digest"
    f = file_record(cam, s["status_id"], data)
    sent = dict(f, md5=f["md5"].upper())
    response = site.post(file_form(sent))
    if response.status_code == 400:
        return
    assert response.json() == {"state": "need_file_data", "file_id": f["file_id"]}
    site.upload_ok(f["file_id"], data)
    assert site.handshake(file_form(sent)) == {"state": "complete"}
    assert site.read("files", f["file_id"]) == f
    assert site.get(f"/api/files/{f['file_id']}/data").headers["ETag"] == f'"{f["md5"]}"'
