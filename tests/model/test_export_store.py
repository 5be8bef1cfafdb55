"""Export targets, the export queue and sync locks, on SQLite and PostgreSQL."""

import socket
import subprocess
import sys

import pytest
from sqlalchemy import select, update

from tests.site_kit import open_test_site
from exporter.retry import RetryPolicy
from model.archive.sample import SampleWriter
from model.export.locks import LockHeld, LockLost, SyncLocks
from model.export.queue import DONE, FAILED, ExportQueue
from model.export.targets import (DuplicateTarget, MASK, TargetError, Targets, UnknownTarget,
                           make_filter)
from model.protocol.entities import canonical_json
from model.store import schema
from model.store.database import now_ms

PASSWORD = "pa55-word-never-shown"


@pytest.fixture
def filled(site):
    """A site with 2 cameras × 3 events (1 file each) and 1 standalone file per camera."""
    generated = SampleWriter(site.archive, seed=7).fill(
        cameras=2, events_per_camera=3, files_per_event=1, standalone_per_camera=1)
    return site, generated


def add_target(site, name="b", **filters):
    return Targets(site.database).add(name, "http://127.0.0.1:9/import", "imp", PASSWORD,
                                      filter=make_filter(**filters))


def test_target_round_trip_never_shows_the_password(site):
    targets = Targets(site.database)
    added = add_target(site, camera_ids=["cam000"], event_types=["meteor"],
                       after="2025-01-01", before=1_800_000_000_000)
    assert added == targets.get("b") and targets.list() == [added]
    assert added.filter.event_types == ("meteorpi:meteor",)
    assert added.filter.after_ms == 1_735_689_600_000
    assert added.password.reveal() == PASSWORD
    for shown in (repr(added), str(added), str(added.to_json())):
        assert PASSWORD not in shown
    assert MASK in repr(added)


def test_duplicate_and_unknown_targets_are_refused(site):
    targets = Targets(site.database)
    add_target(site)
    with pytest.raises(DuplicateTarget):
        add_target(site)
    for call in (lambda: targets.get("nope"), lambda: targets.remove("nope"),
                 lambda: targets.change("nope", enabled=False)):
        with pytest.raises(UnknownTarget):
            call()
    assert [t.name for t in targets.list()] == ["b"]


def back_off(targets, target, policy, message):
    """Record a target failure as the sync does: the policy decides, the model records."""
    failures = target.failures + 1
    targets.record_failure(target.target_id, failures, message,
                           policy.target_retry_at(failures, 0.0, now_ms()))
    return targets.get(target.name)


def test_change_clears_backoff_and_auth_block(site):
    targets = Targets(site.database)
    target = add_target(site)
    target = back_off(targets, target, RetryPolicy(base_s=10, max_s=100), "down")
    targets.record_auth_failure(target.target_id, "401")
    blocked = targets.get("b")
    assert blocked.auth_failed and blocked.failures == 1 and blocked.next_attempt_ms > 0
    changed = targets.change("b", password="another-password")
    assert not changed.auth_failed and changed.failures == 0 and changed.next_attempt_ms == 0
    assert changed.password.reveal() == "another-password"


def test_backoff_doubles_up_to_the_maximum(site):
    targets = Targets(site.database)
    target = add_target(site)
    waits = []
    for _ in range(5):
        start = now_ms()
        target = back_off(targets, target, RetryPolicy(base_s=10, max_s=60), "down")
        waits.append(round((target.next_attempt_ms - start) / 1000))
    assert waits == [10, 20, 40, 60, 60]
    assert targets.get("b").failures == 5 and targets.get("b").last_error == "down"


def test_enqueue_is_an_anti_join_and_backfills_everything(filled):
    site, generated = filled
    queue, target = ExportQueue(site.database), add_target(site)
    assert queue.enqueue_new(target) == len(generated.events) + len(generated.files) == 8
    assert queue.enqueue_new(target) == 0
    # an entity that arrives later by any path (here: a second fill) is queued next time
    more = SampleWriter(site.archive, seed=8).fill(cameras=1, events_per_camera=1,
                                                   files_per_event=1, standalone_per_camera=0)
    assert queue.enqueue_new(target) == 1
    assert queue.entry(target.target_id, "event", more.events[0].event_id)["state"] == "pending"
    assert queue.counts(target.target_id) == {"pending": 9, "done": 0, "failed": 0, "due": 9}


@pytest.mark.parametrize("filters, expected", [
    ({"camera_ids": ["cam001"]}, 4),                       # 3 events + 1 file of cam001
    ({"event_types": ["meteorpi:meteor"]}, 2),             # first event of each camera only
    ({"after": 1_735_689_600_000 + 120_000}, 6),           # events 2, 3 of each + files
    ({"before": 1_735_689_600_000 + 120_000}, 2),          # event 1 of each camera
    ({"camera_ids": ["cam000"], "before": 1_735_689_600_000 + 120_000}, 1),
])
def test_target_filter_selects_what_is_queued(filled, filters, expected):
    site, _ = filled
    target = add_target(site, **filters)
    assert ExportQueue(site.database).enqueue_new(target) == expected


def test_claim_pages_through_the_queue_with_leases(filled):
    site, _ = filled
    queue, target = ExportQueue(site.database), add_target(site)
    queue.enqueue_new(target)
    first = queue.claim(target.target_id, 0, 3, lease_s=60)
    assert len(first) == 3 and all(item.body for item in first)
    assert first[0].body["event_id"] == first[0].entity_id
    stored = site.archive.get_event(first[0].entity_id).to_json()
    assert first[0].body.text == canonical_json(stored)      # sent on as stored
    # leased rows are not claimed again, not even from the start of the queue
    second = queue.claim(target.target_id, 0, 10, lease_s=60)
    assert len(second) == 5 and not {i.id for i in first} & {i.id for i in second}
    assert queue.claim(target.target_id, 0, 10, lease_s=60) == []
    queue.release_leases(target.target_id)
    assert len(queue.claim(target.target_id, 0, 10, lease_s=60)) == 8
    queue.mark_done(first[0].id)
    queue.mark_failed(first[1].id, "importer answered failed: nope",
                      next_attempt_ms=now_ms() + 3_600_000)
    queue.release_leases(target.target_id)
    assert len(queue.claim(target.target_id, 0, 10, lease_s=60)) == 6     # done and backed-off rows wait
    counts = queue.counts(target.target_id)
    assert (counts[DONE], counts[FAILED], counts["due"]) == (1, 1, 6)
    failure = queue.failures(target.target_id)[0]
    assert failure.entity_id == first[1].entity_id and "nope" in failure.last_error
    assert failure.attempts == 1


@pytest.fixture
def pg_site(pg_cluster, tmp_path):
    """PostgreSQL only: SKIP LOCKED is PostgreSQL's (SQLite serialises writers instead)."""
    opened = open_test_site(pg_cluster.url(pg_cluster.new_database(pg_cluster.template)),
                       tmp_path / "blobs")
    yield opened
    opened.close()


def test_claim_skips_rows_locked_by_another_worker(pg_site):
    site = pg_site
    SampleWriter(site.archive, seed=7).fill(cameras=2, events_per_camera=3, files_per_event=1,
                                            standalone_per_camera=1)
    queue, target = ExportQueue(site.database), add_target(site)
    queue.enqueue_new(target)
    q = schema.export_queue.c
    with site.database.transaction() as other_worker:
        held = other_worker.execute(select(q.id).order_by(q.id).limit(3)
                                    .with_for_update()).scalars().all()
        claimed = queue.claim(target.target_id, 0, 100, lease_s=60)     # does not wait for other_worker
        assert len(claimed) == 5 and not set(held) & {item.id for item in claimed}


def test_removing_a_target_removes_its_queue_and_lock(filled):
    site, _ = filled
    queue, target = ExportQueue(site.database), add_target(site)
    queue.enqueue_new(target)
    SyncLocks(site.database).acquire(target.target_id, ttl_s=120)
    Targets(site.database).remove("b")
    with site.database.reading() as conn:
        for table in (schema.export_queue, schema.sync_locks):
            assert conn.execute(select(table)).all() == []


def test_sync_lock_excludes_a_second_holder_until_released(site):
    target = add_target(site)
    locks = SyncLocks(site.database)
    lock = locks.acquire(target.target_id, ttl_s=60)
    with pytest.raises(LockHeld) as held:
        locks.acquire(target.target_id, ttl_s=60)
    assert lock.holder in str(held.value)
    locks.heartbeat(lock)
    locks.release(lock)
    locks.release(locks.acquire(target.target_id, ttl_s=60))


def test_an_expired_lock_is_taken_over_and_the_old_holder_notices(site):
    target = add_target(site)
    locks = SyncLocks(site.database)
    stale = locks.acquire(target.target_id, ttl_s=60)
    with site.database.transaction() as tx:
        tx.execute(update(schema.sync_locks).values(expires_ms=0, holder="1@elsewhere"))
    fresh = locks.acquire(target.target_id, ttl_s=60)
    assert fresh.token != stale.token
    with pytest.raises(LockLost):
        locks.heartbeat(stale)


def test_a_lock_of_a_dead_process_on_this_machine_is_taken_over_at_once(site):
    target = add_target(site)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    locks = SyncLocks(site.database)
    lock = locks.acquire(target.target_id, ttl_s=3600)
    with site.database.transaction() as tx:
        tx.execute(update(schema.sync_locks).values(holder=f"{dead}@{socket.gethostname()}"))
    assert locks.acquire(target.target_id, ttl_s=3600).token != lock.token


@pytest.mark.parametrize("call, message", [
    (lambda t: t.add("bad name", "http://h/import", "u", "p"), "target name"),
    (lambda t: t.add("x", "ftp://h/import", "u", "p"), "http://"),
    (lambda t: t.add("x", "http://u:pw@h/import", "u", "p"), "no user or password in the URL"),
    (lambda t: t.add("x", "http://h:99999/import", "u", "p"), "port"),
    (lambda t: t.add("x", "http://h/import", "", "p"), "user"),
    (lambda t: t.add("x", "http://h/import", "u", ""), "password"),
    (lambda t: t.add("x", "http://h/import", "u", "p", protocol="v9"), "protocol"),
    (lambda t: t.add("x", "http://h/import", "u", "p", ca_bundle="/no/such.pem"), "ca_bundle"),
])
def test_bad_target_input_is_refused_and_nothing_is_stored(sqlite_site, call, message):
    targets = Targets(sqlite_site.database)
    with pytest.raises(TargetError) as refused:
        call(targets)
    assert message in str(refused.value)
    assert targets.list() == []
