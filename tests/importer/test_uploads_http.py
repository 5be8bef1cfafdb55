"""`{base}/uploads` over HTTP (Flask test client): tus 1.0.0 headers, statuses and errors; those
marked `blob_backends` with the bytes in a local folder and in S3 multipart uploads.

The stock-client, dropped-connection and restart tests against `skyrelay serve` are in
test_uploads_served.py.
"""

import os

import pytest

from tests.v2_helpers import (basic, importer_client, md5_b64, md5_hex, new_id, tus,  # noqa: F401
                              tus_metadata)

BASE = "/import/uploads"
OCTETS = "application/offset+octet-stream"


def create(client, data: bytes, md5: str | None = None, user: str = "cam", file_id=None):
    file_id = file_id or new_id()
    response = client.post(BASE, headers={
        **tus(user), "Upload-Length": str(len(data)),
        "Upload-Metadata": tus_metadata(file_id, md5 or md5_hex(data), filename="x.bin")})
    assert response.status_code == 201, response.get_json()
    return response.headers["Location"], file_id


def patch(client, url, offset: int, chunk: bytes, user: str = "cam", **headers):
    return client.patch(url, data=chunk, headers={
        **tus(user), "Upload-Offset": str(offset), "Content-Type": OCTETS, **headers})


def offset_of(client, url, user="cam") -> int:
    response = client.head(url, headers=tus(user))
    assert response.status_code == 200
    return int(response.headers["Upload-Offset"])


def test_options_advertises_tus(importer_client):
    response = importer_client.options(BASE, headers=basic("cam"))
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) == {
        "creation", "checksum", "termination", "expiration"}
    assert int(response.headers["Tus-Max-Size"]) == 10 * 1024 ** 3
    assert "md5" in response.headers["Tus-Checksum-Algorithm"].split(",")


@pytest.mark.blob_backends
def test_create_head_patch_complete(importer_client, sqlite_site):
    data = os.urandom(200_000)
    url, file_id = create(importer_client, data)
    head = importer_client.head(url, headers=tus())
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == "0"
    assert head.headers["Upload-Length"] == str(len(data))
    assert head.headers["Cache-Control"] == "no-store"
    assert head.headers["Tus-Resumable"] == "1.0.0"
    assert "GMT" in head.headers["Upload-Expires"]
    assert "file_id " in head.headers["Upload-Metadata"]
    first = patch(importer_client, url, 0, data[:70_000], **{"Upload-Checksum":
                                                             "md5 " + md5_b64(data[:70_000])})
    assert first.status_code == 204 and first.headers["Upload-Offset"] == "70000"
    assert "GMT" in first.headers["Upload-Expires"]
    last = patch(importer_client, url, 70_000, data[70_000:])
    assert last.status_code == 204 and last.headers["Upload-Offset"] == str(len(data))
    assert sqlite_site.archive.has_data(file_id, md5_hex(data))
    assert offset_of(importer_client, url) == len(data)


@pytest.mark.blob_backends
def test_wrong_offset_gets_409(importer_client):
    data = os.urandom(10_000)
    url, _ = create(importer_client, data)
    patch(importer_client, url, 0, data[:4000])
    response = patch(importer_client, url, 0, data[:4000])
    assert response.status_code == 409
    assert response.get_json()["state"] == "failed"
    assert "4000" in response.get_json()["message"]
    assert offset_of(importer_client, url) == 4000


@pytest.mark.blob_backends
def test_wrong_chunk_checksum_gets_460_and_offset_stays(importer_client, sqlite_site):
    data = os.urandom(50_000)
    url, file_id = create(importer_client, data)
    patch(importer_client, url, 0, data[:10_000])
    response = patch(importer_client, url, 10_000, data[10_000:],
                     **{"Upload-Checksum": "md5 " + md5_b64(b"not this chunk")})
    assert response.status_code == 460
    assert "Upload-Checksum" in response.get_json()["message"]
    assert offset_of(importer_client, url) == 10_000
    assert not sqlite_site.archive.has_data(file_id, md5_hex(data))


@pytest.mark.blob_backends
def test_whole_file_mismatch_gets_460_and_nothing_is_received(importer_client, sqlite_site):
    data = os.urandom(30_000)
    claimed = md5_hex(b"another file")
    url, file_id = create(importer_client, data, md5=claimed)
    response = patch(importer_client, url, 0, data)
    assert response.status_code == 460
    assert "whole file" in response.get_json()["message"]
    assert not sqlite_site.archive.has_data(file_id, claimed)
    assert sqlite_site.archive.counts()["staged"] == 0
    assert offset_of(importer_client, url) == 0


def test_another_user_gets_404(importer_client):
    data = os.urandom(1000)
    url, _ = create(importer_client, data)
    assert importer_client.head(url, headers=tus("other")).status_code == 404
    assert patch(importer_client, url, 0, data, user="other").status_code == 404
    assert importer_client.delete(url, headers=tus("other")).status_code == 404
    assert offset_of(importer_client, url) == 0


@pytest.mark.blob_backends
def test_terminate(importer_client):
    url, _ = create(importer_client, os.urandom(1000))
    assert importer_client.delete(url, headers=tus()).status_code == 204
    assert importer_client.head(url, headers=tus()).status_code == 404
    assert patch(importer_client, url, 0, b"x").status_code == 404


@pytest.mark.parametrize("headers, status, words", [
    ({}, 400, "Upload-Length"),
    ({"Upload-Length": "-1"}, 400, "Upload-Length"),
    ({"Upload-Length": "10"}, 400, "file_id and md5"),
    ({"Upload-Length": "10", "Upload-Metadata": "file_id bm90LWhleA==,md5 eA=="}, 400,
     "file_id"),
    ({"Upload-Length": "10", "Upload-Metadata": "file_id !!!"}, 400, "base64"),
    ({"Upload-Length": str(10 * 1024 ** 3 + 1),
      "Upload-Metadata": tus_metadata(new_id(), md5_hex(b""))}, 413, "larger"),
])
def test_bad_creation(importer_client, sqlite_site, headers, status, words):
    response = importer_client.post(BASE, headers={**tus(), **headers})
    assert response.status_code == status
    assert words in response.get_json()["message"]
    assert not list(sqlite_site.blobs.partials())


@pytest.mark.blob_backends
def test_bad_patches_change_nothing(importer_client):
    data = os.urandom(1000)
    url, _ = create(importer_client, data)
    wrong_type = importer_client.patch(url, data=data, headers={
        **tus(), "Upload-Offset": "0", "Content-Type": "application/octet-stream"})
    assert wrong_type.status_code == 400 and "Content-Type" in wrong_type.get_json()["message"]
    assert importer_client.patch(url, data=data, headers={**tus(), "Content-Type": OCTETS}) \
        .status_code == 400
    assert patch(importer_client, url, 0, data + b"x").status_code == 413
    unknown_algorithm = patch(importer_client, url, 0, data, **{"Upload-Checksum": "crc32 AAAA"})
    assert unknown_algorithm.status_code == 400
    assert offset_of(importer_client, url) == 0


def test_tus_version_and_auth(importer_client):
    url, _ = create(importer_client, b"abc")
    no_version = importer_client.head(url, headers=basic("cam"))
    assert no_version.status_code == 412 and no_version.headers["Tus-Version"] == "1.0.0"
    assert importer_client.head(url, headers={"Tus-Resumable": "1.0.0"}).status_code == 401
    assert importer_client.post(BASE, headers={**tus("reader"), "Upload-Length": "1"}) \
        .status_code == 403


@pytest.mark.blob_backends
def test_an_expired_upload_is_gone(importer_client, sqlite_site):
    from sqlalchemy import update

    from model.store import schema
    url, _ = create(importer_client, b"some bytes")
    with sqlite_site.database.transaction() as tx:
        tx.execute(update(schema.uploads).values(expires_ms=0))
    gone = patch(importer_client, url, 0, b"some bytes")
    assert gone.status_code == 410 and "expired" in gone.get_json()["message"]
    assert importer_client.head(url, headers=tus()).status_code == 404
