"""Storing the ready entities of a version 2 batch together.

`Archive.import_event` spends several statements and a commit on one event, and a batch
multiplies that by its size. Here the same
checks are made for all of them at once, inside one transaction, and the entities that pass
every check are inserted with one statement per table. An entity is still all or nothing
(its rows are in the same transaction), and an entity that is not ready is simply left out:
the caller gives it the one-transaction-per-entity path, which says why (need_status,
need_file_data, conflict). If the bulk insert loses a race (a concurrent writer stored one
of the IDs first, or the two deadlocked: `model.archive.races`), nothing of it is kept and
every entity takes that path too, where it is decided again on what is held then; so a
failed entity never blocks the others.
"""

from typing import Sequence

from sqlalchemy import Connection, select
from sqlalchemy.exc import DBAPIError

from model.archive.archive import Archive
from model.archive.races import lost_race
from model.archive.rows import entity_rows, insert_rows
from model.protocol.entities import Event, FileRecord
from model.protocol.vocabulary import EVENT
from model.store import schema
from model.store.sql import IN_CHUNK

Entity = Event | FileRecord


def store_ready(archive: Archive, entities: Sequence[Entity]) -> set[tuple[str, str]]:
    """Store every entity of `entities` that can be stored now and is not held yet, in one
    transaction; returns the (kind, ID) of those stored."""
    if not entities:
        return set()
    _prepare(entities)
    try:
        with archive.db.transaction() as tx:
            ready, present = _ready(archive, tx, entities)
            rows = ([], [], [], [])
            for entity, records in ready:
                event = entity if isinstance(entity, Event) else None
                for collected, new in zip(rows, entity_rows(event, records, present)):
                    collected.extend(new)
            insert_rows(tx, *rows)
    except DBAPIError as exc:
        if not lost_race(exc):
            raise
        return set()
    return {(entity.kind, entity.id) for entity, _ in ready}


def _prepare(entities: Sequence[Entity]) -> None:
    """Compute the stored texts and hashes before taking the write lock: they were most of
    the time it was held, and the other importer workers wait for it."""
    for entity in entities:
        for content in {entity, *entity.file_records}:
            content.content_hash          # computes (and keeps) canonical_text too


def _ready(archive: Archive, tx: Connection, entities: Sequence[Entity]):
    """The entities that pass every check of `Archive._import`, first come first served
    within the batch (an ID, or a file ID, stored once)."""
    events = [e for e in entities if isinstance(e, Event)]
    records = [r for e in entities for r in e.file_records]
    held_events = _existing(tx, schema.events.c.event_id, [e.event_id for e in events])
    held_files = _existing(tx, schema.files.c.file_id, [r.file_id for r in records])
    statuses = _existing(tx, schema.statuses.c.status_id,
                         [e.status_id for e in entities] + [r.status_id for r in records])
    present = {}
    for start in range(0, len(records), IN_CHUNK):
        present.update(archive._present_data(tx, records[start:start + IN_CHUNK]))
    claimed_ids, claimed_files, ready = set(), set(), []
    for entity in entities:
        own = entity.file_records
        key = (entity.kind, entity.id)
        if key in claimed_ids or entity.id in (held_events if key[0] == EVENT else held_files):
            continue
        if entity.status_id not in statuses or any(r.status_id not in statuses for r in own):
            continue
        file_ids = [r.file_id for r in own]
        if any((r.file_id, r.md5) not in present for r in own) or \
                any(f in held_files or f in claimed_files for f in file_ids):
            continue
        claimed_ids.add(key)
        claimed_files.update(file_ids)
        ready.append((entity, own))
    return ready, present


def _existing(tx: Connection, column, ids: Sequence[str]) -> set[str]:
    wanted, found = list(dict.fromkeys(ids)), set()
    for start in range(0, len(wanted), IN_CHUNK):
        found.update(tx.scalars(select(column).where(column.in_(wanted[start:start + IN_CHUNK]))))
    return found
