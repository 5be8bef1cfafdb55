"""The MeteorPi replication flow with the original client's request bodies exactly as given
(tests/fixtures/meteorpi_bodies.json): version 1 is wire-compatible with the MeteorPi
import API, "an exporter written for that API must be able to replicate into a skyrelay
importer unchanged"."""


import pytest
import requests

from tests.blackbox.helpers import TIMEOUT, md5, start_site

from tests.meteorpi import BODIES, FILE_BYTES as BYTES


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A fresh site of its own: the fixture's IDs are fixed."""
    started = start_site(tmp_path_factory, "meteorpi")
    yield started
    started.server.stop()


def _post(site, body):
    """As the MeteorPi client did: the body as JSON, HTTP Basic."""
    response = requests.post(site.base, json=body, auth=site.auth("exporter"),
                             timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def _upload(site, file_id, digest, data):
    """As the MeteorPi client did: multipart/form-data, the bytes in the field `file`."""
    response = requests.post(f"{site.base}/data/{file_id}/{digest}",
                             files={"file": (file_id, data)}, auth=site.auth("exporter"),
                             timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def test_fixture_bytes_match_their_records():
    for f in BODIES["event"]["event"]["files"] + [BODIES["file"]["file"]]:
        assert md5(BYTES[f["file_id"]]) == f["md5"]
        assert len(BYTES[f["file_id"]]) == f["file_size"]


def test_meteorpi_replication_flow(site):
    ev = BODIES["event"]["event"]
    st = BODIES["status"]["status"]
    files = ev["files"]

    assert _post(site, BODIES["event"]) == {"state": "need_status",
                                            "status_id": st["status_id"]}
    assert _post(site, BODIES["status"]) == {"state": "continue"}
    assert _post(site, BODIES["cached_entity"]) == {"state": "need_file_data",
                                                    "file_id": files[0]["file_id"]}
    assert _upload(site, files[0]["file_id"], files[0]["md5"],
                   BYTES[files[0]["file_id"]]) == {"state": "continue", "received": True}
    assert _post(site, BODIES["cached_entity"]) == {"state": "need_file_data",
                                                    "file_id": files[1]["file_id"]}
    assert _upload(site, files[1]["file_id"], files[1]["md5"],
                   BYTES[files[1]["file_id"]]) == {"state": "continue", "received": True}
    assert _post(site, BODIES["cached_entity"]) == {"state": "complete"}

    # The standalone file shares its MD5 with file 1001 but not its ID: its bytes are needed.
    fr = BODIES["file"]["file"]
    assert _post(site, BODIES["file"]) == {"state": "need_file_data", "file_id": fr["file_id"]}
    assert _upload(site, fr["file_id"], fr["md5"], BYTES[fr["file_id"]]) == {
        "state": "continue", "received": True}
    assert _post(site, {"type": "cached_entity", "cached_entity_id": fr["file_id"]}) == {
        "state": "complete"}

    # Replaying every body is harmless: all complete (a status is answered continue).
    assert _post(site, BODIES["event"]) == {"state": "complete"}
    assert _post(site, BODIES["file"]) == {"state": "complete"}
    assert _post(site, BODIES["status"]) == {"state": "continue"}


def test_meteorpi_entities_read_back_exactly(site):
    ev, st, fr = BODIES["event"]["event"], BODIES["status"]["status"], BODIES["file"]["file"]
    got = site.read("events", ev["event_id"])
    if got is None:
        pytest.fail("the event of the MeteorPi flow was not stored")
    assert got == ev
    # 1e-05 is a number, not the string YAML would make of it.
    assert got["files"][0]["meta"][1]["value"] == 1e-05
    assert isinstance(got["files"][0]["meta"][1]["value"], float)
    assert site.read("statuses", st["status_id"]) == st
    assert site.read("files", fr["file_id"]) == fr
    for f in ev["files"] + [fr]:
        response = site.get(f"/api/files/{f['file_id']}/data")
        assert response.status_code == 200
        assert response.content == BYTES[f["file_id"]]
        assert response.headers["ETag"] == f'"{f["md5"]}"'
    listing = site.get("/api/events", params={"camera_id": ev["camera_id"],
                                              "event_type": "omgmeteors"}).json()
    assert listing == {"events": [ev], "next_cursor": None}
