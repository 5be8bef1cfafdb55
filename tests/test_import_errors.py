"""Every error case of PROTOCOL.md's version 1, over every transport: the status, the one
JSON error shape (exactly `state` and `message`), a message naming the field, and nothing
stored changed."""

import json

import pytest

from tests.importer_fixtures import SETTINGS, file_json, md5_of, new_id, scene, status_json

MAX_BODY = SETTINGS["importer.max_body_bytes"]
MAX_FILE = SETTINGS["importer.max_file_bytes"]


def assert_error(reply, status: int, *words: str) -> dict:
    """The pinned error shape: HTTP `status`, JSON with exactly state=failed and message."""
    assert reply.status == status, (reply.status, reply.body)
    assert reply.headers["Content-Type"].startswith("application/json")
    body = reply.json()
    assert set(body) == {"state", "message"}
    assert body["state"] == "failed"
    assert isinstance(body["message"], str) and body["message"]
    for word in words:
        assert word in body["message"], (word, body["message"])
    return body


def _event(**changes) -> dict:
    s = scene(n_files=1)
    return {**s.event, **changes}


def _event_file(**changes) -> dict:
    s = scene(n_files=1)
    return {**s.event, "files": [{**s.event["files"][0], **changes}]}


def _without(data: dict, key: str) -> dict:
    return {k: v for k, v in data.items() if k != key}


BAD_BODIES = {
    "not JSON": (b"this is not json", "body", "JSON"),
    "YAML": (b"type: status\nstatus: {status_id: 1}\n", "body", "JSON"),
    "empty": (b"", "body", "JSON"),
    "not an object": (b"[1, 2, 3]", "body", "object"),
    "NaN number": (json.dumps({"type": "status", "status": status_json(
        location={"lat": float("nan"), "long": 1})}).encode(), "status.location.lat"),
    "absurd nesting": (b"[" * 30_000 + b"]" * 30_000, "body", "JSON"),
    "no type": (json.dumps({"status": status_json()}).encode(), "type"),
    "unknown type": (json.dumps({"type": "camera", "camera": {}}).encode(), "type", "camera"),
    "form without its entity": (b'{"type": "event"}', "event", "required"),
    "entity not an object": (b'{"type": "status", "status": [1]}', "status", "object"),
    "missing field": (json.dumps({"type": "event", "event": _without(_event(), "camera_id")})
                      .encode(), "event.camera_id", "required"),
    "mistyped field": (json.dumps({"type": "event", "event": _event(event_time="yesterday")})
                       .encode(), "event.event_time"),
    "bad hex id": (json.dumps({"type": "event", "event": _event(event_id="xyz")}).encode(),
                   "event.event_id"),
    "bad hex md5": (json.dumps({"type": "event", "event": _event_file(md5="abc")}).encode(),
                    "event.files[0].md5"),
    "negative size": (json.dumps({"type": "event", "event": _event_file(file_size=-1)})
                      .encode(), "event.files[0].file_size"),
    "unknown meta type": (json.dumps({"type": "event", "event": _event(meta=[
        {"type": "colour", "key": "a:b", "value": "red"}])}).encode(), "event.meta[0].type"),
    "file of another camera": (json.dumps({"type": "event", "event": _event_file(
        camera_id="elsewhere")}).encode(), "event.files[0].camera_id"),
    "status without location": (json.dumps({"type": "status", "status": _without(
        status_json(), "location")}).encode(), "status.location"),
    "file record without meta": (json.dumps({"type": "file", "file": _without(
        file_json(new_id(), b"x"), "meta")}).encode(), "file.meta"),
    "time past 64 bits": (json.dumps({"type": "status", "status": status_json(
        valid_from=10 ** 30)}).encode(), "status.valid_from"),
    "number past 64 bits": (json.dumps({"type": "event", "event": _event(meta=[
        {"type": "number", "key": "a:b", "value": 10 ** 30}])}).encode(), "event.meta[0].value"),
    "small int past 64 bits": (json.dumps({"type": "status", "status": status_json(
        software_version=-10 ** 30)}).encode(), "status.software_version"),
    "NUL in a string": (json.dumps({"type": "status", "status": status_json(
        lens="a\u0000b")}).encode(), "status.lens"),
    "lone surrogate": (b'{"type": "status", "status": ' + json.dumps(status_json())[:-1]
                       .encode() + b', "lens": "\\ud800"}}', "status.lens"),
    "cached_entity without id": (b'{"type": "cached_entity"}', "cached_entity_id"),
    "cached_entity bad id": (b'{"type": "cached_entity", "cached_entity_id": "zz"}',
                             "cached_entity_id"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_request_bodies_get_400_and_change_nothing(http, case):
    body, *words = BAD_BODIES[case]
    before = http.counts()
    reply = http.request("POST", "/import", user="exporter", data=body,
                         headers={"Content-Type": "application/json"})
    assert_error(reply, 400, *words)
    assert http.counts() == before


def test_an_invalid_full_entity_does_not_replace_the_cached_one(http):
    s = scene()
    http.answer({"type": "event", "event": s.event})
    broken = dict(s.event, event_time=-5)
    assert_error(http.post({"type": "event", "event": broken}), 400, "event.event_time")
    assert http.answer({"type": "cached_entity", "cached_entity_id": s.event["event_id"]}) \
        == {"state": "need_status", "status_id": s.status["status_id"]}


# -- sizes ----------------------------------------------------------------------------------

def _padded_status(size: int) -> bytes:
    """A valid status request body of exactly `size` bytes (JSON allows trailing spaces)."""
    text = json.dumps({"type": "status", "status": status_json()}).encode()
    return text + b" " * (size - len(text))


def test_body_at_the_limit_is_accepted(http):
    reply = http.request("POST", "/import", user="exporter", data=_padded_status(MAX_BODY),
                         headers={"Content-Type": "application/json"})
    assert reply.status == 200 and reply.json() == {"state": "continue"}


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_over_the_limit_gets_413_before_parsing(http, chunked):
    before = http.counts()
    body = _padded_status(MAX_BODY + 1)
    data = [body[i:i + 8192] for i in range(0, len(body), 8192)] if chunked else body
    reply = http.request("POST", "/import", user="exporter", data=data, chunked=chunked,
                         headers={"Content-Type": "application/json"})
    assert_error(reply, 413, "importer.max_body_bytes", str(MAX_BODY))
    assert http.counts() == before


@pytest.mark.parametrize("how", ["multipart", "raw", "chunked"])
def test_file_over_the_limit_gets_413_and_keeps_nothing(http, how):
    data = b"x" * (MAX_FILE + 1)
    file_id, md5 = new_id(), md5_of(data)
    before = http.counts()
    if how == "chunked":
        reply = http.request("POST", f"/import/data/{file_id}/{md5}", user="exporter",
                             data=[data[i:i + 65536] for i in range(0, len(data), 65536)],
                             chunked=True, headers={"Content-Type": "application/octet-stream"})
    else:
        reply = http.upload(file_id, md5, data, how=how)
    assert_error(reply, 413, "importer.max_file_bytes")
    assert http.counts() == before
    assert http.temp_files() == []


def test_file_at_the_limit_is_accepted_and_body_limit_does_not_apply(http):
    data = b"y" * MAX_FILE   # far above max_body_bytes
    reply = http.upload(new_id(), md5_of(data), data)
    assert reply.status == 200 and reply.json()["received"] is True


# -- uploads: bad URLs and bodies -----------------------------------------------------------

def test_upload_with_bad_file_id_or_md5_gets_400(http):
    data = b"bytes"
    before = http.counts()
    assert_error(http.upload("not-an-id", md5_of(data), data), 400, "file_id")
    assert_error(http.upload(new_id(), "d41d8cd98f00b204e980", data), 400, "md5")
    assert_error(http.upload(new_id(), "g" * 32, data), 400, "md5")
    assert http.counts() == before


def test_upload_with_other_content_type_gets_400(http):
    before = http.counts()
    reply = http.request("POST", f"/import/data/{new_id()}/{md5_of(b'a')}", user="exporter",
                         data=b"a", headers={"Content-Type": "text/plain"})
    assert_error(reply, 400, "Content-Type")
    assert http.counts() == before


def test_multipart_without_field_file_gets_400_and_keeps_nothing(http):
    before = http.counts()
    reply = http.multipart(f"/import/data/{new_id()}/{md5_of(b'a')}",
                           {"data": ("file", b"a")}, user="exporter")
    assert_error(reply, 400, "file")
    assert http.counts() == before
    assert http.temp_files() == []


def test_malformed_multipart_gets_400(http):
    before = http.counts()
    reply = http.request("POST", f"/import/data/{new_id()}/{md5_of(b'a')}", user="exporter",
                         data=b"--xyz\r\nno headers end here" + b"a" * 70_000,
                         headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert_error(reply, 400, "multipart")
    assert http.counts() == before


# -- authentication and roles ---------------------------------------------------------------

PROTECTED = [("POST", "/import"), ("POST", f"/import/data/{'a' * 32}/{'b' * 32}"),
             ("GET", "/api/events"), ("GET", "/api/files"), ("GET", f"/api/events/{'a' * 32}"),
             ("GET", f"/api/files/{'a' * 32}/data"), ("GET", f"/api/statuses/{'a' * 32}")]


@pytest.mark.parametrize("method,path", PROTECTED)
@pytest.mark.parametrize("who", ["nobody", "wrong password", "unknown user"])
def test_missing_or_bad_credentials_get_401_with_basic_challenge(http, method, path, who):
    user, password = {"nobody": (None, None), "wrong password": ("exporter", "wrong-pass"),
                      "unknown user": ("ghost", "whatever1")}[who]
    before = http.counts()
    reply = http.request(method, path, user=user, password=password,
                         json={"type": "status", "status": status_json()})
    assert_error(reply, 401)
    assert reply.headers["WWW-Authenticate"].startswith("Basic")
    assert http.counts() == before


@pytest.mark.parametrize("user,method,path", [
    ("reader", "POST", "/import"), ("reader", "POST", f"/import/data/{'a' * 32}/{'b' * 32}"),
    ("admin", "POST", "/import"), ("exporter", "GET", "/api/events"),
    ("exporter", "GET", f"/api/files/{'a' * 32}/data"), ("admin", "GET", "/api/files")])
def test_a_user_without_the_role_gets_403(http, user, method, path):
    before = http.counts()
    reply = http.request(method, path, user=user,
                         json={"type": "status", "status": status_json()})
    assert_error(reply, 403, user)
    assert http.counts() == before


def test_other_4xx_use_the_same_shape(http):
    assert_error(http.request("GET", "/no/such/route", user="reader"), 404)
    assert_error(http.request("GET", "/import", user="exporter"), 405)
    assert_error(http.request("GET", f"/api/events/{new_id()}", user="reader"), 404)
