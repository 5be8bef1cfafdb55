"""The temporary files of writes that never ended: `gc --dry-run` reports exactly what `gc`
then removes (count and bytes), and `skyrelay serve` removes, when it starts, those a dead
process left, once untouched for `gc.grace_s` (never a sibling's write in flight).

The kill test SIGKILLs a real `skyrelay serve` in the middle of large version 1 uploads
(`POST /import/data/<file_id>/<md5>`), which leaves the partly received file in the blob
folder's `tmp/`; the model test puts every kind of temporary in place by hand, on the local
folder and on S3 (spool files, a multipart upload and a tail that no ledger names).
"""

import os
import random
import re
import time
from pathlib import Path

import pytest

from model.store.local_blobs import TEMP_PREFIX, LocalBlobStore
from tests.kill_points import KillableServer, send
from tests.server import password_of
from tests.site_kit import on_s3, temp_folder
from tests.v2_helpers import basic, md5_hex, new_id

MiB = 1024 * 1024
USER = "cam"
TWO_HOURS_AGO = time.time() - 2 * 3600     # older than gc.grace_s's default (1 hour)
TEMPORARIES = re.compile(r"(\d+) stale temporary files \((\d+) bytes\)")


def temporaries(blob_root: Path) -> dict[str, int]:
    """Every temporary file of the blob folder (a large blob's in `tmp/`, a small one's
    beside the blobs), with its size."""
    paths = [*(blob_root / "tmp").iterdir(), *blob_root.glob("??/??/.incoming-*")]
    return {str(path): path.stat().st_size for path in paths}


def upload_killed(server: KillableServer, size: int, kill_after: int) -> None:
    """A version 1 upload of `size` bytes, the server SIGKILLed once it has read
    `kill_after` of them."""
    data = random.Random(kill_after).randbytes(size)
    sent = send(server.url, "POST", f"/import/data/{new_id()}/{md5_hex(data)}",
                {**basic(USER, password_of(USER)), "Content-Type": "application/octet-stream"},
                data, kill_after=kill_after, kill=server.kill)
    assert not sent.answered


def gc(server: KillableServer, *args: str) -> tuple[int, int]:
    """Run `skyrelay gc ARGS`; (temporary files, their bytes) as it reports them."""
    result = server.server.cli("gc", *args)
    found = TEMPORARIES.search(result.stdout)
    assert found, result.stdout
    return int(found[1]), int(found[2])


def test_dry_run_reports_what_gc_removes_and_serve_removes_stale_ones(server_factory):
    server = KillableServer(server_factory, "site", {USER: ["import"]}, {})
    blob_root = server.server.root / "blobs"
    upload_killed(server, 24 * MiB, 6 * MiB)
    server.restart()
    upload_killed(server, 24 * MiB, 12 * MiB)
    server.restart()

    left = temporaries(blob_root)
    assert len(left) == 2, "each kill left its partly written file"
    assert all(size >= MiB for size in left.values()), left
    # The restarts kept them: a file touched within gc.grace_s may be a sibling's upload.

    assert gc(server, "--dry-run", "--grace", "0") == (2, sum(left.values()))
    assert temporaries(blob_root) == left, "a dry run removes nothing"

    stale, fresh = sorted(left)
    os.utime(stale, (TWO_HOURS_AGO, TWO_HOURS_AGO))
    server.server.stop()
    server.restart()
    assert temporaries(blob_root) == {fresh: left[fresh]}, \
        "serve removed the file untouched for gc.grace_s, and only that one"
    assert "removed 1 stale temporary files" in server.server.log()

    assert gc(server, "--dry-run", "--grace", "0") == (1, left[fresh])
    assert gc(server, "--grace", "0") == (1, left[fresh])
    assert temporaries(blob_root) == {}
    assert set(server.server.counts().values()) == {0}


@pytest.mark.blob_backends
def test_dry_run_and_gc_agree_on_every_kind_of_temporary(site):
    """Temporaries on both sides of the grace period: the dry run names exactly those the
    real run removes, with the same bytes, and changes nothing."""
    blobs, archive = site.archive.blobs, site.archive
    folder = temp_folder(blobs)
    stale_large, fresh_large = folder / "incoming-old", folder / "incoming-new"
    stale_large.write_bytes(b"x" * 3000)
    fresh_large.write_bytes(b"y" * 500)
    os.utime(stale_large, (TWO_HOURS_AGO, TWO_HOURS_AGO))
    small_folder = getattr(blobs, "spool", blobs).root / "ab" / "cd"
    small_folder.mkdir(parents=True)
    stale_small = small_folder / ".incoming-1234-abcd-0"
    stale_small.write_bytes(b"z" * 70)
    os.utime(stale_small, (TWO_HOURS_AGO, TWO_HOURS_AGO))
    expected = (2, 3070)
    if on_s3(blobs):
        # What a crash between the store and the ledger leaves: a tail and a multipart
        # upload no ledger entry names. The store lists them with times of its own, so these
        # are stale for a grace of 0 only.
        blobs.client.put_object(Bucket=blobs.bucket, Body=b"t" * 40,
                                Key=blobs.tail_prefix("gone-upload") + "0")
        blobs.client.create_multipart_upload(Bucket=blobs.bucket,
                                             Key=blobs.staging_key("gone-upload"))
        time.sleep(1.1)

    assert blobs.stale_temporaries(3600) and \
        sum(t.size for t in blobs.stale_temporaries(3600)) == expected[1]
    if on_s3(blobs):
        expected_at_zero = (5, 3070 + 500 + 40)    # the fresh file, the tail, the upload
    else:
        expected_at_zero = (3, 3070 + 500)
    for grace, want in ((3600, expected), (0, expected_at_zero)):
        dry = archive.gc(grace_s=grace, staged_ttl_s=3600, dry_run=True)
        assert (dry.temporaries_removed, dry.temporary_bytes) == want, grace
    assert stale_large.exists() and stale_small.exists(), "a dry run removes nothing"

    real = archive.gc(grace_s=3600, staged_ttl_s=3600)
    assert (real.temporaries_removed, real.temporary_bytes) == expected
    assert not stale_large.exists() and not stale_small.exists() and fresh_large.exists()
    assert blobs.stale_temporaries(3600) == []
    real = archive.gc(grace_s=0, staged_ttl_s=3600)
    assert (real.temporaries_removed, real.temporary_bytes) == \
        (expected_at_zero[0] - 2, expected_at_zero[1] - 3070)
    assert blobs.stale_temporaries(0) == []


def test_a_look_only_where_it_is_cheap_leaves_small_temporaries_to_gc(tmp_path):
    """What `serve` removes at start (`beside_blobs=False`): a large blob's stale temporary
    in `tmp/`, not a small one's beside the blobs (finding those reads every blob folder),
    which the full look (gc's) finds too."""
    store = LocalBlobStore(tmp_path / "blobs")
    large = store.temp_dir / "incoming-large"
    small = store.root / "ab" / "cd" / f"{TEMP_PREFIX}small"
    small.parent.mkdir(parents=True)
    for path in (large, small):
        path.write_bytes(b"x" * 10)
        os.utime(path, (TWO_HOURS_AGO, TWO_HOURS_AGO))
    assert [t.name for t in store.stale_temporaries(3600, beside_blobs=False)] == [str(large)]
    assert sorted(t.name for t in store.stale_temporaries(3600)) == sorted(
        [str(large), str(small)])
    assert store.remove_stale_temporaries(3600, beside_blobs=False) == 1
    assert not large.exists() and small.exists()
