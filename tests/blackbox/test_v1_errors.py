"""Version 1 errors, authentication and roles (docs/wire.md "Errors", "Roles"): every bad
request gets its code with a JSON body holding `state` and `message`, and changes nothing
that is stored (checked through the read API)."""

import copy
import json

import pytest
import requests

from tests.blackbox.helpers import (
    MAX_BODY_BYTES, TIMEOUT, assert_400, assert_error, cached_form, event, event_form,
    file_form, file_record, new_camera, new_id, status, status_form)

DATA = b"file bytes for error tests"


def _nothing_stored(site, cam, ids):
    """Nothing of this request is readable: no entity by ID, no listing for the camera."""
    for kind, entity_id in ids:
        assert site.read(kind, entity_id) is None, (kind, entity_id)
    for kind in ("events", "files"):
        listing = site.get(f"/api/{kind}?camera_id={cam}")
        assert listing.status_code == 200, listing.text
        assert listing.json()[kind] == [], listing.json()


@pytest.fixture
def valid(site):
    """A valid status (held), a file record whose bytes are held, and an event: each would
    be accepted as it is."""
    cam = new_camera()
    s = status(cam)
    site.store_status(s)
    f = file_record(cam, s["status_id"], DATA)
    site.upload_ok(f["file_id"], DATA)
    e = event(cam, s["status_id"], [f])
    return cam, s, f, e


# -- status ------------------------------------------------------------------------------------

def _drop(key):
    return lambda x: x.pop(key)


def _set(key, value):
    return lambda x: x.__setitem__(key, value)


STATUS_CASES = {
    "missing status_id": (_drop("status_id"), "status_id"),
    "missing camera_id": (_drop("camera_id"), "camera_id"),
    "missing valid_from": (_drop("valid_from"), "valid_from"),
    "missing location": (_drop("location"), "location"),
    "missing orientation": (_drop("orientation"), "orientation"),
    "valid_from string": (_set("valid_from", "1427846880000"), "valid_from"),
    "valid_from fraction": (_set("valid_from", 1.5), "valid_from"),
    "valid_from negative": (_set("valid_from", -1), "valid_from"),
    "valid_from bool": (_set("valid_from", True), "valid_from"),
    "valid_from 2**70": (_set("valid_from", 2 ** 70), "valid_from"),
    "valid_to string": (_set("valid_to", "tomorrow"), "valid_to"),
    "camera_id number": (_set("camera_id", 12345), "camera_id"),
    "location string": (_set("location", "52.2,0.12"), "location"),
    "location lat string": (_set("location", {"lat": "52.2", "long": 0.1}), "lat"),
    "location lat bool": (_set("location", {"lat": True, "long": 0.1}), "lat"),
    "orientation list": (_set("orientation", [1, 2]), "orientation"),
    "software_version string": (_set("software_version", "1"), "software_version"),
    "lens number": (_set("lens", 5), "lens"),
    "regions string": (_set("regions", "none"), "regions"),
    "status_id bad hex": (_set("status_id", "zz" * 16), "status_id"),
    "status_id short": (_set("status_id", "a" * 31), "status_id"),
    "status_id number": (_set("status_id", 12), "status_id"),
    "lens with NUL": (_set("lens", "a\u0000b"), "lens"),
}


@pytest.mark.parametrize("case", STATUS_CASES, ids=list(STATUS_CASES))
def test_bad_status_is_400_and_not_stored(site, case):
    mutate, field = STATUS_CASES[case]
    cam = new_camera()
    s = status(cam)
    sid = s["status_id"]
    mutate(s)
    body = assert_400(site.post(status_form(s)))
    assert field in body["message"], body
    assert site.read("statuses", sid) is None


# -- file record -------------------------------------------------------------------------------

FILE_REQUIRED = ["file_id", "camera_id", "status_id", "file_time", "mime_type",
                 "semantic_type", "file_size", "md5", "meta"]

FILE_CASES = {
    **{f"missing {k}": (_drop(k), k) for k in FILE_REQUIRED},
    "file_size negative": (_set("file_size", -1), "file_size"),
    "file_size string": (_set("file_size", "26"), "file_size"),
    "file_size fraction": (_set("file_size", 26.5), "file_size"),
    "file_time string": (_set("file_time", "now"), "file_time"),
    "md5 bad hex": (_set("md5", "g" * 32), "md5"),
    "md5 short": (_set("md5", "a" * 31), "md5"),
    "md5 number": (_set("md5", 7), "md5"),
    "file_id bad hex": (_set("file_id", "not-a-uuid"), "file_id"),
    "status_id bad hex": (_set("status_id", "x" * 32), "status_id"),
    "mime_type number": (_set("mime_type", 1), "mime_type"),
    "meta not a list": (_set("meta", {"type": "string"}), "meta"),
    "meta unknown type": (_set("meta", [{"type": "color", "key": "meteorpi:c",
                                         "value": "red"}]), "type"),
    "meta missing type": (_set("meta", [{"key": "meteorpi:c", "value": "red"}]), "type"),
    "meta missing key": (_set("meta", [{"type": "string", "value": "red"}]), "key"),
    "meta missing value": (_set("meta", [{"type": "string", "key": "meteorpi:c"}]), "value"),
    "meta number not a number": (_set("meta", [{"type": "number", "key": "meteorpi:n",
                                                "value": "1e-05"}]), "value"),
    "meta string not a string": (_set("meta", [{"type": "string", "key": "meteorpi:s",
                                                "value": 3}]), "value"),
    "meta date not a time": (_set("meta", [{"type": "date", "key": "meteorpi:d",
                                            "value": "2015-04-01"}]), "value"),
    "meta key number": (_set("meta", [{"type": "string", "key": 5, "value": "x"}]), "key"),
    "meta date fraction": (_set("meta", [{"type": "date", "key": "meteorpi:d",
                                          "value": 1.5}]), "value"),
    "meta number bool": (_set("meta", [{"type": "number", "key": "meteorpi:n",
                                        "value": True}]), "value"),
    "meta item not an object": (_set("meta", ["meteorpi:n=1"]), "meta"),
    "file_size 2**63": (_set("file_size", 2 ** 63), "file_size"),
}


@pytest.mark.parametrize("case", FILE_CASES, ids=list(FILE_CASES))
def test_bad_file_record_is_400_and_not_stored(site, valid, case):
    mutate, field = FILE_CASES[case]
    cam, _, f, _ = valid
    bad = copy.deepcopy(f)
    mutate(bad)
    body = assert_400(site.post(file_form(bad)))
    assert field in body["message"], body
    _nothing_stored(site, cam, [("files", f["file_id"])])
    # The valid record is still accepted afterwards: the failure changed nothing.
    assert site.handshake(file_form(f)) == {"state": "complete"}


# -- event -------------------------------------------------------------------------------------

EVENT_REQUIRED = ["event_id", "camera_id", "status_id", "event_time", "event_type", "files",
                  "meta"]


def _file0(key, value):
    def mutate(e):
        e["files"][0][key] = value
    return mutate


def _other_camera(e):
    e["files"][0]["camera_id"] = new_camera()


def _duplicate_file(e):
    e["files"].append(copy.deepcopy(e["files"][0]))


EVENT_CASES = {
    **{f"missing {k}": (_drop(k), k) for k in EVENT_REQUIRED},
    "files not a list": (_set("files", {}), "files"),
    "meta not a list": (_set("meta", "none"), "meta"),
    "event_time string": (_set("event_time", "1427846880000"), "event_time"),
    "event_type number": (_set("event_type", 3), "event_type"),
    "event_id bad hex": (_set("event_id", "q" * 32), "event_id"),
    "meta unknown type": (_set("meta", [{"type": "colour", "key": "meteorpi:c",
                                         "value": "red"}]), "type"),
    "file of another camera": (_other_camera, "camera_id"),
    "file with negative size": (_file0("file_size", -5), "file_size"),
    "file with bad md5": (_file0("md5", "XYZ"), "md5"),
    "file missing mime_type": (lambda e: e["files"][0].pop("mime_type"), "mime_type"),
    "file not an object": (_set("files", ["a file"]), "files"),
    "same file twice": (_duplicate_file, "file_id"),
}


@pytest.mark.parametrize("case", EVENT_CASES, ids=list(EVENT_CASES))
def test_bad_event_is_400_and_not_stored(site, valid, case):
    mutate, field = EVENT_CASES[case]
    cam, _, f, e = valid
    bad = copy.deepcopy(e)
    mutate(bad)
    body = assert_400(site.post(event_form(bad)))
    assert field in body["message"], body
    _nothing_stored(site, cam, [("events", e["event_id"]), ("files", f["file_id"])])
    assert site.handshake(event_form(e)) == {"state": "complete"}


def test_event_with_file_of_another_camera_is_400_even_before_its_status_is_known(site):
    cam = new_camera()
    s = status(cam)  # never sent
    f = file_record(new_camera(), s["status_id"], DATA)
    e = event(cam, s["status_id"], [f])
    assert_400(site.post(event_form(e)))
    _nothing_stored(site, cam, [("events", e["event_id"]), ("files", f["file_id"])])


def test_failed_full_entity_does_not_replace_the_cached_one(site):
    """docs/protocol.md: a full entity that fails validation does not replace the cached one."""
    cam = new_camera()
    s = status(cam)
    e = event(cam, s["status_id"], [])
    assert site.handshake(event_form(e))["state"] == "need_status"
    bad = dict(e, event_time="later")
    assert_400(site.post(event_form(bad)))
    site.store_status(s)
    assert site.handshake(cached_form(e["event_id"])) == {"state": "complete"}
    assert site.read("events", e["event_id"]) == e


# -- the form itself ---------------------------------------------------------------------------

def _raw(site, data: bytes, content_type="application/json"):
    return site.post(None, data=data, headers={"Content-Type": content_type})


SID = new_id()
FORM_CASES = {
    "not JSON": b"hello",
    "empty body": b"",
    "JSON array": b"[]",
    "JSON string": b'"status"',
    "JSON null": b"null",
    "no type": b'{"status": {}}',
    "unknown type": b'{"type": "camera", "camera": {}}',
    "type number": b'{"type": 1}',
    "status form without status": b'{"type": "status"}',
    "status form with string": b'{"type": "status", "status": "abc"}',
    "event form carrying a status": json.dumps(
        {"type": "event", "status": status(new_camera())}).encode(),
    "file form with list": b'{"type": "file", "file": []}',
    "cached_entity without id": b'{"type": "cached_entity"}',
    "cached_entity bad hex": b'{"type": "cached_entity", "cached_entity_id": "xyz"}',
    "cached_entity number": b'{"type": "cached_entity", "cached_entity_id": 12}',
    "cached_entity null": b'{"type": "cached_entity", "cached_entity_id": null}',
    "YAML, not JSON": ("type: status\nstatus:\n  status_id: " + SID).encode(),
    "invalid UTF-8": b'{"type": "status", "status": {"lens": "\xff\xfe"}}',
    "NaN": json.dumps(status_form(status(new_camera(), valid_from=float("nan")))).encode(),
    "Infinity in location": json.dumps(status_form(status(
        new_camera(), location={"lat": float("inf"), "long": 0}))).encode(),
    "lone surrogate": b'{"type": "status", "status": {"status_id": "' + SID.encode()
                      + b'", "camera_id": "c", "valid_from": 1, "lens": "\\ud800",'
                      + b' "location": {"lat": 1, "long": 1}, "orientation": {"alt": 1,'
                      + b' "az": 1}}}',
    "deeply nested": b'{"type": "status", "status": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "truncated JSON": b'{"type": "status", "status": {"status_id": ',
}


@pytest.mark.parametrize("case", FORM_CASES, ids=list(FORM_CASES))
def test_malformed_request_is_400(site, case):
    assert_400(_raw(site, FORM_CASES[case]))


def test_yaml_body_is_not_read_as_yaml(site):
    """The body is never parsed as YAML: nothing is stored from a YAML request."""
    assert_400(_raw(site, FORM_CASES["YAML, not JSON"], "application/x-yaml"))
    assert site.read("statuses", SID) is None


# -- 413 ---------------------------------------------------------------------------------------

def test_body_over_max_body_bytes_is_413(site):
    cam = new_camera()
    s = status(cam, inst_name="x" * 1000)
    site.store_status(s)
    e = event(cam, s["status_id"], [], meta=[{"type": "string", "key": f"meteorpi:k{i}",
                                              "value": "v" * 200} for i in range(80)])
    assert len(json.dumps(event_form(e))) > MAX_BODY_BYTES
    assert_error(site.post(event_form(e)), 413)
    assert site.read("events", e["event_id"]) is None


def test_413_is_checked_before_parsing(site):
    assert_error(_raw(site, b"\x00not json" * (MAX_BODY_BYTES // 9 + 10)), 413)


def test_chunked_body_over_max_body_bytes_is_413(site):
    chunks = (b" " * 4096 for _ in range(MAX_BODY_BYTES // 4096 + 2))
    response = site.post(None, data=chunks, headers={"Content-Type": "application/json"})
    assert_error(response, 413)


def test_body_of_exactly_max_body_bytes_is_parsed(site):
    s = status(new_camera())
    text = json.dumps(status_form(s)).encode()
    padded = text + b" " * (MAX_BODY_BYTES - len(text))
    assert len(padded) == MAX_BODY_BYTES
    response = _raw(site, padded)
    assert response.status_code == 200 and response.json() == {"state": "continue"}


# -- authentication and roles ------------------------------------------------------------------

BAD_AUTH = {
    "no credentials": None,
    "wrong password": ("exporter", "not-the-password"),
    "unknown user": ("nobody", "nobody-secret-password"),
}


@pytest.mark.parametrize("case", BAD_AUTH, ids=list(BAD_AUTH))
def test_import_without_valid_credentials_is_401(site, case):
    s = status(new_camera())
    kwargs = {"auth": BAD_AUTH[case]} if BAD_AUTH[case] else {}
    response = site.post(status_form(s), user=None, **kwargs)
    body = assert_error(response, 401)
    assert body["state"] == "failed"
    assert response.headers["WWW-Authenticate"].split()[0] == "Basic"
    assert site.read("statuses", s["status_id"]) is None


@pytest.mark.parametrize("user", ["reader", "admin"])
def test_import_without_the_import_role_is_403(site, user):
    s = status(new_camera())
    body = assert_error(site.post(status_form(s), user=user), 403)
    assert body["state"] == "failed"
    assert site.read("statuses", s["status_id"]) is None


MALFORMED_AUTHORIZATION = {
    "not base64": "Basic !!!not-base64!!!",
    "no colon": "Basic ZXhwb3J0ZXI=",
    "bearer": "Bearer abc.def.ghi",
    "empty basic": "Basic ",
    "latin-1 user": "Basic " + __import__("base64").b64encode("\u00e9x:pw".encode("latin-1"))
                    .decode(),
}


@pytest.mark.parametrize("case", MALFORMED_AUTHORIZATION, ids=list(MALFORMED_AUTHORIZATION))
def test_malformed_authorization_is_401(site, case):
    s = status(new_camera())
    response = site.post(status_form(s), user=None,
                         headers={"Authorization": MALFORMED_AUTHORIZATION[case]})
    assert_error(response, 401)
    assert response.headers["WWW-Authenticate"].split()[0] == "Basic"
    assert site.read("statuses", s["status_id"]) is None


def test_401_comes_before_413(site):
    response = site.post(None, user=None, data=b"x" * (MAX_BODY_BYTES + 10))
    assert_error(response, 401)


@pytest.mark.parametrize("path", ["/api/events", "/api/files", f"/api/events/{new_id()}",
                                  f"/api/files/{new_id()}", f"/api/statuses/{new_id()}",
                                  f"/api/files/{new_id()}/data"])
def test_read_api_roles(site, path):
    response = site.get(path, user=None)
    assert_error(response, 401)
    assert response.headers["WWW-Authenticate"].split()[0] == "Basic"
    assert_error(site.get(path, auth=("reader", "wrong")), 401)
    assert_error(site.get(path, user="exporter"), 403)
    assert_error(site.get(path, user="admin"), 403)
    assert site.get(path, user="reader").status_code in (200, 404)


def test_wrong_method_answers_json(site):
    response = requests.get(site.base, auth=site.auth("exporter"), timeout=TIMEOUT)
    assert_error(response, 405)


def test_unknown_route_answers_json_404(site):
    assert_error(site.get("/api/nothing-here"), 404)


def test_upload_route_wrong_method_answers_json(site):
    url = f"{site.base}/data/{new_id()}/d41d8cd98f00b204e9800998ecf8427e"
    assert_error(requests.get(url, auth=site.auth("exporter"), timeout=TIMEOUT), 405)
