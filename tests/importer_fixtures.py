"""Shared by the importer tests: entity builders, and one HTTP interface over two transports.

The same protocol tests run through Flask's test client (on SQLite and on PostgreSQL) and
against the real program (`skyrelay serve` in a subprocess), so that every answer and every
error case is shown over real HTTP too. Transports are module-scoped (users and the server
are made once); tests use fresh random IDs, so they do not see each other's entities.
A module marked `blob_backends` (tests/conftest.py) also runs over "served-s3": the real
program with its blobs in the session's S3 object store.
"""

import hashlib
import io
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable

import pytest
import requests

from tests.server import Server, password_of
from tests.site_kit import open_test_site, s3_settings, temporaries
from importer.app import create_app
from skyrelay import config as config_module

TIMEOUT = 10
# Small limits so that the 413 cases are cheap to provoke.
SETTINGS = {"importer.max_body_bytes": 64 * 1024, "importer.max_file_bytes": 1024 * 1024,
            "importer.cache_size": 64}
USERS = {"exporter": ["import"], "other": ["import"], "reader": ["user"],
         "admin": ["camera_admin"]}
TRANSPORTS = ["flask-sqlite", "flask-postgresql", "served"]
S3_TRANSPORTS = ["served-s3"]


# -- entities -------------------------------------------------------------------------------

def site_config(tmp_path, overrides=None) -> config_module.Config:
    """A site's configuration for an in-process app: defaults plus `overrides`, nothing read
    from the environment or from the repository's config.yaml."""
    path = tmp_path / "site.yaml"
    path.write_text("# every setting comes from the defaults and the test's overrides\n")
    return config_module.load(path, overrides=overrides, environ={})


def new_id() -> str:
    return uuid.uuid4().hex


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def status_json(status_id: str | None = None, camera_id: str = "cam1", **extra) -> dict:
    return {"status_id": status_id or new_id(), "camera_id": camera_id,
            "valid_from": 1_427_846_880_000, "location": {"lat": 52.2, "long": 0.12},
            "orientation": {"alt": 45.0, "az": 180.0}, **extra}


def file_json(status_id: str, data: bytes, file_id: str | None = None,
              camera_id: str = "cam1", file_time: int = 1_427_846_880_000, **extra) -> dict:
    return {"file_id": file_id or new_id(), "camera_id": camera_id, "status_id": status_id,
            "file_time": file_time, "mime_type": "application/octet-stream",
            "semantic_type": "meteorpi:test", "file_size": len(data), "md5": md5_of(data),
            "meta": [{"type": "number", "key": "meteorpi:exposure", "value": 1e-05}],
            **extra}


def event_json(status_id: str, files: Iterable[dict] = (), event_id: str | None = None,
               camera_id: str = "cam1", event_time: int = 1_427_846_880_000,
               **extra) -> dict:
    return {"event_id": event_id or new_id(), "camera_id": camera_id, "status_id": status_id,
            "event_time": event_time, "event_type": "meteorpi:meteor", "files": list(files),
            "meta": [], **extra}


@dataclass
class Scene:
    """A status, and an event with `n` files whose bytes are given (none held yet)."""
    status: dict
    event: dict
    data: dict = field(default_factory=dict)   # file_id → bytes


def scene(n_files: int = 2, camera_id: str = "cam1", size: int = 100) -> Scene:
    status = status_json(camera_id=camera_id)
    data = {}
    files = []
    for _ in range(n_files):
        payload = uuid.uuid4().bytes * (size // 16 + 1)
        record = file_json(status["status_id"], payload[:size], camera_id=camera_id)
        data[record["file_id"]] = payload[:size]
        files.append(record)
    return Scene(status, event_json(status["status_id"], files, camera_id=camera_id), data)


# -- one HTTP interface ---------------------------------------------------------------------

@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        import json
        return json.loads(self.body)


class Transport:
    """`request(method, path, user=…)` over Flask's test client or real HTTP."""
    name: str
    import_path = "/import"

    def post(self, body: Any, user: str | None = "exporter") -> Reply:
        return self.request("POST", self.import_path, user=user, json=body)

    def answer(self, body: Any, user: str = "exporter") -> dict:
        reply = self.post(body, user)
        assert reply.status == 200, (reply.status, reply.body)
        return reply.json()

    def targets(self) -> list:
        """The site's export targets, as `GET /api/targets` lists them."""
        reply = self.request("GET", "/api/targets", user="admin")
        assert reply.status == 200, reply.body
        return reply.json()["targets"]

    def upload(self, file_id: str, md5: str, data: bytes, user: str = "exporter",
               how: str = "multipart") -> Reply:
        path = f"{self.import_path}/data/{file_id}/{md5}"
        if how == "multipart":
            return self.multipart(path, {"file": ("file", data)}, user)
        return self.request("POST", path, user=user, data=data,
                            headers={"Content-Type": "application/octet-stream"})


class FlaskTransport(Transport):
    def __init__(self, site, tmp_path):
        config = site_config(tmp_path, SETTINGS)
        self.app = create_app(config, site)
        self.client = self.app.test_client()
        self.site = site
        for name, roles in USERS.items():
            site.users.add(name, password_of(name), roles)

    def request(self, method: str, path: str, user: str | None = None, password=None,
                chunked: bool = False, **kwargs) -> Reply:
        auth = None if user is None else (user, password or password_of(user))
        if chunked:  # what a WSGI server gives for Transfer-Encoding: chunked
            headers = dict(kwargs.pop("headers", {}), **{"Transfer-Encoding": "chunked"})
            kwargs.update(headers=headers, environ_overrides={"wsgi.input_terminated": True})
            kwargs["data"] = b"".join(kwargs["data"])
        response = self.client.open(path, method=method, auth=auth, **kwargs)
        return Reply(response.status_code, response.headers, response.get_data())

    def multipart(self, path: str, fields: dict, user: str | None) -> Reply:
        data = {name: (io.BytesIO(content), filename)
                for name, (filename, content) in fields.items()}
        return self.request("POST", path, user=user, data=data,
                            content_type="multipart/form-data")

    def counts(self) -> dict:
        return self.site.archive.counts()

    def temp_files(self) -> list:
        """Files left in the blob store's temporary folder (a failed upload leaves none)."""
        return temporaries(self.site.archive.blobs)


class ServedTransport(Transport):
    def __init__(self, server: Server):
        self.server = server
        self.url = server.url
        self.session = requests.Session()

    def request(self, method: str, path: str, user: str | None = None, password=None,
                chunked: bool = False, **kwargs) -> Reply:
        auth = None if user is None else (user, password or password_of(user))
        if chunked:  # a generator body: requests sends it with Transfer-Encoding: chunked
            kwargs["data"] = iter(kwargs["data"])
        response = self.session.request(method, self.url + path, auth=auth, timeout=TIMEOUT,
                                        **kwargs)
        if response.status_code == 413:
            # Answered before the body was read: the server drops the connection once it
            # gives up draining the rest. Reusing it would race with that close.
            self.session.close()
        return Reply(response.status_code, response.headers, response.content)

    def multipart(self, path: str, fields: dict, user: str | None) -> Reply:
        return self.request("POST", path, user=user, files=fields)

    def counts(self) -> dict:
        return self.server.counts()

    def temp_files(self) -> list:
        blobs = self.server.root / "blobs"
        if self.server.settings.get("storage.backend") == "s3":
            blobs = blobs / "spool"   # an object store's local spool (model.site)
        return list((blobs / "tmp").iterdir())


@pytest.fixture(scope="session", params=TRANSPORTS)
def http(request, tmp_path_factory):
    """The importer over one transport, shared by the session's tests (each makes its own
    entities with fresh IDs and compares counts before and after)."""
    tmp_path = tmp_path_factory.mktemp(request.param)
    if request.param in ("served", "served-s3"):
        settings = dict(SETTINGS)
        if request.param == "served-s3":
            settings.update(s3_settings(request.getfixturevalue("object_store"),
                                        request.getfixturevalue("s3_bucket")))
        server = Server(tmp_path, users=USERS, settings=settings, workers=1)
        with server:
            transport = ServedTransport(server)
            transport.name = request.param
            yield transport
            transport.session.close()  # no kept-alive connection for gunicorn to linger on
        return
    if request.param == "flask-sqlite":
        url = f"sqlite:///{tmp_path}/site.db"
    else:
        cluster = request.getfixturevalue("pg_cluster")
        url = cluster.url(cluster.new_database(cluster.template))
    site = open_test_site(url, tmp_path / "blobs")
    transport = FlaskTransport(site, tmp_path)
    transport.name = request.param
    yield transport
    site.close()
