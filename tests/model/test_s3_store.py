"""The archive's blobs and resumable uploads on a real S3 object store (SeaweedFS), looked at
through the bucket itself: what gc removes and keeps, what a crash or a wrong MD5 leaves, large
blobs and ranged reads, uploads in odd-sized chunks on one host and across two, and what
terminating, expiring or refusing an upload leaves of its multipart upload.

Each test has its own prefix in the session's bucket; what the bucket holds is listed with a
client of the test's own, not through skyrelay.
"""

import hashlib
import io
import os
import uuid

import pytest
from sqlalchemy import update

from model.protocol.entities import FileRecord, Status
from model.store import schema
from model.store.blobs import Md5Mismatch
from model.store.database import now_ms
from model.store.object_store import ObjectStoreUnavailable
from model.uploads.resumable import ChecksumMismatch, Uploads, WholeFileMismatch
from tests.importer_fixtures import file_json, site_config, status_json
from tests.server import Server
from tests.site_kit import advance_clock, open_test_site, s3_settings, temporaries, upload_leftovers

HOUR = 3600
MIB = 1024 * 1024
def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def reader(data: bytes):
    return io.BytesIO(data).readinto


def make_uploads(site) -> Uploads:
    return Uploads(site.database, site.archive, site.storage_path / "uploads", ttl_s=HOUR,
                   max_bytes=10 ** 10, busy_wait_s=1)


class Bucket:
    """The test's prefix of the bucket, as the store itself lists it."""

    def __init__(self, object_store, settings: dict):
        self.client = object_store.client()
        self.name, self.prefix = settings["storage.bucket"], settings["storage.prefix"]

    def keys(self) -> list[str]:
        """Every object under the prefix, the prefix cut off (`blobs/<sha256>`, tails…)."""
        found, token = [], None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = self.client.list_objects_v2(Bucket=self.name, Prefix=self.prefix, **extra)
            found += [item["Key"][len(self.prefix):] for item in page.get("Contents", ())]
            if not page.get("IsTruncated"):
                return sorted(found)
            token = page["NextContinuationToken"]

    def blob_keys(self) -> list[str]:
        return [key for key in self.keys() if key.startswith("blobs/")]

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=self.prefix + key)["Body"].read()

    def multipart_ids(self) -> set[str]:
        answer = self.client.list_multipart_uploads(Bucket=self.name, Prefix=self.prefix)
        return {upload["UploadId"] for upload in answer.get("Uploads", ())}


@pytest.fixture
def settings(object_store, s3_bucket) -> dict:
    return s3_settings(object_store, s3_bucket)


@pytest.fixture
def bucket(object_store, settings) -> Bucket:
    return Bucket(object_store, settings)


@pytest.fixture
def s3_site(tmp_path, settings):
    """SQLite (one host), blobs in the test's prefix of the bucket."""
    opened = open_test_site(f"sqlite:///{tmp_path}/site.db", tmp_path / "host",
                            with_settings=settings)
    yield opened
    opened.close()


def commit_without_row(site, data: bytes) -> str:
    """What a crash between the object and its row leaves: the object, written and committed
    through the blob store, and no row naming it."""
    with site.archive.blobs.write(io.BytesIO(data), md5=md5_of(data)) as pending:
        pending.commit()
    return sha256_of(data)


# -- gc -------------------------------------------------------------------------------------

def test_gc_removes_objects_no_row_names_past_the_grace_period_and_a_dry_run_removes_none(
        s3_site, bucket, monkeypatch):
    archive = s3_site.archive
    kept = os.urandom(3000)
    assert archive.stage_bytes(uuid.uuid4().hex, md5_of(kept), io.BytesIO(kept)).received
    orphans = [commit_without_row(s3_site, os.urandom(size)) for size in (10, 70_000)]
    everything = bucket.keys()
    assert everything == sorted(f"blobs/{sha}" for sha in [sha256_of(kept), *orphans])

    within = archive.gc(grace_s=HOUR, staged_ttl_s=100 * HOUR)
    assert within.blobs_removed == 0 and bucket.keys() == everything

    advance_clock(monkeypatch, 2 * HOUR)
    dry = archive.gc(grace_s=HOUR, staged_ttl_s=100 * HOUR, dry_run=True)
    assert dry.dry_run and dry.blobs_removed == 2
    assert bucket.keys() == everything, "a dry run removes nothing"

    real = archive.gc(grace_s=HOUR, staged_ttl_s=100 * HOUR)
    assert real.blobs_removed == 2 and not real.dry_run
    assert bucket.keys() == [f"blobs/{sha256_of(kept)}"], "the staged blob is kept"
    assert archive.counts()["blobs"] == 1 and archive.counts()["staged"] == 1
    assert archive.gc(grace_s=HOUR, staged_ttl_s=100 * HOUR, dry_run=True).blobs_removed == 0


def test_skyrelay_gc_dry_run_reports_an_orphan_object_and_gc_removes_it(tmp_path, settings,
                                                                          bucket):
    site = Server(tmp_path / "site", settings=settings)   # the command line only, no server
    assert site.cli("gc", "--dry-run").stdout.startswith("would remove 0 blobs")
    opened = site.open_site()
    try:
        orphan = commit_without_row(opened, b"left behind between object and row")
    finally:
        opened.close()
    assert bucket.keys() == [f"blobs/{orphan}"]
    assert site.cli("gc", "--dry-run").stdout.startswith("would remove 0 blobs"), \
        "within the default grace of an hour"
    assert site.cli("gc", "--dry-run", "--grace", "0").stdout.startswith("would remove 1 blobs")
    assert bucket.keys() == [f"blobs/{orphan}"]
    assert site.cli("gc", "--grace", "0").stdout.startswith("removed 1 blobs")
    assert bucket.keys() == []


def test_a_crash_between_object_and_row_leaves_only_an_object_gc_removes(s3_site, bucket,
                                                                         monkeypatch):
    orphan = commit_without_row(s3_site, os.urandom(5000))
    assert set(s3_site.archive.counts().values()) == {0}, "no row of any kind"
    assert bucket.keys() == [f"blobs/{orphan}"], "and nothing but the object"
    assert not temporaries(s3_site.archive.blobs), "the spool file went with the commit"
    advance_clock(monkeypatch, HOUR + 5)
    assert s3_site.archive.gc(grace_s=HOUR, staged_ttl_s=HOUR).blobs_removed == 1
    assert bucket.keys() == []


# -- what never reaches the bucket ----------------------------------------------------------

def test_bytes_with_a_wrong_md5_never_reach_the_bucket(s3_site, bucket):
    archive = s3_site.archive
    for size in (100, 20 * MIB):   # one PUT, and a multipart transfer
        data = os.urandom(size)
        result = archive.stage_bytes(uuid.uuid4().hex, md5_of(b"other"), io.BytesIO(data))
        assert not result.received and result.md5 == md5_of(data)
        with pytest.raises(Md5Mismatch):
            archive.blobs.write(io.BytesIO(data), md5=md5_of(b"other"))
    assert bucket.keys() == [] and bucket.multipart_ids() == set()
    assert set(archive.counts().values()) == {0}
    assert not temporaries(archive.blobs)


def test_a_resumable_upload_with_a_wrong_whole_file_md5_leaves_no_blob(s3_site, bucket):
    uploads = make_uploads(s3_site)
    data = os.urandom(6 * MIB + 5)
    for announced in (None, sha256_of(data)):   # staging key, and the blob's own key
        upload = uploads.create("cam", uuid.uuid4().hex, md5_of(b"other"), len(data),
                                sha256=announced)
        with pytest.raises(WholeFileMismatch):
            uploads.append("cam", upload.upload_id, 0, reader(data), len(data))
        assert bucket.blob_keys() == []
        assert uploads.get("cam", upload.upload_id).offset == 0
    assert s3_site.archive.counts()["blobs"] == 0


# -- large blobs and ranged reads -----------------------------------------------------------

def test_a_40_mib_blob_round_trips_and_ranged_reads_get_their_bytes(s3_site, bucket, tmp_path):
    from importer.app import create_app
    archive = s3_site.archive
    data = os.urandom(40 * MIB + 7)
    status = Status.from_json(status_json())
    record = FileRecord.from_json(file_json(status.status_id, data))
    archive.add_status(status)
    assert archive.stage_bytes(record.file_id, record.md5, io.BytesIO(data)).received
    archive.import_file(record)
    assert bucket.blob_keys() == [f"blobs/{sha256_of(data)}"]
    assert md5_of(bucket.read(f"blobs/{sha256_of(data)}")) == md5_of(data)

    with archive.blobs.open(sha256_of(data)) as blob:
        assert md5_of(blob.read()) == md5_of(data)
        for start, size in ((33 * MIB + 11, 4096), (5, 100), (len(data) - 10, 10)):
            blob.seek(start)
            assert blob.read(size) == data[start:start + size]

    s3_site.users.add("reader", "reader password", ["user"])
    client = create_app(site_config(tmp_path), s3_site).test_client()
    start = 39 * MIB + 3
    ranged = client.get(f"/api/files/{record.file_id}/data", auth=("reader", "reader password"),
                        headers={"Range": f"bytes={start}-{start + 99_999}"})
    assert ranged.status_code == 206
    assert ranged.headers["Content-Range"] == f"bytes {start}-{start + 99_999}/{len(data)}"
    assert ranged.get_data() == data[start:start + 100_000]


# -- resumable uploads ----------------------------------------------------------------------

# Odd sizes around S3's 5 MiB part minimum and skyrelay's 16 MiB parts: chunks under 5 MiB
# (tails, each led into the next chunk's part), one that completes a part in its middle and
# leaves a tail, and a last part under 5 MiB.
ODD_CHUNKS = [1 * MIB + 3, 3 * MIB + 5, 13 * MIB + 1, 700 * 1024, 2 * MIB + 12_979]


def send_in_chunks(uploads_of, data: bytes, chunks: list[int], announce_sha256: bool):
    """Create an upload, send `data` in chunks of these sizes, chunk i through
    `uploads_of(i)`; check the offset after each. Returns the upload."""
    upload = uploads_of(0).create("cam", uuid.uuid4().hex, md5_of(data), len(data),
                                  sha256=sha256_of(data) if announce_sha256 else None)
    offset = 0
    for index, size in enumerate(chunks):
        chunk = data[offset:offset + size]
        upload = uploads_of(index).append("cam", upload.upload_id, offset, reader(chunk),
                                          len(chunk))
        offset += len(chunk)
        assert upload.offset == offset
    assert offset == len(data) and upload.complete
    return upload


@pytest.mark.parametrize("announce_sha256", [False, True], ids=["staging-key", "sha256-key"])
def test_an_upload_in_odd_sized_chunks_lands_byte_identical(s3_site, bucket, announce_sha256):
    data = os.urandom(sum(ODD_CHUNKS))
    uploads = make_uploads(s3_site)
    upload = send_in_chunks(lambda _: uploads, data, ODD_CHUNKS, announce_sha256)
    assert s3_site.archive.has_data(upload.file_id, md5_of(data))
    assert bucket.keys() == [f"blobs/{sha256_of(data)}"], "no tail or staging object left"
    assert md5_of(bucket.read(f"blobs/{sha256_of(data)}")) == md5_of(data)
    assert bucket.multipart_ids() == set()
    assert upload_leftovers(s3_site.archive.blobs) == []


def test_an_upload_whose_chunks_go_through_two_hosts_lands_byte_identical(pg_cluster, tmp_path,
                                                                         settings, bucket):
    """Two Site objects on one PostgreSQL database and one bucket, each with its own
    storage.path: every other chunk goes to the other host, which has none of the first
    one's in-memory digests and goes on from the part ledger."""
    url = pg_cluster.url(pg_cluster.new_database(pg_cluster.template))
    hosts = [open_test_site(url, tmp_path / name, with_settings=settings)
             for name in ("host-a", "host-b")]
    try:
        uploads = [make_uploads(host) for host in hosts]
        data = os.urandom(sum(ODD_CHUNKS))
        upload = send_in_chunks(lambda index: uploads[index % 2], data, ODD_CHUNKS, False)
        for host in hosts:
            assert host.archive.has_data(upload.file_id, md5_of(data))
        with hosts[1].archive.blobs.open(sha256_of(data)) as blob:
            assert md5_of(blob.read()) == md5_of(data)
        assert bucket.keys() == [f"blobs/{sha256_of(data)}"]
        assert bucket.multipart_ids() == set()
    finally:
        for host in hosts:
            host.close()


def partly_sent(site, data: bytes):
    """An upload of `data` with one part in the store and a tail: a 6 MiB chunk (a part of
    its own: over 5 MiB at the end of a chunk), then 1 MiB + 3 (a tail)."""
    uploads = make_uploads(site)
    upload = uploads.create("cam", uuid.uuid4().hex, md5_of(data), len(data))
    sent = 7 * MIB + 3
    uploads.append("cam", upload.upload_id, 0, reader(data[:6 * MIB]), 6 * MIB)
    uploads.append("cam", upload.upload_id, 6 * MIB, reader(data[6 * MIB:sent]), sent - 6 * MIB)
    entry = site.archive.blobs.ledger.load(upload.upload_id)
    assert len(entry.parts) == 1 and entry.tail_key and entry.received == sent
    return uploads, upload, entry


def test_termination_aborts_the_multipart_upload(s3_site, bucket):
    uploads, upload, entry = partly_sent(s3_site, os.urandom(8 * MIB))
    assert entry.multipart_id in bucket.multipart_ids()
    assert any(key.startswith(f"tails/{upload.upload_id}/") for key in bucket.keys())
    uploads.terminate("cam", upload.upload_id)
    assert entry.multipart_id not in bucket.multipart_ids()
    assert bucket.keys() == [], "no tail, no staging object"
    assert s3_site.archive.blobs.ledger.load(upload.upload_id) is None


def test_expiry_aborts_the_multipart_upload(s3_site, bucket):
    uploads, upload, entry = partly_sent(s3_site, os.urandom(8 * MIB))
    with s3_site.database.transaction() as tx:
        tx.execute(update(schema.uploads).where(schema.uploads.c.upload_id == upload.upload_id)
                   .values(expires_ms=now_ms() - 1))
    assert uploads.expire() == 1
    assert entry.multipart_id not in bucket.multipart_ids()
    assert bucket.keys() == []
    assert s3_site.archive.blobs.ledger.load(upload.upload_id) is None


def test_a_chunk_with_a_wrong_checksum_leaves_the_offset_and_the_ledger_unchanged(s3_site,
                                                                                 bucket):
    """The refused chunk is long enough to send a whole part (and a new tail) before its
    checksum is known; the ledger still names only what came before, and the right chunk then
    goes on from there."""
    data = os.urandom(27 * MIB + 5)
    uploads, upload, before = partly_sent(s3_site, data)
    refused = data[before.received:before.received + 17 * MIB]
    with pytest.raises(ChecksumMismatch):
        uploads.append("cam", upload.upload_id, before.received, reader(refused), len(refused),
                       ("md5", hashlib.md5(b"not this chunk").digest()))
    assert uploads.get("cam", upload.upload_id).offset == before.received
    ledger = s3_site.archive.blobs.ledger
    assert ledger.load(upload.upload_id) == before, "same parts, tail and digests"

    rest = data[before.received:]
    done = uploads.append("cam", upload.upload_id, before.received, reader(rest), len(rest),
                          ("md5", hashlib.md5(rest).digest()))
    assert done.complete
    assert bucket.keys() == [f"blobs/{sha256_of(data)}"]
    assert md5_of(bucket.read(f"blobs/{sha256_of(data)}")) == md5_of(data)
    assert bucket.multipart_ids() == set()


def test_a_part_damaged_on_its_way_to_the_store_is_refused_there(s3_site, bucket):
    """Each part carries its CRC32 (x-amz-checksum-crc32), which the store checks: a part
    whose bytes change after skyrelay hashed them (here, in the request on its way out) is
    refused with BadDigest, the chunk fails, the ledger names no part of it, and the same
    chunk sent again lands byte-identical."""
    data = os.urandom(9 * MIB)
    uploads = make_uploads(s3_site)
    upload = uploads.create("cam", uuid.uuid4().hex, md5_of(data), len(data))
    events = s3_site.archive.blobs.client.meta.events

    def damage(request, **_):
        body = bytearray(request.body)
        body[MIB] ^= 0xFF
        request.body = bytes(body)

    events.register("before-send.s3.UploadPart", damage)
    try:
        with pytest.raises(ObjectStoreUnavailable, match="BadDigest"):
            uploads.append("cam", upload.upload_id, 0, reader(data), len(data))
    finally:
        events.unregister("before-send.s3.UploadPart", damage)
    assert uploads.get("cam", upload.upload_id).offset == 0
    assert s3_site.archive.blobs.ledger.load(upload.upload_id).parts == ()
    done = uploads.append("cam", upload.upload_id, 0, reader(data), len(data))
    assert done.complete
    assert md5_of(bucket.read(f"blobs/{sha256_of(data)}")) == md5_of(data)
    assert bucket.multipart_ids() == set()
