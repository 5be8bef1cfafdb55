"""A bundle that is not a complete tar is refused through POST /ingest, its job FAILED with a
message that says it is truncated, and nothing stored changes: whether the site already holds
everything the bundle names (the cut-off members would not have been missed) or nothing.

The cuts are made in a real bundle (`exporter.bundle_writer`: metadata.json first, then the
data members) at the places tarfile used to read as a clean end: inside a member's header
(100 bytes into the second member's), right before the end-of-archive marker, inside the
marker; and inside a member's data. Gzip bundles are cut in the same tar, then compressed;
and a gzip stream of the whole tar is cut in its last bytes.
"""

import gzip
import io
import tarfile

import pytest

from exporter.bundle_writer import write_bundle
from model.archive.selection import Selection
from model.bundles.format import MAX_AFTER_END
from tests import bundle_kit as kit
from tests.importer.test_ingest_http import importer  # noqa: F401  (fixture)
from tests.importer.test_ingest_http import post_bundle, wait_for_job
from tests.site_kit import blob_leftovers, open_test_site


def _members(raw: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return tar.getmembers()


def _end_of_members(raw: bytes) -> int:
    last = _members(raw)[-1]
    return last.offset_data + -(-last.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


# (name, where to cut the tar, what the job's exception says)
CUTS = {
    "inside the second member's header": (
        lambda raw: _members(raw)[1].offset + 100, "it ends inside the member header"),
    "inside a member's data": (
        lambda raw: (lambda m: m.offset_data + m.size // 2)(
            max(_members(raw)[1:], key=lambda m: m.size)),
        "truncated or corrupt?): unexpected end of data"),
    "before the end-of-archive marker": (
        _end_of_members, "it ends before the member header"),
    "inside the end-of-archive marker": (
        lambda raw: _end_of_members(raw) + tarfile.BLOCKSIZE + 100,
        "end-of-archive marker (two zero blocks)"),
}


@pytest.fixture
def database_url(tmp_path) -> str:
    """SQLite only: a tar is read the same whatever database the site has."""
    return f"sqlite:///{tmp_path}/site.db"


@pytest.fixture
def bundle(tmp_path) -> bytes:
    """A complete, uncompressed bundle of a filled site (seed 1, like `held` below)."""
    source = open_test_site(f"sqlite:///{tmp_path}/a.db", tmp_path / "a-blobs")
    try:
        kit.fill(source.archive, events=3)
        write_bundle(source.archive, str(tmp_path / "a.tar"), Selection())
    finally:
        source.close()
    return (tmp_path / "a.tar").read_bytes()


def stored(site) -> tuple:
    return kit.snapshot(site), blob_leftovers(site)


@pytest.mark.parametrize("compressed", [False, True], ids=["tar", "gzip"])
@pytest.mark.parametrize("held", [True, False], ids=["site-holds-all", "site-holds-none"])
@pytest.mark.parametrize("cut", list(CUTS))
def test_a_truncated_bundle_fails_its_job_and_stores_nothing(site, importer, bundle, cut,
                                                             held, compressed, tmp_path):
    if held:
        kit.fill(site.archive, events=3)
    before = stored(site)
    where, reason = CUTS[cut]
    body = bundle[:where(bundle)]
    if compressed:
        body = gzip.compress(body)

    answer = post_bundle(importer, body,
                         content_type="application/gzip" if compressed else "application/x-tar")
    assert answer.status_code == 202, answer.text
    job = wait_for_job(importer, answer.json()["job_id"])

    assert (job["state"], job["task"]) == ("FAILED", "validating"), job
    assert reason in job["exception"] and "truncated" in job["exception"], job
    assert stored(site) == before
    assert list((tmp_path / "blobs" / "bundles").iterdir()) == []


@pytest.mark.parametrize("cut_bytes", [4, 30], ids=["in-the-trailer", "after-the-tar-end"])
@pytest.mark.parametrize("held", [True, False], ids=["site-holds-all", "site-holds-none"])
def test_a_gzip_stream_cut_after_a_complete_tar_is_refused(site, importer, bundle, cut_bytes,
                                                          held):
    """The tar inside is complete (tarfile alone never reads gzip's trailer): still a bundle
    cut short."""
    if held:
        kit.fill(site.archive, events=3)
    before = stored(site)
    body = gzip.compress(bundle)[:-cut_bytes]
    answer = post_bundle(importer, body, content_type="application/gzip")
    job = wait_for_job(importer, answer.json()["job_id"])
    assert job["state"] == "FAILED", job
    assert "the bundle is truncated: its gzip stream ends before its end-of-stream marker" \
        in job["exception"]
    assert stored(site) == before


@pytest.mark.parametrize("compressed", [False, True], ids=["tar", "gzip"])
@pytest.mark.parametrize("held", [True, False], ids=["site-holds-all", "site-holds-none"])
def test_the_whole_bundle_is_done(site, importer, bundle, held, compressed):
    """The same bundle, whole: `done` either way (the cuts above are what fails), and a
    gzip stream padded with zeros after its end, as gzip allows, is whole too."""
    if held:
        kit.fill(site.archive, events=3)
    body = gzip.compress(bundle) + bytes(100) if compressed else bundle
    answer = post_bundle(importer, body,
                         content_type="application/gzip" if compressed else "application/x-tar")
    job = wait_for_job(importer, answer.json()["job_id"])
    assert (job["state"], job["task"]) == ("OK", "done"), job
    assert kit.snapshot(site)["files"], "everything is held now"


def test_a_block_that_is_no_header_between_members_is_refused(site, importer, bundle):
    """Garbage where the second member's header should be (tarfile took it for the end)."""
    kit.fill(site.archive, events=3)
    before = stored(site)
    at = _members(bundle)[1].offset
    body = bundle[:at] + b"\xff" * tarfile.BLOCKSIZE + bundle[at + tarfile.BLOCKSIZE:]
    job = wait_for_job(importer, post_bundle(importer, body).json()["job_id"])
    assert job["state"] == "FAILED", job
    assert f"the bundle is corrupt: the block at byte {at} of the tar is neither a member " \
           "header nor the end of the archive" in job["exception"]
    assert stored(site) == before


def test_a_gzip_bundle_with_too_much_after_its_tar_is_refused(site, importer, bundle):
    """What follows the tar's end is read (to reach gzip's trailer), within a bound."""
    before = stored(site)
    body = gzip.compress(bundle + bytes(MAX_AFTER_END + 1024 * 1024))
    answer = post_bundle(importer, body, content_type="application/gzip")
    job = wait_for_job(importer, answer.json()["job_id"])
    assert job["state"] == "FAILED", job
    assert f"more than {MAX_AFTER_END} bytes after the end of its tar" in job["exception"]
    assert stored(site) == before
