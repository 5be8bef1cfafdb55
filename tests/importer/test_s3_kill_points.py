"""The importer on an object store, SIGKILLed at chosen points of a large resumable upload and
of a /blobs batch of small files, then started again on the same database and bucket.

After every kill and restart the crash invariants are checked straight from the database and
the bucket (`tests.kill_points.StoreState`): no blob row without its object, no object with
other bytes than its row says, every upload's part ledger adding up to its offset and agreeing
with the store. Then the client resumes as a tus client does (HEAD for the offset, PATCH from
there) or sends the batch again, and the files must land byte-identical.

A SIGKILL costs the chunk in flight (nothing is committed before its last byte), so each kill
point sits in a chunk of its own, and the chunk sizes are chosen against the 16 MiB part size
(`model.store.s3_partial`) to put the kill where a part, a tail or the commit is under way.

The upload runs on PostgreSQL (the multi-host setup: advisory upload locks, which a killed
worker's connection must give up), the batch on SQLite. One worker; a restart costs about a
second, and the summary line printed by each test says how long restarts took.
"""

import hashlib
import json
import os
import random
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import requests

from tests.kill_points import KillableServer, StoreState, Tally, send
from tests.server import password_of
from tests.v2_helpers import basic, md5_hex, multipart, new_id, tus_metadata

pytestmark = pytest.mark.slow
MiB = 1024 * 1024
USER = "cam"
PREFIX = "site/"
HTTP_TIMEOUT_S = 60


# What a kill point may wait for in the bucket, after the server read its bytes.
BLOB_IN_PLACE = "the blob's object is in place"
STAGING_DELETED = "the blob's object is in place and the upload's staging object deleted"


@dataclass(frozen=True)
class KillPoint:
    """One PATCH of bytes [start, end), killed once the server has read `after` of them (and,
    with `until`, once the bucket shows that)."""
    name: str
    start: int
    end: int
    after: int
    until: str | None = None


@dataclass(frozen=True)
class UploadPlan:
    length: int
    announce_sha256: bool         # as skyrelay's exporter does: the parts go to the final key
    points: tuple[KillPoint, ...]   # their PATCHes cover [0, length) in order


# Part size 16 MiB; a chunk's leftover of 5 MiB or more is sent as a part of its own, less
# stays as a tail object that leads the next chunk's first part.
PLANS = (
    UploadPlan(48 * MiB, False, (
        KillPoint("right at a part boundary (part 1 handed to the sender)",
                  0, 20 * MiB, 16 * MiB),
        KillPoint("inside a tail-sized chunk (the 4 MiB tail read back, 0.25 MiB added)",
                  20 * MiB, 20 * MiB + MiB // 2, MiB // 4),
        KillPoint("inside a part led by the tail", 20 * MiB + MiB // 2, 30 * MiB, 5 * MiB),
        KillPoint("right after a chunk's last byte (its tail being stored)",
                  30 * MiB, 34 * MiB, 4 * MiB),
        KillPoint("after a part went, inside the next tail", 34 * MiB, 47 * MiB, 14 * MiB),
        KillPoint("during the final chunk", 47 * MiB, 48 * MiB, MiB // 2),
    )),
    UploadPlan(40 * MiB, True, (
        KillPoint("right after a chunk's last byte (its 8 MiB last part being stored)",
                  0, 24 * MiB, 24 * MiB),
        KillPoint("right after the file's last byte, before the response",
                  24 * MiB, 40 * MiB, 16 * MiB),
    )),
    UploadPlan(20 * MiB, True, (
        KillPoint("commit: the multipart upload completed at the blob key, before the row",
                  0, 20 * MiB, 20 * MiB, until=BLOB_IN_PLACE),
    )),
    UploadPlan(20 * MiB, False, (
        KillPoint("commit: the object copied to its blob key, the staging object deleted, "
                  "before the row", 0, 20 * MiB, 20 * MiB, until=STAGING_DELETED),
    )),
)


def tus_headers(**more: str) -> dict:
    return {**basic(USER, password_of(USER)), "Tus-Resumable": "1.0.0", **more}


def patch_headers(offset: int) -> dict:
    return tus_headers(**{"Upload-Offset": str(offset),
                          "Content-Type": "application/offset+octet-stream"})


def create_upload(server: KillableServer, data: bytes, file_id: str,
                  announce_sha256: bool) -> str:
    extra = {"sha256": hashlib.sha256(data).hexdigest()} if announce_sha256 else {}
    created = requests.post(server.url + "/import/uploads", timeout=HTTP_TIMEOUT_S,
                            headers=tus_headers(**{
                                "Upload-Length": str(len(data)),
                                "Upload-Metadata": tus_metadata(file_id, md5_hex(data),
                                                                **extra)}))
    assert created.status_code == 201, created.text
    return urlsplit(created.headers["Location"]).path


def head_offset(server: KillableServer, path: str, tally: Tally) -> int:
    head = requests.head(server.url + path, headers=tus_headers(), timeout=HTTP_TIMEOUT_S)
    assert head.status_code == 200, \
        f"HEAD {path} after kill {tally.kills}: {head.status_code} " \
        f"[{tally.summary(server.restart_seconds)}]\n{server.server.log()[-3000:]}"
    return int(head.headers["Upload-Offset"])


def assert_staged(state: StoreState, files: list[tuple[str, bytes]], tally: Tally) -> None:
    """Each file is staged under its bytes' SHA-256 (the object's bytes are `verify`'s)."""
    staged = state.staged()
    wrong = [(file_id, staged.get((file_id, md5_hex(data))))
             for file_id, data in files
             if staged.get((file_id, md5_hex(data))) != hashlib.sha256(data).hexdigest()]
    assert not wrong, f"files not staged under their bytes' SHA-256 (file, staged as): " \
                      f"{wrong[:5]} [{tally.kills} kills so far]"


def assert_landed(state: StoreState, file_id: str, data: bytes, tally: Tally) -> None:
    """Staged, and the blob's object is byte-identical to what was sent."""
    assert_staged(state, [(file_id, data)], tally)
    assert state.read(state.key(f"blobs/{hashlib.sha256(data).hexdigest()}")) == data, \
        f"file {file_id}: the blob's object is not the bytes sent [{tally.kills} kills so far]"


def awaited(point: KillPoint, state: StoreState, final_key: str, staging_key: str):
    """The condition `send` waits for before the kill, if the point has one."""
    if point.until == BLOB_IN_PLACE:
        return lambda: state.object_exists(final_key)
    if point.until == STAGING_DELETED:      # before the copy the staging object is not there
        return lambda: state.object_exists(final_key) and not state.object_exists(staging_key)
    return None


@pytest.fixture
def bucket(object_store):
    return object_store.new_bucket()


def test_a_large_upload_killed_at_ten_points_resumes(server_factory, object_store, bucket,
                                                     pg_cluster):
    database_url = pg_cluster.url(pg_cluster.new_database(pg_cluster.template))
    settings = {**object_store.settings(bucket, PREFIX), "database.url": database_url}
    server = KillableServer(server_factory, "tus", {USER: ["import"]}, settings)
    state = StoreState(database_url, object_store.client(), bucket, PREFIX)
    tally = Tally()
    for plan in PLANS:
        data, file_id = os.urandom(plan.length), new_id()
        path = create_upload(server, data, file_id, plan.announce_sha256)
        final_key = state.key(f"blobs/{hashlib.sha256(data).hexdigest()}")
        staging_key = state.key(f"uploads/{path.rsplit('/', 1)[-1]}")
        for point in plan.points:
            wait_for = awaited(point, state, final_key, staging_key)
            sent = send(server.url, "PATCH", path, patch_headers(point.start),
                        data[point.start:point.end], kill_after=point.after,
                        kill=server.kill, wait_for=wait_for)
            tally.killed(sent)
            server.restart()
            tally.verify(state, server.restart_seconds)
            offset = head_offset(server, path, tally)
            whole_chunk = point.after == point.end - point.start
            allowed = {point.start, point.end} if whole_chunk else {point.start}
            assert offset in allowed, \
                f"killed {point.name}: HEAD says offset {offset}, expected one of " \
                f"{sorted(allowed)} [{tally.summary(server.restart_seconds)}]"
            outcome = "the chunk had counted" if offset == point.end else "resumed"
            if offset < point.end:
                resumed = send(server.url, "PATCH", path, patch_headers(offset),
                               data[offset:point.end])
                assert (resumed.status, resumed.headers.get("Upload-Offset")) == \
                    (204, str(point.end)), \
                    f"resume after a kill {point.name}: {resumed} " \
                    f"[{tally.summary(server.restart_seconds)}]"
                tally.resumes_landed += 1
            tally.note(f"kill {tally.kills}: {point.name} (answered before the kill: "
                       f"{sent.status}) -> offset {offset}, {outcome}")
        assert_landed(state, file_id, data, tally)
    tally.verify(state, server.restart_seconds)
    print(tally.summary(server.restart_seconds))


BATCH_FILES = 200
# (name, fraction of the body the server has read when killed, wait for half the batch's
# objects to be in the bucket first)
BATCH_POINTS = (
    ("a quarter into the body", 0.25, False),
    ("three quarters into the body", 0.75, False),
    ("right after the body's last byte", 1.0, False),
    ("half the batch's objects stored, no row yet", 1.0, True),
)


def small_files(rng: random.Random) -> list[tuple[str, bytes]]:
    return [(new_id(), rng.randbytes(rng.randint(1, 32 * 1024))) for _ in range(BATCH_FILES)]


def test_a_batch_of_small_files_killed_at_four_points(server_factory, object_store, bucket,
                                                       tmp_path):
    database_url = f"sqlite:///{tmp_path / 'blobs-site' / 'site.db'}"
    settings = {**object_store.settings(bucket, PREFIX), "database.url": database_url}
    server = KillableServer(server_factory, "blobs-site", {USER: ["import"]}, settings)
    state = StoreState(database_url, object_store.client(), bucket, PREFIX)
    tally, rng = Tally(), random.Random(20240611)
    for name, fraction, until_half_stored in BATCH_POINTS:
        files = small_files(rng)
        body, content_type = multipart([(f"{fid}.{md5_hex(data)}", data) for fid, data in files])
        headers = {**basic(USER, password_of(USER)), "Content-Type": content_type}
        stored_before = len(state.keys("blobs/"))
        wait_for = (lambda before=stored_before: len(state.keys("blobs/")) >=
                    before + BATCH_FILES // 2) if until_half_stored else None
        sent = send(server.url, "POST", "/import/blobs", headers, body,
                    kill_after=int(len(body) * fraction), kill=server.kill, wait_for=wait_for)
        tally.killed(sent)
        server.restart()
        checked = tally.verify(state, server.restart_seconds)
        again = send(server.url, "POST", "/import/blobs", headers, body)
        assert again.status == 200, f"batch sent again after a kill {name}: {again} " \
                                    f"[{tally.summary(server.restart_seconds)}]"
        results = json.loads(again.body)["results"]
        assert results == [{"file_id": fid, "received": True} for fid, _ in files], \
            f"batch sent again after a kill {name} [{tally.summary(server.restart_seconds)}]"
        tally.resumes_landed += 1
        assert_staged(state, files, tally)
        tally.note(f"kill {tally.kills}: {name} (answered before the kill: {sent.status}) -> "
                   f"{checked.strays} stray objects after the restart")
    tally.verify(state, server.restart_seconds)
    print(tally.summary(server.restart_seconds))
