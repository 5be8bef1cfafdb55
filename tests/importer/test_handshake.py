"""The handshake decision with plain values: no server, no database."""

import pytest

from tests.importer_fixtures import event_json, file_json, status_json
from importer.handshake import (COMPLETE, CONTINUE, FAILED, NEED_FILE_DATA, NEED_STATUS,
                                STORE, Answer, Held, decide)
from model.protocol.entities import Event, FileRecord, Status, content_hash

STATUS = Status.from_json(status_json())
FILES = [file_json(STATUS.status_id, data) for data in (b"one", b"two", b"three")]
EVENT = Event.from_json(event_json(STATUS.status_id, FILES))
RECORD = FileRecord.from_json(file_json(STATUS.status_id, b"alone"))
IDS = [f["file_id"] for f in FILES]


def held(**facts) -> Held:
    return Held(**{"status_held": True, **facts})


def hash_of(entity) -> str:
    return content_hash(entity.to_json())


@pytest.mark.parametrize("entity", [EVENT, RECORD], ids=["event", "file"])
def test_held_with_the_same_content_is_complete(entity):
    answer = decide(entity, held(held_hash=hash_of(entity), missing_data=frozenset(IDS)))
    assert answer == Answer(COMPLETE) and not answer.conflict


@pytest.mark.parametrize("entity", [EVENT, RECORD], ids=["event", "file"])
def test_held_with_other_content_is_complete_and_flags_the_conflict(entity):
    answer = decide(entity, Held(held_hash="0" * 64))
    assert answer.state == COMPLETE and answer.conflict
    assert answer.to_json() == {"state": "complete"}  # the conflict is not on the wire


@pytest.mark.parametrize("entity", [EVENT, RECORD], ids=["event", "file"])
def test_unknown_status_comes_before_missing_bytes(entity):
    answer = decide(entity, Held(status_held=False, missing_data=frozenset(IDS)))
    assert answer.to_json() == {"state": NEED_STATUS, "status_id": STATUS.status_id}


def test_a_file_records_own_unknown_status_is_asked_for_before_its_bytes():
    other_status = "f" * 32
    answer = decide(EVENT, Held(status_held=False, missing_status_id=other_status,
                                missing_data=frozenset(IDS)))
    assert answer.to_json() == {"state": NEED_STATUS, "status_id": other_status}


def test_first_missing_file_in_the_event_order_is_asked_for():
    assert decide(EVENT, held(missing_data=frozenset(IDS[1:]))).to_json() == \
        {"state": NEED_FILE_DATA, "file_id": IDS[1]}
    assert decide(EVENT, held(missing_data=frozenset([IDS[2], IDS[0]]))).file_id == IDS[0]


def test_standalone_record_without_bytes_asks_for_itself():
    assert decide(RECORD, held(missing_data=frozenset([RECORD.file_id]))).to_json() == \
        {"state": NEED_FILE_DATA, "file_id": RECORD.file_id}


@pytest.mark.parametrize("entity", [EVENT, RECORD], ids=["event", "file"])
def test_everything_present_means_store(entity):
    assert decide(entity, held()) is STORE


def test_event_claiming_a_file_held_elsewhere_fails_before_any_upload():
    answer = decide(EVENT, held(taken_file_ids=frozenset([IDS[2]]),
                                missing_data=frozenset(IDS)))
    assert answer.state == FAILED and IDS[2] in answer.message


def test_new_status_is_stored_then_continue():
    assert decide(STATUS, Held()) is STORE
    assert decide(STATUS, Held(held_hash=hash_of(STATUS))) == Answer(CONTINUE)


def test_status_named_by_cached_entity_is_complete_once_held():
    assert decide(STATUS, Held(), cached=True) is STORE
    assert decide(STATUS, Held(held_hash=hash_of(STATUS)), cached=True) == Answer(COMPLETE)


def test_held_status_with_other_content_continues_and_flags_the_conflict():
    answer = decide(STATUS, Held(held_hash="f" * 64))
    assert answer.state == CONTINUE and answer.conflict


def test_an_empty_event_needs_only_its_status():
    empty = Event.from_json(event_json(STATUS.status_id))
    assert decide(empty, Held()).state == NEED_STATUS
    assert decide(empty, held()) is STORE
