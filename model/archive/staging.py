"""Staging many files at once.

`Archive.stage_bytes` makes each file durable (fsync) and records it in its own transaction:
right for one upload, slow for a thousand 4 KiB files in one `/blobs` request (the fsyncs
dominate). A `StagingBatch` writes every file of a request without an fsync, then makes them
all durable with one `sync()`, puts them in place, and records them in one transaction. The
order of the storage rules is kept: bytes durable, then renamed into place, then the rows.
"""

from typing import BinaryIO, Iterable

from model.archive.archive import REMOVED_WHILE_STORED, Archive, StageResult
from model.store.blobs import Md5Mismatch


class StagingBatch:
    def __init__(self, archive: Archive):
        self.archive = archive
        self._pending: list = []          # (file_id, md5, pending blob)

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, file_id: str, md5: str, source: BinaryIO | Iterable[bytes],
            limit: int | None = None) -> StageResult:
        """Write the bytes (not yet durable) and check their MD5; they count once `flush`
        has recorded them. Raises `TooLarge` past `limit`, keeping nothing."""
        try:
            pending = self.archive.blobs.write(source, md5=md5, limit=limit, durable=False)
        except Md5Mismatch as mismatch:
            return StageResult.refused(mismatch)
        self._pending.append((file_id, md5, pending))
        return StageResult(True, pending.info.md5, pending.info.size)

    def flush(self) -> dict[str, str]:
        """Make the added files durable, put them in place and record them. Returns the
        file IDs that could not be recorded after all, with the reason (a concurrent delete
        removed the same bytes in between)."""
        pending, self._pending = self._pending, []
        if not pending:
            return {}
        self.archive.blobs.sync()
        for _, _, blob in pending:
            blob.commit()
        recorded = self.archive.stage_received([(f, m, blob.info) for f, m, blob in pending])
        return {file_id: REMOVED_WHILE_STORED
                for (file_id, _, _), ok in zip(pending, recorded) if not ok}

    def discard(self) -> None:
        pending, self._pending = self._pending, []
        for _, _, blob in pending:
            blob.discard()

