"""Resumable uploads against the real program (`skyrelay serve` under gunicorn): a stock tus
client (tuspy), a connection cut halfway by a proxy, and a server restart mid-upload.

The tests on the module's server run with the bytes in a local folder and in S3 multipart
uploads; the restart and the silent client stay on the local folder (a new process going on
from the S3 part ledger is tests/model/test_s3_store.py's two-host test, and the read timeout
does not depend on where the bytes go)."""

import hashlib
import http.client
import io
import os
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError, TusUploadFailed
from tusclient.uploader import Uploader

from tests.server import Server, password_of
from tests.site_kit import s3_settings
from tests.tcp_proxy import TcpProxy
from tests.v2_helpers import md5_hex, new_id, tus_metadata

pytestmark = pytest.mark.slow
AUTH_USERS = {"cam": ["import"], "other": ["import"]}


class Md5Uploader(Uploader):
    """tuspy's uploader with the md5 chunk checksum (its default is sha1)."""
    CHECKSUM_ALGORITHM_PAIR = ("md5", hashlib.md5)


@pytest.fixture(scope="module", params=["local", "s3"])
def served(request, tmp_path_factory):
    """One server per blob backend, shared by the module's tests (those that restart or
    configure a server make their own)."""
    settings = {}
    if request.param == "s3":
        settings = s3_settings(request.getfixturevalue("object_store"),
                               request.getfixturevalue("s3_bucket"))
    with Server(tmp_path_factory.mktemp("tus") / "site", users=AUTH_USERS,
                settings=settings) as server:
        yield server


def tus_headers(user="cam") -> dict:
    token = requests.auth._basic_auth_str(user, password_of(user))
    return {"Authorization": token}


def blob_bytes(server: Server, data: bytes) -> bytes | None:
    site = server.open_site()
    try:
        sha = hashlib.sha256(data).hexdigest()
        if not site.archive.blobs.exists(sha):
            return None
        with site.archive.blobs.open(sha) as blob:
            return blob.read()
    finally:
        site.close()


def has_data(server: Server, file_id: str, md5: str) -> bool:
    site = server.open_site()
    try:
        return site.archive.has_data(file_id, md5)
    finally:
        site.close()


def test_stock_tus_client_uploads(served, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 11)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    file_id = new_id()
    client = tus_client.TusClient(served.import_url + "/uploads", headers=tus_headers())
    uploader = Md5Uploader(str(path), client=client, chunk_size=1024 * 1024,
                           upload_checksum=True,
                           metadata={"file_id": file_id, "md5": md5_hex(data),
                                     "filename": "big.bin"})
    uploader.upload()
    assert uploader.offset == len(data)
    assert has_data(served, file_id, md5_hex(data))
    assert blob_bytes(served, data) == data


def test_connection_cut_halfway_resumes_from_the_server_offset(served, tmp_path):
    data = os.urandom(8 * 1024 * 1024)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    file_id = new_id()
    port = urlsplit(served.url).port
    with TcpProxy("127.0.0.1", port) as proxy:
        client = tus_client.TusClient(f"http://127.0.0.1:{proxy.port}/import/uploads",
                                      headers=tus_headers())
        first = client.uploader(str(path), chunk_size=len(data),
                                metadata={"file_id": file_id, "md5": md5_hex(data)})
        first.set_url(first.create_url())
        proxy.cut_after(len(data) // 2)
        with pytest.raises((TusUploadFailed, TusCommunicationError)):
            first.upload()
        assert proxy.cuts == 1
        # A new client (as after a crash) asks the server where to go on from.
        resumed = client.uploader(str(path), url=first.url, chunk_size=len(data))
        assert 0 < resumed.offset <= len(data) // 2
        resumed.upload()
    assert has_data(served, file_id, md5_hex(data))
    assert blob_bytes(served, data) == data


def test_wrong_checksum_and_other_user_over_http(served):
    data = os.urandom(100_000)
    base = served.import_url + "/uploads"
    created = requests.post(base, headers={
        **tus_headers(), "Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)),
        "Upload-Metadata": tus_metadata(new_id(), md5_hex(data))}, timeout=10)
    url = created.headers["Location"]
    patch = {**tus_headers(), "Tus-Resumable": "1.0.0",
             "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0",
             "Upload-Checksum": "md5 " + "A" * 22 + "=="}
    refused = requests.patch(url, data=data, headers=patch, timeout=10)
    assert refused.status_code == 460 and refused.reason == "Checksum Mismatch"
    head = requests.head(url, headers={**tus_headers(), "Tus-Resumable": "1.0.0"}, timeout=10)
    assert head.headers["Upload-Offset"] == "0"
    other = requests.head(url, headers={**tus_headers("other"), "Tus-Resumable": "1.0.0"},
                          timeout=10)
    assert other.status_code == 404


def test_upload_survives_a_server_restart(tmp_path):
    data = os.urandom(4 * 1024 * 1024 + 3)
    file_id = new_id()
    root = tmp_path / "site"
    with Server(root, users={"cam": ["import"]}) as server:
        created = requests.post(server.import_url + "/uploads", headers={
            **tus_headers(), "Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)),
            "Upload-Metadata": tus_metadata(file_id, md5_hex(data))}, timeout=10)
        path = urlsplit(created.headers["Location"]).path
        half = len(data) // 2
        requests.patch(server.url + path, data=data[:half], timeout=10, headers={
            **tus_headers(), "Tus-Resumable": "1.0.0", "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream"}).raise_for_status()
    with Server(root) as restarted:   # same database and folders, users already there
        headers = {**tus_headers(), "Tus-Resumable": "1.0.0"}
        head = requests.head(restarted.url + path, headers=headers, timeout=10)
        assert head.status_code == 200 and head.headers["Upload-Offset"] == str(half)
        done = requests.patch(restarted.url + path, data=data[half:], timeout=10, headers={
            **headers, "Upload-Offset": str(half),
            "Content-Type": "application/offset+octet-stream"})
        assert done.status_code == 204 and done.headers["Upload-Offset"] == str(len(data))
        assert has_data(restarted, file_id, md5_hex(data))
        assert blob_bytes(restarted, data) == data


def _create(server: Server, data: bytes) -> str:
    created = requests.post(server.import_url + "/uploads", headers={
        **tus_headers(), "Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)),
        "Upload-Metadata": tus_metadata(new_id(), md5_hex(data))}, timeout=10)
    assert created.status_code == 201
    return urlsplit(created.headers["Location"]).path


def _raw_request(method: str, path: str, body: bytes = b"", length: int | None = None) -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Tus-Resumable: 1.0.0",
            f"Authorization: {tus_headers()['Authorization']}"]
    if method == "PATCH":
        head += ["Upload-Offset: 0", "Content-Type: application/offset+octet-stream",
                 f"Content-Length: {len(body) if length is None else length}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class _KeptOpen(io.BufferedReader):
    def close(self) -> None:
        """A response closes its reader when it is read; the connection goes on."""


class _SharedReader:
    """What `http.client.HTTPResponse` reads from: one buffered reader for every response
    on the connection. A reader per response would keep the bytes of the next response that
    it read ahead (both arrive together when the client is slower than the server)."""

    def __init__(self, sock: socket.socket):
        self._file = _KeptOpen(socket.SocketIO(sock, "rb"))

    def makefile(self, *args, **kwargs):
        return self._file


def _responses(sock: socket.socket, count: int) -> list[http.client.HTTPResponse]:
    """`count` responses read in order from one connection."""
    answers, reader = [], _SharedReader(sock)
    for _ in range(count):
        response = http.client.HTTPResponse(reader, method="HEAD" if answers else "PATCH")
        response.begin()
        response.read()
        answers.append(response)
    return answers


@pytest.mark.parametrize("size", [1000, 3 * 1024 * 1024 + 5])
def test_a_request_pipelined_behind_a_patch_is_answered(served, size):
    """The PATCH body is read from the socket itself: the bytes behind it on the same
    connection (the next request) must still reach the server, whole. A small body arrives
    together with the next request in gunicorn's first read; a large one does not."""
    data = os.urandom(size)
    path = _create(served, data)
    with socket.create_connection(("127.0.0.1", urlsplit(served.url).port), timeout=10) as sock:
        sock.sendall(_raw_request("PATCH", path, data) + _raw_request("HEAD", path))
        patched, head = _responses(sock, 2)
    assert patched.status == 204 and patched.getheader("Upload-Offset") == str(len(data))
    assert head.status == 200 and head.getheader("Upload-Offset") == str(len(data))
    assert blob_bytes(served, data) == data


def test_a_silent_client_ends_its_chunk_after_the_read_timeout(tmp_path):
    """A client that stops sending mid-chunk (without closing) does not hold a thread
    forever: after importer.upload_read_timeout_s the bytes that arrived count."""
    data = os.urandom(200_000)
    with Server(tmp_path / "site", users={"cam": ["import"]},
                settings={"importer.upload_read_timeout_s": 0.5}) as server:
        path = _create(server, data)
        port = urlsplit(server.url).port
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(_raw_request("PATCH", path, data[:70_000], length=len(data)))
            time.sleep(1.5)
            head = requests.head(server.url + path, timeout=10, headers={
                **tus_headers(), "Tus-Resumable": "1.0.0"})
        assert head.status_code == 200 and head.headers["Upload-Offset"] == "70000"
