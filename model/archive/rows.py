"""The rows that store an event (or a standalone file record) with its file records and meta:
built from the entity, inserted with one statement per table whether they are one entity's
or a whole batch's (`model.archive.bulk_import`)."""

from typing import Iterable

from sqlalchemy import Connection, bindparam, delete, insert

from model.store import schema
from model.store.database import now_ms


def _meta_rows(meta: Iterable, event_id=None, file_id=None) -> list[dict]:
    column = {"string": "string_value", "number": "number_value", "date": "date_value"}
    return [{"event_id": event_id, "file_id": file_id, "position": position, "type": m.type,
             "key": m.key, "string_value": None, "number_value": None, "date_value": None,
             column[m.type]: m.value} for position, m in enumerate(meta)]


def entity_rows(event, records, present) -> tuple[list, list, list, list]:
    """The rows that store one event (or standalone record) with its file records: (event
    rows, file rows, meta rows, staged keys to delete). `present` maps (file_id, md5) to the
    sha256 of the bytes held for it."""
    created = now_ms()
    event_id = event.event_id if event else None
    event_rows = [] if not event else [{
        "event_id": event.event_id, "camera_id": event.camera_id, "status_id": event.status_id,
        "event_time": event.event_time, "event_type": event.event_type,
        "body": event.canonical_text, "content_hash": event.content_hash,
        "created_ms": created}]
    file_rows, meta_rows = [], _meta_rows(event.meta, event_id=event_id) if event else []
    for position, record in enumerate(records):
        file_rows.append({
            "file_id": record.file_id, "event_id": event_id, "position": position,
            "camera_id": record.camera_id, "status_id": record.status_id,
            "file_time": record.file_time, "semantic_type": record.semantic_type,
            "mime_type": record.mime_type, "file_size": record.file_size,
            "md5": record.md5, "sha256": present[(record.file_id, record.md5)],
            "body": record.canonical_text, "content_hash": record.content_hash,
            "created_ms": created})
        meta_rows += _meta_rows(record.meta, file_id=record.file_id)
    staged = [{"k_file_id": r.file_id, "k_md5": r.md5} for r in records]
    return event_rows, file_rows, meta_rows, staged


def insert_rows(tx: Connection, event_rows, file_rows, meta_rows, staged) -> None:
    """Execute `entity_rows` (of one entity or of many): one statement per table. Empty
    lists are skipped (executing [] would insert a row of nulls)."""
    for table, rows in ((schema.events, event_rows), (schema.files, file_rows),
                        (schema.meta, meta_rows)):
        if rows:
            tx.execute(insert(table), rows)
    if staged:
        columns = schema.staged.c
        tx.execute(delete(schema.staged).where(columns.file_id == bindparam("k_file_id"),
                                               columns.md5 == bindparam("k_md5")), staged)
