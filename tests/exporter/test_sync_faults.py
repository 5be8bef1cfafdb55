"""A sync against real, misbehaving importers: every entity ends complete or failed with a
recorded reason within the step bound, target faults back off or block, the exit status says
so, and the password never appears in what the commands print or log."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.misbehaving import (Answer, Server, always, always_need_file_data, json_answer,
                               slow)
from tests.site_kit import open_test_site, sync_settings
from exporter.sync import Syncer
from model.archive.sample import SampleWriter
from model.export.locks import LockHeld, SyncLocks
from model.export.queue import ExportQueue
from model.export.targets import Targets
from model.store import schema

REPO = Path(__file__).parents[2]
PASSWORD = "Tr0ub4dor-never-printed"
FAST = sync_settings(timeout_s=2, max_steps=50, backoff_base_s=30, backoff_max_s=300)


@pytest.fixture
def filled(site):
    """On SQLite and PostgreSQL: the sync's queue and lock SQL runs on both."""
    SampleWriter(site.archive, seed=3).fill(cameras=1, events_per_camera=2,
                                            files_per_event=2, standalone_per_camera=1)
    return site


def add(site, url, name="b"):
    """Version 1 targets: these importers misbehave at the handshake (with `auto` a sync also
    asks for capabilities first; test_sync_v2.py covers that)."""
    return Targets(site.database).add(name, url + "/import", "exporter", PASSWORD, "v1")


def entries(site, target):
    queue = ExportQueue(site.database)
    with site.database.reading() as conn:
        rows = conn.execute(select(schema.export_queue.c.kind, schema.export_queue.c.entity_id)
                            .where(schema.export_queue.c.target_id == target.target_id))
        return [queue.entry(target.target_id, kind, entity_id) for kind, entity_id in rows]


def test_an_importer_that_always_needs_file_data_fails_each_entity(filled):
    with Server(always_need_file_data) as server:
        target = add(filled, server.url)
        report = Syncer(filled, FAST).run()
    assert not report.ok and report.total("failed") == 3 and report.total("sent") == 0
    for entry in entries(filled, target):
        assert entry["state"] == "failed" and entry["attempts"] == 1
        assert "3 times in a row" in entry["last_error"]
    # per entity: entity, upload, cached, upload, cached → the third need fails it
    assert len(server.requests) == 3 * 5
    assert {r.headers["X-Trace-Id"] for r in server.requests} == {report.trace_id}


@pytest.mark.parametrize("answer, reason", [
    ((200, {"Content-Type": "text/plain"}, b"hello"), "not JSON"),
    (json_answer({"state": "maybe"}), "protocol: unexpected answer"),
    (json_answer(["complete"]), "protocol: unexpected answer"),
    (json_answer({"state": "failed", "message": "camera unknown here"}),
     "camera unknown here"),
    (json_answer({"state": "failed", "message": "event.md5: bad"}, 400), "event.md5: bad"),
])
def test_garbage_or_refusal_fails_the_entity_with_the_reason(filled, answer, reason):
    with Server(always(answer)) as server:
        target = add(filled, server.url)
        report = Syncer(filled, FAST).run()
    assert not report.ok and report.total("failed") == 3
    assert len(server.requests) == 3                # one request each: nothing to retry
    assert all(reason in e["last_error"] and e["state"] == "failed"
               for e in entries(filled, target))
    assert Targets(filled.database).get("b").failures == 0   # the entities' fault, not the target's


def test_500_backs_the_target_off_and_a_later_sync_waits(filled):
    answer = json_answer({"state": "failed", "message": "internal error"}, 500)
    with Server(always(answer)) as server:
        target = add(filled, server.url)
        report = Syncer(filled, FAST).run()
        # version 1: a 5xx may be one entity's, so 3 (MAX_ENTITY_5XX) entities are tried
        assert not report.ok and len(server.requests) == 3
        assert "500" in report.targets[0].problem and "backing off 30 s" in \
            report.targets[0].problem
        assert report.targets[0].deferred == 3
        held = Targets(filled.database).get("b")
        assert held.failures == 1 and "500" in held.last_error
        assert any("500" in (e["last_error"] or "") for e in entries(filled, target))
        again = Syncer(filled, FAST).run()
        assert not again.ok and "backing off" in again.targets[0].problem
        assert len(server.requests) == 3            # the second run did not knock


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_blocks_the_target_until_it_is_changed(filled, status):
    answer = json_answer({"state": "failed", "message": "no"}, status)
    with Server(always(answer)) as server:
        add(filled, server.url)
        first = Syncer(filled, FAST).run()
        assert not first.ok and str(status) in first.targets[0].problem
        assert Targets(filled.database).get("b").auth_failed
        blocked = Syncer(filled, FAST).run()
        assert "blocked" in blocked.targets[0].problem and len(server.requests) == 1
        server.answer = always(json_answer({"state": "complete"}))
        Targets(filled.database).change("b", password="a-new-password")
        fixed = Syncer(filled, FAST).run()
    assert fixed.ok and fixed.total("already_present") == 3


def test_a_target_held_by_another_sync_is_skipped_not_failed(filled):
    with Server(always(json_answer({"state": "complete"}))) as server:
        target = add(filled, server.url)
        lock = SyncLocks(filled.database).acquire(target.target_id, ttl_s=120)
        report = Syncer(filled, FAST).run()
        assert report.ok and report.targets[0].busy and server.requests == []
        SyncLocks(filled.database).release(lock)
        assert Syncer(filled, FAST).run().total("already_present") == 3


def test_disabled_and_v2_targets_are_not_synced(filled):
    with Server(always(json_answer({"state": "complete"}))) as server:
        add(filled, server.url)
        Targets(filled.database).change("b", enabled=False)
        assert Syncer(filled, FAST).run().targets == []          # all: only enabled ones
        named = Syncer(filled, FAST).run(["b"])
        assert not named.ok and "disabled" in named.targets[0].problem
        assert server.requests == []
        Targets(filled.database).change("b", enabled=True, protocol="v2")
        v2 = Syncer(filled, FAST).run()
        assert not v2.ok and "version 1 only" in v2.targets[0].problem
    # Only capabilities, once per lane (the second lane logs in while the first asks).
    assert [(r.method, r.path) for r in server.requests] == [("GET", "/import/capabilities")] * 2


# -- the command, as a subprocess: exit status, output and logs ----------------------------

def skyrelay(folder: Path, *args, stdin: str = "", env: dict | None = None):
    return subprocess.run([sys.executable, "-m", "skyrelay", "--config",
                           str(folder / "config.yaml"), *args], input=stdin, text=True,
                          capture_output=True, timeout=60, cwd=folder,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


@pytest.fixture
def cli_site(tmp_path):
    (tmp_path / "config.yaml").write_text(
        "exporter: {timeout_s: 2, backoff_base_s: 1}\n")
    site = open_test_site(f"sqlite:///{tmp_path}/var/skyrelay.db", tmp_path / "var/blobs")
    SampleWriter(site.archive, seed=5).fill(cameras=1, events_per_camera=2, files_per_event=1,
                                            standalone_per_camera=0)
    site.close()
    return tmp_path


def test_sync_command_exits_non_zero_and_never_shows_the_password(cli_site):
    with Server(always_need_file_data) as server:
        added = skyrelay(cli_site, "target", "add", "b", "--url", server.url + "/import",
                         "--user", "exporter", "--password-stdin", stdin=PASSWORD + "\n")
        assert added.returncode == 0, added.stderr
        assert "2 entities queued" in added.stdout
        synced = skyrelay(cli_site, "sync", "--no-progress")
        assert synced.returncode == 1
        assert "failed 2" in synced.stdout and "trace " in synced.stdout
        assert "3 times in a row" in synced.stderr      # the log line says why
        shown = [skyrelay(cli_site, "target", "list"), skyrelay(cli_site, "target", "show", "b")]
    assert "3 times in a row" in shown[1].stdout
    for result in [added, synced, *shown]:
        assert PASSWORD not in result.stdout + result.stderr
    sent = b"".join(r.body + json.dumps(r.headers).encode() for r in server.requests)
    assert PASSWORD.encode() not in sent               # Basic auth is base64, never plain
    trace = synced.stdout.strip().rsplit(" ", 1)[-1]
    assert {r.headers["X-Trace-Id"] for r in server.requests} == {trace}


def test_the_lock_is_renewed_while_a_slow_sync_runs(sqlite_site):
    SampleWriter(sqlite_site.archive, seed=9).fill(cameras=1, events_per_camera=4,
                                                   files_per_event=1, standalone_per_camera=0)
    settings = sync_settings(timeout_s=5, lock_ttl_s=1.2)        # renewed every 0.4 s
    with Server(slow(0.5, json_answer({"state": "complete"}))) as server:
        target = add(sqlite_site, server.url)
        result = {}
        worker = threading.Thread(target=lambda: result.update(
            report=Syncer(sqlite_site, settings).run()))
        worker.start()
        time.sleep(1.6)                                         # past one lock lifetime
        with pytest.raises(LockHeld):
            SyncLocks(sqlite_site.database).acquire(target.target_id, ttl_s=1.2)
        worker.join(30)
    assert result["report"].ok and result["report"].total("already_present") == 4


def test_a_sync_whose_lock_was_taken_over_stops(sqlite_site):
    SampleWriter(sqlite_site.archive, seed=9).fill(cameras=1, events_per_camera=6,
                                                   files_per_event=1, standalone_per_camera=0)
    settings = sync_settings(timeout_s=5, lock_ttl_s=1.2)
    with Server(slow(0.3, json_answer({"state": "complete"}))) as server:
        target = add(sqlite_site, server.url)
        result = {}
        worker = threading.Thread(target=lambda: result.update(
            report=Syncer(sqlite_site, settings).run()))
        worker.start()
        time.sleep(0.5)
        with sqlite_site.database.transaction() as tx:          # another holder's lock now
            tx.execute(update(schema.sync_locks).values(token="f" * 32, holder="1@elsewhere"))
        worker.join(30)
    report = result["report"]
    assert not report.ok and "taken over" in report.targets[0].problem
    assert report.total("already_present") < 6


def version_2_until(good_batches: int, fault: Answer):
    """A version 2 importer that answers `complete` to everything in its first
    `good_batches` batch requests with entities, and `fault` from then on (a batch of
    statuses alone is always complete)."""
    batches = []

    def respond(request):
        if request.path.endswith("/capabilities"):
            return json_answer({"protocol": [1, 2], "max_batch": 500, "uploads": "/u",
                                "max_body_bytes": 1 << 24, "max_file_bytes": 1 << 30})
        body = json.loads(request.body)
        if body.get("files") or body.get("events"):
            batches.append(request)
            if len(batches) > good_batches:
                return fault
        return json_answer({"results": [
            {"type": kind, "id": entity[f"{kind}_id"], "state": "complete"}
            for key, kind in (("statuses", "status"), ("files", "file"), ("events", "event"))
            for entity in body.get(key, [])]})
    return respond


def test_a_fault_with_two_pages_in_flight_backs_off_once_and_keeps_what_arrived(site):
    """Version 2 sends two pages at once: when one meets a 500, the other ends first; what
    it delivered is done, the rest is deferred, and the target's failure counts once."""
    SampleWriter(site.archive, seed=4).fill(cameras=1, events_per_camera=10,
                                            files_per_event=0, standalone_per_camera=0)
    fault = json_answer({"state": "failed", "message": "internal error"}, 500)
    with Server(version_2_until(2, fault)) as server:
        target = Targets(site.database).add("b", server.url + "/import", "exporter",
                                            PASSWORD, "v2")
        settings = sync_settings(timeout_s=2, backoff_base_s=30, page_size=2, batch_size=2)
        report = Syncer(site, settings).run()
        line = report.targets[0]
        assert not report.ok and "500" in line.problem and "backing off 30 s" in line.problem
        assert (line.already_present, line.deferred) == (4, 6)   # complete at the first answer
        assert Targets(site.database).get("b").failures == 1
        states = sorted(e["state"] for e in entries(site, target))
        assert states == ["done"] * 4 + ["pending"] * 6


def test_batches_answered_complete_stay_done_when_a_later_batch_of_the_page_fails(site):
    """One page cut into several batches (the importer's max_batch is smaller than the
    page): the batches answered `complete` before a 500 are done at once, whatever happens
    to the page's later requests; only the rest waits for the next run."""
    SampleWriter(site.archive, seed=4).fill(cameras=1, events_per_camera=10,
                                            files_per_event=0, standalone_per_camera=0)
    fault = json_answer({"state": "failed", "message": "internal error"}, 500)
    respond = version_2_until(2, fault)

    def max_batch_2(request):
        if request.path.endswith("/capabilities"):
            return json_answer({"protocol": [1, 2], "max_batch": 2, "uploads": "/u",
                                "max_body_bytes": 1 << 24, "max_file_bytes": 1 << 30})
        return respond(request)

    with Server(max_batch_2) as server:
        target = Targets(site.database).add("b", server.url + "/import", "exporter",
                                            PASSWORD, "v2")
        settings = sync_settings(timeout_s=2, backoff_base_s=30, batch_size=10)
        report = Syncer(site, settings).run()
    line = report.targets[0]
    assert not report.ok and "500" in line.problem
    assert (line.already_present, line.failed, line.deferred) == (4, 0, 6)
    states = sorted(e["state"] for e in entries(site, target))
    assert states == ["done"] * 4 + ["pending"] * 6
