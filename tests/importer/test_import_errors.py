"""Every error case of docs/wire.md's version 1, over every transport: the status, the one
JSON error shape (exactly `state` and `message`), a message naming the field, and nothing
stored changed."""

import json

import pytest
from flask import Flask

from tests.importer_fixtures import SETTINGS, file_json, md5_of, new_id, scene, status_json
from tests.v2_helpers import importer_client, md5_b64, tus, tus_metadata  # noqa: F401
from importer.errors import register_error_handlers
from model.export.targets import DuplicateTarget, TargetError, UnknownTarget
from model.ops.users import NoSuchUser, UserError, UserExists
from model.protocol.codec import EntityError
from model.protocol.errors import Busy, Conflict, Invalid, NotFound, OverLimit, SkyrelayError
from model.store.blobs import TooLarge
from model.store.database import DatabaseBusy
from model.uploads.resumable import (ChecksumMismatch, ChunkTooLong, OffsetMismatch, UploadBusy,
                                     UploadGone, UploadNotFound, WholeFileMismatch)

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



# -- the one table from domain errors to answers (importer.errors.TRANSLATIONS) -------------

RETRY = {"Retry-After": "1"}
# case → (error raised, status line, headers beyond Content-Type/Length, message)
DOMAIN_ERRORS = {
    "invalid": (Invalid("x: wrong"), "400 BAD REQUEST", {}, "x: wrong"),
    "not found": (NotFound("no such x"), "404 NOT FOUND", {}, "no such x"),
    "conflict": (Conflict("x is taken"), "409 CONFLICT", {}, "x is taken"),
    "over limit": (OverLimit("x: too big"), "413 REQUEST ENTITY TOO LARGE", {}, "x: too big"),
    "busy": (Busy("x is busy"), "503 SERVICE UNAVAILABLE", RETRY, "x is busy"),
    "database busy": (DatabaseBusy("database is locked"), "503 SERVICE UNAVAILABLE", RETRY,
                      "the database is busy; retry shortly"),
    "upload gone": (UploadGone("upload expired"), "410 GONE", {}, "upload expired"),
    "upload busy": (UploadBusy("upload in use"), "423 LOCKED", RETRY, "upload in use"),
    "checksum": (ChecksumMismatch("chunk checksum"), "460 Checksum Mismatch", {},
                 "chunk checksum"),
    "whole file": (WholeFileMismatch("file md5"), "460 Checksum Mismatch", {}, "file md5"),
    "offset": (OffsetMismatch(held=7, sent=3), "409 CONFLICT", {"Upload-Offset": "7"},
               "Upload-Offset 3 is not the upload's offset 7"),
    # Errors of two kinds answer by the narrower one, never as Invalid.
    "unknown target": (UnknownTarget("t"), "404 NOT FOUND", {}, str(UnknownTarget("t"))),
    "duplicate target": (DuplicateTarget("t"), "409 CONFLICT", {}, str(DuplicateTarget("t"))),
    "target error": (TargetError("url: bad"), "400 BAD REQUEST", {}, "url: bad"),
    "user exists": (UserExists("user 'a' exists"), "409 CONFLICT", {}, "user 'a' exists"),
    "no such user": (NoSuchUser("no user 'a'"), "404 NOT FOUND", {}, "no user 'a'"),
    "user error": (UserError("password: short"), "400 BAD REQUEST", {}, "password: short"),
    "entity": (EntityError("event.x", "bad"), "400 BAD REQUEST", {}, "event.x: bad"),
    "upload not found": (UploadNotFound("no upload"), "404 NOT FOUND", {}, "no upload"),
    "chunk too long": (ChunkTooLong("past length"), "413 REQUEST ENTITY TOO LARGE", {},
                       "past length"),
    "too large": (TooLarge(10), "413 REQUEST ENTITY TOO LARGE", {}, str(TooLarge(10))),
}


def _raising_app() -> Flask:
    """A bare app with the importer's handlers: GET /raise/<case> raises DOMAIN_ERRORS[case]
    (or, for "kindless", a SkyrelayError of no kind)."""
    app = Flask("errors-under-test")
    app.json.sort_keys = False
    register_error_handlers(app)

    @app.get("/raise/<case>")
    def raise_case(case):
        if case == "kindless":
            raise SkyrelayError("nobody said which kind")
        raise DOMAIN_ERRORS[case][0]

    return app


@pytest.mark.parametrize("case", list(DOMAIN_ERRORS))
def test_each_domain_error_gets_its_status_headers_and_message(case):
    _, status, headers, message = DOMAIN_ERRORS[case]
    reply = _raising_app().test_client().get(f"/raise/{case}")
    assert reply.status == status
    assert reply.headers["Content-Type"] == "application/json"
    assert {k: v for k, v in reply.headers.items()
            if k not in ("Content-Type", "Content-Length")} == headers
    assert list(reply.get_json().items()) == [("state", "failed"), ("message", message)]


def test_a_domain_error_of_no_kind_is_an_internal_error():
    reply = _raising_app().test_client().get("/raise/kindless")
    assert reply.status_code == 500
    assert reply.get_json() == {"state": "failed", "message": "internal error: SkyrelayError"}


def test_tus_error_answers_keep_the_tus_header(importer_client):
    """The uploads routes answer model errors through the app's one handler; their
    blueprint still adds Tus-Resumable, and the 460 keeps tus's reason phrase."""
    data = b"z" * 1000
    created = importer_client.post("/import/uploads", headers={
        **tus(), "Upload-Length": str(len(data)),
        "Upload-Metadata": tus_metadata(new_id(), md5_of(data))})
    url = created.headers["Location"]

    def patch(offset: int, chunk: bytes, content_type="application/offset+octet-stream",
              **headers):
        return importer_client.patch(url, data=chunk, headers={
            **tus(), "Upload-Offset": str(offset), "Content-Type": content_type, **headers})

    moved = patch(5, data[:10])
    assert (moved.status_code, moved.headers["Upload-Offset"]) == (409, "0")
    mismatch = patch(0, data, **{"Upload-Checksum": "md5 " + md5_b64(b"other bytes")})
    assert mismatch.status == "460 Checksum Mismatch"
    unknown = importer_client.delete(f"/import/uploads/{new_id()}", headers=tus())
    assert unknown.status_code == 404
    invalid = patch(0, data, content_type="text/plain")
    assert invalid.status_code == 400
    for reply in (moved, mismatch, unknown, invalid):
        assert reply.headers["Tus-Resumable"] == "1.0.0"
        assert reply.headers["Content-Type"] == "application/json"
    assert invalid.get_json() == {"state": "failed",
                                  "message": "Content-Type: must be "
                                             "application/offset+octet-stream, got text/plain"}
