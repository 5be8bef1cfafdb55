"""The importer while its object store does not answer: every request that needs the store
gets 503 with Retry-After (never a 500), no row is written without its object, and the same
request succeeds once the store is back.

The store is paused (SIGSTOP: connections are accepted, nothing is answered), the importer's
storage.timeout_s is 1 s. The store is this module's own, since pausing it would stall every
other test sharing the session's. The site is on PostgreSQL (the database of a site with
several importer hosts, and the upload lock that must be let go after a failure).
"""

import hashlib
import os
import uuid
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import func, select

from model.protocol.entities import FileRecord, Status
from model.store import schema
from tests.importer_fixtures import file_json, status_json
from tests.live_importer import PASSWORD, config_for, serving
from tests.object_store import ObjectStore, running_store
from tests.site_kit import open_test_site, s3_settings, temporaries
from tests.v2_helpers import tus_metadata

# Long enough for the importer's tries of a silent store (2 of 1 s each, and back-off).
TIMEOUT = 30
STORE_TIMEOUT_S = 1.0
TABLES = (schema.blobs, schema.staged, schema.uploads, schema.multipart_uploads,
          schema.multipart_parts)


@pytest.fixture(scope="module")
def pausable_store():
    with running_store() as store:
        yield store


@pytest.fixture(scope="module")
def bucket(pausable_store):
    return pausable_store.new_bucket()


class Live:
    """An importer on a thread of this process, its site opened here too."""

    def __init__(self, url: str, site, store: ObjectStore):
        self.url, self.site, self.store = url, site, store

    @contextmanager
    def store_paused(self):
        self.store.pause()
        try:
            yield
        finally:
            self.store.resume()

    def rows(self) -> dict:
        """Every row of the tables that name objects, as tuples (compared before/after)."""
        with self.site.database.reading() as conn:
            return {table.name: sorted(tuple(row) for row in conn.execute(select(table)))
                    for table in TABLES}

    def count(self, table) -> int:
        with self.site.database.reading() as conn:
            return conn.scalar(select(func.count()).select_from(table))

    def upload_v1(self, file_id: str, data: bytes) -> requests.Response:
        md5 = hashlib.md5(data).hexdigest()
        return requests.post(f"{self.url}/import/data/{file_id}/{md5}",
                             files={"file": ("file", data)}, auth=("cam", PASSWORD),
                             timeout=TIMEOUT)

    def tus(self, method: str, path: str, **headers) -> requests.Response:
        data = headers.pop("data", None)
        return requests.request(method, self.url + path, data=data, timeout=TIMEOUT,
                                auth=("cam", PASSWORD),
                                headers={"Tus-Resumable": "1.0.0", **headers})

    def create(self, data: bytes) -> requests.Response:
        return self.tus("POST", "/import/uploads", **{
            "Upload-Length": str(len(data)),
            "Upload-Metadata": tus_metadata(uuid.uuid4().hex, hashlib.md5(data).hexdigest())})

    def patch(self, path: str, offset: int, chunk: bytes) -> requests.Response:
        return self.tus("PATCH", path, data=chunk, **{
            "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})

    def offset(self, path: str) -> int:
        head = self.tus("HEAD", path)
        assert head.status_code == 200, head.status_code
        return int(head.headers["Upload-Offset"])


@pytest.fixture
def live(pausable_store, bucket, pg_cluster, tmp_path):
    url = pg_cluster.url(pg_cluster.new_database(pg_cluster.template))
    settings = s3_settings(pausable_store, bucket, **{"storage.timeout_s": STORE_TIMEOUT_S})
    site = open_test_site(url, tmp_path / "host", with_settings=settings)
    site.users.add("cam", PASSWORD, ["import"])
    site.users.add("reader", PASSWORD, ["user"])
    config = config_for(tmp_path, url, tmp_path / "host", **settings)
    try:
        with serving(config, site) as (base_url, _app):
            yield Live(base_url, site, pausable_store)
    finally:
        site.close()


def assert_busy(response: requests.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["state"] == "failed"
    assert "object store" in response.json()["message"], "not the database: the store"


def test_a_v1_upload_gets_503_while_the_store_is_paused_and_succeeds_after(live):
    data, file_id = os.urandom(200_000), uuid.uuid4().hex
    before = live.rows()
    with live.store_paused():
        assert_busy(live.upload_v1(file_id, data))
    assert live.rows() == before, "no row without its object"
    assert not temporaries(live.site.archive.blobs), "the spooled bytes went"
    done = live.upload_v1(file_id, data)
    assert done.status_code == 200 and done.json()["received"] is True, done.text
    assert live.site.archive.has_data(file_id, hashlib.md5(data).hexdigest())


def test_a_tus_patch_gets_503_while_the_store_is_paused_and_succeeds_after(live):
    data = os.urandom(300_000)
    created = live.create(data)
    assert created.status_code == 201
    path = urlsplit(created.headers["Location"]).path
    first = live.patch(path, 0, data[:100_000])   # a tail in the store: read by the next
    assert first.status_code == 204
    before = live.rows()
    with live.store_paused():
        assert_busy(live.patch(path, 100_000, data[100_000:200_000]))
    assert live.rows() == before, "the offset and the part ledger did not move"
    assert live.offset(path) == 100_000
    again = live.patch(path, 100_000, data[100_000:200_000])   # the upload lock was let go
    assert again.status_code == 204 and again.headers["Upload-Offset"] == "200000"
    last = live.patch(path, 200_000, data[200_000:])
    assert last.status_code == 204 and live.offset(path) == len(data)
    with live.site.archive.blobs.open(hashlib.sha256(data).hexdigest()) as blob:
        assert blob.read() == data


def test_a_tus_creation_gets_503_while_the_store_is_paused_and_leaves_no_row(live):
    data = os.urandom(1000)
    before = live.rows()
    with live.store_paused():
        assert_busy(live.create(data))
    assert live.rows() == before
    assert live.count(schema.uploads) == 0
    assert live.create(data).status_code == 201


def test_a_download_gets_503_while_the_store_is_paused(live):
    archive, data = live.site.archive, os.urandom(5000)
    status = Status.from_json(status_json())
    record = FileRecord.from_json(file_json(status.status_id, data))
    archive.add_status(status)
    assert archive.stage_bytes(record.file_id, record.md5, iter([data])).received
    archive.import_file(record)
    url = f"{live.url}/api/files/{record.file_id}/data"
    with live.store_paused():
        assert_busy(requests.get(url, auth=("reader", PASSWORD), timeout=TIMEOUT))
    done = requests.get(url, auth=("reader", PASSWORD), timeout=TIMEOUT)
    assert done.status_code == 200 and done.content == data
