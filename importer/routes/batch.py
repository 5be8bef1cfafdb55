"""`POST {base}/batch` (protocol version 2): many entities in one request.

The statuses are stored first, then every file record and event is decided by the same pure
function as version 1 (`handshake.decide`). One result per entity, in the order statuses,
files, events (each list in the order sent); an entity that fails (invalid, or refused) never
blocks the others.

What the decision needs is read for the whole batch at once (a handful of queries, not a
handful per entity), and the entities it says to STORE are stored together
(`model.archive.bulk_import`: all checks again inside one transaction, one insert per table, each
entity whole or not at all). Any entity left out there (a duplicate within the batch, a race
with another request) goes alone through version 1's `settle`, in its own transaction, on
fresh facts. That is what makes a batch cheap.
"""

import logging
from dataclasses import dataclass

from flask import g, jsonify

from importer import handshake, tracing
from importer.auth import require_role
from importer.errors import bad_request
from importer.handshake import STORE, Answer, Held
from importer.request_body import read_json
from importer.routes.v1 import settle
from importer.state import current
from model.archive.archive import Outcome
from model.archive.bulk_import import store_ready
from model.protocol.entities import EntityError, Event, FileRecord, Status
from model.protocol.vocabulary import (COMPLETE, EVENT, FAILED, FILE, NEED_FILE_DATA,
                                       NEED_STATUS, STATUS)
from model.store.database import now_ms

log = logging.getLogger("skyrelay.importer")

KINDS = (("statuses", STATUS, Status), ("files", FILE, FileRecord),
         ("events", EVENT, Event))


@dataclass(frozen=True)
class Item:
    """One entity of the batch as sent: parsed, or the reason it could not be."""
    kind: str                      # status | file | event
    id: str | None
    entity: Status | FileRecord | Event | None
    error: str | None = None


class SentBefore:
    """Entities one user sent in full before (the version 1 entity cache). An exporter's
    second round resends the bodies of its first, and checking that a body equals a cached
    entity's JSON costs far less than validating it again."""

    def __init__(self, cache, user: str):
        self.cache, self.user = cache, user

    def parse(self, cls, data, field: str, entity_id):
        """`cls.from_json(data, field)`, or the cached entity that has exactly this JSON."""
        cached = self.cache.get(self.user, entity_id) if isinstance(entity_id, str) else None
        if isinstance(cached, cls) and cached.to_json() == data:
            return cached
        entity = cls.from_json(data, field)
        self.cache.put(self.user, entity.id, entity)
        return entity


def parse_batch(body, max_batch: int, known: SentBefore | None = None) -> list[Item]:
    """The batch's entities in result order; 400 for a body that is not a batch at all.
    An entity that does not validate becomes an Item with its error (a `failed` result)."""
    if not isinstance(body, dict):
        raise bad_request("body: expected a JSON object with statuses, files and events")
    lists = {}
    for key, _, _ in KINDS:
        value = body.get(key, [])
        if not isinstance(value, list):
            raise bad_request(f"{key}: expected a list, got {type(value).__name__}")
        lists[key] = value
    total = sum(len(value) for value in lists.values())
    if total > max_batch:
        raise bad_request(f"batch of {total} entities is over max_batch ({max_batch}); "
                          "split it")
    parse = known.parse if known is not None else \
        lambda cls, data, field, entity_id: cls.from_json(data, field)
    return [_parse_item(kind, cls, data, f"{key}[{index}]", parse)
            for key, kind, cls in KINDS for index, data in enumerate(lists[key])]


def _parse_item(kind: str, cls, data, field: str, parse) -> Item:
    raw_id = data.get(f"{kind}_id") if isinstance(data, dict) else None
    try:
        entity = parse(cls, data, field, raw_id)
    except EntityError as exc:
        return Item(kind, raw_id if isinstance(raw_id, str) else None, None, str(exc))
    return Item(kind, entity.id, entity)


def batch_facts(importer, items: list[Item]) -> dict[tuple[str, str], Held]:
    """`Held` for every parsed file record and event, read in a few queries for all."""
    catalog, archive = importer.site.catalog, importer.site.archive
    entities = [item for item in items if item.entity is not None and item.kind != STATUS]
    if not entities:
        return {}
    hashes = {kind: catalog.held_hashes(kind, [i.id for i in entities if i.kind == kind])
              for kind in (FILE, EVENT)}
    statuses = set(catalog.held_hashes(STATUS, [i.entity.status_id for i in entities]))
    records = [r for i in entities for r in i.entity.file_records]
    present = archive.data_present(records)
    holders = catalog.file_holders([r.file_id for i in entities if i.kind == EVENT
                                    for r in i.entity.files])
    facts = {}
    for item in entities:
        files = item.entity.file_records
        facts[(item.kind, item.id)] = Held(
            held_hash=hashes[item.kind].get(item.id),
            status_held=item.entity.status_id in statuses,
            missing_data=frozenset(r.file_id for r in files if (r.file_id, r.md5) not in present),
            taken_file_ids=handshake.taken_file_ids(item.entity, holders)
            if item.kind == EVENT else frozenset())
    return facts


def run_batch(importer, items: list[Item]) -> list[dict]:
    """Statuses first, then the rest; one result per item, in order. One trace event per
    entity that ended complete or failed, written together at the end."""
    started = now_ms()
    answers: list[Answer | None] = [None] * len(items)
    held_before: list[str | None] = [None] * len(items)
    for index, item in enumerate(items):
        if item.kind == STATUS and item.entity is not None:
            answers[index], held_before[index] = _store_status(importer, item)
    facts = batch_facts(importer, items)
    for index, item in enumerate(items):
        if item.entity is None:
            answers[index] = Answer(FAILED, message=item.error)
        elif item.kind != STATUS:
            held = facts[(item.kind, item.id)]
            answers[index], held_before[index] = _decide(item, held), held.held_hash
    ready = [items[i].entity for i, answer in enumerate(answers) if answer is STORE]
    stored = store_ready(importer.site.archive, ready)
    for index, answer in enumerate(answers):
        item = items[index]
        if answer is STORE:
            answers[index] = (Answer(COMPLETE) if (item.kind, item.id) in stored
                              else _store_alone(importer, item))
    tracing.record_events(importer.site.traces, (
        tracing.answer_event(item.entity, answer, before, started) if item.entity is not None
        else tracing.refusal_event(item.kind, item.id, item.error, started)
        for item, answer, before in zip(items, answers, held_before)))
    return [_result(item, answer) for item, answer in zip(items, answers)]


def _store_status(importer, item: Item) -> tuple[Answer, str | None]:
    """(answer, content hash held before): a status in a batch is complete, new or held."""
    result = importer.site.archive.add_status(item.entity)
    if result.outcome is Outcome.CONFLICT:
        _log_conflict(item, result.held_hash)
        return Answer(COMPLETE, conflict=True), result.held_hash
    if result.outcome is Outcome.HELD:
        return Answer(COMPLETE), item.entity.content_hash
    return Answer(COMPLETE), None


def _decide(item: Item, held: Held) -> Answer:
    answer = handshake.decide(item.entity, held)
    if answer is STORE:
        return answer
    if answer.conflict:
        _log_conflict(item, held.held_hash)
    return _with_all_missing(answer, item.entity, held)


def _store_alone(importer, item: Item) -> Answer:
    """An entity that was ready but not stored with the others (a duplicate within the
    batch, or a race with another request): version 1's store-and-decide, on fresh facts."""
    archive = importer.site.archive
    answer = settle(importer, item.entity, False)
    if answer.state == NEED_FILE_DATA:
        missing = archive.missing_data(item.entity.file_records)
        return _with_all_missing(answer, item.entity, Held(missing_data=frozenset(missing)))
    return answer


def _with_all_missing(answer: Answer, entity, held: Held) -> Answer:
    """Version 2 asks for every missing file at once, in the entity's order."""
    if answer.state != NEED_FILE_DATA:
        return answer
    return _NeedFiles(NEED_FILE_DATA, file_ids=tuple(
        r.file_id for r in entity.file_records if r.file_id in held.missing_data))


@dataclass(frozen=True)
class _NeedFiles(Answer):
    file_ids: tuple = ()


def _result(item: Item, answer: Answer) -> dict:
    result = {"type": item.kind, "id": item.id, "state": answer.state}
    if item.id is None:
        del result["id"]
    if answer.state == NEED_STATUS:
        result["status_id"] = answer.status_id
    elif answer.state == NEED_FILE_DATA:
        result["file_ids"] = list(getattr(answer, "file_ids", ()) or [answer.file_id])
    elif answer.state == FAILED:
        result["message"] = answer.message
    return result


def _log_conflict(item: Item, held_hash: str | None) -> None:
    log.warning("conflict: %s %s is held with content hash %s; user %s sent content hash %s;"
                " the held version is kept", item.kind, item.id, held_hash, g.user.name,
                item.entity.content_hash)


@require_role("import")
def batch():
    importer = current()
    tracing.request_trace_id()
    body = read_json(importer.settings["importer.max_body_bytes"])
    items = parse_batch(body, importer.settings["importer.max_batch"],
                        SentBefore(importer.cache, g.user.name))
    return jsonify({"results": run_batch(importer, items)})
