"""The database's record of resumable uploads on an object store: per upload, where its
multipart upload goes, how many bytes count, its tail and its running digests, and each
part's number, size, ETag and CRC32 (tables `multipart_uploads`, `multipart_parts`). It alone
says which parts count; the store's ListParts is never asked.
"""

import functools
import time
from dataclasses import dataclass, field

from sqlalchemy import delete, insert, select, update

from model.store import schema
from model.store.blobs import Temporary
from model.store.database import Database, now_ms
from model.store.object_store import translated_errors
from model.store.s3_parts import Part, abort

@dataclass(frozen=True)
class LedgerEntry:
    """What the database holds about one upload's bytes."""
    name: str
    object_key: str
    multipart_id: str
    length: int
    part_bytes: int
    received: int
    tail_key: str | None
    tail_bytes: int
    digests: bytes
    parts: tuple[Part, ...] = field(default=())


class PartLedger:
    def __init__(self, database: Database):
        self.db = database

    def start(self, entry: LedgerEntry) -> None:
        with self.db.transaction() as tx:
            tx.execute(delete(schema.multipart_uploads)
                       .where(schema.multipart_uploads.c.upload_id == entry.name))
            tx.execute(insert(schema.multipart_uploads).values(
                upload_id=entry.name, object_key=entry.object_key,
                multipart_id=entry.multipart_id, length=entry.length,
                part_bytes=entry.part_bytes, received_bytes=0, tail_key=None, tail_bytes=0,
                digests=entry.digests, updated_ms=now_ms()))

    def load(self, name: str) -> LedgerEntry | None:
        table, parts = schema.multipart_uploads, schema.multipart_parts
        with self.db.reading() as conn:
            row = conn.execute(select(table).where(table.c.upload_id == name)).first()
            if row is None:
                return None
            found = conn.execute(select(parts).where(parts.c.upload_id == name)
                                 .order_by(parts.c.part_number)).all()
        return LedgerEntry(name, row.object_key, row.multipart_id, row.length, row.part_bytes,
                           row.received_bytes, row.tail_key, row.tail_bytes, row.digests,
                           tuple(Part(p.part_number, p.size, p.etag, p.crc32) for p in found))

    def record(self, tx, entry: LedgerEntry, new_parts: tuple[Part, ...]) -> None:
        parts = schema.multipart_parts
        if new_parts:
            tx.execute(delete(parts).where(parts.c.upload_id == entry.name,
                                           parts.c.part_number >= new_parts[0].number))
            tx.execute(insert(parts), [{"upload_id": entry.name, "part_number": p.number,
                                        "size": p.size, "etag": p.etag, "crc32": p.crc32}
                                       for p in new_parts])
        tx.execute(update(schema.multipart_uploads)
                   .where(schema.multipart_uploads.c.upload_id == entry.name)
                   .values(received_bytes=entry.received, tail_key=entry.tail_key,
                           tail_bytes=entry.tail_bytes, digests=entry.digests,
                           updated_ms=now_ms()))

    def forget(self, name: str) -> None:
        with self.db.transaction() as tx:
            tx.execute(delete(schema.multipart_parts)
                       .where(schema.multipart_parts.c.upload_id == name))
            tx.execute(delete(schema.multipart_uploads)
                       .where(schema.multipart_uploads.c.upload_id == name))

    def names_and_times(self) -> list[tuple[str, float]]:
        table = schema.multipart_uploads
        with self.db.reading() as conn:
            return [(row.upload_id, row.updated_ms / 1000)
                    for row in conn.execute(select(table.c.upload_id, table.c.updated_ms))]

    def strays(self, store, older_than_s: float) -> list[Temporary]:
        """Multipart uploads and tails that no ledger entry names, older than `older_than_s`
        (what a crash between the store and the database leaves), each with how to remove it
        (abort, delete)."""
        table = schema.multipart_uploads
        with self.db.reading() as conn:
            known = {(row.object_key, row.multipart_id)
                     for row in conn.execute(select(table.c.object_key, table.c.multipart_id))}
            names = set(conn.scalars(select(table.c.upload_id)))
        cutoff, found = time.time() - older_than_s, []
        with translated_errors("list multipart uploads"):
            pages = store.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=store.bucket, Prefix=store.where.prefix)
            for page in pages:
                for upload in page.get("Uploads", ()):
                    if (upload["Key"], upload["UploadId"]) in known \
                            or upload["Initiated"].timestamp() >= cutoff:
                        continue
                    found.append(Temporary(
                        f"{upload['Key']} (multipart upload {upload['UploadId']})", 0,
                        functools.partial(_abort, store, upload["Key"], upload["UploadId"])))
        for key, modified, size in store.sized_objects_under(store.where.key("tails/")):
            if key.split("/")[-2] not in names and modified < cutoff:
                found.append(Temporary(key, size, functools.partial(_delete, store, key)))
        return found


def _abort(store, key: str, multipart_id: str) -> bool:
    abort(store, key, multipart_id)
    return True


def _delete(store, key: str) -> bool:
    store.delete_objects([key])
    return True
