"""`/api/targets` over real HTTP (the app under werkzeug's server on loopback): CRUD for
camera_admin only, bad input refused with the JSON error shape and nothing changed, and the
password never returned."""

import threading

import pytest
import requests
from werkzeug.serving import make_server

from importer.app import create_app
from model.archive.sample import SampleWriter
from model.export.targets import Targets
from model.site import open_site
from skyrelay import config as config_module

PASSWORD = "api-target-secret-771"
ADMIN = ("admin", "admin-password")
GOOD = {"name": "b", "url": "http://127.0.0.1:9/import", "user": "exporter",
        "password": PASSWORD, "filter": {"camera_ids": ["cam000"]}}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One site and server for the module; `api` empties the target list after each test."""
    tmp_path = tmp_path_factory.mktemp("api")
    (tmp_path / "config.yaml").write_text("site: {name: api}\n")
    config = config_module.load(tmp_path / "config.yaml", environ={})
    site = open_site(config)
    site.users.add(*ADMIN, ["camera_admin"])
    site.users.add("importer", "importer-password", ["import", "user"])
    SampleWriter(site.archive, seed=2).fill(cameras=2, events_per_camera=2, files_per_event=1,
                                            standalone_per_camera=1)
    server = make_server("127.0.0.1", 0, create_app(config, site), threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/api/targets", site
    server.shutdown()
    site.close()


@pytest.fixture
def api(served):
    session = requests.Session()
    session.auth = ADMIN
    session.base, site = served
    yield session
    for target in Targets(site.database).list():
        Targets(site.database).remove(target.name)


def listing(api) -> list:
    return api.get(api.base, timeout=10).json()["targets"]


def test_crud_round_trip_without_the_password(api):
    created = api.post(api.base, json=GOOD, timeout=10)
    assert created.status_code == 201, created.text
    assert created.json()["backlog"] == {"pending": 3, "failed": 0, "done": 0}
    assert created.json()["filter"]["camera_ids"] == ["cam000"]
    shown = api.get(f"{api.base}/b", timeout=10)
    assert shown.json()["user"] == "exporter" and shown.json()["enabled"] is True
    changed = api.patch(f"{api.base}/b", json={"enabled": False, "password": "other-pw"},
                        timeout=10)
    assert changed.status_code == 200 and changed.json()["enabled"] is False
    for response in (created, shown, changed, api.get(api.base, timeout=10)):
        assert PASSWORD not in response.text and "other-pw" not in response.text
        assert "password" not in response.text
    removed = api.delete(f"{api.base}/b", timeout=10)
    assert removed.json() == {"state": "removed", "name": "b"} and listing(api) == []


@pytest.mark.parametrize("auth, status", [(None, 401), (("admin", "wrong"), 401),
                                          (("importer", "importer-password"), 403)])
def test_only_camera_admin(api, auth, status):
    for method in ("get", "post"):
        response = requests.request(method, api.base, json=GOOD, auth=auth, timeout=10)
        assert response.status_code == status
        assert response.json()["state"] == "failed"
    assert listing(api) == []


@pytest.mark.parametrize("change, status, message", [
    ({"url": "ftp://x/import"}, 400, "http://"),
    ({"url": "http://user:pw@host/import"}, 400, "no user or password in the URL"),
    ({"name": "has space"}, 400, "target name"),
    ({"protocol": "v7"}, 400, "protocol"),
    ({"password": ""}, 400, "password"),
    ({"user": None}, 400, "user"),
    ({"ca_bundle": "/no/such/file.pem"}, 400, "ca_bundle"),
    ({"filter": {"camera_ids": ["bad camera!"]}}, 400, "camera"),
    ({"filter": {"after": "yesterday"}}, 400, "after"),
    ({"filter": {"after": 10, "before": 5}}, 400, "earlier"),
    ({"filter": {"colour": "red"}}, 400, "unknown key"),
    ({"filter": {"camera_ids": "cam000"}}, 400, "expected a list"),
    ({"extra": 1}, 400, "unknown key 'extra'"),
])
def test_bad_input_is_refused_and_changes_nothing(api, change, status, message):
    assert api.post(api.base, json={**GOOD, "name": "a"}, timeout=10).status_code == 201
    before = listing(api)
    response = api.post(api.base, json={**GOOD, **change}, timeout=10)
    assert response.status_code == status
    assert response.json()["state"] == "failed" and message in response.json()["message"]
    assert listing(api) == before


@pytest.mark.parametrize("method, path, body, status, message", [
    ("post", "", GOOD | {"name": "a"}, 409, "exists already"),
    ("get", "/nope", None, 404, "no export target 'nope'"),
    ("patch", "/nope", {"enabled": True}, 404, "no export target"),
    ("delete", "/nope", None, 404, "no export target"),
    ("patch", "/a", {"enabled": "yes"}, 400, "enabled"),
    ("patch", "/a", {"name": "renamed"}, 400, "unknown key 'name'"),
    ("patch", "/a", {"url": "nonsense"}, 400, "url"),
    ("post", "", ["not", "an", "object"], 400, "JSON object"),
])
def test_bad_requests_on_existing_targets(api, method, path, body, status, message):
    assert api.post(api.base, json={**GOOD, "name": "a"}, timeout=10).status_code == 201
    before = listing(api)
    response = api.request(method, api.base + path, json=body, timeout=10)
    assert response.status_code == status, response.text
    assert message in response.json()["message"]
    assert listing(api) == before
