"""The version 1 exchange as a pure state machine: every answer of docs/wire.md's table, the
termination bounds, and garbage answers, with plain dicts."""

import pytest

from exporter.protocol_v1 import (Complete, Failed, PostEntity, SendStatus, UploadFile,
                                  V1Exchange)

STATUS = "5c2e0b8a9d6b4f1e8a3f0c1d2e3f4a5b"
OTHER_STATUS = "6c2e0b8a9d6b4f1e8a3f0c1d2e3f4a5b"
F1, F2 = "00000000000000000000000000001001", "00000000000000000000000000001002"
EVENT = {"event_id": "7d1b3c2a4e5f46a7b8c9d0e1f2a3b4c5", "camera_id": "aabbccddeeff",
         "status_id": STATUS, "event_time": 1, "event_type": "meteorpi:x", "meta": [],
         "files": [{"file_id": F1, "md5": "a" * 32, "status_id": STATUS},
                   {"file_id": F2, "md5": "b" * 32, "status_id": OTHER_STATUS}]}
FILE = {"file_id": F1, "md5": "a" * 32, "status_id": STATUS, "camera_id": "aabbccddeeff"}
FULL = PostEntity({"type": "event", "event": EVENT})
CACHED = PostEntity({"type": "cached_entity", "cached_entity_id": EVENT["event_id"]})


def run(exchange, answers):
    """Feed answers one by one; return the list of actions (start included)."""
    actions = [exchange.start()]
    for answer in answers:
        actions.append(exchange.step(answer))
    return actions


def test_start_sends_the_full_entity():
    assert V1Exchange("event", EVENT).start() == FULL
    assert V1Exchange("file", FILE).start() == PostEntity({"type": "file", "file": FILE})


@pytest.mark.parametrize("answers, expected", [
    # complete at once: already present
    ([{"state": "complete"}], Complete(already_present=True, steps=1)),
    # need_status → status → cached form → complete
    ([{"state": "need_status", "status_id": STATUS}, {"state": "continue"},
      {"state": "complete"}], Complete(already_present=False, steps=3)),
    # need_file_data for both files, in order
    ([{"state": "need_file_data", "file_id": F1}, {"state": "continue", "received": True},
      {"state": "need_file_data", "file_id": F2}, {"state": "continue"},
      {"state": "complete"}], Complete(already_present=False, steps=5)),
    # continue → cached; continue-nocache → full again
    ([{"state": "continue"}, {"state": "continue-nocache"}, {"state": "complete"}],
     Complete(already_present=False, steps=3)),
])
def test_answers_that_end_complete(answers, expected):
    assert run(V1Exchange("event", EVENT), answers)[-1] == expected


def test_each_answer_gives_the_table_s_next_request():
    exchange = V1Exchange("event", EVENT)
    exchange.start()
    assert exchange.step({"state": "need_status", "status_id": STATUS}) == SendStatus(STATUS)
    assert exchange.step({"state": "continue"}) == CACHED
    assert exchange.step({"state": "need_file_data", "file_id": F2}) == UploadFile(F2, "b" * 32)
    assert exchange.step({"state": "continue", "received": True}) == CACHED
    assert exchange.step({"state": "continue-nocache"}) == FULL
    assert exchange.step({"state": "continue"}) == CACHED
    assert exchange.step({"state": "need_status", "status_id": OTHER_STATUS}) == \
        SendStatus(OTHER_STATUS)
    assert exchange.step({"state": "complete"}) == CACHED   # a held status: go on
    assert exchange.step({"state": "complete"}) == Complete(already_present=False, steps=9)


def test_ids_in_answers_are_normalised():
    dashed = "00000000-0000-0000-0000-000000001002".upper()
    exchange = V1Exchange("event", EVENT)
    exchange.start()
    assert exchange.step({"state": "need_file_data", "file_id": dashed}) == \
        UploadFile(F2, "b" * 32)


def test_failed_answer_records_the_importer_s_message():
    result = run(V1Exchange("event", EVENT), [{"state": "failed", "message": "bad camera"}])[-1]
    assert isinstance(result, Failed) and "bad camera" in result.reason and result.steps == 1


def test_upload_not_received_fails_with_the_reason():
    result = run(V1Exchange("event", EVENT), [
        {"state": "need_file_data", "file_id": F1},
        {"state": "continue", "received": False, "message": "MD5 mismatch"}])[-1]
    assert isinstance(result, Failed)
    assert F1 in result.reason and "MD5 mismatch" in result.reason


def test_same_need_file_data_three_times_in_a_row_fails():
    need = {"state": "need_file_data", "file_id": F1}
    actions = run(V1Exchange("event", EVENT), [need, {"state": "continue"}] * 2 + [need])
    assert [type(a) for a in actions] == [PostEntity, UploadFile, PostEntity, UploadFile,
                                          PostEntity, Failed]
    assert "3 times in a row" in actions[-1].reason and actions[-1].steps == 5


def test_same_need_status_three_times_in_a_row_fails():
    need = {"state": "need_status", "status_id": STATUS}
    result = run(V1Exchange("event", EVENT), [need, {"state": "continue"}] * 2 + [need])[-1]
    assert isinstance(result, Failed) and "status" in result.reason


def test_alternating_needs_are_bounded_by_max_steps():
    """An importer that asks for F1, F2, F1, F2 … never repeats in a row: max_steps stops it."""
    answers = []
    for index in range(100):
        answers += [{"state": "need_file_data", "file_id": (F1, F2)[index % 2]},
                    {"state": "continue"}]
    exchange = V1Exchange("event", EVENT, max_steps=10)
    actions = [exchange.start()]
    for answer in answers:
        actions.append(exchange.step(answer))
        if isinstance(actions[-1], Failed):
            break
    assert isinstance(actions[-1], Failed) and "max_steps" in actions[-1].reason
    assert exchange.steps == 10 and len(actions) == 11


def test_endless_continue_is_bounded_by_max_steps():
    exchange = V1Exchange("file", FILE, max_steps=50)
    action, answers = exchange.start(), 0
    while not isinstance(action, (Complete, Failed)):
        action = exchange.step({"state": "continue"})
        answers += 1
    assert isinstance(action, Failed) and answers == 50


@pytest.mark.parametrize("answer", [
    None, 42, "complete", [], ["complete"], {}, {"state": None}, {"state": 1},
    {"state": "COMPLETE"}, {"state": "done"}, {"status": "complete"},
    {"state": "need_status"}, {"state": "need_status", "status_id": "zz"},
    {"state": "need_status", "status_id": "f" * 32},            # not referenced
    {"state": "need_file_data"}, {"state": "need_file_data", "file_id": 7},
    {"state": "need_file_data", "file_id": "f" * 32},           # not part of the event
])
def test_garbage_answers_fail_the_entity_with_a_reason(answer):
    result = run(V1Exchange("event", EVENT), [answer])[-1]
    assert isinstance(result, Failed)
    assert result.reason.startswith("protocol:") and result.steps == 1


@pytest.mark.parametrize("answer", [{"state": "need_status", "status_id": STATUS}, "garbage",
                                    {"state": "continue-nocache"}])
def test_garbage_answer_to_an_upload_fails(answer):
    result = run(V1Exchange("event", EVENT),
                 [{"state": "need_file_data", "file_id": F1}, answer])[-1]
    assert isinstance(result, Failed) and "answer to file data" in result.reason


def test_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError):
        V1Exchange("status", {"status_id": STATUS})
