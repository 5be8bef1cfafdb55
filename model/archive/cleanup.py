"""Removing what the archive holds: records with their bytes, bytes no record claimed, and
garbage left by crashes.

Rows go before blobs: a file is removed only after the transaction that dropped its last row
has committed, and only under the blob's lock, so a concurrent upload of the same bytes either
keeps the file or is told to send them again.
"""

from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import and_, delete, func, or_, select

from model.store import schema
from model.store.database import now_ms
from model.store.sql import IN_CHUNK, blob_referenced, lock_blob


@dataclass(frozen=True)
class GcReport:
    staged_expired: int
    blobs_removed: int
    bytes_freed: int
    temporaries_removed: int
    temporary_bytes: int
    dry_run: bool


class ArchiveCleanup:
    """The removing half of `Archive` (which mixes it in; it uses `self.db`, `self.blobs`)."""

    def unstage(self, keys: Iterable[tuple[str, str]]) -> int:
        """Forget staged bytes (file_id, md5) that no record claimed (a refused bundle's), and
        remove their blobs if nothing else uses them. Returns the staged rows removed."""
        keys = list(keys)
        if not keys:
            return 0
        staged = schema.staged.c
        shas, removed = set(), 0
        for start in range(0, len(keys), IN_CHUNK):
            chunk = or_(*(and_(staged.file_id == f, staged.md5 == m)
                          for f, m in keys[start:start + IN_CHUNK]))
            with self.db.transaction() as tx:
                shas.update(tx.scalars(select(staged.sha256).where(chunk)))
                removed += tx.execute(delete(schema.staged).where(chunk)).rowcount
        self._drop_unreferenced_blobs(shas)
        return removed

    def delete_event(self, event_id: str) -> bool:
        """Rows first (event, its file records and meta, in one transaction), then blobs."""
        with self.db.transaction() as tx:
            shas = list(tx.scalars(select(schema.files.c.sha256)
                                   .where(schema.files.c.event_id == event_id)))
            deleted = tx.execute(delete(schema.events)
                                 .where(schema.events.c.event_id == event_id)).rowcount
            tx.execute(delete(schema.meta).where(schema.meta.c.file_id.in_(
                select(schema.files.c.file_id).where(schema.files.c.event_id == event_id))))
            tx.execute(delete(schema.files).where(schema.files.c.event_id == event_id))
            tx.execute(delete(schema.meta).where(schema.meta.c.event_id == event_id))
        self._drop_unreferenced_blobs(shas)
        return bool(deleted)

    def delete_file(self, file_id: str) -> bool:
        """A standalone file record; a record that belongs to an event goes with its event."""
        with self.db.transaction() as tx:
            sha = tx.scalar(select(schema.files.c.sha256).where(
                schema.files.c.file_id == file_id, schema.files.c.event_id.is_(None)))
            if sha is None:
                return False
            tx.execute(delete(schema.meta).where(schema.meta.c.file_id == file_id))
            tx.execute(delete(schema.files).where(schema.files.c.file_id == file_id))
        self._drop_unreferenced_blobs([sha])
        return True

    def _drop_unreferenced_blobs(self, shas: Iterable[str]) -> None:
        dropped = []
        for sha in set(shas):
            with self.db.transaction() as tx:
                if tx.execute(delete(schema.blobs).where(
                        schema.blobs.c.sha256 == sha, ~blob_referenced())).rowcount:
                    dropped.append(sha)
        self._remove_unclaimed_files(dropped)

    def _remove_unclaimed_files(self, shas: Iterable[str]) -> list[str]:
        """Remove the files of these blobs unless a row names the blob again by now.

        Runs after the rows' transaction has committed (row before blob), each file under its
        blob's lock (taken in sorted order: no deadlock between two removers) so that a
        concurrent stage_bytes of the same bytes either has committed its rows, and the file
        stays, or finds the file gone and writes no row."""
        removed = []
        with self.db.transaction() as tx:
            for sha in sorted(shas):
                lock_blob(tx, sha)
                if tx.scalar(select(func.count()).where(schema.blobs.c.sha256 == sha)):
                    continue
                self.blobs.delete(sha)
                removed.append(sha)
        return removed

    def gc(self, grace_s: float, staged_ttl_s: float, dry_run: bool = False) -> GcReport:
        """Forget staged bytes older than `staged_ttl_s`, then remove blobs no row uses and
        that are older than `grace_s` (rows first, then files; files with no row at all are
        what a crash between blob write and row insert leaves), then the temporaries of
        writes that never ended, untouched for `grace_s`. A dry run lists by the same rules
        and removes nothing."""
        now = now_ms()
        staged_cutoff, cutoff = now - staged_ttl_s * 1000, now - grace_s * 1000
        with self.db.transaction() as tx:
            expired = schema.staged.c.created_ms < staged_cutoff
            staged_expired = tx.scalar(select(func.count()).where(expired))
            if not dry_run:
                tx.execute(delete(schema.staged).where(expired))
            # Expired staged rows do not count as references, so that a dry run reports what
            # the real run removes.
            orphan_rows = tx.execute(select(schema.blobs.c.sha256, schema.blobs.c.size).where(
                schema.blobs.c.created_ms < cutoff,
                ~blob_referenced(staged_since=staged_cutoff))).all()
            if not dry_run and orphan_rows:
                tx.execute(delete(schema.blobs).where(
                    schema.blobs.c.sha256.in_([r.sha256 for r in orphan_rows]),
                    ~blob_referenced()))
            known = set(tx.scalars(select(schema.blobs.c.sha256)))
        doomed = {r.sha256: r.size for r in orphan_rows}
        for sha, mtime in self.blobs.list():
            if sha not in known and sha not in doomed and mtime * 1000 < cutoff:
                doomed[sha] = 0
        removed = list(doomed) if dry_run else self._remove_unclaimed_files(doomed)
        freed = sum(doomed[sha] for sha in removed)
        temporaries = self.blobs.stale_temporaries(grace_s)
        if not dry_run:
            temporaries = self.blobs.remove_temporaries(temporaries)
        return GcReport(staged_expired, len(removed), freed, len(temporaries),
                        sum(t.size for t in temporaries), dry_run)
