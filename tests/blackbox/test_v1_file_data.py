"""Version 1 file data: POST {base}/data/<file_id>/<md5> (docs/wire.md "File data")."""

import time

import pytest
import requests

from tests.blackbox.helpers import (
    MAX_BODY_BYTES, MAX_FILE_BYTES, TIMEOUT, assert_error, cached_form, dashed_upper, event,
    event_form, file_form, file_record, new_camera, new_id, status)


@pytest.fixture(scope="module")
def ready(site):
    """A camera whose status is held."""
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    return cam, s["status_id"]


@pytest.mark.parametrize("raw", [False, True], ids=["multipart", "octet-stream"])
def test_upload_answers_continue_received_true(site, ready, raw):
    cam, sid = ready
    data = b"some bytes " * 10
    f = file_record(cam, sid, data)
    response = site.upload(f["file_id"], f["md5"], data, raw=raw)
    assert response.status_code == 200
    assert response.json() == {"state": "continue", "received": True}
    assert site.handshake(file_form(f)) == {"state": "complete"}
    assert site.data(f["file_id"]) == data


def test_multipart_field_named_file_among_other_fields(site, ready):
    cam, sid = ready
    data = b"the real bytes"
    f = file_record(cam, sid, data)
    response = requests.post(
        f"{site.base}/data/{f['file_id']}/{f['md5']}", auth=site.auth("exporter"),
        data={"comment": "ignored"}, files={"file": ("x.txt", data, "text/plain")},
        timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json() == {"state": "continue", "received": True}
    assert site.handshake(file_form(f)) == {"state": "complete"}
    assert site.data(f["file_id"]) == data


@pytest.mark.parametrize("raw", [False, True], ids=["multipart", "octet-stream"])
def test_wrong_md5_is_received_false_and_the_file_is_still_needed(site, ready, raw):
    cam, sid = ready
    data = b"what the record says"
    f = file_record(cam, sid, data)
    response = site.upload(f["file_id"], f["md5"], b"corrupted in transit", raw=raw)
    assert response.status_code == 200
    answer = response.json()
    assert answer["state"] == "continue" and answer["received"] is False, answer
    assert isinstance(answer.get("message"), str) and answer["message"], answer
    assert set(answer) == {"state", "received", "message"}, answer
    assert site.handshake(file_form(f)) == {"state": "need_file_data", "file_id": f["file_id"]}
    e = event(cam, sid, [f])
    assert site.handshake(event_form(e)) == {"state": "need_file_data", "file_id": f["file_id"]}
    site.upload_ok(f["file_id"], data)
    assert site.handshake(cached_form(e["event_id"])) == {"state": "complete"}


def test_bytes_under_another_md5_do_not_count_for_the_record(site, ready):
    """Staged bytes count only for a record whose file_id and md5 both match."""
    cam, sid = ready
    wanted, other = b"the record's bytes", b"some other version"
    f = file_record(cam, sid, wanted)
    site.upload_ok(f["file_id"], other)  # correct for its own md5: kept, but not f's
    assert site.handshake(file_form(f)) == {"state": "need_file_data", "file_id": f["file_id"]}


def test_bytes_under_another_file_id_do_not_count(site, ready):
    cam, sid = ready
    data = b"same bytes, two ids"
    first, second = file_record(cam, sid, data), file_record(cam, sid, data)
    site.upload_ok(first["file_id"], data)
    assert site.handshake(file_form(first)) == {"state": "complete"}
    assert site.handshake(file_form(second)) == {"state": "need_file_data",
                                                  "file_id": second["file_id"]}


def test_upload_url_accepts_dashed_upper_file_id_and_upper_md5(site, ready):
    cam, sid = ready
    data = b"case insensitive url"
    f = file_record(cam, sid, data)
    response = site.upload(dashed_upper(f["file_id"]), f["md5"].upper(), data)
    assert response.status_code == 200
    assert response.json() == {"state": "continue", "received": True}
    assert site.handshake(file_form(f)) == {"state": "complete"}


def test_same_bytes_sent_twice(site, ready):
    cam, sid = ready
    data = b"twice"
    f = file_record(cam, sid, data)
    site.upload_ok(f["file_id"], data)
    site.upload_ok(f["file_id"], data, raw=True)
    assert site.handshake(file_form(f)) == {"state": "complete"}
    site.upload_ok(f["file_id"], data)  # after the record is stored: still fine
    assert site.data(f["file_id"]) == data


def test_max_body_bytes_does_not_apply_to_uploads(site, ready):
    cam, sid = ready
    data = bytes(range(256)) * ((MAX_BODY_BYTES * 2) // 256)
    assert MAX_BODY_BYTES < len(data) <= MAX_FILE_BYTES
    for raw in (False, True):
        f = file_record(cam, sid, data)
        site.upload_ok(f["file_id"], data, raw=raw)
        assert site.handshake(file_form(f)) == {"state": "complete"}
        assert site.data(f["file_id"]) == data


def test_file_of_exactly_max_file_bytes_is_accepted(site, ready):
    cam, sid = ready
    data = b"m" * MAX_FILE_BYTES
    f = file_record(cam, sid, data)
    site.upload_ok(f["file_id"], data, raw=True)
    assert site.handshake(file_form(f)) == {"state": "complete"}


def _post_too_large(site, file_id, digest, data, mode):
    url = f"{site.base}/data/{file_id}/{digest}"
    auth = site.auth("exporter")
    # A fresh connection each time: after a 413 the server may drop the connection.
    if mode == "multipart":
        return requests.post(url, files={"file": ("big.bin", data)}, auth=auth,
                             timeout=TIMEOUT)
    if mode == "raw":
        return requests.post(url, data=data, auth=auth, timeout=TIMEOUT,
                             headers={"Content-Type": "application/octet-stream"})
    chunks = (data[i:i + 8192] for i in range(0, len(data), 8192))  # chunked, no length
    return requests.post(url, data=chunks, auth=auth, timeout=TIMEOUT,
                         headers={"Content-Type": "application/octet-stream"})


@pytest.mark.parametrize("mode", ["multipart", "raw", "chunked"])
def test_file_over_max_file_bytes_is_413_and_nothing_kept(site, ready, mode):
    cam, sid = ready
    data = b"z" * (MAX_FILE_BYTES + 1)
    f = file_record(cam, sid, data)
    response = _post_too_large(site, f["file_id"], f["md5"], data, mode)
    assert_error(response, 413)
    assert site.handshake(file_form(f)) == {"state": "need_file_data", "file_id": f["file_id"]}
    assert site.data(f["file_id"]) is None


@pytest.mark.parametrize("path", ["not-an-id/d41d8cd98f00b204e9800998ecf8427e",
                                  "{fid}/not-an-md5", "{fid}/d41d8cd98f00b204e9800998ecf842"])
def test_upload_with_bad_id_or_md5_in_url_is_400(site, path):
    url = f"{site.base}/data/" + path.format(fid=new_id())
    response = requests.post(url, data=b"", auth=site.auth("exporter"), timeout=TIMEOUT,
                             headers={"Content-Type": "application/octet-stream"})
    assert_error(response, 400)


def test_multipart_without_file_field_is_400(site, ready):
    cam, sid = ready
    data = b"in the wrong field"
    f = file_record(cam, sid, data)
    response = requests.post(f"{site.base}/data/{f['file_id']}/{f['md5']}",
                             files={"data": ("x", data)}, auth=site.auth("exporter"),
                             timeout=TIMEOUT)
    assert_error(response, 400)
    assert site.handshake(file_form(f)) == {"state": "need_file_data", "file_id": f["file_id"]}


def test_staged_bytes_are_not_served_without_a_record(site):
    data = b"staged only"
    fid = new_id()
    site.upload_ok(fid, data)
    assert_error(site.get(f"/api/files/{fid}/data"), 404)
    assert_error(site.get(f"/api/files/{fid}"), 404)


@pytest.mark.parametrize("user,code", [(None, 401), ("reader", 403), ("admin", 403)])
def test_upload_needs_the_import_role(site, ready, user, code):
    cam, sid = ready
    data = b"unauthorised bytes"
    f = file_record(cam, sid, data)
    response = site.upload(f["file_id"], f["md5"], data, user=user)
    body = assert_error(response, code)
    if code == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert body["state"] == "failed"
    assert site.handshake(file_form(f)) == {"state": "need_file_data", "file_id": f["file_id"]}


def test_staged_bytes_expire_after_staged_ttl(tiny_site):
    """Staged bytes that no record claims expire after importer.staged_ttl_s (1 s here)."""
    site = tiny_site
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    data = b"will expire"
    f = file_record(cam, s["status_id"], data)
    site.upload_ok(f["file_id"], data)
    time.sleep(2.5)
    assert site.handshake(file_form(f)) == {"state": "need_file_data", "file_id": f["file_id"]}
    site.upload_ok(f["file_id"], data)
    assert site.handshake(file_form(f)) == {"state": "complete"}


def test_multipart_file_part_of_exactly_max_file_bytes_is_accepted(site, ready):
    """The limit is on the file, not on the multipart envelope around it."""
    cam, sid = ready
    data = b"q" * MAX_FILE_BYTES
    f = file_record(cam, sid, data)
    site.upload_ok(f["file_id"], data)
    assert site.handshake(file_form(f)) == {"state": "complete"}
    assert site.data(f["file_id"]) == data


def test_other_content_type_is_400(site, ready):
    """docs/protocol.md: multipart/form-data or application/octet-stream; any other: 400."""
    cam, sid = ready
    data = b"plain text upload"
    f = file_record(cam, sid, data)
    response = requests.post(f"{site.base}/data/{f['file_id']}/{f['md5']}", data=data,
                             headers={"Content-Type": "text/plain"},
                             auth=site.auth("exporter"), timeout=TIMEOUT)
    assert_error(response, 400)
    assert site.handshake(file_form(f)) == {"state": "need_file_data", "file_id": f["file_id"]}


def test_concurrent_uploads_of_the_same_bytes(site, ready):
    import concurrent.futures
    cam, sid = ready
    data = b"racing bytes" * 100
    f = file_record(cam, sid, data)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(
            lambda i: site.upload(f["file_id"], f["md5"], data, raw=bool(i % 2)), range(8)))
    assert [(a.status_code, a.json()) for a in answers] == [
        (200, {"state": "continue", "received": True})] * 8
    assert site.handshake(file_form(f)) == {"state": "complete"}
    assert site.data(f["file_id"]) == data


def test_chunked_raw_upload(site, ready):
    cam, sid = ready
    data = b"chunked " * 2000
    f = file_record(cam, sid, data)
    chunks = (data[i:i + 1000] for i in range(0, len(data), 1000))
    response = requests.post(f"{site.base}/data/{f['file_id']}/{f['md5']}", data=chunks,
                             headers={"Content-Type": "application/octet-stream"},
                             auth=site.auth("exporter"), timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json() == {"state": "continue", "received": True}
    assert site.handshake(file_form(f)) == {"state": "complete"}
    assert site.data(f["file_id"]) == data


@pytest.mark.parametrize("failure", ["wrong bytes", "too large"])
def test_failed_upload_keeps_the_good_staged_bytes(site, ready, failure):
    """A failed request changes nothing that is stored: good bytes staged earlier under the
    same (file ID, MD5) still count."""
    cam, sid = ready
    data = b"the good copy"
    f = file_record(cam, sid, data)
    site.upload_ok(f["file_id"], data)
    if failure == "wrong bytes":
        answer = site.upload(f["file_id"], f["md5"], b"a corrupted copy").json()
        assert answer["received"] is False
    else:
        assert_error(_post_too_large(site, f["file_id"], f["md5"],
                                     b"L" * (MAX_FILE_BYTES + 1), "raw"), 413)
    assert site.handshake(file_form(f)) == {"state": "complete"}
    assert site.data(f["file_id"]) == data


def test_wrong_bytes_after_the_record_change_nothing(site, ready):
    cam, sid = ready
    data = b"stored for good"
    f = file_record(cam, sid, data)
    site.upload_ok(f["file_id"], data)
    assert site.handshake(file_form(f)) == {"state": "complete"}
    answer = site.upload(f["file_id"], f["md5"], b"tampered", raw=True).json()
    assert answer["state"] == "continue" and answer["received"] is False
    assert site.data(f["file_id"]) == data


def test_bytes_staged_by_another_importing_user_count(site, ready):
    """Bytes are staged under (file ID, MD5), whoever sent them."""
    cam, sid = ready
    data = b"sent by exporter2"
    f = file_record(cam, sid, data)
    site.upload_ok(f["file_id"], data, user="exporter2")
    assert site.handshake(file_form(f), "exporter") == {"state": "complete"}
