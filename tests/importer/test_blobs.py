"""`POST {base}/blobs`: many small files in one multipart request, each MD5-checked."""

import io
import os

import pytest

from tests.v2_helpers import (basic, importer_client, make_config, md5_hex,  # noqa: F401
                              multipart, new_id)
from importer.multipart import MAX_HEADER_BYTES, READ_SIZE, MultipartError, iter_parts

URL = "/import/blobs"
pytestmark = pytest.mark.blob_backends   # the tests that store bytes: local folder and S3


def post(client, parts, user="cam"):
    body, content_type = multipart(parts)
    return client.post(URL, data=body, headers={**basic(user), "Content-Type": content_type})


def test_many_files_in_one_request(importer_client, sqlite_site):
    files = [(new_id(), os.urandom(size)) for size in (0, 1, 4096, 300_000, 4096)]
    response = post(importer_client, [(f"{fid}.{md5_hex(data)}", data) for fid, data in files])
    assert response.status_code == 200
    assert response.get_json() == {"results": [{"file_id": fid, "received": True}
                                               for fid, _ in files]}
    for fid, data in files:
        assert sqlite_site.archive.has_data(fid, md5_hex(data))


def test_each_part_is_checked_on_its_own(importer_client, sqlite_site):
    good, bad = (new_id(), os.urandom(4096)), (new_id(), os.urandom(4096))
    response = post(importer_client, [
        (f"{good[0]}.{md5_hex(good[1])}", good[1]),
        (f"{bad[0]}.{md5_hex(b'other')}", bad[1]),
        ("no-dot-here", b"abc"),
        (f"{new_id()}.nothex", b"abc"),
    ])
    results = response.get_json()["results"]
    assert response.status_code == 200
    assert results[0] == {"file_id": good[0], "received": True}
    assert results[1]["file_id"] == bad[0] and results[1]["received"] is False
    assert md5_hex(bad[1]) in results[1]["message"]
    assert results[2]["received"] is False and "<file_id>.<md5>" in results[2]["message"]
    assert results[3]["received"] is False and "md5" in results[3]["message"]
    counts = sqlite_site.archive.counts()
    assert (counts["staged"], counts["blobs"]) == (1, 1)


def test_a_part_over_the_limit_fails_alone(sqlite_site, tmp_path):
    from importer.app import create_app
    from tests.v2_helpers import PASSWORD
    sqlite_site.users.add("cam", PASSWORD, ["import"])
    client = create_app(make_config(tmp_path, **{"importer.max_file_bytes": 10_000}),
                        sqlite_site).test_client()
    small, large = os.urandom(100), os.urandom(6_000)
    response = post(client, [(f"{new_id()}.{md5_hex(large)}", large),
                             (f"{new_id()}.{md5_hex(small)}", small)])
    assert response.status_code == 200
    assert [r["received"] for r in response.get_json()["results"]] == [True, True]
    too_big = os.urandom(11_000)
    response = post(client, [(f"{new_id()}.{md5_hex(too_big)}", too_big)])
    assert response.status_code == 413
    assert sqlite_site.archive.counts()["staged"] == 2


def test_bad_requests(importer_client, sqlite_site):
    not_multipart = importer_client.post(URL, data=b"abc", headers={
        **basic("cam"), "Content-Type": "application/octet-stream"})
    assert not_multipart.status_code == 400
    assert "multipart/form-data" in not_multipart.get_json()["message"]
    data = os.urandom(100)
    body, content_type = multipart([(f"{new_id()}.{md5_hex(data)}", data)])
    truncated = importer_client.post(URL, data=body[:-30], headers={
        **basic("cam"), "Content-Type": content_type})
    assert truncated.status_code == 400
    assert "ended before its closing boundary" in truncated.get_json()["message"]
    assert importer_client.post(URL, data=body, headers={"Content-Type": content_type}) \
        .status_code == 401
    assert importer_client.post(URL, data=body, headers={
        **basic("reader"), "Content-Type": content_type}).status_code == 403
    assert sqlite_site.archive.counts()["staged"] == 0


def test_parts_stream_in_small_reads():
    """The reader sees each part's bytes whatever the read size (boundaries split anywhere)."""
    parts = [(f"p{i}", os.urandom(size)) for i, size in enumerate((0, 7, 5000, 70_001))]
    body, content_type = multipart(parts)
    boundary = content_type.split("boundary=")[1].encode()
    for step in (1, 3, 64, 4096):
        position = 0

        def read(size, step=step):
            nonlocal position
            chunk = body[position:position + min(size, step)]
            position += len(chunk)
            return chunk
        got = [(name, b"".join(data)) for name, data in iter_parts(read, boundary)]
        assert got == parts


def _parts_of(body: bytes, boundary: bytes = b"XyZ") -> list[tuple[str, bytes]]:
    stream = io.BytesIO(body)
    return [(name, b"".join(data)) for name, data in iter_parts(stream.read, boundary)]


def test_part_names_preamble_and_epilogue():
    body = (b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; filename=\"f\"; "
            b"name=\"a.b\"\r\nContent-Type: x\r\n\r\none\r\n--XyZ\r\n\r\n\r\n--XyZ\r\n"
            b"content-disposition: form-data; name*=UTF-8''caf%C3%A9\r\n\r\nthree"
            b"\r\n--XyZ--\r\nepilogue --XyZ\r\n")
    assert _parts_of(body) == [("a.b", b"one"), ("", b""), ("café", b"three")]


def test_malformed_multipart_is_refused():
    with pytest.raises(MultipartError, match="ended before its closing boundary"):
        _parts_of(b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nabc")
    with pytest.raises(MultipartError, match="ended before its closing boundary"):
        _parts_of(b"no boundary at all")
    with pytest.raises(MultipartError, match="text after the boundary"):
        _parts_of(b"--XyZjunk\r\n\r\nabc\r\n--XyZ--")
    with pytest.raises(MultipartError, match="within"):
        _parts_of(b"--XyZ\r\n" + b"X" * (MAX_HEADER_BYTES + READ_SIZE))
