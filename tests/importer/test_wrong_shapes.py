"""Bodies of the wrong shape get a 400 in the JSON error shape and store nothing, over every
transport (Flask on SQLite and PostgreSQL, a real `skyrelay serve`): a `type` that is a list
or an object (once a 500: unhashable), JSON nested 100,000 deep on /api/targets (once a 500:
RecursionError; it is read by the one body reader, `request_body.read_json`, as /api/users
and /import are), and text a database cannot store in a target's fields."""

import json

import pytest

from tests.importer.test_import_errors import assert_error

# Deep enough to overflow the stack, yet within the tests' body limit (64 KiB).
DEEP = b"[" * 60_000
TARGET = {"name": "shape", "url": "http://127.0.0.1:9/import", "user": "exporter",
          "password": "a-target-password"}


@pytest.mark.parametrize("kind", [["event"], {"a": 1}, [], 1, True])
@pytest.mark.parametrize("path", ["/import", "/import/"])
def test_a_type_of_the_wrong_json_type_is_a_400_and_stores_nothing(http, path, kind):
    counts = http.counts()
    reply = http.request("POST", path, user="exporter", json={"type": kind})
    assert_error(reply, 400, "type: expected one of status, file, event, cached_entity")
    assert http.counts() == counts


@pytest.fixture
def one_target(http):
    assert http.request("POST", "/api/targets", user="admin", json=TARGET).status == 201
    yield http.targets()
    http.request("DELETE", "/api/targets/shape", user="admin")


@pytest.mark.parametrize("method, path", [("POST", "/api/targets"),
                                          ("PATCH", "/api/targets/shape")])
@pytest.mark.parametrize("body, words", [
    (DEEP, "body: not valid JSON"), (b'{"a":' * 10_000, "body: not valid JSON"),
    (b"\xff\xfe", "body: not valid JSON"), (b"[]", "body: expected a JSON object"),
    (b"null", "body: expected a JSON object"), (b'"text"', "body: expected a JSON object")])
def test_targets_bodies_that_are_no_json_object_are_a_400(http, one_target, method, path,
                                                          body, words):
    reply = http.request(method, path, user="admin", data=body,
                         headers={"Content-Type": "application/json"})
    assert_error(reply, 400, words)
    assert http.targets() == one_target


@pytest.mark.parametrize("key", ["url", "user", "password"])
@pytest.mark.parametrize("bad, words", [("a\x00b", "contains a NUL character"),
                                        ("a\ud800b", "lone surrogate")])
def test_target_text_no_database_can_store_is_a_400(http, one_target, key, bad, words):
    value = f"http://127.0.0.1:9/{bad}" if key == "url" else bad
    body = json.dumps({**TARGET, "name": "other", key: value}).encode()
    for method, path in (("POST", "/api/targets"), ("PATCH", "/api/targets/shape")):
        sent = body if method == "POST" else json.dumps({key: value}).encode()
        reply = http.request(method, path, user="admin", data=sent,
                             headers={"Content-Type": "application/json"})
        assert_error(reply, 400, key, words)
    assert http.targets() == one_target
