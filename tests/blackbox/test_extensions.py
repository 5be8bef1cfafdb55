"""Extensions (docs/wire.md "Extension: version 2, batched" and "Extension: bundles and jobs").

"A 404 there means version 1 only": when GET {base}/capabilities is 404 the version 2 tests
are skipped with the reason "server does not advertise version 2"; when POST /ingest is 404
the bundle tests are skipped likewise. Skips are listed by `-ra`; they are not passes."""

import base64
import gzip
import io
import json
import tarfile
import time

import pytest
import requests

from tests.blackbox.helpers import (
    MAX_BODY_BYTES, MAX_FILE_BYTES, TIMEOUT, assert_error, event, file_record, md5, new_camera,
    new_id, status)


@pytest.fixture(scope="module")
def caps(site):
    response = requests.get(f"{site.base}/capabilities", auth=site.auth("exporter"),
                            timeout=TIMEOUT)
    if response.status_code == 404:
        pytest.skip("server does not advertise version 2 (GET {base}/capabilities is 404)")
    assert response.status_code == 200, response.text
    return response.json()


# -- capabilities -------------------------------------------------------------------------------

def test_capabilities_shape(site, caps):
    assert 1 in caps["protocol"] and 2 in caps["protocol"], caps
    assert isinstance(caps["max_batch"], int) and caps["max_batch"] > 0, caps
    assert caps["max_body_bytes"] == MAX_BODY_BYTES, caps
    assert caps["max_file_bytes"] == MAX_FILE_BYTES, caps
    assert "md5" in caps["hashes"], caps
    path = site.base[len(site.url):]
    assert caps["uploads"] in (f"{path}/uploads", f"{site.base}/uploads"), caps


def test_capabilities_need_the_import_role(site, caps):
    url = f"{site.base}/capabilities"
    response = requests.get(url, timeout=TIMEOUT)
    assert_error(response, 401)
    assert response.headers["WWW-Authenticate"].split()[0] == "Basic"
    assert_error(requests.get(url, auth=site.auth("reader"), timeout=TIMEOUT), 403)


# -- batch ---------------------------------------------------------------------------------------

def _batch(site, body, user="exporter"):
    return requests.post(f"{site.base}/batch", json=body, auth=site.auth(user),
                         timeout=TIMEOUT)


def _results(response):
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    return results


def test_batch_flow(site, caps):
    cam = new_camera()
    s, unknown = status(cam), status(cam)
    blobs = {}

    def rec(data):
        f = file_record(cam, s["status_id"], data)
        blobs[f["file_id"]] = data
        return f

    ready = rec(b"batch ready")
    site.upload_ok(ready["file_id"], blobs[ready["file_id"]])
    e_ready = event(cam, s["status_id"], [ready])
    lacking = [rec(b"batch lacking 1"), rec(b"batch lacking 2")]
    e_lacking = event(cam, s["status_id"], lacking)
    e_unknown = event(cam, unknown["status_id"], [])
    standalone = rec(b"batch standalone")
    body = {"statuses": [s], "files": [standalone], "events": [e_ready, e_lacking, e_unknown]}
    results = _results(_batch(site, body))
    assert [(r["type"], r["id"]) for r in results] == [
        ("status", s["status_id"]), ("file", standalone["file_id"]),
        ("event", e_ready["event_id"]), ("event", e_lacking["event_id"]),
        ("event", e_unknown["event_id"])]
    assert results[1]["state"] == "need_file_data"
    assert results[1]["file_ids"] == [standalone["file_id"]]
    assert results[2]["state"] == "complete"
    assert results[3]["state"] == "need_file_data"
    assert results[3]["file_ids"] == [f["file_id"] for f in lacking]
    assert results[4] == {"type": "event", "id": e_unknown["event_id"],
                          "state": "need_status", "status_id": unknown["status_id"]}
    assert site.read("events", e_ready["event_id"]) == e_ready
    assert site.read("events", e_lacking["event_id"]) is None
    for f in lacking + [standalone]:
        site.upload_ok(f["file_id"], blobs[f["file_id"]])
    results = _results(_batch(site, {"statuses": [unknown], "files": [standalone],
                                     "events": [e_lacking, e_unknown]}))
    assert [r["state"] for r in results[1:]] == ["complete"] * 3, results
    assert site.read("events", e_lacking["event_id"]) == e_lacking
    assert site.read("events", e_unknown["event_id"]) == e_unknown


def test_batch_entities_fail_alone(site, caps):
    """Each entity in its own transaction: a bad one fails, its siblings are stored."""
    cam = new_camera()
    s = status(cam)
    good = event(cam, s["status_id"], [])
    bad = event(cam, s["status_id"], [file_record(new_camera(), s["status_id"], b"x")])
    results = _results(_batch(site, {"statuses": [s], "files": [], "events": [bad, good]}))
    assert results[1]["id"] == bad["event_id"] and results[1]["state"] == "failed"
    assert results[1]["message"]
    assert results[2] == {"type": "event", "id": good["event_id"], "state": "complete"}
    assert site.read("events", bad["event_id"]) is None
    assert site.read("events", good["event_id"]) == good


def test_batch_over_max_batch_is_refused(site, caps):
    cam = new_camera()
    s = status(cam)
    events = [{"event_id": new_id(), "camera_id": cam, "status_id": s["status_id"],
               "event_time": 1, "event_type": "m", "files": [], "meta": []}
              for _ in range(caps["max_batch"] + 1)]
    response = _batch(site, {"statuses": [s], "files": [], "events": events})
    assert response.status_code in (400, 413), response.status_code
    assert_error(response, response.status_code)
    assert site.read("statuses", s["status_id"]) is None


def test_batch_needs_the_import_role(site, caps):
    assert_error(_batch(site, {"statuses": [], "files": [], "events": []}, "reader"), 403)


# -- blobs ---------------------------------------------------------------------------------------

def test_blobs(site, caps):
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    datas = [b"blob one", b"blob two", b"blob three"]
    recs = [file_record(cam, s["status_id"], d) for d in datas]
    parts = [(f"{r['file_id']}.{r['md5']}", (r["file_id"], d)) for r, d in zip(recs, datas)]
    parts[2] = (f"{recs[2]['file_id']}.{recs[2]['md5']}", (recs[2]["file_id"], b"corrupt"))
    response = requests.post(f"{site.base}/blobs", files=parts, auth=site.auth("exporter"),
                             timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    answer = response.json()
    listed = answer if isinstance(answer, list) else next(
        v for v in answer.values() if isinstance(v, list))
    by_id = {item["file_id"]: item for item in listed}
    assert by_id[recs[0]["file_id"]]["received"] is True
    assert by_id[recs[1]["file_id"]]["received"] is True
    assert by_id[recs[2]["file_id"]]["received"] is False
    assert by_id[recs[2]["file_id"]]["message"]
    for r, want in zip(recs, ["complete", "complete", "need_file_data"]):
        assert site.handshake({"type": "file", "file": r})["state"] == want


# -- uploads (tus 1.0.0) -------------------------------------------------------------------------

TUS = {"Tus-Resumable": "1.0.0"}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _uploads_url(site, caps):
    path = caps["uploads"]
    return path if path.startswith("http") else site.url + path


def _create(site, caps, file_id, digest, length, user="exporter"):
    response = requests.post(_uploads_url(site, caps), auth=site.auth(user), timeout=TIMEOUT,
                             headers={**TUS, "Upload-Length": str(length),
                                      "Upload-Metadata": f"file_id {_b64(file_id)},"
                                                         f"md5 {_b64(digest)}"})
    assert response.status_code == 201, response.text
    location = response.headers["Location"]
    return location if location.startswith("http") else site.url + location, response


def _patch(site, url, offset, chunk, user="exporter", checksum=None):
    headers = {**TUS, "Upload-Offset": str(offset),
               "Content-Type": "application/offset+octet-stream"}
    if checksum:
        headers["Upload-Checksum"] = checksum
    return requests.patch(url, data=chunk, headers=headers, auth=site.auth(user),
                          timeout=TIMEOUT)


def _head(site, url, user="exporter"):
    return requests.head(url, headers=TUS, auth=site.auth(user), timeout=TIMEOUT)


def _md5_b64(chunk: bytes) -> str:
    import hashlib
    return "md5 " + base64.b64encode(hashlib.md5(chunk).digest()).decode()


def test_tus_options(site, caps):
    response = requests.options(_uploads_url(site, caps), auth=site.auth("exporter"),
                                timeout=TIMEOUT)
    assert response.status_code in (200, 204)
    assert "1.0.0" in response.headers["Tus-Version"].split(",")
    extensions = {x.strip() for x in response.headers["Tus-Extension"].split(",")}
    assert {"creation", "checksum", "termination", "expiration"} <= extensions
    algorithms = {x.strip() for x in response.headers["Tus-Checksum-Algorithm"].split(",")}
    assert "md5" in algorithms


def test_tus_resumable_upload(site, caps):
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    data = bytes(range(256)) * 40
    f = file_record(cam, s["status_id"], data)
    url, created = _create(site, caps, f["file_id"], f["md5"], len(data))
    assert created.headers.get("Tus-Resumable") == "1.0.0"
    head = _head(site, url)
    assert head.status_code in (200, 204)
    assert head.headers["Upload-Offset"] == "0"
    assert head.headers["Upload-Length"] == str(len(data))
    first, rest = data[:4000], data[4000:]
    response = _patch(site, url, 0, first, checksum=_md5_b64(first))
    assert response.status_code == 204, response.text
    assert response.headers["Upload-Offset"] == "4000"
    assert "Upload-Expires" in response.headers or "Upload-Expires" in created.headers
    # The wrong offset: 409, nothing changes.
    assert _patch(site, url, 100, rest).status_code == 409
    # A chunk whose checksum does not match: 460 and dropped.
    assert _patch(site, url, 4000, rest, checksum=_md5_b64(b"other")).status_code == 460
    assert _head(site, url).headers["Upload-Offset"] == "4000"
    assert site.handshake({"type": "file", "file": f}) == {"state": "need_file_data",
                                                           "file_id": f["file_id"]}
    # Another user can neither read, resume nor end it.
    assert _head(site, url, "exporter2").status_code in (403, 404)
    assert _patch(site, url, 4000, rest, "exporter2").status_code in (403, 404)
    assert requests.delete(url, headers=TUS, auth=site.auth("exporter2"),
                           timeout=TIMEOUT).status_code in (403, 404)
    response = _patch(site, url, 4000, rest, checksum=_md5_b64(rest))
    assert response.status_code == 204, response.text
    assert response.headers["Upload-Offset"] == str(len(data))
    assert site.handshake({"type": "file", "file": f}) == {"state": "complete"}
    assert site.data(f["file_id"]) == data


def test_tus_whole_file_md5_is_checked(site, caps):
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    data = b"the record's bytes"
    f = file_record(cam, s["status_id"], data)
    wrong = b"other bytes, same len"[:len(data)]
    url, _ = _create(site, caps, f["file_id"], f["md5"], len(wrong))
    _patch(site, url, 0, wrong)  # the page does not fix this answer's code
    assert site.handshake({"type": "file", "file": f}) == {"state": "need_file_data",
                                                           "file_id": f["file_id"]}


def test_tus_termination(site, caps):
    data = b"to be ended"
    url, _ = _create(site, caps, new_id(), md5(data), len(data))
    response = requests.delete(url, headers=TUS, auth=site.auth("exporter"), timeout=TIMEOUT)
    assert response.status_code == 204
    assert _head(site, url).status_code in (404, 410)


def test_uploads_need_the_import_role(site, caps):
    response = requests.post(_uploads_url(site, caps), auth=site.auth("reader"),
                             timeout=TIMEOUT, headers={**TUS, "Upload-Length": "1"})
    assert response.status_code == 403


# -- bundles and jobs ----------------------------------------------------------------------------

def _bundle(entities: dict, blobs: dict[str, bytes], gz: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        def add(name, payload):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        add("metadata.json", json.dumps(entities).encode())
        for file_id, payload in blobs.items():
            add(f"data/{file_id}", payload)
    raw = buffer.getvalue()
    return gzip.compress(raw) if gz else raw


def _ingest(site, payload, content_type="application/x-tar", user="exporter"):
    return requests.post(f"{site.url}/ingest", data=payload, auth=site.auth(user),
                         headers={"Content-Type": content_type}, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def bundles(site):
    probe = _ingest(site, b"")
    if probe.status_code == 404:
        pytest.skip("server does not offer bundles (POST /ingest is 404)")


JOB_KEYS = {"job_id", "state", "task", "task_percent", "created", "updated", "exception",
            "trace_id"}


def _wait(site, job_id, user="exporter"):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        response = site.get(f"/get_state?job_id={job_id}", user=user)
        assert response.status_code == 200, response.text
        job = response.json()
        assert JOB_KEYS <= set(job), job
        if job["state"] == "FAILED" or job["task"] == "done":
            return job
        time.sleep(0.2)
    pytest.fail(f"job {job_id} did not finish in 20 s")


def _bundle_content():
    cam = new_camera()
    s = status(cam)
    datas = [b"bundle file 1", b"bundle file 2"]
    files = [file_record(cam, s["status_id"], d) for d in datas]
    e = event(cam, s["status_id"], files)
    return {"statuses": [s], "files": [], "events": [e]}, {
        f["file_id"]: d for f, d in zip(files, datas)}


@pytest.mark.parametrize("gz", [False, True], ids=["tar", "tar.gz"])
def test_ingest_bundle(site, bundles, gz):
    entities, blobs = _bundle_content()
    response = _ingest(site, _bundle(entities, blobs, gz),
                       "application/gzip" if gz else "application/x-tar")
    assert response.status_code == 202, response.text
    job = response.json()
    assert JOB_KEYS <= set(job), job
    assert job["state"] == "OK"
    job = _wait(site, job["job_id"])
    assert job["state"] == "OK" and job["task"] == "done", job
    e = entities["events"][0]
    assert site.read("events", e["event_id"]) == e
    for file_id, data in blobs.items():
        assert site.data(file_id) == data


def test_ingest_bundle_with_bad_md5_stores_nothing(site, bundles):
    entities, blobs = _bundle_content()
    first = next(iter(blobs))
    blobs[first] = b"corrupted bundle bytes"
    response = _ingest(site, _bundle(entities, blobs))
    assert response.status_code == 202, response.text
    job = _wait(site, response.json()["job_id"])
    assert job["state"] == "FAILED" and job["exception"], job
    e = entities["events"][0]
    assert site.read("events", e["event_id"]) is None
    assert site.read("statuses", entities["statuses"][0]["status_id"]) is None
    for file_id in blobs:
        assert site.read("files", file_id) is None


def test_job_visible_to_its_poster_and_camera_admin_only(site, bundles):
    entities, blobs = _bundle_content()
    job_id = _ingest(site, _bundle(entities, blobs)).json()["job_id"]
    _wait(site, job_id)
    assert site.get(f"/get_state?job_id={job_id}", user="admin").status_code == 200
    assert_error(site.get(f"/get_state?job_id={job_id}", user="exporter2"), 403)


def test_ingest_needs_the_import_role(site, bundles):
    entities, blobs = _bundle_content()
    assert_error(_ingest(site, _bundle(entities, blobs), user="reader"), 403)
