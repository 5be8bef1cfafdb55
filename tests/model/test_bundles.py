"""Bundles in the model, on SQLite and PostgreSQL (those marked `blob_backends` also with the
blobs on S3): a round trip gives identical archives, and every bad bundle is refused with a
readable reason, storing nothing and leaving nothing."""

import io
import subprocess
import json
import tarfile

import pytest

from tests import bundle_kit as kit
from tests.site_kit import blob_leftovers, open_test_site
from exporter.bundle_writer import write_bundle
from model.archive.selection import Selection
from model.bundles.ingest import IngestLimits
from model.bundles.jobs import run_ingest_job
from model.ops.jobs import FAILED, OK, Jobs
from model.ops.traces import Traces

LIMITS = IngestLimits(max_bundle_bytes=10 * 1024 ** 2, max_metadata_bytes=1024 ** 2,
                      max_file_bytes=1024 ** 2)


@pytest.fixture
def site_a(tmp_path):
    opened = open_test_site(f"sqlite:///{tmp_path}/a.db", tmp_path / "a-blobs")
    yield opened
    opened.close()


def ingest(site, path, trace_id="trace-1", limits=LIMITS):
    job = Jobs(site.database).create("tester", trace_id, bundle_path=str(path))
    return run_ingest_job(site, job, "test", limits)


@pytest.mark.blob_backends
@pytest.mark.parametrize("gzip", [False, True], ids=["tar", "tar.gz"])
def test_round_trip_gives_identical_archives(site_a, site, tmp_path, gzip):
    status, standalone, events, _ = kit.fill(site_a.archive, events=3)
    bundle = tmp_path / "out.tar"
    report = write_bundle(site_a.archive, str(bundle), Selection(), gzip=gzip)
    assert (report.statuses, report.events, report.files) == (1, 3, 7)

    outcome = ingest(site, bundle)

    assert outcome.job.state == OK and outcome.job.task == "done", outcome.job.exception
    assert outcome.job.to_json()["task_percent"] == "100.0"
    assert kit.snapshot(site) == kit.snapshot(site_a)
    assert site.archive.counts()["staged"] == 0
    traces = Traces(site.database)
    assert traces.summary("trace-1") == {"done": True, "trace_id": "trace-1",
                                         "trace_status": "FINISHED", "trace_event_status": "OK"}
    stored = {(e.domain, e.domain_id) for e in traces.history("trace-1")
              if e.operation == "store"}
    assert stored == {("status", status.status_id), ("file", standalone.file_id)} | {
        ("event", e.event_id) for e in events}
    assert traces.trace_of_file(events[1].files[1].file_id) == "trace-1"
    assert traces.trace_of_file(standalone.file_id) == "trace-1"


@pytest.mark.blob_backends
def test_metadata_after_the_data_and_a_second_ingest(site_a, site, tmp_path):
    status, standalone, events, data = kit.fill(site_a.archive, events=2)
    bundle = tmp_path / "late.tar"
    bundle.write_bytes(kit.build_tar(kit.bundle_members(
        kit.metadata_of(status, standalone, events), data, metadata_first=False)))
    assert ingest(site, bundle).job.task == "done"
    assert kit.snapshot(site) == kit.snapshot(site_a)

    again = ingest(site, bundle, trace_id="trace-2")
    assert again.job.task == "done" and again.report.held == 4 and again.report.stored == 0
    assert kit.snapshot(site) == kit.snapshot(site_a)


@pytest.mark.blob_backends
def test_bytes_already_held_may_be_left_out(site_a, site, tmp_path):
    status, standalone, events, data = kit.fill(site_a.archive, events=2)
    kit.fill(site.archive, events=2)  # the same entities and bytes
    bundle = tmp_path / "no-data.tar"
    bundle.write_bytes(kit.build_tar(kit.bundle_members(
        kit.metadata_of(status, standalone, events), {})))
    outcome = ingest(site, bundle)
    assert outcome.job.task == "done" and outcome.report.held == 4


def test_filters_select_cameras_types_and_a_half_open_window(site_a, tmp_path):
    kit.fill(site_a.archive, seed=1, events=3, camera="cam1")
    kit.fill(site_a.archive, seed=2, events=3, camera="cam2")
    first = 1427891400000
    cases = [(Selection(cameras=("cam2",)), (1, 3, 7)),
             (Selection(event_types=("meteorpi:meteor",)), (2, 6, 12)),
             (Selection(after=first + 60_000, before=first + 120_000), (2, 2, 4)),
             (Selection(cameras=("nobody",)), (0, 0, 0))]
    for selection, expected in cases:
        report = write_bundle(site_a.archive, str(tmp_path / "f.tar"), selection)
        assert (report.statuses, report.events, report.files) == expected, selection


def _corrupt(members):
    name, body = members[-1]
    return members[:-1] + [(name, bytes([body[0] ^ 0xFF]) + body[1:])]


def _bad_metadata(members):
    meta = json.loads(members[0][1])
    del meta["events"][1]["files"][0]["md5"]
    return [("metadata.json", json.dumps(meta).encode())] + members[1:]


def _link(kind):
    info = tarfile.TarInfo("data/link")
    info.type = kind
    info.linkname = "/etc/passwd"
    return info


BAD_BUNDLES = {
    # name: (change to the member list, extra raw members, expected words in the reason)
    "corrupt file": (_corrupt, [], "is corrupt: its MD5 is"),
    "bad metadata.json": (_bad_metadata, [], "events[1].files[0].md5: is required"),
    "not json": (lambda m: [("metadata.json", b"{not json")] + m[1:], [], "not valid JSON"),
    "dot-dot member": (lambda m: m + [("data/../../etc/evil", b"x")], [], "leaves the bundle"),
    "absolute member": (lambda m: m + [("/tmp/evil", b"x")], [], "absolute path"),
    "symlink": (lambda m: m, [_link(tarfile.SYMTYPE)], "links are not allowed"),
    "hard link": (lambda m: m, [_link(tarfile.LNKTYPE)], "links are not allowed"),
    "device": (lambda m: m, [_link(tarfile.CHRTYPE)], "device"),
    "outside data/": (lambda m: m + [("notes.txt", b"x")], [], "unexpected member"),
    "duplicate member": (lambda m: m + [m[1]], [], "appears twice"),
    "missing data": (lambda m: m[:-1], [], "is missing from the bundle"),
    "no metadata": (lambda m: m[1:], [], "has no metadata.json"),
    "data no record names": (lambda m: m + [("data/" + "ab" * 16, b"x")], [],
                             "not named by any file record"),
}


@pytest.mark.blob_backends
@pytest.mark.parametrize("case", list(BAD_BUNDLES))
def test_a_bad_bundle_is_refused_and_leaves_nothing(site_a, site, tmp_path, case):
    change, extra, expected = BAD_BUNDLES[case]
    kit.fill(site.archive, seed=9, events=1)   # what the site held before stays as it was
    status, standalone, events, data = kit.fill(site_a.archive, events=3)
    members = change(kit.bundle_members(kit.metadata_of(status, standalone, events), data))
    bundle = tmp_path / "bad.tar"
    bundle.write_bytes(kit.build_tar(members, extra=extra))
    before, snap = blob_leftovers(site), kit.snapshot(site)

    outcome = ingest(site, bundle)

    assert outcome.job.state == FAILED and outcome.report is None
    assert expected in outcome.job.exception, outcome.job.exception
    assert blob_leftovers(site) == before
    assert kit.snapshot(site) == snap
    summary = Traces(site.database).summary("trace-1")
    assert summary["trace_event_status"] == "FAILED" and summary["done"] is True


@pytest.mark.blob_backends
def test_a_truncated_bundle_is_refused(site_a, site, tmp_path):
    kit.fill(site_a.archive, events=3)
    good = tmp_path / "good.tar.gz"
    write_bundle(site_a.archive, str(good), Selection(), gzip=True)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[:good.stat().st_size * 2 // 3])
    before = blob_leftovers(site)
    outcome = ingest(site, cut)
    assert outcome.job.state == FAILED
    assert "the bundle is truncated: its gzip stream ends" in outcome.job.exception
    assert blob_leftovers(site) == before


def test_a_bundle_over_the_size_limit_is_refused(site_a, site, tmp_path):
    kit.fill(site_a.archive, events=3)
    bundle = tmp_path / "big.tar"
    write_bundle(site_a.archive, str(bundle), Selection())
    small = IngestLimits(max_bundle_bytes=bundle.stat().st_size - 1, max_metadata_bytes=10 ** 6,
                         max_file_bytes=10 ** 6)
    outcome = ingest(site, bundle, limits=small)
    assert outcome.job.state == FAILED and "importer.max_bundle_bytes" in outcome.job.exception
    assert site.archive.counts()["events"] == 0


@pytest.mark.blob_backends
def test_refusal_keeps_bytes_someone_else_staged(site_a, site, tmp_path):
    """Bytes staged by a version 1 upload before the bundle came are not the bundle's to
    remove."""
    status, standalone, events, data = kit.fill(site_a.archive, events=2)
    first = events[0].files[0]
    site.archive.stage_bytes(first.file_id, first.md5, io.BytesIO(data[first.file_id]))
    members = _corrupt(kit.bundle_members(kit.metadata_of(status, standalone, events), data))
    (tmp_path / "bad.tar").write_bytes(kit.build_tar(members))
    assert ingest(site, tmp_path / "bad.tar").job.state == FAILED
    assert site.archive.has_data(first.file_id, first.md5)
    assert site.archive.counts()["staged"] == 1


def test_a_conflicting_resend_is_a_failed_trace_event_with_both_hashes(site_a, site, tmp_path):
    status, standalone, events, data = kit.fill(site_a.archive, events=1)
    meta = kit.metadata_of(status, standalone, events)
    (tmp_path / "one.tar").write_bytes(kit.build_tar(kit.bundle_members(meta, data)))
    assert ingest(site, tmp_path / "one.tar").job.task == "done"
    held = site.archive.held_hash("event", events[0].event_id)
    meta["events"][0]["meta"][0]["value"] = "changed"
    (tmp_path / "two.tar").write_bytes(kit.build_tar(kit.bundle_members(meta, data)))

    outcome = ingest(site, tmp_path / "two.tar", trace_id="trace-2")

    assert outcome.job.task == "done" and outcome.report.conflicts == 1
    assert site.archive.held_hash("event", events[0].event_id) == held
    traces = Traces(site.database)
    [conflict] = [e for e in traces.history("trace-2") if e.operation == "conflict"]
    assert conflict.trace_event_status == "FAILED" and conflict.domain == "event"
    assert conflict.meta["held_hash"] == held
    assert conflict.meta["new_hash"] not in (None, held)
    assert held in conflict.exception
    assert traces.summary("trace-2")["trace_event_status"] == "FAILED"
    assert site.archive.counts()["staged"] == 0


def test_a_bundle_made_by_gnu_tar_with_an_event_without_files(site, tmp_path):
    status, standalone, events, data = kit.sample_entities()
    meta = kit.metadata_of(status, standalone, events)
    meta["events"].append({"event_id": "ab" * 16, "camera_id": status.camera_id,
                           "status_id": status.status_id, "event_time": 1,
                           "event_type": "meteorpi:nothing", "files": [], "meta": []})
    source = tmp_path / "src"
    (source / "data").mkdir(parents=True)
    (source / "metadata.json").write_text(json.dumps(meta))
    for file_id, body in data.items():
        (source / "data" / file_id).write_bytes(body)
    subprocess.run(["tar", "-C", str(source), "-czf", str(tmp_path / "gnu.tgz"), "."],
                   check=True, timeout=30)
    outcome = ingest(site, tmp_path / "gnu.tgz")
    assert outcome.job.task == "done", outcome.job.exception
    assert site.archive.get_event("ab" * 16).files == ()
    assert site.archive.counts()["events"] == 4
