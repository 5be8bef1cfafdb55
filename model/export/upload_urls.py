"""The exporter's memory of its resumable uploads: for (target, file ID, MD5), the upload URL
the importer gave. A sync that crashed or lost its link mid-file finds the URL here in its
next run, asks the importer for the offset it holds, and goes on from there instead of
sending the file again.
"""

from sqlalchemy import delete, select

from model.store import schema
from model.store.database import Database, now_ms
from model.store.sql import insert_ignoring_duplicates

_U = schema.outgoing_uploads.c


class UploadUrls:
    def __init__(self, database: Database):
        self.db = database

    def get(self, target: str, file_id: str, md5: str) -> str | None:
        with self.db.reading() as conn:
            return conn.scalar(select(_U.url).where(_U.target == target, _U.file_id == file_id,
                                                    _U.md5 == md5))

    def remember(self, target: str, file_id: str, md5: str, url: str) -> None:
        with self.db.transaction() as tx:
            insert_ignoring_duplicates(tx, schema.outgoing_uploads, {
                "target": target, "file_id": file_id, "md5": md5, "url": url,
                "created_ms": now_ms()}, update=("url", "created_ms"))

    def forget(self, target: str, file_id: str, md5: str) -> None:
        with self.db.transaction() as tx:
            tx.execute(delete(schema.outgoing_uploads).where(
                _U.target == target, _U.file_id == file_id, _U.md5 == md5))

    def forget_files(self, target: str, file_ids: list[str]) -> None:
        """Files the target now holds: their uploads, finished or not, are of no more use."""
        with self.db.transaction() as tx:
            tx.execute(delete(schema.outgoing_uploads).where(
                _U.target == target, _U.file_id.in_(file_ids)))

    def forget_target(self, target: str) -> int:
        """When a target is removed or its URL changes, its upload URLs mean nothing."""
        with self.db.transaction() as tx:
            return tx.execute(delete(schema.outgoing_uploads)
                              .where(_U.target == target)).rowcount
