"""The exporter's version 2 exchange, a pure state machine, driven with plain dicts."""

from exporter.protocol_v2 import (BatchExchange, Complete, Failed, FileNeed, Finished,
                                  PostBatch, plan_uploads, split_batches)

STATUS = "5" * 32


def event(n: int, files: int = 2) -> dict:
    return {"event_id": f"{n:032x}", "camera_id": "cam", "status_id": STATUS,
            "event_time": n, "event_type": "meteorpi:meteor", "meta": [],
            "files": [{"file_id": f"{n:016x}{k:016x}", "camera_id": "cam", "status_id": STATUS,
                       "file_time": n, "mime_type": "image/png",
                       "semantic_type": "meteorpi:x", "file_size": 4096 * (k + 1),
                       "md5": "0" * 32, "meta": []} for k in range(files)]}


def result(body: dict, state: str, **extra) -> dict:
    return {"type": "event", "id": body["event_id"], "state": state, **extra}


def file_ids(body: dict) -> list[str]:
    return [f["file_id"] for f in body["files"]]


def test_all_complete_at_once():
    bodies = [event(1), event(2)]
    exchange = BatchExchange([("event", b) for b in bodies])
    action = exchange.start()
    assert isinstance(action, PostBatch) and action.body["events"] == bodies
    done = exchange.answered({"results": [result(b, "complete") for b in bodies]})
    assert done == Finished({("event", b["event_id"]): Complete(True) for b in bodies})


def test_status_then_bytes_then_complete():
    a, b, c = event(1), event(2), event(3)
    exchange = BatchExchange([("event", x) for x in (a, b, c)])
    exchange.start()
    supply = exchange.answered({"results": [
        result(a, "need_status", status_id=STATUS),
        result(b, "need_file_data", file_ids=file_ids(b)),
        result(c, "failed", message="bad event")]})
    assert supply.status_ids == (STATUS,)
    assert [f.file_id for f in supply.files] == file_ids(b)
    again = exchange.supplied({STATUS: {"status_id": STATUS}}, {})
    assert again.body["statuses"] == [{"status_id": STATUS}]
    assert again.body["events"] == [a, b]           # the failed one is not resent
    supply = exchange.answered({"results": [
        {"type": "status", "id": STATUS, "state": "complete"},
        result(a, "need_file_data", file_ids=file_ids(a)[1:]),
        result(b, "complete")]})
    assert [f.file_id for f in supply.files] == file_ids(a)[1:]
    last = exchange.supplied({}, {})
    assert last.body["statuses"] == [] and last.body["events"] == [a]
    done = exchange.answered({"results": [result(a, "complete")]})
    assert done.outcomes == {("event", a["event_id"]): Complete(False),
                             ("event", b["event_id"]): Complete(False),
                             ("event", c["event_id"]): Failed("importer answered failed: "
                                                              "bad event")}


def test_garbage_answers_fail_the_entities():
    a, b = event(1), event(2)
    exchange = BatchExchange([("event", a), ("event", b)])
    exchange.start()
    done = exchange.answered({"results": [result(a, "complete")]})
    assert all(isinstance(o, Failed) and "protocol" in o.reason for o in done.outcomes.values())
    exchange = BatchExchange([("event", a), ("event", b)])
    exchange.start()
    done = exchange.answered({"results": [result(b, "complete"), result(a, "complete")]})
    assert isinstance(done.outcomes[("event", a["event_id"])], Failed)
    exchange = BatchExchange([("event", a)])
    exchange.start()
    done = exchange.answered({"results": [result(a, "need_file_data", file_ids=["f" * 32])]})
    assert "does not list" in done.outcomes[("event", a["event_id"])].reason
    exchange = BatchExchange([("event", a)])
    exchange.start()
    done = exchange.answered({"results": [result(a, "maybe")]})
    assert "unexpected" in done.outcomes[("event", a["event_id"])].reason


def test_an_importer_that_keeps_asking_cannot_hang_the_exchange():
    a = event(1)
    exchange = BatchExchange([("event", a)])
    action, posts = exchange.start(), 0
    while not isinstance(action, Finished):
        if isinstance(action, PostBatch):
            posts += 1
            action = exchange.answered({"results": [
                result(a, "need_file_data", file_ids=file_ids(a))]})
        else:
            action = exchange.supplied({}, {})
    assert posts == 3 and "3 times" in action.outcomes[("event", a["event_id"])].reason
    exchange = BatchExchange([("event", a)])
    exchange.start()
    exchange.answered({"results": [result(a, "need_status", status_id=STATUS)]})
    exchange.supplied({STATUS: {"status_id": STATUS}}, {})
    done = exchange.answered({"results": [{"type": "status", "id": STATUS,
                                           "state": "complete"},
                                          result(a, "need_status", status_id=STATUS)]})
    assert "again" in done.outcomes[("event", a["event_id"])].reason


def test_missing_local_data_fails_the_entity():
    a, b = event(1), event(2)
    exchange = BatchExchange([("event", a), ("event", b)])
    exchange.start()
    exchange.answered({"results": [result(a, "need_file_data", file_ids=file_ids(a)),
                                   result(b, "complete")]})
    done = exchange.supplied({}, {file_ids(a)[0]: "bytes not in this archive"})
    assert isinstance(done, Finished)
    assert done.outcomes[("event", a["event_id"])] == Failed(
        f"file {file_ids(a)[0]}: bytes not in this archive")
    exchange = BatchExchange([("event", a)])
    exchange.start()
    exchange.answered({"results": [result(a, "need_status", status_id=STATUS)]})
    done = exchange.supplied({STATUS: None}, {})
    assert done.outcomes[("event", a["event_id"])] == Failed(
        f"status {STATUS} is not in this archive")


def test_planning():
    bodies = [("event", event(n)) for n in range(10)]
    assert [len(b) for b in split_batches(bodies, 4, 10 ** 9)] == [4, 4, 2]
    one = len(str(event(0))) * 2
    assert all(len(b) <= 2 for b in split_batches(bodies, 500, one * 2))
    needs = [FileNeed(str(i), "0" * 32, size) for i, size in
             enumerate([100, 5000, 100, 2 * 1024 ** 2, 3000])]
    groups, large = plan_uploads(needs, 1024 ** 2, 5000)
    assert [[f.file_id for f in g] for g in groups] == [["0"], ["1"], ["2", "4"]]
    assert [f.file_id for f in large] == ["3"]


def test_statuses_go_alone_when_they_would_not_fit():
    bodies = [event(n) for n in range(3)]
    exchange = BatchExchange([("event", b) for b in bodies], max_batch=3)
    exchange.start()
    exchange.answered({"results": [result(b, "need_status", status_id=STATUS)
                                   for b in bodies]})
    alone = exchange.supplied({STATUS: {"status_id": STATUS}}, {})
    assert alone.body == {"statuses": [{"status_id": STATUS}], "files": [], "events": []}
    then = exchange.answered({"results": [{"type": "status", "id": STATUS,
                                           "state": "complete"}]})
    assert then.body["statuses"] == [] and then.body["events"] == bodies
    done = exchange.answered({"results": [result(b, "complete") for b in bodies]})
    assert all(o == Complete(False) for o in done.outcomes.values())


def test_statuses_given_up_front_go_with_the_first_batch_or_alone_before_it():
    """Statuses the importer has not confirmed yet are sent unasked: with the entities when
    they fit (no need_status round), alone first when they do not. An entity complete at
    its own first answer still counts as already present."""
    status = {"status_id": STATUS}
    bodies = [event(n) for n in range(3)]
    together = BatchExchange([("event", b) for b in bodies], statuses={STATUS: status})
    first = together.start()
    assert first.body["statuses"] == [status] and first.body["events"] == bodies
    done = together.answered({"results": [{"type": "status", "id": STATUS,
                                           "state": "complete"}]
                                         + [result(b, "complete") for b in bodies]})
    assert done.outcomes == {("event", b["event_id"]): Complete(True) for b in bodies}
    assert together.status_results == [(STATUS, {"type": "status", "id": STATUS,
                                                 "state": "complete"})]
    alone = BatchExchange([("event", b) for b in bodies], max_batch=3,
                          statuses={STATUS: status})
    assert alone.start().body == {"statuses": [status], "files": [], "events": []}
    then = alone.answered({"results": [{"type": "status", "id": STATUS, "state": "complete"}]})
    assert then.body["statuses"] == [] and then.body["events"] == bodies
    done = alone.answered({"results": [result(b, "complete") for b in bodies]})
    assert all(o == Complete(True) for o in done.outcomes.values())


def test_bytes_first_go_before_the_first_batch_and_count_as_sent():
    a, b = event(1), event(2, files=0)
    needs = [FileNeed(f["file_id"], f["md5"], f["file_size"]) for f in a["files"]]
    exchange = BatchExchange([("event", a), ("event", b)], bytes_first_up_to=8192)
    supply = exchange.start()
    assert supply.status_ids == () and list(supply.files) == needs     # 4 and 8 KiB
    batch = exchange.supplied({}, {})
    assert batch.body["events"] == [a, b]
    done = exchange.answered({"results": [result(a, "complete"), result(b, "complete")]})
    assert done.outcomes == {("event", a["event_id"]): Complete(already_present=False),
                             ("event", b["event_id"]): Complete(already_present=True)}
    assert not exchange.asked_for_every_file(8192)


def test_bytes_that_could_not_go_first_fail_nothing_until_the_importer_asks():
    a = event(1)
    needs = [FileNeed(f["file_id"], f["md5"], f["file_size"]) for f in a["files"]]
    exchange = BatchExchange([("event", a)], bytes_first_up_to=4096)   # the first file only
    assert exchange.start().files == (needs[0],)
    batch = exchange.supplied({}, {needs[0].file_id: "bytes are not in this archive"})
    assert batch.body["events"] == [a]                # not failed: a guess missed
    supply = exchange.answered({"results": [
        result(a, "need_file_data", file_ids=[needs[0].file_id])]})
    assert exchange.asked_for_every_file(4096) and not exchange.asked_for_every_file(8192)
    done = exchange.supplied({}, {needs[0].file_id: "bytes are not in this archive"})
    assert supply.files == (needs[0],)
    assert done.outcomes == {("event", a["event_id"]): Failed(
        f"file {needs[0].file_id}: bytes are not in this archive")}
