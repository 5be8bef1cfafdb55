"""Lost races in the archive, forced one step at a time on PostgreSQL (`model.archive.races`):
another transaction holds uncommitted rows that the import under test is about to insert;
the test waits until that import waits on them, then lets the other one commit. The import
decides again on what is held then: HELD for the same entity, CONFLICT for a file record held
by another one; never an exception. (SQLite serialises writers from BEGIN IMMEDIATE, so
nothing can come between a check and its insert there.) Last, what happens when every
attempt loses, on both databases."""

import hashlib
import io
import threading
import time

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError

from model.archive.archive import Outcome
from model.archive.races import RACE_ATTEMPTS, deciding_again
from model.archive.rows import entity_rows, insert_rows
from model.protocol.entities import Event, Status
from model.store import schema
from model.store.database import DatabaseBusy
from tests.importer_fixtures import event_json, file_json, md5_of, new_id, status_json
from tests.site_kit import open_test_site

WAIT_S = 10


@pytest.fixture
def pg_site(pg_cluster, tmp_path):
    opened = open_test_site(pg_cluster.url(pg_cluster.new_database(pg_cluster.template)),
                            tmp_path / "blobs")
    status = Status.from_json(status_json())
    opened.archive.add_status(status)
    opened.status = status
    yield opened
    opened.close()


def staged_event(site, files=None):
    """An event of two new files (or of the file records `files`) whose bytes are staged,
    and {(file_id, md5): sha256} of those bytes (what its rows name)."""
    present, records = {}, []
    for record in files or [None, None]:
        if record is None:
            data = new_id().encode() * 10
            record = file_json(site.status.status_id, data)
            assert site.archive.stage_bytes(record["file_id"], md5_of(data),
                                            io.BytesIO(data)).received
            present[(record["file_id"], md5_of(data))] = hashlib.sha256(data).hexdigest()
        records.append(record)
    return Event.from_json(event_json(site.status.status_id, records)), present


def insert_uncommitted(connection, event: Event, present: dict) -> None:
    """The rows `Archive.import_event` writes for `event`, in the caller's open transaction."""
    insert_rows(connection, *entity_rows(event, event.files, present))


def wait_until_blocked(site, outcome: dict) -> None:
    """Until some connection of this database waits for a row lock (the import under test
    is stuck on the other transaction's uncommitted key)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and not outcome:
        # A connection of its own each time: a transaction sees one snapshot of the view.
        with site.database.engine.connect() as conn:
            waiting = conn.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"))
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError(f"the import never waited for the other transaction: {outcome}")


def in_thread(work) -> tuple[threading.Thread, dict]:
    outcome = {}

    def run():
        try:
            outcome["result"] = work()
        except Exception as exc:  # noqa: BLE001 - the test asserts there was none
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def losing_to(pg_site, winner_event, present, loser) -> dict:
    """Run `loser` (an import) while another transaction holds `winner_event` uncommitted;
    once `loser` waits for it, the other commits. The loser's outcome: "result" or "error"."""
    with pg_site.database.engine.connect() as other:
        winner = other.begin()
        insert_uncommitted(other, winner_event, present)
        thread, outcome = in_thread(loser)
        wait_until_blocked(pg_site, outcome)
        winner.commit()
    thread.join(WAIT_S)
    return outcome


def test_the_same_event_committed_first_by_another_process_is_held(pg_site):
    event, present = staged_event(pg_site)
    outcome = losing_to(pg_site, event, present, lambda: pg_site.archive.import_event(event))
    assert "error" not in outcome, outcome
    assert outcome["result"].outcome is Outcome.HELD
    assert pg_site.archive.get_event(event.event_id) == event
    assert pg_site.archive.counts()["events"] == 1


def test_a_file_record_committed_first_as_another_events_is_a_conflict(pg_site):
    """A different event ID claiming the same file ID: the existing rule (the held version
    is kept; the routes answer `failed`, naming the file), not an IntegrityError."""
    winner_event, present = staged_event(pg_site)
    loser = Event.from_json(event_json(pg_site.status.status_id,
                                       [r.to_json() for r in winner_event.files]))
    outcome = losing_to(pg_site, winner_event, present,
                        lambda: pg_site.archive.import_event(loser))
    assert "error" not in outcome, outcome
    assert outcome["result"].outcome is Outcome.CONFLICT
    assert outcome["result"].held_hash == winner_event.files[0].content_hash
    assert not pg_site.archive.has_event(loser.event_id)
    assert pg_site.archive.counts()["files"] == 2


def test_a_deadlock_with_another_import_of_the_same_events_is_decided_again(pg_site):
    """A bundle stores E1 then E2; the other transaction holds E2 and then asks for E1: a
    deadlock, and PostgreSQL cancels the bundle's transaction (it waited first). The bundle
    is decided again: both events held, nothing raised, every row once."""
    first, first_present = staged_event(pg_site)
    second, second_present = staged_event(pg_site)
    with pg_site.database.engine.connect() as other:
        winner = other.begin()
        insert_uncommitted(other, second, second_present)
        thread, outcome = in_thread(lambda: pg_site.archive.import_bundle([], [],
                                                                          [first, second]))
        wait_until_blocked(pg_site, outcome)
        insert_uncommitted(other, first, first_present)   # waits until the bundle is cancelled
        winner.commit()
    thread.join(WAIT_S)
    assert "error" not in outcome, outcome
    assert [r.result.outcome for r in outcome["result"]] == [Outcome.HELD, Outcome.HELD]
    assert pg_site.archive.counts()["events"] == 2 and pg_site.archive.counts()["files"] == 4


def test_losing_every_attempt_is_busy_and_a_fault_is_no_race(site):
    """SQLite and PostgreSQL: a store that loses its race every time is tried RACE_ATTEMPTS
    times, then answered as busy (503, retry shortly), never a 500; an error no concurrent
    writer can cause (here a NOT NULL violation) is raised at once, not retried."""
    status = Status.from_json(status_json())
    site.archive.add_status(status)
    attempts = []

    def insert_status(status_id: str, camera_id: str | None = "cam1"):
        attempts.append(status_id)
        with site.database.transaction() as tx:
            tx.execute(insert(schema.statuses).values(
                status_id=status_id, camera_id=camera_id, valid_from=1, valid_to=None,
                body="{}", content_hash="0" * 64, created_ms=1))

    with pytest.raises(DatabaseBusy, match="lost 3 races in a row"):
        deciding_again(lambda: insert_status(status.status_id), "status")
    assert len(attempts) == RACE_ATTEMPTS == 3
    attempts.clear()
    with pytest.raises(IntegrityError):
        deciding_again(lambda: insert_status(new_id(), camera_id=None), "status")
    assert len(attempts) == 1
    assert site.archive.counts()["statuses"] == 1
