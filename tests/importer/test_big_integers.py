"""Every integer from the wire is checked against the 64-bit range before it reaches the
database (docs/protocol.md): query parameters, job IDs, tus headers and the JSON bodies of
/api/targets. 2^63 and up is a 400 naming the field, never the database's own error (a 500:
OverflowError on SQLite, DataError on PostgreSQL); 2^63 - 1 is still served. Over every
transport: Flask on SQLite and on PostgreSQL, and a real `skyrelay serve`."""

import base64
import uuid

import pytest

from tests.importer.test_import_errors import assert_error
from tests.importer_fixtures import md5_of, new_id
from tests.v2_helpers import tus_metadata

MAX = 2 ** 63 - 1
TOO_BIG = (str(2 ** 63), str(2 ** 64), "9" * 30)
TARGET = {"name": "big", "url": "http://127.0.0.1:9/import", "user": "exporter",
          "password": "a-target-password"}


def cursor_at(time_ms: int) -> str:
    return base64.urlsafe_b64encode(f"{time_ms}:{uuid.uuid4().hex}".encode()).decode()


# -- query parameters -------------------------------------------------------------------------

@pytest.mark.parametrize("value", TOO_BIG)
def test_a_job_id_past_64_bits_is_a_400(http, value):
    assert_error(http.request("GET", f"/get_state?job_id={value}", user="exporter"), 400,
                 "job_id", "64-bit")


@pytest.mark.parametrize("value, words", [
    ("-1", "at least 0"), ("\u00b2", "expected a non-negative integer"),
    ("1.0", "expected a non-negative integer"), ("", "is required")])
def test_a_job_id_that_is_no_job_number_is_a_400(http, value, words):
    assert_error(http.request("GET", f"/get_state?job_id={value}", user="exporter"), 400,
                 "job_id", words)


def test_the_largest_job_id_is_just_unknown(http):
    assert_error(http.request("GET", f"/get_state?job_id={MAX}", user="exporter"), 404,
                 f"job {MAX} not found")


@pytest.mark.parametrize("path", ["/api/events", "/api/files"])
@pytest.mark.parametrize("param", ["after", "before", "limit"])
@pytest.mark.parametrize("value", TOO_BIG)
def test_listing_parameters_past_64_bits_are_a_400(http, path, param, value):
    assert_error(http.request("GET", f"{path}?{param}={value}", user="reader"), 400,
                 param, "64-bit")


@pytest.mark.parametrize("path", ["/api/events", "/api/files"])
def test_a_cursor_with_a_time_past_64_bits_is_a_400(http, path):
    reply = http.request("GET", f"{path}?cursor={cursor_at(2 ** 63)}", user="reader")
    assert_error(reply, 400, "cursor: not a cursor this server gave out")


@pytest.mark.parametrize("path, key", [("/api/events", "events"), ("/api/files", "files")])
def test_the_largest_64_bit_values_are_served(http, path, key):
    for query in (f"after={MAX}", f"before={MAX}", f"limit={MAX}", f"cursor={cursor_at(MAX)}"):
        reply = http.request("GET", f"{path}?{query}", user="reader")
        assert reply.status == 200, (query, reply.body)
        assert reply.json()[key] == [] or query.startswith(("before", "limit"))


# -- /api/targets bodies ----------------------------------------------------------------------

@pytest.fixture
def no_targets(http):
    """The transport is shared by the session: leave no target behind."""
    yield
    for target in http.targets():
        http.request("DELETE", f"/api/targets/{target['name']}", user="admin")


@pytest.mark.parametrize("change, words", [
    ({"bwlimit": 2 ** 63}, "bandwidth limit 9223372036854775808: out of the 64-bit range"),
    ({"bwlimit": "999999999999G"}, "bandwidth limit '999999999999G': out of the 64-bit"),
    ({"bwlimit": "9" * 400}, "out of the 64-bit range"),
    ({"bwlimit": "9" * 400 + "M"}, "out of the 64-bit range"),
    ({"filter": {"after": 2 ** 63}}, "after 9223372036854775808: out of the 64-bit range"),
    ({"filter": {"before": "9" * 30}}, "before '99999"),
    ({"filter": {"before": "\u00b2"}}, "before '\u00b2': expected milliseconds"),
])
def test_target_integers_past_64_bits_are_refused_and_nothing_is_stored(http, no_targets,
                                                                       change, words):
    assert_error(http.request("POST", "/api/targets", user="admin", json={**TARGET, **change}),
                 400, words)
    assert http.targets() == []


@pytest.mark.parametrize("bwlimit", [2 ** 63, "999999999999G", "9" * 400])
def test_a_changed_bwlimit_past_64_bits_is_refused_and_nothing_changes(http, no_targets,
                                                                       bwlimit):
    assert http.request("POST", "/api/targets", user="admin", json=TARGET).status == 201
    before = http.targets()
    assert_error(http.request("PATCH", "/api/targets/big", user="admin",
                              json={"bwlimit": bwlimit}), 400, "out of the 64-bit range")
    assert http.targets() == before


def test_the_largest_64_bit_bwlimit_and_times_are_kept(http, no_targets):
    body = {**TARGET, "bwlimit": MAX, "filter": {"after": MAX - 1, "before": MAX}}
    reply = http.request("POST", "/api/targets", user="admin", json=body)
    assert reply.status == 201, reply.body
    assert reply.json()["bwlimit"] == MAX
    assert reply.json()["filter"]["after"] == MAX - 1 and reply.json()["filter"]["before"] == MAX


# -- tus headers ------------------------------------------------------------------------------

TUS = {"Tus-Resumable": "1.0.0"}


def create_upload(http, length: str):
    return http.request("POST", "/import/uploads", user="exporter", headers={
        **TUS, "Upload-Length": length, "Upload-Metadata": tus_metadata(new_id(), md5_of(b"x"))})


@pytest.mark.parametrize("length, words", [
    (str(2 ** 63), "64-bit"), ("9" * 30, "64-bit"), ("-1", "at least 0"),
    ("\u00b2", "expected a non-negative integer")])
def test_an_upload_length_past_64_bits_is_a_400_and_makes_no_upload(http, length, words):
    counts = http.counts()
    assert_error(create_upload(http, length), 400, "Upload-Length", words)
    assert http.counts() == counts


@pytest.mark.parametrize("offset", [str(2 ** 63), str(2 ** 64), "\u00b2"])
def test_an_upload_offset_past_64_bits_is_a_400_and_appends_nothing(http, offset):
    created = create_upload(http, "1")
    assert created.status == 201
    location = created.headers["Location"]
    path = location[location.index("/import/uploads/"):]
    reply = http.request("PATCH", path, user="exporter", data=b"x", headers={
        **TUS, "Upload-Offset": offset, "Content-Type": "application/offset+octet-stream"})
    assert_error(reply, 400, "Upload-Offset")
    head = http.request("HEAD", path, user="exporter", headers=TUS)
    assert head.status == 200 and head.headers["Upload-Offset"] == "0"
    http.request("DELETE", path, user="exporter", headers=TUS)
