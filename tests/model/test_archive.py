"""The Archive on SQLite and on a real PostgreSQL server (the `site` fixture runs each test on
both; a test marked `blob_backends`, one whose blobs matter, also on PostgreSQL with the blobs
in S3): storing, staging, dedup, deletion order, crash safety, gc, concurrent imports.

Faults are injected at real seams (a statement the database is about to run, the step between
two real operations); the database and the blob folder stay real.
"""

import copy
import hashlib
import io
import os
import threading
import uuid
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event as sa_event, func, select

from tests import strategies
from tests.meteorpi import BODIES, FILE_BYTES
from tests.site_kit import advance_clock, open_test_site, temp_folder
from model.archive.archive import MissingData, MissingStatus, Outcome
from model.protocol.entities import Event, FileRecord, Status, content_hash
from model.store import schema
from model.store.blobs import TooLarge

STATUS = Status.from_json(BODIES["status"]["status"])
EVENT = Event.from_json(BODIES["event"]["event"])
FILE = FileRecord.from_json(BODIES["file"]["file"])  # same bytes as EVENT.files[0]
HOUR = 3600


class InjectedFault(Exception):
    """Stands for a crash or a failing disk at the point where it is raised."""


@contextmanager
def failing(database, statement_start: str):
    """Make the next statements starting with `statement_start` fail inside the database
    driver call, as a lost connection or a full disk would."""
    def fail(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith(statement_start):
            raise InjectedFault(statement_start)
    sa_event.listen(database.engine, "before_cursor_execute", fail)
    try:
        yield
    finally:
        sa_event.remove(database.engine, "before_cursor_execute", fail)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def stage(archive, record: FileRecord, data: bytes | None = None) -> None:
    data = FILE_BYTES[record.file_id] if data is None else data
    assert archive.stage_bytes(record.file_id, record.md5, io.BytesIO(data)).received


def files_on_disk(archive) -> set[str]:
    return {sha for sha, _mtime in archive.blobs.list()}


def temporaries(archive) -> list:
    return list(temp_folder(archive.blobs).iterdir())


def meta_rows(site) -> int:
    with site.database.reading() as conn:
        return conn.scalar(select(func.count()).select_from(schema.meta))


def nothing_stored(archive) -> bool:
    return set(archive.counts().values()) == {0} and not files_on_disk(archive)


def store_sample_event(archive) -> None:
    archive.add_status(STATUS)
    for record in EVENT.files:
        stage(archive, record)
    assert archive.import_event(EVENT).outcome is Outcome.STORED


def renamed(event_body: dict, event_id: str, file_ids: list[str]) -> Event:
    body = copy.deepcopy(event_body)
    body["event_id"] = event_id
    for record, file_id in zip(body["files"], file_ids):
        record["file_id"] = file_id
    return Event.from_json(body)


# -- statuses -------------------------------------------------------------------------------

def test_add_and_get_status(site):
    archive = site.archive
    assert not archive.has_status(STATUS.status_id)
    assert archive.get_status(STATUS.status_id) is None
    assert archive.add_status(STATUS).outcome is Outcome.STORED
    assert archive.has_status(STATUS.status_id)
    assert archive.get_status(STATUS.status_id) == STATUS
    assert archive.get_status(STATUS.status_id).to_json() == BODIES["status"]["status"]
    assert archive.held_hash("status", STATUS.status_id) == content_hash(STATUS.to_json())


def test_status_resend_is_held_and_other_content_is_a_conflict(site):
    archive = site.archive
    archive.add_status(STATUS)
    assert archive.add_status(Status.from_json(BODIES["status"]["status"])).outcome \
        is Outcome.HELD
    other = Status.from_json(dict(BODIES["status"]["status"], lens="other lens"))
    result = archive.add_status(other)
    assert result.outcome is Outcome.CONFLICT
    assert result.held_hash == content_hash(STATUS.to_json())
    assert result.new_hash == content_hash(other.to_json())
    assert archive.get_status(STATUS.status_id) == STATUS, "the held version is kept"


# -- staging and importing ------------------------------------------------------------------

@pytest.mark.blob_backends
def test_stage_and_import_a_standalone_file(site):
    archive = site.archive
    archive.add_status(STATUS)
    assert archive.missing_data([FILE]) == [FILE.file_id]
    assert not archive.has_data(FILE.file_id, FILE.md5)
    stage(archive, FILE)
    assert archive.has_data(FILE.file_id, FILE.md5)
    assert not archive.has_data(FILE.file_id, "0" * 32), "present means this id AND this md5"
    assert archive.missing_data([FILE]) == []
    assert archive.import_file(FILE).outcome is Outcome.STORED
    assert archive.get_file(FILE.file_id) == FILE
    assert archive.counts() == {"statuses": 1, "events": 0, "files": 1, "blobs": 1, "staged": 0}
    stream, record = archive.open_data(FILE.file_id)
    with stream:
        assert stream.read() == FILE_BYTES[FILE.file_id]
    assert record == FILE
    assert archive.has_data(FILE.file_id, FILE.md5), "stored bytes still count as present"
    assert archive.import_file(FILE).outcome is Outcome.HELD


@pytest.mark.blob_backends
def test_stage_and_import_an_event(site):
    archive = site.archive
    store_sample_event(archive)
    assert archive.has_event(EVENT.event_id)
    assert archive.get_event(EVENT.event_id).to_json() == BODIES["event"]["event"]
    assert all(archive.has_file(record.file_id) for record in EVENT.files)
    assert archive.get_file(EVENT.files[1].file_id) == EVENT.files[1]
    assert meta_rows(site) == 1 + 3 + 3
    assert archive.counts() == {"statuses": 1, "events": 1, "files": 2, "blobs": 2, "staged": 0}


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_valid_event_is_stored_and_read_back_unchanged(site, data):
    """Whatever the codec accepts, each database stores (no 500 from odd text or numbers)."""
    archive = site.archive
    drawn, drawn_bytes = data.draw(strategies.event_with_bytes())
    # The site lives across examples: fresh IDs keep each example a new entity.
    status_id = uuid.uuid4().hex
    event_body = dict(drawn, event_id=uuid.uuid4().hex, status_id=status_id, files=[
        dict(record, file_id=uuid.uuid4().hex, status_id=status_id) for record in drawn["files"]])
    file_bytes = {new["file_id"]: drawn_bytes[old["file_id"]]
                  for new, old in zip(event_body["files"], drawn["files"])}
    status_body = data.draw(strategies.status_json(camera_id=event_body["camera_id"],
                                                   status_id=status_id))
    assert archive.add_status(Status.from_json(status_body)).outcome is Outcome.STORED
    event = Event.from_json(event_body)
    for record in event.files:
        stage(archive, record, file_bytes[record.file_id])
    assert archive.import_event(event).outcome is Outcome.STORED
    assert archive.get_event(event.event_id).to_json() == event_body
    assert archive.get_status(status_body["status_id"]).to_json() == status_body
    for record in event.files:
        stream, stored = archive.open_data(record.file_id)
        with stream:
            assert stream.read() == file_bytes[record.file_id]
        assert stored == record


def test_event_with_no_files_and_no_meta(site):
    archive = site.archive
    archive.add_status(STATUS)
    empty = Event.from_json(dict(BODIES["event"]["event"], files=[], meta=[]))
    assert archive.import_event(empty).outcome is Outcome.STORED
    assert archive.get_event(empty.event_id) == empty


def test_event_resend_is_held_and_other_content_is_a_conflict(site):
    archive = site.archive
    store_sample_event(archive)
    assert archive.import_event(Event.from_json(BODIES["event"]["event"])).outcome \
        is Outcome.HELD
    other = Event.from_json(dict(BODIES["event"]["event"], event_type="meteorpi:plane"))
    result = archive.import_event(other)
    assert result.outcome is Outcome.CONFLICT
    assert (result.held_hash, result.new_hash) == (content_hash(EVENT.to_json()),
                                                   content_hash(other.to_json()))
    assert archive.get_event(EVENT.event_id) == EVENT


def test_an_event_claiming_files_held_by_another_is_a_conflict(site):
    archive = site.archive
    store_sample_event(archive)
    thief = Event.from_json(dict(BODIES["event"]["event"], event_id="ab" * 16))
    assert archive.import_event(thief).outcome is Outcome.CONFLICT
    assert not archive.has_event(thief.event_id)


def test_status_is_asked_for_before_data_then_data_in_the_events_order(site):
    archive = site.archive
    with pytest.raises(MissingStatus) as missing:
        archive.import_event(EVENT)
    assert missing.value.status_id == EVENT.status_id
    archive.add_status(STATUS)
    with pytest.raises(MissingData) as missing:
        archive.import_event(EVENT)
    assert missing.value.file_ids == [EVENT.files[0].file_id, EVENT.files[1].file_id]
    stage(archive, EVENT.files[1])
    with pytest.raises(MissingData) as missing:
        archive.import_event(EVENT)
    assert missing.value.file_ids == [EVENT.files[0].file_id]
    assert archive.counts()["events"] == 0 and archive.counts()["staged"] == 1
    stage(archive, EVENT.files[0])
    assert archive.import_event(EVENT).outcome is Outcome.STORED


def test_a_file_records_own_status_must_be_held_too(site):
    archive = site.archive
    archive.add_status(STATUS)
    body = copy.deepcopy(BODIES["event"]["event"])
    body["files"][1]["status_id"] = "cd" * 16
    event = Event.from_json(body)
    for record in event.files:
        stage(archive, record)
    with pytest.raises(MissingStatus) as missing:
        archive.import_event(event)
    assert missing.value.status_id == "cd" * 16
    assert archive.counts()["events"] == 0
    archive.add_status(Status.from_json(dict(BODIES["status"]["status"], status_id="cd" * 16)))
    assert archive.import_event(event).outcome is Outcome.STORED


@pytest.mark.blob_backends
def test_bytes_with_the_wrong_md5_are_not_kept(site):
    archive = site.archive
    data = FILE_BYTES[FILE.file_id]
    result = archive.stage_bytes(FILE.file_id, "0" * 32, io.BytesIO(data))
    assert not result.received
    assert result.md5 == md5(data) and result.size == len(data)
    assert md5(data) in result.message and "0" * 32 in result.message
    assert nothing_stored(archive) and not temporaries(archive)
    assert not archive.has_data(FILE.file_id, "0" * 32)


@pytest.mark.blob_backends
def test_bytes_past_the_limit_are_not_kept(site):
    archive = site.archive
    with pytest.raises(TooLarge):
        archive.stage_bytes(FILE.file_id, FILE.md5, io.BytesIO(FILE_BYTES[FILE.file_id]),
                            limit=10)
    assert nothing_stored(archive) and not temporaries(archive)


@pytest.mark.blob_backends
def test_restaging_the_same_file_keeps_one_staged_row(site):
    archive = site.archive
    stage(archive, FILE)
    stage(archive, FILE)
    assert archive.counts()["staged"] == 1 and archive.counts()["blobs"] == 1


# -- dedup and deletion ---------------------------------------------------------------------

@pytest.mark.blob_backends
def test_identical_bytes_are_stored_once(site):
    archive = site.archive
    store_sample_event(archive)
    stage(archive, FILE)
    assert archive.import_file(FILE).outcome is Outcome.STORED
    assert FILE_BYTES[FILE.file_id] == FILE_BYTES[EVENT.files[0].file_id]
    assert archive.counts()["files"] == 3
    assert archive.counts()["blobs"] == 2, "three records, two distinct contents"
    assert len(files_on_disk(archive)) == 2
    for file_id in (FILE.file_id, EVENT.files[0].file_id):
        stream, _record = archive.open_data(file_id)
        with stream:
            assert stream.read() == FILE_BYTES[file_id]


@pytest.mark.blob_backends
def test_delete_removes_rows_then_unreferenced_blobs_only(site):
    archive = site.archive
    store_sample_event(archive)
    stage(archive, FILE)
    archive.import_file(FILE)
    shared = hashlib.sha256(FILE_BYTES[FILE.file_id]).hexdigest()
    own = hashlib.sha256(FILE_BYTES[EVENT.files[1].file_id]).hexdigest()

    assert not archive.delete_file(EVENT.files[0].file_id), "it goes with its event"
    assert archive.delete_event(EVENT.event_id)
    assert not archive.has_event(EVENT.event_id)
    assert not any(archive.has_file(r.file_id) for r in EVENT.files)
    assert meta_rows(site) == len(FILE.meta)
    assert files_on_disk(archive) == {shared}, "the blob FILE still uses is kept"
    assert archive.counts() == {"statuses": 1, "events": 0, "files": 1, "blobs": 1, "staged": 0}
    assert own not in files_on_disk(archive)

    assert archive.delete_file(FILE.file_id)
    assert archive.counts()["blobs"] == 0 and not files_on_disk(archive)
    assert meta_rows(site) == 0
    assert not archive.delete_event(EVENT.event_id) and not archive.delete_file(FILE.file_id)


@pytest.mark.blob_backends
def test_a_blob_staged_again_while_being_deleted_keeps_its_file(site, monkeypatch):
    """The last record using a blob is deleted; between its row delete and its file removal,
    another request stages the same bytes. The new staged row must not end up pointing at a
    removed file."""
    archive = site.archive
    archive.add_status(STATUS)
    stage(archive, FILE)
    archive.import_file(FILE)
    other = EVENT.files[0]  # same bytes, another file id
    remove_files = archive._remove_unclaimed_files

    def stage_then_remove(shas):
        stage(archive, other)
        return remove_files(shas)
    monkeypatch.setattr(archive, "_remove_unclaimed_files", stage_then_remove)
    assert archive.delete_file(FILE.file_id)
    assert archive.has_data(other.file_id, other.md5)
    assert hashlib.sha256(FILE_BYTES[FILE.file_id]).hexdigest() in files_on_disk(archive)
    monkeypatch.undo()
    for record in EVENT.files[1:]:
        stage(archive, record)
    assert archive.import_event(EVENT).outcome is Outcome.STORED
    stream, _record = archive.open_data(other.file_id)
    with stream:
        assert stream.read() == FILE_BYTES[other.file_id]


@pytest.mark.blob_backends
def test_bytes_removed_between_their_commit_and_their_rows_are_refused(site, monkeypatch):
    """The other order: the stage commits the file (already there: same bytes), then the
    delete of the last record using it removes the file, then the stage would write its
    rows. It must refuse (the peer resends) rather than stage a row without bytes."""
    archive = site.archive
    archive.add_status(STATUS)
    stage(archive, FILE)
    archive.import_file(FILE)
    other = EVENT.files[0]  # same bytes, another file id
    write = archive.blobs.write

    class DeletedRightAfterCommit:
        def __init__(self, pending):
            self.pending, self.info = pending, pending.info

        def commit(self):
            self.pending.commit()
            assert archive.delete_file(FILE.file_id)

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self.pending.discard()
    monkeypatch.setattr(archive.blobs, "write",
                        lambda *args, **kwargs: DeletedRightAfterCommit(write(*args, **kwargs)))
    result = archive.stage_bytes(other.file_id, other.md5, io.BytesIO(FILE_BYTES[FILE.file_id]))
    assert not result.received and "send them again" in result.message
    assert archive.counts() == {"statuses": 1, "events": 0, "files": 0, "blobs": 0, "staged": 0}
    assert not files_on_disk(archive) and not temporaries(archive)
    monkeypatch.undo()
    stage(archive, other)
    assert files_on_disk(archive) == {hashlib.sha256(FILE_BYTES[FILE.file_id]).hexdigest()}


# -- crash safety ---------------------------------------------------------------------------

@pytest.mark.blob_backends
def test_failure_between_blob_write_and_row_insert_leaves_no_row(site, monkeypatch):
    archive = site.archive
    data = b"bytes whose row never got written"
    with failing(site.database, "INSERT INTO STAGED"), pytest.raises(InjectedFault):
        archive.stage_bytes(FILE.file_id, md5(data), io.BytesIO(data))
    assert set(archive.counts().values()) == {0}, "no row, not even the blob's"
    assert not archive.has_data(FILE.file_id, md5(data))
    orphan = hashlib.sha256(data).hexdigest()
    assert files_on_disk(archive) == {orphan}, "the blob was written before the rows"
    assert not temporaries(archive)

    assert archive.gc(grace_s=HOUR, staged_ttl_s=HOUR).blobs_removed == 0
    advance_clock(monkeypatch, HOUR - 2)
    assert archive.gc(grace_s=HOUR, staged_ttl_s=HOUR).blobs_removed == 0
    assert files_on_disk(archive) == {orphan}, "kept within the grace period"
    advance_clock(monkeypatch, HOUR + 2)
    report = archive.gc(grace_s=HOUR, staged_ttl_s=HOUR)
    assert report.blobs_removed == 1 and not report.dry_run
    assert not files_on_disk(archive)


@pytest.mark.blob_backends
@pytest.mark.parametrize("statement", ["INSERT INTO META", "DELETE FROM STAGED"])
def test_failure_in_the_middle_of_an_event_import_leaves_none_of_its_rows(site, statement):
    archive = site.archive
    archive.add_status(STATUS)
    for record in EVENT.files:
        stage(archive, record)
    with failing(site.database, statement), pytest.raises(InjectedFault):
        archive.import_event(EVENT)
    assert not archive.has_event(EVENT.event_id)
    assert not any(archive.has_file(r.file_id) for r in EVENT.files)
    assert meta_rows(site) == 0
    assert archive.counts() == {"statuses": 1, "events": 0, "files": 0, "blobs": 2, "staged": 2}
    assert archive.missing_data(list(EVENT.files)) == [], "the staged bytes are still there"
    assert archive.import_event(EVENT).outcome is Outcome.STORED, "a retry succeeds"


# -- garbage collection ---------------------------------------------------------------------

@pytest.mark.blob_backends
def test_expired_staged_bytes_are_removed_after_their_ttl_not_before(site, monkeypatch):
    archive = site.archive
    stage(archive, FILE)
    advance_clock(monkeypatch, 2 * HOUR - 2)
    report = archive.gc(grace_s=HOUR, staged_ttl_s=2 * HOUR)
    assert (report.staged_expired, report.blobs_removed) == (0, 0)
    assert archive.has_data(FILE.file_id, FILE.md5)
    advance_clock(monkeypatch, 2 * HOUR + 2)
    report = archive.gc(grace_s=HOUR, staged_ttl_s=2 * HOUR)
    assert (report.staged_expired, report.blobs_removed) == (1, 1)
    assert report.bytes_freed == len(FILE_BYTES[FILE.file_id])
    assert not archive.has_data(FILE.file_id, FILE.md5)
    assert nothing_stored(archive)


@pytest.mark.blob_backends
def test_gc_keeps_everything_a_row_uses(site, monkeypatch):
    archive = site.archive
    store_sample_event(archive)
    advance_clock(monkeypatch, 100 * HOUR)
    report = archive.gc(grace_s=0, staged_ttl_s=0)
    assert (report.staged_expired, report.blobs_removed) == (0, 0)
    assert len(files_on_disk(archive)) == 2
    for record in EVENT.files:
        stream, _record = archive.open_data(record.file_id)
        with stream:
            assert md5(stream.read()) == record.md5


@pytest.mark.blob_backends
def test_gc_dry_run_changes_nothing_and_reports_what_gc_then_does(site, monkeypatch):
    archive = site.archive
    store_sample_event(archive)
    stage(archive, FileRecord.from_json(dict(BODIES["file"]["file"], file_id="ef" * 16)),
          FILE_BYTES[FILE.file_id])  # staged, shares its blob with a stored record
    data = b"staged and never claimed"
    archive.stage_bytes("12" * 16, md5(data), io.BytesIO(data))
    orphan = b"left behind by a crash"
    with failing(site.database, "INSERT INTO STAGED"), pytest.raises(InjectedFault):
        archive.stage_bytes("34" * 16, md5(orphan), io.BytesIO(orphan))
    advance_clock(monkeypatch, 3 * HOUR)
    before = (archive.counts(), files_on_disk(archive))

    dry = archive.gc(grace_s=HOUR, staged_ttl_s=2 * HOUR, dry_run=True)
    assert dry.dry_run
    assert (dry.staged_expired, dry.blobs_removed, dry.temporaries_removed) == (2, 2, 0)
    assert (archive.counts(), files_on_disk(archive)) == before, "a dry run changes nothing"

    real = archive.gc(grace_s=HOUR, staged_ttl_s=2 * HOUR)
    assert (real.staged_expired, real.blobs_removed, real.bytes_freed) == \
        (dry.staged_expired, dry.blobs_removed, dry.bytes_freed)
    assert archive.counts() == {"statuses": 1, "events": 1, "files": 2, "blobs": 2, "staged": 0}
    assert len(files_on_disk(archive)) == 2
    assert archive.get_event(EVENT.event_id) == EVENT


@pytest.mark.blob_backends
def test_gc_removes_stale_temporaries_only(site):
    archive = site.archive
    folder = temp_folder(archive.blobs)
    stale, fresh = folder / "incoming-old", folder / "incoming-new"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    os.utime(stale, (0, 0))
    assert archive.gc(grace_s=HOUR, staged_ttl_s=HOUR).temporaries_removed == 1
    assert temporaries(archive) == [fresh]


# -- concurrency ----------------------------------------------------------------------------

def run_together(*calls):
    """Run the calls on threads released at the same moment; their results in order."""
    barrier, results, errors = threading.Barrier(len(calls)), [None] * len(calls), []

    def run(index, call):
        barrier.wait()
        try:
            results[index] = call()
        except Exception as exc:  # noqa: BLE001 - reported below, with the test's failure
            errors.append(exc)
    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


@pytest.fixture
def second_site(site, database_url, blob_settings):
    """Another process's view of the same storage (as two gunicorn workers have)."""
    other = open_test_site(database_url, site.storage_path, migrate=False,
                           with_settings=blob_settings)
    yield other
    other.close()


def test_concurrent_import_of_one_event_stores_it_once(site, second_site):
    archive = site.archive
    archive.add_status(STATUS)
    events = [renamed(BODIES["event"]["event"], f"{n:032x}", [f"{n:030x}a1", f"{n:030x}a2"])
              for n in range(1, 6)]
    for event in events:
        for record, data in zip(event.files, FILE_BYTES.values()):
            stage(archive, record, data)
    for event in events:
        outcomes = run_together(lambda: archive.import_event(event),
                                lambda: second_site.archive.import_event(event))
        assert sorted(result.outcome.value for result in outcomes) == ["held", "stored"]
        assert archive.get_event(event.event_id) == event
    assert archive.counts()["events"] == 5 and archive.counts()["files"] == 10
    assert archive.counts()["staged"] == 0


@pytest.mark.blob_backends
def test_concurrent_status_and_staging_of_the_same_thing(site, second_site):
    archive = site.archive
    outcomes = run_together(lambda: archive.add_status(STATUS),
                            lambda: second_site.archive.add_status(STATUS))
    assert sorted(result.outcome.value for result in outcomes) == ["held", "stored"]
    received = run_together(lambda: archive.stage_bytes(
        FILE.file_id, FILE.md5, io.BytesIO(FILE_BYTES[FILE.file_id])),
        lambda: second_site.archive.stage_bytes(
            FILE.file_id, FILE.md5, io.BytesIO(FILE_BYTES[FILE.file_id])))
    assert all(result.received for result in received)
    assert archive.counts()["staged"] == 1 and archive.counts()["blobs"] == 1
    assert len(files_on_disk(archive)) == 1 and not temporaries(archive)
