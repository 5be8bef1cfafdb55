"""model.uploads.resumable: resumable upload state on both databases and both blob backends
(a local folder, S3 multipart uploads), without HTTP."""

import hashlib
import io
import os
import uuid

import pytest

from model.protocol.codec import EntityError
from tests.site_kit import partial_bytes, upload_leftovers
from model.store import schema
from model.store.blobs import TooLarge
from model.store.database import now_ms
from model.uploads.resumable import (ChecksumMismatch, ChunkTooLong, OffsetMismatch, UploadGone,
                           UploadNotFound, Uploads, WholeFileMismatch)
from sqlalchemy import update

pytestmark = pytest.mark.blob_backends

def make_uploads(site, ttl_s=3600, max_bytes=10 ** 9) -> Uploads:
    return Uploads(site.database, site.archive, site.storage_path / "uploads",
                   ttl_s=ttl_s, max_bytes=max_bytes, busy_wait_s=1)


def reader(data: bytes):
    return io.BytesIO(data).readinto


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def data():
    return os.urandom(3 * 1024 * 1024 + 17)


def test_upload_in_chunks_stages_the_bytes(site, data):
    uploads = make_uploads(site)
    file_id = uuid.uuid4().hex
    upload = uploads.create("cam", file_id, md5_of(data), len(data), "file_id x")
    assert (upload.offset, upload.length, upload.complete) == (0, len(data), False)
    cut = 1024 * 1024 + 5
    upload = uploads.append("cam", upload.upload_id, 0, reader(data[:cut]), cut)
    assert upload.offset == cut and not site.archive.has_data(file_id, md5_of(data))
    upload = uploads.append("cam", upload.upload_id, cut, reader(data[cut:]), len(data) - cut)
    assert upload.complete and upload.offset == len(data)
    assert site.archive.has_data(file_id, md5_of(data))
    assert not upload_leftovers(site.archive.blobs)  # moved, not copied (no part left)
    sha = hashlib.sha256(data).hexdigest()
    with site.archive.blobs.open(sha) as blob:
        assert blob.read() == data
    assert uploads.get("cam", upload.upload_id).complete


def test_wrong_offset_is_refused_and_changes_nothing(sqlite_site, data):
    uploads = make_uploads(sqlite_site)
    upload = uploads.create("cam", uuid.uuid4().hex, md5_of(data), len(data))
    uploads.append("cam", upload.upload_id, 0, reader(data[:100]), 100)
    with pytest.raises(OffsetMismatch) as mismatch:
        uploads.append("cam", upload.upload_id, 50, reader(data[50:200]), 150)
    assert mismatch.value.held == 100
    assert uploads.get("cam", upload.upload_id).offset == 100


def test_chunk_checksum_mismatch_drops_the_chunk(sqlite_site, data):
    uploads = make_uploads(sqlite_site)
    upload = uploads.create("cam", uuid.uuid4().hex, md5_of(data), len(data))
    uploads.append("cam", upload.upload_id, 0, reader(data[:1000]), 1000,
                   ("md5", hashlib.md5(data[:1000]).digest()))
    with pytest.raises(ChecksumMismatch):
        uploads.append("cam", upload.upload_id, 1000, reader(data[1000:5000]), 4000,
                       ("md5", hashlib.md5(b"other").digest()))
    assert uploads.get("cam", upload.upload_id).offset == 1000
    assert partial_bytes(sqlite_site.archive.blobs, upload.upload_id) == 1000
    # the right chunk then goes on from the same offset, and the whole file arrives intact
    uploads.append("cam", upload.upload_id, 1000, reader(data[1000:]), len(data) - 1000,
                   ("sha1", hashlib.sha1(data[1000:]).digest()))
    assert sqlite_site.archive.has_data(upload.file_id, md5_of(data))


def test_whole_file_md5_mismatch_receives_nothing(site, data):
    uploads = make_uploads(site)
    claimed = md5_of(b"something else")
    upload = uploads.create("cam", uuid.uuid4().hex, claimed, len(data))
    with pytest.raises(WholeFileMismatch, match="expected " + claimed):
        uploads.append("cam", upload.upload_id, 0, reader(data), len(data))
    assert not site.archive.has_data(upload.file_id, claimed)
    assert site.archive.counts()["staged"] == 0 and site.archive.counts()["blobs"] == 0
    assert uploads.get("cam", upload.upload_id).offset == 0  # starts again


def test_a_cut_connection_keeps_what_arrived(sqlite_site, data):
    """Without a chunk checksum, bytes that arrived before the body ended count."""
    uploads = make_uploads(sqlite_site)
    upload = uploads.create("cam", uuid.uuid4().hex, md5_of(data), len(data))
    upload = uploads.append("cam", upload.upload_id, 0, reader(data[:12345]), len(data))
    assert upload.offset == 12345
    uploads.append("cam", upload.upload_id, 12345, reader(data[12345:]))
    assert sqlite_site.archive.has_data(upload.file_id, md5_of(data))


def test_a_cut_chunk_with_checksum_counts_nothing(sqlite_site, data):
    uploads = make_uploads(sqlite_site)
    upload = uploads.create("cam", uuid.uuid4().hex, md5_of(data), len(data))
    upload = uploads.append("cam", upload.upload_id, 0, reader(data[:500]), 1000,
                            ("md5", hashlib.md5(data[:1000]).digest()))
    assert upload.offset == 0


def test_state_survives_a_new_process(sqlite_site, data):
    """A new Uploads (as after a restart) re-hashes the partial file and goes on."""
    first = make_uploads(sqlite_site)
    upload = first.create("cam", uuid.uuid4().hex, md5_of(data), len(data))
    first.append("cam", upload.upload_id, 0, reader(data[:2_000_000]), 2_000_000)
    second = make_uploads(sqlite_site)
    assert second.get("cam", upload.upload_id).offset == 2_000_000
    second.append("cam", upload.upload_id, 2_000_000, reader(data[2_000_000:]))
    assert sqlite_site.archive.has_data(upload.file_id, md5_of(data))


def test_an_upload_belongs_to_its_creator(sqlite_site, data):
    uploads = make_uploads(sqlite_site)
    upload = uploads.create("cam", uuid.uuid4().hex, md5_of(data), len(data))
    with pytest.raises(UploadNotFound):
        uploads.get("intruder", upload.upload_id)
    with pytest.raises(UploadNotFound):
        uploads.append("intruder", upload.upload_id, 0, reader(data), len(data))
    with pytest.raises(UploadNotFound):
        uploads.terminate("intruder", upload.upload_id)
    assert uploads.get("cam", upload.upload_id).offset == 0


def test_terminate_and_expire(sqlite_site, data):
    uploads = make_uploads(sqlite_site)
    ended = uploads.create("cam", uuid.uuid4().hex, md5_of(data), len(data))
    uploads.terminate("cam", ended.upload_id)
    with pytest.raises(UploadNotFound):
        uploads.get("cam", ended.upload_id)
    assert not uploads.partial(ended.upload_id).exists()
    old = uploads.create("cam", uuid.uuid4().hex, md5_of(data), len(data))
    with sqlite_site.database.transaction() as tx:
        tx.execute(update(schema.uploads).values(expires_ms=now_ms() - 1))
    with pytest.raises(UploadGone):
        uploads.get("cam", old.upload_id)
    again = uploads.create("cam", uuid.uuid4().hex, md5_of(data), len(data))
    with sqlite_site.database.transaction() as tx:
        tx.execute(update(schema.uploads).values(expires_ms=now_ms() - 1))
    assert uploads.expire() == 1
    assert not uploads.partial(again.upload_id).exists()


def test_bad_creation_is_refused(sqlite_site):
    uploads = make_uploads(sqlite_site, max_bytes=1000)
    with pytest.raises(EntityError, match="file_id"):
        uploads.create("cam", "not-hex", md5_of(b""), 10)
    with pytest.raises(EntityError, match="md5"):
        uploads.create("cam", uuid.uuid4().hex, "xyz", 10)
    with pytest.raises(TooLarge):
        uploads.create("cam", uuid.uuid4().hex, md5_of(b""), 1001)
    upload = uploads.create("cam", uuid.uuid4().hex, md5_of(b"x" * 10), 10)
    with pytest.raises(ChunkTooLong):
        uploads.append("cam", upload.upload_id, 0, reader(b"x" * 11), 11)
    with pytest.raises(ChunkTooLong):
        uploads.append("cam", upload.upload_id, 0, reader(b"x" * 11))
    assert uploads.get("cam", upload.upload_id).offset == 0
    assert partial_bytes(sqlite_site.archive.blobs, upload.upload_id) == 0


def test_empty_file_is_complete_at_creation(sqlite_site):
    uploads = make_uploads(sqlite_site)
    upload = uploads.create("cam", uuid.uuid4().hex, md5_of(b""), 0)
    assert upload.complete and sqlite_site.archive.has_data(upload.file_id, md5_of(b""))
