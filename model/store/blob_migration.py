"""Copying a site's local blobs into its object store, every object verified by reading it
back, so that the site can switch `storage.backend` to s3 knowing nothing is missing.

The database's `blobs` rows are the list of what must be there, each with the MD5 and size
it was received with. A blob goes through the object store's own write path
(`S3BlobStore.write` + `commit`): the same key and the same Content-MD5 as a blob the
server receives, and local bytes whose MD5 is not the row's are refused there and reported,
never copied. Every object is then read back from the store and hashed.

Running it again is cheap and safe: an object already in the store that verifies is left
alone ("already there"), a wrong one is replaced, a missing one copied. A failure is
recorded and the run goes on with the other blobs, except when the store stops answering:
then it stops, and the rest is left for the next run.
"""

import enum
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator

from sqlalchemy import func, select

from model.store import schema
from model.store.blobs import Md5Mismatch, check_stream
from model.store.database import Database
from model.store.local_blobs import LocalBlobStore
from model.store.object_store import ObjectStoreUnavailable
from model.store.s3_blobs import S3BlobStore

# Blobs handled at once: most are small, and each costs the store's round trips more than
# bytes, so several in flight keep the link busy. More are queued than run, so a worker never
# waits for the database.
PARALLEL_BLOBS = 8
QUEUED_PER_WORKER = 4
ROWS_PER_PAGE = 1000
# Why a blob is copied when the store has no object of its name.
MISSING = "not in the bucket"


@dataclass(frozen=True)
class BlobRow:
    sha256: str
    md5: str
    size: int


@dataclass(frozen=True)
class Failure:
    sha256: str
    reason: str


@dataclass
class MigrationReport:
    blobs: int = 0
    copied: int = 0
    already_there: int = 0
    bytes_copied: int = 0
    failures: list[Failure] = field(default_factory=list)
    # A dry run: what would be copied, and why.
    would_copy: list[tuple[BlobRow, str]] = field(default_factory=list)
    # Why the run stopped before the end (the store stopped answering), and how many blobs
    # it did not reach.
    stopped: str | None = None
    not_tried: int = 0

    @property
    def complete(self) -> bool:
        """Every blob is in the store and verified."""
        return not self.failures and self.stopped is None and not self.would_copy


class _Done(enum.Enum):
    COPIED = "copied"
    ALREADY_THERE = "already there"
    WOULD_COPY = "would copy"


class _BlobFailed(Exception):
    """This blob cannot be migrated now; the message says why."""


class _Counted:
    """Reports a blob's bytes to the progress as they are read, never more than its size in
    all (an object that failed its check and is copied again is counted once), the rest when
    the blob is done."""

    def __init__(self, advance: Callable[[int], None], size: int):
        self._advance, self._left = advance, size

    def add(self, count: int) -> None:
        count = min(count, self._left)
        if count > 0:
            self._left -= count
            self._advance(count)

    def finish(self) -> None:
        self.add(self._left)


class _CountingReader:
    def __init__(self, source: BinaryIO, counted: _Counted):
        self._source, self._counted = source, counted

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._counted.add(len(data))
        return data


def blob_rows(database: Database) -> Iterator[BlobRow]:
    """Every row of `blobs` by SHA-256, a page at a time (a large site's rows are not all
    held at once; rows added while it runs after the current position are seen too)."""
    after = ""
    while True:
        with database.reading() as conn:
            page = conn.execute(
                select(schema.blobs.c.sha256, schema.blobs.c.md5, schema.blobs.c.size)
                .where(schema.blobs.c.sha256 > after)
                .order_by(schema.blobs.c.sha256).limit(ROWS_PER_PAGE)).all()
        for row in page:
            yield BlobRow(row.sha256, row.md5, row.size)
        if len(page) < ROWS_PER_PAGE:
            return
        after = page[-1].sha256


def totals(database: Database) -> tuple[int, int]:
    """(blob count, their bytes): the progress's total."""
    with database.reading() as conn:
        count, size = conn.execute(select(func.count(), func.coalesce(
            func.sum(schema.blobs.c.size), 0)).select_from(schema.blobs)).one()
    return int(count), int(size)


class BlobMigration:
    def __init__(self, database: Database, source: LocalBlobStore, target: S3BlobStore,
                 progress: Callable[[int], None] = lambda count: None,
                 parallel: int = PARALLEL_BLOBS):
        """`progress(count)` is called with each count of bytes done (one thread at a
        time)."""
        self.database, self.source, self.target = database, source, target
        self.parallel = parallel
        self._progress = progress
        self._progress_lock = threading.Lock()

    def run(self, dry_run: bool = False) -> MigrationReport:
        """Copy and verify every blob (a dry run: verify what is there, list the rest)."""
        report = MigrationReport()
        in_flight: dict[Future, BlobRow] = {}
        with ThreadPoolExecutor(self.parallel, thread_name_prefix="skyrelay-migrate") as pool:
            for row in blob_rows(self.database):
                report.blobs += 1
                if report.stopped is not None:
                    report.not_tried += 1
                    continue
                while len(in_flight) >= self.parallel * QUEUED_PER_WORKER:
                    self._collect(in_flight, report, wait(in_flight,
                                                          return_when=FIRST_COMPLETED).done)
                in_flight[pool.submit(self._migrate, row, dry_run)] = row
            self._collect(in_flight, report, list(in_flight))
        return report

    def _collect(self, in_flight: dict[Future, BlobRow], report: MigrationReport,
                 done) -> None:
        for future in done:
            row = in_flight.pop(future)
            try:
                outcome, why = future.result()
            except _BlobFailed as exc:
                report.failures.append(Failure(row.sha256, str(exc)))
            except ObjectStoreUnavailable as exc:
                report.failures.append(Failure(row.sha256, str(exc)))
                report.stopped = report.stopped or str(exc)
            except OSError as exc:       # this host's disk: the local file or the spool
                report.failures.append(Failure(row.sha256, f"{type(exc).__name__}: {exc}"))
            else:
                if outcome is _Done.COPIED:
                    report.copied += 1
                    report.bytes_copied += row.size
                elif outcome is _Done.ALREADY_THERE:
                    report.already_there += 1
                else:
                    report.would_copy.append((row, why))

    def _advance(self, count: int) -> None:
        with self._progress_lock:
            self._progress(count)

    # -- one blob ---------------------------------------------------------------------------

    def _migrate(self, row: BlobRow, dry_run: bool) -> tuple[_Done, str]:
        counted = _Counted(self._advance, row.size)
        try:
            problem = self._object_problem(row, counted)
            if problem is None:
                return _Done.ALREADY_THERE, ""
            if dry_run:
                if not self.source.exists(row.sha256):
                    raise _BlobFailed(f"no local file {self._local_path(row)}")
                return _Done.WOULD_COPY, problem
            if problem != MISSING:
                # A large blob is not sent again over an object of its name: remove it.
                self.target.delete(row.sha256)
            self._copy(row, counted)
            problem = self._object_problem(row, None)
            if problem is not None:
                raise _BlobFailed(f"copied, but reading it back: {problem}")
            return _Done.COPIED, ""
        finally:
            counted.finish()

    def _object_problem(self, row: BlobRow, counted: _Counted | None) -> str | None:
        """None if the store holds the blob with the row's MD5 and size (read back and
        hashed), else what is wrong with it."""
        try:
            reader = self.target.open(row.sha256)
        except FileNotFoundError:
            return MISSING
        with reader:
            source = reader if counted is None else _CountingReader(reader, counted)
            try:
                info = check_stream(source, row.md5)
            except Md5Mismatch as exc:
                return f"the object's MD5 is {exc.actual}, expected {row.md5}"
        if info.size != row.size:
            return f"the object holds {info.size} bytes, expected {row.size}"
        return None

    def _copy(self, row: BlobRow, counted: _Counted) -> None:
        try:
            local = self.source.open(row.sha256)
        except FileNotFoundError:
            raise _BlobFailed(f"no local file {self._local_path(row)}") from None
        with local:
            try:
                pending = self.target.write(_CountingReader(local, counted), md5=row.md5)
            except Md5Mismatch as exc:
                raise _BlobFailed(f"the local file's MD5 is {exc.actual}, the database says "
                                  f"{row.md5}: not copied") from None
        with pending:
            if (pending.info.sha256, pending.info.size) != (row.sha256, row.size):
                raise _BlobFailed(f"the local file holds {pending.info.size} bytes with "
                                  f"SHA-256 {pending.info.sha256}: not copied")
            pending.commit()

    def _local_path(self, row: BlobRow) -> str:
        return self.source.folder_and_path(row.sha256)[1]

