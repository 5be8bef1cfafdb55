"""MeteorPi compatibility against the real program: `python -m skyrelay serve` on a free port,
fed the request bodies exactly as the original exporter sends them (`requests.post(url,
json=body, auth=…)`, uploads as multipart field `file` with filename `file`)."""

import copy
import json
import hashlib

import pytest
import requests

from tests.meteorpi import BODIES as FIXTURES
from tests.server import Server

TIMEOUT = 10


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("meteorpi"),
                    users={"exporter": ["import"], "reader": ["user"]}, workers=2)
    with server:
        yield server


def _md5(file_id: str) -> str:
    return hashlib.md5(FIXTURES["file_bytes"][file_id].encode()).hexdigest()


def _upload(served, session, file_id: str) -> dict:
    data = FIXTURES["file_bytes"][file_id].encode()
    response = session.post(f"{served.import_url}/data/{file_id}/{_md5(file_id)}",
                            files={"file": ("file", data)}, auth=served.auth("exporter"),
                            timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def test_original_exporter_replicates_event_and_file(served):
    with requests.Session() as session:
        _replay(served, session)


def _replay(served, session) -> None:
    auth = served.auth("exporter")

    def post(body):
        response = session.post(served.import_url, json=body, auth=auth, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        return response.json()

    event = FIXTURES["event"]["event"]
    assert post(FIXTURES["event"]) == {"state": "need_status",
                                       "status_id": event["status_id"]}
    assert post(FIXTURES["status"]) == {"state": "continue"}
    for record in event["files"]:
        assert post(FIXTURES["cached_entity"]) == {"state": "need_file_data",
                                                   "file_id": record["file_id"]}
        assert _upload(served, session, record["file_id"]) == {"state": "continue",
                                                               "received": True}
    assert post(FIXTURES["cached_entity"]) == {"state": "complete"}
    assert post(FIXTURES["event"]) == {"state": "complete"}

    standalone = FIXTURES["file"]["file"]
    assert post(FIXTURES["file"]) == {"state": "need_file_data",
                                      "file_id": standalone["file_id"]}
    assert _upload(served, session, standalone["file_id"])["received"] is True
    assert post({"type": "cached_entity", "cached_entity_id": standalone["file_id"]}) == \
        {"state": "complete"}

    assert served.counts() == {"statuses": 1, "events": 1, "files": 3, "blobs": 2,
                               "staged": 0}
    # Numbers survive exactly (a YAML parser would have turned 1e-05 into a string).
    stored = requests.get(f"{served.url}/api/events/{event['event_id']}",
                          auth=served.auth("reader"), timeout=TIMEOUT).json()
    assert stored["files"][0]["meta"][1]["value"] == 1e-05
    expected = copy.deepcopy(event)
    assert json.loads(json.dumps(stored, sort_keys=True)) == \
        json.loads(json.dumps(expected, sort_keys=True))
