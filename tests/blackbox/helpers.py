"""Black-box helpers: build entities as docs/wire.md describes them and talk to a real
`skyrelay serve` over HTTP with `requests`. Nothing here knows the server's code."""

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests

from tests.server import Server, password_of

TIMEOUT = 15

# Users of every test site (name -> roles).
USERS = {
    "exporter": ["import"],
    "exporter2": ["import"],
    "reader": ["user"],
    "admin": ["camera_admin"],
}
# Small limits so the 413 answers can be exercised cheaply.
MAX_BODY_BYTES = 16384
MAX_FILE_BYTES = 50000
SETTINGS = {"importer.max_body_bytes": MAX_BODY_BYTES,
            "importer.max_file_bytes": MAX_FILE_BYTES}


def new_id() -> str:
    return uuid.uuid4().hex


def new_camera() -> str:
    return "cam" + uuid.uuid4().hex[:12]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def dashed_upper(hex_id: str) -> str:
    return str(uuid.UUID(hex_id)).upper()


def status(camera_id: str, status_id: str | None = None, **extra: Any) -> dict:
    body = {"status_id": status_id or new_id(), "camera_id": camera_id,
            "valid_from": 1427846880000, "valid_to": 1427933280000, "software_version": 1,
            "lens": "VF-DCS", "sensor": "WAT-902H", "inst_name": "Cambridge",
            "inst_url": "https://example.org/cam",
            "location": {"lat": 52.2, "long": 0.12, "gps": True, "error": 0.5},
            "orientation": {"alt": 45.0, "az": 180.0, "rot": 0.0, "error": 1.0,
                            "width": 60.0},
            "regions": [[{"x": 0, "y": 0}, {"x": 720, "y": 0}, {"x": 720, "y": 576}]]}
    body.update(extra)
    return body


def file_record(camera_id: str, status_id: str, data: bytes, file_id: str | None = None,
                **extra: Any) -> dict:
    body = {"file_id": file_id or new_id(), "camera_id": camera_id, "status_id": status_id,
            "file_time": 1427846880000, "mime_type": "image/png",
            "semantic_type": "meteorpi:triggers/image", "file_name": "frame.png",
            "file_size": len(data), "md5": md5(data),
            "meta": [{"type": "number", "key": "meteorpi:exposure", "value": 0.04}]}
    body.update(extra)
    return body


def event(camera_id: str, status_id: str, files: list[dict], event_id: str | None = None,
          **extra: Any) -> dict:
    body = {"event_id": event_id or new_id(), "camera_id": camera_id, "status_id": status_id,
            "event_time": 1427846880000, "event_type": "meteorpi:meteor", "files": files,
            "meta": [{"type": "string", "key": "meteorpi:note", "value": "bright"}]}
    body.update(extra)
    return body


def status_form(s: dict) -> dict:
    return {"type": "status", "status": s}


def file_form(f: dict) -> dict:
    return {"type": "file", "file": f}


def event_form(e: dict) -> dict:
    return {"type": "event", "event": e}


def cached_form(entity_id: str) -> dict:
    return {"type": "cached_entity", "cached_entity_id": entity_id}


def assert_error(response: requests.Response, code: int) -> dict:
    """An error answer: the code, and a JSON body with `state` and `message`."""
    assert response.status_code == code, (response.status_code, response.text)
    assert response.headers.get("Content-Type", "").startswith("application/json"), \
        response.headers.get("Content-Type")
    body = response.json()
    assert isinstance(body, dict), body
    assert "state" in body and "message" in body, body
    assert isinstance(body["message"], str) and body["message"], body
    return body


def assert_400(response: requests.Response) -> dict:
    """docs/wire.md: 400 with {"state": "failed", "message": "<what is wrong, which field>"}."""
    body = assert_error(response, 400)
    assert body["state"] == "failed", body
    return body


@dataclass
class Site:
    server: Server
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base(self) -> str:
        return self.server.import_url

    def auth(self, user: str) -> tuple[str, str]:
        return user, password_of(user)

    # -- the handshake -----------------------------------------------------------------------

    def post(self, body: Any, user: str | None = "exporter", **kwargs) -> requests.Response:
        """POST {base} with a JSON body (or raw `data=`)."""
        if user is not None:
            kwargs.setdefault("auth", self.auth(user))
        if "data" not in kwargs:
            kwargs["json"] = body
        return requests.post(self.base, timeout=TIMEOUT, **kwargs)

    def handshake(self, body: Any, user: str = "exporter", **kwargs) -> dict:
        response = self.post(body, user, **kwargs)
        assert response.status_code == 200, (body, response.status_code, response.text)
        return response.json()

    def upload(self, file_id: str, digest: str, data: bytes, user: str | None = "exporter",
               raw: bool = False, **kwargs) -> requests.Response:
        """POST {base}/data/<file_id>/<md5>: multipart field `file`, or a raw octet-stream."""
        url = f"{self.base}/data/{file_id}/{digest}"
        if user is not None:
            kwargs.setdefault("auth", self.auth(user))
        if raw:
            headers = {"Content-Type": "application/octet-stream", **kwargs.pop("headers", {})}
            return requests.post(url, data=data, headers=headers, timeout=TIMEOUT, **kwargs)
        return requests.post(url, files={"file": ("blob.bin", data)}, timeout=TIMEOUT,
                             **kwargs)

    def upload_ok(self, file_id: str, data: bytes, **kwargs) -> dict:
        response = self.upload(file_id, md5(data), data, **kwargs)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer == {"state": "continue", "received": True}, answer
        return answer

    # -- whole entities ----------------------------------------------------------------------

    def store_status(self, s: dict, user: str = "exporter") -> None:
        assert self.handshake(status_form(s), user) == {"state": "continue"}

    def store_event(self, e: dict, blobs: dict[str, bytes], user: str = "exporter") -> None:
        """Upload every file's bytes, then the event: it must be complete at once."""
        for f in e["files"]:
            self.upload_ok(f["file_id"], blobs[f["file_id"]], user=user)
        assert self.handshake(event_form(e), user) == {"state": "complete"}

    # -- the read API ------------------------------------------------------------------------

    def get(self, path: str, user: str | None = "reader", **kwargs) -> requests.Response:
        if user is not None:
            kwargs.setdefault("auth", self.auth(user))
        return requests.get(self.url + path, timeout=TIMEOUT, **kwargs)

    def read(self, kind: str, entity_id: str) -> dict | None:
        """GET /api/<kind>/<id>: the entity, or None on 404."""
        response = self.get(f"/api/{kind}/{entity_id}")
        if response.status_code == 404:
            assert_error(response, 404)
            return None
        assert response.status_code == 200, response.text
        return response.json()

    def data(self, file_id: str) -> bytes | None:
        response = self.get(f"/api/files/{file_id}/data")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return response.content


def start_site(tmp_path_factory, name: str = "site", settings: dict | None = None) -> Site:
    server = Server(tmp_path_factory.mktemp(name), users=USERS, name=name,
                    settings={**SETTINGS, **(settings or {})})
    server.start()
    return Site(server)
