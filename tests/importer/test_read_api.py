"""The read API of docs/wire.md: listings with filters and cursors, one entity by ID, file bytes
with ETag and Range; over every transport, and with the blobs on S3."""

import pytest

from tests.importer.test_import_errors import assert_error
from tests.importer_fixtures import (site_config, event_json, file_json, md5_of, new_id, password_of,
                                     status_json)
from tests.site_kit import open_test_site
from importer.app import create_app
from model.protocol.entities import Event, Status

T0 = 1_500_000_000_000
# Every transport, and `skyrelay serve` with its blobs on S3 (ranged reads of objects).
pytestmark = pytest.mark.blob_backends


def _store_event(http, camera: str, event_time: int, n_files: int = 1,
                 event_type: str = "meteorpi:meteor", semantic_type: str = "meteorpi:test",
                 status: dict | None = None) -> dict:
    """Replicate one event (with its status and bytes) through the handshake."""
    status = status or status_json(camera_id=camera)
    files, data = [], {}
    for i in range(n_files):
        payload = f"{new_id()} {i}".encode()
        record = file_json(status["status_id"], payload, camera_id=camera,
                           file_time=event_time + i, semantic_type=semantic_type)
        files.append(record)
        data[record["file_id"]] = payload
    event = event_json(status["status_id"], files, camera_id=camera, event_time=event_time,
                       event_type=event_type)
    http.answer({"type": "status", "status": status})
    for file_id, payload in data.items():
        http.upload(file_id, md5_of(payload), payload)
    assert http.answer({"type": "event", "event": event}) == {"state": "complete"}
    return event


def _get(http, path: str, user: str = "reader", **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return http.request("GET", f"{path}?{query}" if query else path, user=user)


def _all_pages(http, path: str, key: str, **params) -> list[dict]:
    seen, cursor = [], None
    for _ in range(100):
        reply = _get(http, path, **params, **({"cursor": cursor} if cursor else {}))
        assert reply.status == 200, reply.body
        body = reply.json()
        assert set(body) == {key, "next_cursor"}
        seen += body[key]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("pagination did not end")


def test_events_paginate_in_time_order_without_gaps_or_repeats(http):
    camera = f"cam-{new_id()[:8]}"
    times = [T0 + 5, T0, T0 + 5, T0 + 2, T0 + 5, T0 + 9, T0 + 1]   # ties on T0+5
    stored = [_store_event(http, camera, t, n_files=0) for t in times]
    expected = sorted(stored, key=lambda e: (e["event_time"], e["event_id"]))
    listed = _all_pages(http, "/api/events", "events", camera_id=camera, limit=3)
    assert [e["event_id"] for e in listed] == [e["event_id"] for e in expected]
    assert listed[0] == expected[0]   # the entity as stored, not a summary


def test_event_filters(http):
    camera = f"cam-{new_id()[:8]}"
    meteor = [_store_event(http, camera, T0 + i, n_files=0) for i in range(4)]
    other = _store_event(http, camera, T0 + 2, n_files=0, event_type="skyrelay:satellite")

    def ids(**params):
        return {e["event_id"] for e in _all_pages(http, "/api/events", "events",
                                                  camera_id=camera, **params)}

    assert ids() == {e["event_id"] for e in meteor} | {other["event_id"]}
    assert ids(event_type="skyrelay:satellite") == {other["event_id"]}
    assert ids(event_type="meteor") == {e["event_id"] for e in meteor}  # default namespace
    assert ids(after=T0 + 1, before=T0 + 3) == \
        {meteor[1]["event_id"], meteor[2]["event_id"], other["event_id"]}  # [after, before)
    assert ids(after=T0 + 4) == set()
    assert ids(camera_id_unused="x", before=T0 + 1) == {meteor[0]["event_id"]}


def test_file_listing_and_filters(http):
    camera = f"cam-{new_id()[:8]}"
    event = _store_event(http, camera, T0, n_files=3)
    other = _store_event(http, camera, T0 + 10, n_files=1, semantic_type="meteorpi:movie")
    files = _all_pages(http, "/api/files", "files", camera_id=camera, limit=2)
    assert [f["file_id"] for f in files] == \
        [f["file_id"] for f in event["files"] + other["files"]]
    assert files[0] == event["files"][0]
    movies = _all_pages(http, "/api/files", "files", camera_id=camera,
                        semantic_type="meteorpi:movie")
    assert [f["file_id"] for f in movies] == [other["files"][0]["file_id"]]
    assert len(_all_pages(http, "/api/files", "files", camera_id=camera,
                          after=T0 + 1, before=T0 + 10)) == 2


def test_the_query_template_with_empty_values_lists_everything(http):
    reply = http.request("GET", "/api/events?camera_id=&event_type=&after=&before=&limit="
                         "&cursor=", user="reader")
    assert reply.status == 200 and "events" in reply.json()


@pytest.mark.parametrize("path,param,value", [
    ("/api/events", "after", "yesterday"), ("/api/events", "before", "-1"),
    ("/api/events", "after", "1.5"), ("/api/events", "limit", "0"),
    ("/api/events", "limit", "ten"), ("/api/events", "cursor", "not-a-cursor"),
    ("/api/events", "cursor", "MTIzOnh5eg"), ("/api/events", "camera_id", "bad%20camera"),
    ("/api/events", "event_type", ":meteor"), ("/api/files", "semantic_type", "a:"),
    ("/api/files", "before", "soon")])
def test_bad_listing_parameters_get_400_naming_the_parameter(http, path, param, value):
    assert_error(_get(http, path, **{param: value}), 400, param)


def test_one_entity_by_id_is_the_stored_json(http):
    camera = f"cam-{new_id()[:8]}"
    status = status_json(camera_id=camera, lens="VF-DCS", valid_to=T0 + 50)
    event = _store_event(http, camera, T0, n_files=1, status=status)
    got = _get(http, f"/api/events/{event['event_id']}")
    assert got.status == 200 and got.headers["Content-Type"] == "application/json"
    assert Event.from_json(got.json()) == Event.from_json(event)
    assert _get(http, f"/api/files/{event['files'][0]['file_id']}").json() == \
        event["files"][0]
    assert Status.from_json(_get(http, f"/api/statuses/{status['status_id']}").json()) == \
        Status.from_json(status)
    assert _get(http, f"/api/events/{event['event_id'].upper()}").status == 200


@pytest.mark.parametrize("path", ["/api/events/{id}", "/api/files/{id}",
                                  "/api/statuses/{id}", "/api/files/{id}/data"])
@pytest.mark.parametrize("ident", ["unknown", "malformed"])
def test_unknown_ids_get_404(http, path, ident):
    value = new_id() if ident == "unknown" else "no-such-thing"
    assert_error(_get(http, path.format(id=value)), 404, value)


def test_staged_bytes_without_record_are_not_downloadable(http):
    file_id, data = new_id(), b"staged only"
    http.upload(file_id, md5_of(data), data)
    assert_error(_get(http, f"/api/files/{file_id}/data"), 404)


# -- bytes ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stored_file(http):
    camera = f"cam-{new_id()[:8]}"
    event = _store_event(http, camera, T0, n_files=1)
    record = event["files"][0]
    data = _get(http, f"/api/files/{record['file_id']}/data").body
    return record, data


def test_download_has_the_bytes_etag_and_length(http, stored_file):
    record, data = stored_file
    reply = _get(http, f"/api/files/{record['file_id']}/data")
    assert reply.status == 200
    assert md5_of(reply.body) == record["md5"] and len(reply.body) == record["file_size"]
    assert reply.headers["ETag"] == f'"{record["md5"]}"'
    assert reply.headers["Content-Length"] == str(record["file_size"])
    assert reply.headers["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize("spec,start,end", [("bytes=2-5", 2, 5), ("bytes=-4", None, None),
                                            ("bytes=3-", 3, None)])
def test_range_gives_206_with_content_range(http, stored_file, spec, start, end):
    record, data = stored_file
    size = len(data)
    if start is None:
        start, end = size - 4, size - 1
    elif end is None:
        end = size - 1
    reply = http.request("GET", f"/api/files/{record['file_id']}/data", user="reader",
                         headers={"Range": spec})
    assert reply.status == 206
    assert reply.headers["Content-Range"] == f"bytes {start}-{end}/{size}"
    assert reply.body == data[start:end + 1]
    assert reply.headers["Content-Length"] == str(end - start + 1)


def test_unsatisfiable_range_gets_416_in_the_error_shape(http, stored_file):
    record, data = stored_file
    reply = http.request("GET", f"/api/files/{record['file_id']}/data", user="reader",
                         headers={"Range": f"bytes={len(data) + 10}-"})
    assert_error(reply, 416)
    assert reply.headers["Content-Range"] == f"bytes */{len(data)}"


def test_several_ranges_are_ignored_and_the_whole_file_sent(http, stored_file):
    record, data = stored_file
    reply = http.request("GET", f"/api/files/{record['file_id']}/data", user="reader",
                         headers={"Range": "bytes=0-1,4-5"})
    assert reply.status == 200 and reply.body == data


def test_if_none_match_with_the_md5_gets_304(http, stored_file):
    record, _ = stored_file
    reply = http.request("GET", f"/api/files/{record['file_id']}/data", user="reader",
                         headers={"If-None-Match": f'"{record["md5"]}"'})
    assert reply.status == 304 and reply.body == b""


# -- limits (many entities: stored directly, Flask only) ------------------------------------

@pytest.fixture
def listing_site(tmp_path):
    """SQLite, blobs in a local folder: the listing limits involve no bytes, so this test
    runs once, not once per blob backend."""
    opened = open_test_site(f"sqlite:///{tmp_path}/site.db", tmp_path / "blobs")
    yield opened
    opened.close()


def test_limit_defaults_to_100_and_is_capped_at_1000(listing_site, tmp_path):
    site = listing_site
    status = Status.from_json(status_json(camera_id="many"))
    site.archive.add_status(status)
    for i in range(1001):
        site.archive.import_event(Event.from_json(
            event_json(status.status_id, camera_id="many", event_time=T0 + i)))
    config = site_config(tmp_path)
    site.users.add("reader", password_of("reader"), ["user"])
    client = create_app(config, site).test_client()
    auth = ("reader", password_of("reader"))
    first = client.get("/api/events", auth=auth).get_json()
    assert len(first["events"]) == 100 and first["next_cursor"]
    big = client.get("/api/events?limit=5000", auth=auth).get_json()
    assert len(big["events"]) == 1000 and big["next_cursor"]
    rest = client.get(f"/api/events?limit=5000&cursor={big['next_cursor']}", auth=auth)
    assert len(rest.get_json()["events"]) == 1 and rest.get_json()["next_cursor"] is None
