"""model.archive.bulk_import: the ready entities of a batch stored together, the others left out."""

import io
import threading

import pytest
from sqlalchemy import insert

from tests.importer_fixtures import event_json, file_json, md5_of, new_id, status_json
from tests.site_kit import open_test_site
from model.archive.bulk_import import store_ready
from model.protocol.entities import Event, FileRecord, Status
from model.store import schema


def staged_event(site, status_id, n_files=2, **extra):
    files = []
    for _ in range(n_files):
        data = new_id().encode() * 10
        record = file_json(status_id, data)
        assert site.archive.stage_bytes(record["file_id"], md5_of(data), io.BytesIO(data)).received
        files.append(record)
    return Event.from_json(event_json(status_id, files, **extra))


@pytest.fixture
def status(site):
    held = Status.from_json(status_json())
    site.archive.add_status(held)
    return held


def test_ready_entities_are_stored_the_others_left_out(site, status):
    ready = [staged_event(site, status.status_id) for _ in range(3)]
    lone_bytes = b"standalone bytes"
    lone = FileRecord.from_json(file_json(status.status_id, lone_bytes))
    site.archive.stage_bytes(lone.file_id, md5_of(lone_bytes), io.BytesIO(lone_bytes))
    no_status = staged_event(site, new_id())
    no_bytes = Event.from_json(event_json(status.status_id, [file_json(status.status_id,
                                                                       b"never sent")]))
    held = staged_event(site, status.status_id)
    site.archive.import_event(held)
    before = site.archive.counts()
    stored = store_ready(site.archive, [*ready, lone, no_status, no_bytes, held])
    assert stored == {("event", e.event_id) for e in ready} | {("file", lone.file_id)}
    for event in ready:
        assert site.archive.get_event(event.event_id) == event
    assert site.archive.get_file(lone.file_id) == lone
    assert not site.archive.has_event(no_status.event_id)
    assert not site.archive.has_event(no_bytes.event_id)
    after = site.archive.counts()
    assert after["events"] == before["events"] + 3
    assert after["files"] == before["files"] + 7
    assert after["staged"] == before["staged"] - 7


def test_first_come_first_served_within_a_batch(sqlite_site):
    status = Status.from_json(status_json())
    sqlite_site.archive.add_status(status)
    first = staged_event(sqlite_site, status.status_id)
    same_again = Event.from_json(first.to_json())
    thief = Event.from_json(event_json(status.status_id, [first.files[0].to_json()]))
    lone_twin = first.files[1]      # the same file ID as a standalone record
    stored = store_ready(sqlite_site.archive, [first, same_again, thief, lone_twin])
    assert stored == {("event", first.event_id)}
    assert not sqlite_site.archive.has_event(thief.event_id)
    assert store_ready(sqlite_site.archive, []) == set()


@pytest.fixture
def pg_site(pg_cluster, tmp_path):
    opened = open_test_site(pg_cluster.url(pg_cluster.new_database(pg_cluster.template)),
                       tmp_path / "blobs")
    yield opened
    opened.close()


def test_a_concurrent_writer_makes_the_bulk_store_back_off(pg_site):
    """PostgreSQL (SQLite serialises writers at BEGIN IMMEDIATE, so there is no such race):
    another transaction inserts one of the IDs first; the bulk insert fails on the unique
    key and keeps nothing, so every entity takes the one-by-one path."""
    site, status = pg_site, Status.from_json(status_json())
    site.archive.add_status(status)
    events = [staged_event(site, status.status_id, n_files=0) for _ in range(3)]
    outcome = {}
    with site.database.engine.connect() as other:
        transaction = other.begin()
        other.execute(insert(schema.events).values(
            event_id=events[1].event_id, camera_id="cam1", status_id=status.status_id,
            event_time=1, event_type="meteorpi:x", body="{}", content_hash="0" * 64,
            created_ms=1))
        worker = threading.Thread(
            target=lambda: outcome.setdefault("stored", store_ready(site.archive, events)))
        worker.start()
        worker.join(1.0)            # it waits on the uncommitted row's unique key
        transaction.commit()
    worker.join(10)
    assert outcome["stored"] == set()
    assert not site.archive.has_event(events[0].event_id)
    assert site.archive.import_event(events[0]).outcome.value == "stored"
