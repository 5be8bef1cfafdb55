"""Helpers shared by the protocol version 2 tests: an importer app on a test client, auth
headers, tus metadata, multipart bodies built by hand (as an exporter would send them)."""

import base64
import hashlib
import uuid

import pytest

from tests.importer_fixtures import site_config
from importer.app import create_app

PASSWORD = "v2-test-password"


def basic(user: str, password: str = PASSWORD) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode())
            .decode()}


def tus(user: str = "cam") -> dict:
    return {**basic(user), "Tus-Resumable": "1.0.0"}


def tus_metadata(file_id: str, md5: str, **extra: str) -> str:
    items = {"file_id": file_id, "md5": md5, **extra}
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}"
                    for key, value in items.items())


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def new_id() -> str:
    return uuid.uuid4().hex


def multipart(parts: list[tuple[str, bytes]], boundary: str = "skyrelay-test-boundary"):
    """(body, content type) with one part per (name, bytes)."""
    body = b"".join(
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
        f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
        + data + b"\r\n" for name, data in parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def make_config(tmp_path, **settings):
    overrides = {"database.url": f"sqlite:///{tmp_path}/site.db",
                 "storage.path": str(tmp_path / "blobs"), **settings}
    return site_config(tmp_path, overrides)


@pytest.fixture
def importer_client(sqlite_site, tmp_path):
    """A test client of an importer on `sqlite_site`, with users cam and other (role import)
    and reader (role user)."""
    sqlite_site.users.add("cam", PASSWORD, ["import"])
    sqlite_site.users.add("other", PASSWORD, ["import"])
    sqlite_site.users.add("reader", PASSWORD, ["user"])
    app = create_app(make_config(tmp_path), sqlite_site)
    return app.test_client()
