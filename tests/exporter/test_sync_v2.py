"""The exporter's version 2 against real `skyrelay serve` importers: batches, /blobs,
resumable uploads resumed after a cut link and after a crash, the bandwidth limit, and the
fallback to version 1."""

import os
import signal
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from tests.balancer import free_port
from tests.server import Server, password_of, server_factory  # noqa: F401  (fixture)
from tests.site_kit import open_test_site, sync_settings
from tests.tcp_proxy import TcpProxy
from exporter.protocol_v2 import Complete
from exporter.sync import Syncer
from exporter.sync_v2 import BatchDriver, PageOutcome
from exporter.transport import Transport
from model.archive.sample import SampleWriter
from model.export.queue import ExportQueue
from model.export.targets import Targets
from model.export.upload_urls import UploadUrls
from model.site import open_site
from model.store import schema
from skyrelay import config as config_module
from skyrelay.demo import verify

pytestmark = pytest.mark.slow
USERS = {"exporter": ["import", "user"]}
SMALL = sync_settings(timeout_s=10, backoff_base_s=1, batch_size=5,
                     small_file_bytes=256 * 1024, blobs_request_bytes=64 * 1024,
                     upload_chunk_bytes=512 * 1024)


@pytest.fixture
def site_a(tmp_path):
    opened = open_test_site(f"sqlite:///{tmp_path}/a.db", tmp_path / "a-blobs")
    yield opened
    opened.close()


def fill(site, large_bytes: int = 0, **shape):
    """Sample events with small PNGs; `large_bytes` adds one standalone file that big."""
    shape = {"cameras": 2, "events_per_camera": 6, "files_per_event": 2,
             "standalone_per_camera": 1, **shape}
    generated = SampleWriter(site.archive, seed=5).fill(**shape)
    if large_bytes:
        large = SampleWriter(site.archive, seed=6, file_size=large_bytes).fill(
            cameras=1, events_per_camera=0, standalone_per_camera=1)
        generated.statuses += large.statuses
        generated.files += large.files
    return generated


def target(site, importer_url, protocol="auto", bwlimit=None, name="b"):
    return Targets(site.database).add(name, importer_url, "exporter",
                                      password_of("exporter"), protocol, bwlimit=bwlimit)


def requests_in_log(server, marker: str) -> int:
    return sum(marker in line for line in server.log().splitlines())


def entities(generated) -> int:
    return len(generated.events) + len(generated.files)


def test_version_2_replicates_everything_in_few_requests(site_a, server_factory):
    generated = fill(site_a, large_bytes=1536 * 1024)
    b = server_factory("b", users=USERS)
    target(site_a, b.import_url)
    report = Syncer(site_a, SMALL).run()
    assert report.ok, report.targets[0].problem
    assert report.total("sent") == entities(generated) == 15
    checked = verify(b.url, b.auth("exporter"), generated)
    assert checked.problems == [] and checked.files_matched == 27
    assert requests_in_log(b, "POST /import/batch ") >= 6        # batches of 5, two rounds
    assert requests_in_log(b, "POST /import/blobs ") >= 2        # 64 KiB per request
    assert requests_in_log(b, "PATCH /import/uploads/") == 3     # 1.5 MiB in 512 KiB chunks
    assert requests_in_log(b, "POST /import ") == 0              # no version 1 handshake
    assert report.total("requests") < 2 * entities(generated)
    before = len(b.log().splitlines())
    again = Syncer(site_a, SMALL).run()
    assert again.ok and again.total("sent") == 0
    assert len(b.log().splitlines()) == before                   # nothing due: no request


def test_auto_falls_back_to_version_1_and_v2_refuses(site_a, server_factory):
    generated = fill(site_a, events_per_camera=2)
    b = server_factory("b", users=USERS, settings={"importer.max_protocol": 1})
    target(site_a, b.import_url, name="strict", protocol="v2")
    strict = Syncer(site_a, SMALL).run(["strict"])
    assert not strict.ok and "version 1 only" in strict.targets[0].problem
    target(site_a, b.import_url)
    report = Syncer(site_a, SMALL).run(["b"])
    assert report.ok and report.total("sent") == entities(generated)
    assert verify(b.url, b.auth("exporter"), generated).problems == []
    # Each sync asks once per lane (the second lane logs in while the first asks).
    assert requests_in_log(b, "GET /import/capabilities 404") == 4
    assert requests_in_log(b, "POST /import ") > 0
    assert requests_in_log(b, "/import/batch") == requests_in_log(b, "/import/blobs") == 0


def test_a_cut_link_mid_upload_resumes_from_the_importer_offset(site_a, server_factory):
    mib = 1024 * 1024
    generated = fill(site_a, large_bytes=4 * mib, cameras=1, events_per_camera=1,
                     standalone_per_camera=0)
    b = server_factory("b", users=USERS)
    with TcpProxy("127.0.0.1", urlsplit(b.url).port) as proxy:
        target(site_a, f"http://127.0.0.1:{proxy.port}/import")
        proxy.cut_after(3 * mib)            # three quarters into the 4 MiB upload
        settings = sync_settings(timeout_s=10, upload_chunk_bytes=64 * 1024 * 1024)
        report = Syncer(site_a, settings).run()
    assert report.ok, report.targets[0].problem
    assert proxy.cuts == 1
    assert requests_in_log(b, "HEAD /import/uploads/") >= 1
    assert requests_in_log(b, "POST /import/uploads ") == 1      # the same upload, resumed
    assert verify(b.url, b.auth("exporter"), generated).problems == []
    # Sent: the first attempt (at most the whole file, into socket buffers) and the rest
    # from the importer's offset (about 1 MiB): not the file twice (8 MiB).
    assert report.total("bytes") < 6 * mib


def test_an_exporter_crash_mid_upload_resumes_in_the_next_run(tmp_path, server_factory):
    a = Server(tmp_path / "a")                 # a site folder; only its `sync` command runs
    loaded = config_module.load(a.config_path, environ={})
    site = open_site(loaded)
    generated = fill(site, large_bytes=4 * 1024 * 1024, cameras=1, events_per_camera=0,
                     standalone_per_camera=0)
    site.close()
    b = server_factory("b", users=USERS)
    a.cli("target", "add", "b", "--url", b.import_url, "--user", "exporter",
          "--password-stdin", "--bwlimit", "1M", stdin=password_of("exporter") + "\n")
    running = subprocess.Popen(
        [sys.executable, "-m", "skyrelay", "--config", str(a.config_path), "sync",
         "--no-progress"], cwd=a.root, env=a._env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    wait_for_partial_file(b, running)
    running.send_signal(signal.SIGKILL)
    running.wait(10)
    held = held_offset(b)     # what arrived before the crash counts (no chunk checksum)
    assert 0 < held < 4 * 1024 * 1024
    a.cli("target", "set", "b", "--bwlimit", "0")
    again = a.cli("sync", "--no-progress")
    assert "sent 1," in again.stdout
    sent_mib = float(again.stdout.split(" MiB")[0].rsplit(" ", 1)[-1])
    assert sent_mib < 4.0                       # only the rest went in the second run
    assert verify(b.url, b.auth("exporter"), generated).problems == []
    site_b = b.open_site()
    try:
        with site_b.database.reading() as conn:
            assert conn.scalar(select(func.count()).select_from(schema.uploads)) == 1
    finally:
        site_b.close()


def wait_for_partial_file(importer, running, deadline_s=30) -> None:
    """Until the importer's partial file of the upload holds some bytes (`running`: the
    sync's process or thread)."""
    deadline = time.monotonic() + deadline_s
    alive = running.is_alive if hasattr(running, "is_alive") else \
        lambda: running.poll() is None
    while time.monotonic() < deadline and alive():
        parts = list((importer.root / "blobs" / "uploads").glob("*.part"))
        if parts and 0 < parts[0].stat().st_size < 3 * 1024 * 1024:
            return
        time.sleep(0.05)
    raise AssertionError("no partial upload before the sync ended")


def held_offset(importer, deadline_s=10) -> int:
    """The offset the importer's database holds, once the dropped request has let go."""
    deadline = time.monotonic() + deadline_s
    while True:
        site = importer.open_site()
        try:
            with site.database.reading() as conn:
                held = conn.scalar(select(schema.uploads.c.received_bytes))
        finally:
            site.close()
        if held or time.monotonic() > deadline:
            return held
        time.sleep(0.05)


def test_the_bandwidth_limit_holds_for_blobs_and_version_1(site_a, server_factory):
    """128 KiB/s and about 400 KiB of files: at least ~2 s after the first second's burst,
    through /blobs (version 2, pages of two entities, so both lanes send at once) and
    through version 1 uploads alike."""
    generated = fill(site_a, cameras=1, events_per_camera=4, standalone_per_camera=0)
    SampleWriter(site_a.archive, seed=9, file_size=96 * 1024).fill(
        cameras=1, events_per_camera=4, files_per_event=1, standalone_per_camera=0)
    b, c = server_factory("b", users=USERS), server_factory("c", users=USERS)
    for name, server, protocol in (("b", b, "auto"), ("c", c, "v1")):
        target(site_a, server.import_url, protocol, bwlimit="128K", name=name)
        started = time.monotonic()
        report = Syncer(site_a, sync_settings(timeout_s=10, page_size=2, batch_size=2)
                        ).run([name])
        elapsed = time.monotonic() - started
        assert report.ok and report.total("bytes") >= 384 * 1024
        assert elapsed >= (report.total("bytes") / (128 * 1024) - 1) * 0.9, (name, elapsed)
    assert verify(c.url, c.auth("exporter"), generated).problems == []
    assert requests_in_log(b, "POST /import/blobs ") >= 1


def test_a_small_max_batch_leaves_room_for_statuses(site_a, server_factory):
    generated = fill(site_a, cameras=2, events_per_camera=4, standalone_per_camera=0)
    b = server_factory("b", users=USERS, settings={"importer.max_batch": 4})
    target(site_a, b.import_url)
    report = Syncer(site_a, sync_settings(timeout_s=10)).run()
    assert report.ok, report.targets[0].problem
    assert verify(b.url, b.auth("exporter"), generated).problems == []
    codes = [line.split("/import/batch ")[1].split()[0] for line in b.log().splitlines()
             if "/import/batch " in line]
    assert len(codes) >= 4 and set(codes) == {"200"}


def test_after_a_batch_that_lacked_every_file_the_next_sends_its_bytes_unasked(
        site_a, server_factory):
    """An importer catching up: the first page asks for every file (ask, /blobs, store), so
    the second sends its small files first and is stored in one batch request; the third
    asks again. An importer that holds everything is never sent bytes unasked."""
    generated = fill(site_a, cameras=1, events_per_camera=12, standalone_per_camera=0)
    b = server_factory("b", users=USERS)
    added = target(site_a, b.import_url)
    queue = ExportQueue(site_a.database)
    queue.enqueue_new(added)
    pages, after = [], 0
    for _ in range(3):
        pages.append(queue.claim(added.target_id, after, 4, lease_s=120))
        after = pages[-1][-1].id

    def driver(transport):
        return BatchDriver(site_a.archive, transport, transport.capabilities(),
                           UploadUrls(site_a.database), "b", 5, 256 * 1024, 1024 * 1024,
                           512 * 1024,        # batches of 5: a page of 4 and its status
                           queue.mark_done_many)

    def requests_for(send, page):
        before = transport.requests
        outcome = PageOutcome()
        send(page, outcome)
        return transport.requests - before, set(outcome.outcomes.values())

    with Transport(b.import_url, "exporter", password_of("exporter"), 10,
                   "0" * 32) as transport:
        send = driver(transport).send
        assert [requests_for(send, page) for page in pages] == [
            (3, {Complete(False)}), (2, {Complete(False)}), (3, {Complete(False)})]
        assert verify(b.url, b.auth("exporter"), generated).problems == []
        again = driver(transport).send        # a new run: the importer holds everything
        assert [requests_for(again, page) for page in pages[:2]] == [
            (1, {Complete(True)}), (1, {Complete(True)})]


def remembered_urls(site) -> int:
    with site.database.reading() as conn:
        return conn.scalar(select(func.count()).select_from(schema.outgoing_uploads))


def test_an_upload_url_is_forgotten_once_the_target_holds_the_file(site_a, server_factory):
    """A URL left by an interrupted run goes when the importer answers the file's entity
    `complete`, even if the bytes arrived another way (here: through another target name
    for the same importer), so the table does not keep URLs that can serve no more."""
    generated = fill(site_a, large_bytes=1024 * 1024, cameras=1, events_per_camera=0,
                     standalone_per_camera=0)
    b = server_factory("b", users=USERS)
    target(site_a, b.import_url, name="b1")
    assert Syncer(site_a, SMALL).run(["b1"]).ok
    (large,) = [f for f in generated.files if f.file_size == 1024 * 1024]
    urls = UploadUrls(site_a.database)
    urls.remember("b2", large.file_id, large.md5, b.import_url + "/uploads/" + "0" * 32)
    target(site_a, b.import_url, name="b2")
    report = Syncer(site_a, SMALL).run(["b2"])
    assert report.ok and report.total("already_present") == 1
    assert remembered_urls(site_a) == 0


def test_an_upload_the_importer_refuses_forgets_its_url(site_a, server_factory):
    """Bytes whose MD5 is not the record's (the exporter's copy went bad on its disk): the
    importer refuses the upload at its last byte, the file's entity fails with that reason,
    and the URL is not kept for a next run to resume something that can never finish."""
    generated = fill(site_a, large_bytes=1024 * 1024, cameras=1, events_per_camera=0,
                     standalone_per_camera=0)
    (large,) = [f for f in generated.files if f.file_size == 1024 * 1024]
    sha256 = site_a.archive.blob_names([large.file_id])[large.file_id]
    path = site_a.archive.blobs.open(sha256).name
    with open(path, "r+b") as spoiled:
        spoiled.write(b"\0" * 16)
    b = server_factory("b", users=USERS)
    target(site_a, b.import_url)
    report = Syncer(site_a, SMALL).run()
    assert (report.total("failed"), report.total("sent")) == (1, 0)
    entry = ExportQueue(site_a.database).entry(1, "file", large.file_id)
    assert entry["state"] == "failed" and "MD5" in entry["last_error"], entry
    assert remembered_urls(site_a) == 0


def test_an_importer_killed_mid_page_keeps_what_it_answered_complete(site_a, server_factory):
    """One page of 41 entities, cut by the importer's max_batch into batches of 10, the
    large file last: the importer is killed (SIGKILL) during its upload. Every entity it
    had answered `complete` is done in the exporter's queue, the next run does not send
    them again, and only the rest goes."""
    generated = fill(site_a, large_bytes=4 * 1024 * 1024, cameras=1, events_per_camera=40,
                     files_per_event=1, standalone_per_camera=0)
    b = server_factory("b", users=USERS, settings={"importer.max_batch": 10},
                       port=free_port())          # the same address after its restart
    target(site_a, b.import_url, bwlimit=512 * 1024)
    settings = sync_settings(timeout_s=5, backoff_base_s=0.01, batch_size=200,
                             small_file_bytes=256 * 1024, upload_chunk_bytes=64 * 1024)
    finished = {}
    syncing = threading.Thread(target=lambda: finished.update(
        report=Syncer(site_a, settings).run()))
    syncing.start()
    wait_for_partial_file(b, syncing)
    os.killpg(b.process.pid, signal.SIGKILL)
    syncing.join(60)
    first = finished["report"]
    assert not first.ok and first.targets[0].deferred >= 1
    stored = b.counts()["events"]
    assert stored == 40
    counts = ExportQueue(site_a.database).counts(1)
    assert counts["done"] == stored and counts["pending"] == 1, counts
    b.start()
    time.sleep(0.02)                    # past the target's backoff
    again = Syncer(site_a, settings).run()
    assert again.ok, again.targets[0].problem
    assert (again.total("sent"), again.total("already_present")) == (1, 0)
    assert verify(b.url, b.auth("exporter"), generated).problems == []
