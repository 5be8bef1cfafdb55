"""Read API (docs/wire.md "Read API"; ordering, bounds and cursor details from
docs/protocol.md where the page is silent)."""

import pytest

from tests.blackbox.helpers import (
    assert_error, event, file_record, md5, new_camera, new_id, status)


@pytest.fixture(scope="module")
def archive(site):
    """One camera with 7 events at 4 distinct times (ties broken by ID), mixed types, one
    file each, plus a standalone file record."""
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    times = [1000, 2000, 2000, 2000, 3000, 4000, 4000]
    types = ["meteorpi:meteor", "meteorpi:plane", "meteorpi:meteor", "meteorpi:meteor",
             "meteorpi:plane", "meteorpi:meteor", "other:thing"]
    sems = ["meteorpi:triggers/image", "meteorpi:triggers/video"]
    events, blobs = [], {}
    for i, (t, kind) in enumerate(zip(times, types)):
        data = f"file {i} of the read api archive".encode() * (i + 1)
        f = file_record(cam, s["status_id"], data, file_time=t + 1, semantic_type=sems[i % 2])
        blobs[f["file_id"]] = data
        e = event(cam, s["status_id"], [f], event_time=t, event_type=kind)
        site.store_event(e, {f["file_id"]: data})
        events.append(e)
    standalone_data = b"0123456789abcdefghij"
    standalone = file_record(cam, s["status_id"], standalone_data, file_time=500,
                             mime_type="text/plain")
    site.upload_ok(standalone["file_id"], standalone_data)
    assert site.handshake({"type": "file", "file": standalone}) == {"state": "complete"}
    blobs[standalone["file_id"]] = standalone_data
    ordered = sorted(events, key=lambda e: (e["event_time"], e["event_id"]))
    files = sorted([f for e in events for f in e["files"]] + [standalone],
                   key=lambda f: (f["file_time"], f["file_id"]))
    return {"cam": cam, "status": s, "events": ordered, "files": files, "blobs": blobs,
            "standalone": standalone}


def _list(site, kind, **params):
    response = site.get(f"/api/{kind}", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {kind, "next_cursor"}, body
    return body


def test_events_listing_by_camera(site, archive):
    body = _list(site, "events", camera_id=archive["cam"])
    assert body["events"] == archive["events"]
    assert body["next_cursor"] is None


def test_events_filter_by_type(site, archive):
    want = [e for e in archive["events"] if e["event_type"] == "meteorpi:plane"]
    assert _list(site, "events", camera_id=archive["cam"],
                 event_type="meteorpi:plane")["events"] == want
    # A type without a namespace means meteorpi:
    assert _list(site, "events", camera_id=archive["cam"], event_type="plane")["events"] == want
    other = [e for e in archive["events"] if e["event_type"] == "other:thing"]
    assert _list(site, "events", camera_id=archive["cam"],
                 event_type="other:thing")["events"] == other


def test_events_filter_by_time(site, archive):
    events = archive["events"]
    got = _list(site, "events", camera_id=archive["cam"], after=2000, before=4000)["events"]
    assert got == [e for e in events if 2000 <= e["event_time"] < 4000]
    got = _list(site, "events", camera_id=archive["cam"], after=2001)["events"]
    assert got == [e for e in events if e["event_time"] >= 2001]
    got = _list(site, "events", camera_id=archive["cam"], before=2000)["events"]
    assert got == [e for e in events if e["event_time"] < 2000]


def test_events_unknown_camera_is_empty(site, archive):
    assert _list(site, "events", camera_id=new_camera()) == {"events": [],
                                                             "next_cursor": None}


@pytest.mark.parametrize("kind", ["events", "files"])
@pytest.mark.parametrize("limit", [1, 2, 3])
def test_pagination_with_cursor(site, archive, kind, limit):
    pages, params = [], {"camera_id": archive["cam"], "limit": limit}
    while True:
        body = _list(site, kind, **params)
        assert len(body[kind]) <= limit
        pages.append(body[kind])
        if body["next_cursor"] is None:
            break
        assert len(pages) < 20
        params["cursor"] = body["next_cursor"]
    assert [x for page in pages for x in page] == archive[kind]
    assert all(pages[:-1]) and all(len(p) == limit for p in pages[:-1])


def test_pagination_with_filter(site, archive):
    want = [e for e in archive["events"] if e["event_type"] == "meteorpi:meteor"]
    first = _list(site, "events", camera_id=archive["cam"], event_type="meteor", limit=2)
    assert first["events"] == want[:2] and first["next_cursor"]
    second = _list(site, "events", camera_id=archive["cam"], event_type="meteor", limit=2,
                   cursor=first["next_cursor"])
    assert second["events"] == want[2:4]


def test_files_listing_and_filters(site, archive):
    files = archive["files"]
    assert _list(site, "files", camera_id=archive["cam"]) == {"files": files,
                                                              "next_cursor": None}
    video = [f for f in files if f["semantic_type"] == "meteorpi:triggers/video"]
    assert _list(site, "files", camera_id=archive["cam"],
                 semantic_type="meteorpi:triggers/video")["files"] == video
    assert _list(site, "files", camera_id=archive["cam"],
                 semantic_type="triggers/video")["files"] == video
    got = _list(site, "files", camera_id=archive["cam"], after=1001, before=3001)["files"]
    assert got == [f for f in files if 1001 <= f["file_time"] < 3001]


@pytest.mark.parametrize("param", ["after=yesterday", "before=1.5", "limit=0", "limit=-3",
                                   "limit=many", "cursor=not-a-cursor"])
def test_malformed_listing_parameter_is_400(site, archive, param):
    body = assert_error(site.get(f"/api/events?camera_id={archive['cam']}&{param}"), 400)
    assert param.split("=")[0] in body["message"], body


def test_get_entities_by_id(site, archive):
    e = archive["events"][0]
    response = site.get(f"/api/events/{e['event_id']}")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == e
    assert site.read("files", e["files"][0]["file_id"]) == e["files"][0]
    assert site.read("files", archive["standalone"]["file_id"]) == archive["standalone"]
    assert site.read("statuses", archive["status"]["status_id"]) == archive["status"]


@pytest.mark.parametrize("path", [f"/api/events/{new_id()}", f"/api/files/{new_id()}",
                                  f"/api/statuses/{new_id()}", f"/api/files/{new_id()}/data",
                                  "/api/events/not-an-id"])
def test_unknown_id_is_404_json(site, path):
    body = assert_error(site.get(path), 404)
    assert body["state"] == "failed"


def test_file_data_headers(site, archive):
    f = archive["standalone"]
    data = archive["blobs"][f["file_id"]]
    response = site.get(f"/api/files/{f['file_id']}/data")
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["ETag"] == f'"{md5(data)}"'
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("header,start,end", [("bytes=2-5", 2, 5), ("bytes=10-", 10, 19),
                                              ("bytes=-4", 16, 19), ("bytes=0-0", 0, 0),
                                              ("bytes=15-100", 15, 19)])
def test_file_data_range(site, archive, header, start, end):
    f = archive["standalone"]
    data = archive["blobs"][f["file_id"]]
    assert len(data) == 20
    response = site.get(f"/api/files/{f['file_id']}/data", headers={"Range": header})
    assert response.status_code == 206, response.status_code
    assert response.content == data[start:end + 1]
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{len(data)}"
    assert response.headers["Content-Length"] == str(end - start + 1)


def test_file_data_unsatisfiable_range_is_416(site, archive):
    f = archive["standalone"]
    response = site.get(f"/api/files/{f['file_id']}/data", headers={"Range": "bytes=50-60"})
    assert_error(response, 416)
    assert response.headers["Content-Range"] == "bytes */20"


def test_file_data_if_none_match(site, archive):
    f = archive["standalone"]
    response = site.get(f"/api/files/{f['file_id']}/data",
                        headers={"If-None-Match": f'"{f["md5"]}"'})
    assert response.status_code == 304


def test_every_event_file_is_served(site, archive):
    for e in archive["events"]:
        f = e["files"][0]
        response = site.get(f"/api/files/{f['file_id']}/data")
        assert response.status_code == 200
        assert response.content == archive["blobs"][f["file_id"]]
        assert response.headers["ETag"] == f'"{f["md5"]}"'


def test_limit_over_1000_is_served(site, archive):
    """docs/protocol.md: more than 1000 is served as 1000, not refused."""
    body = _list(site, "events", camera_id=archive["cam"], limit=5000)
    assert body["events"] == archive["events"]


def test_empty_parameters_are_absent(site, archive):
    body = _list(site, "events", camera_id=archive["cam"], event_type="", after="", before="",
                 limit="", cursor="")
    assert body == {"events": archive["events"], "next_cursor": None}


def test_several_ranges_give_the_whole_file(site, archive):
    f = archive["standalone"]
    response = site.get(f"/api/files/{f['file_id']}/data", headers={"Range": "bytes=0-1,5-6"})
    assert response.status_code == 200
    assert response.content == archive["blobs"][f["file_id"]]


def test_read_api_wrong_method_answers_json(site, archive):
    import requests
    response = requests.post(site.url + "/api/events", json={}, auth=site.auth("reader"),
                             timeout=10)
    assert_error(response, 405)
