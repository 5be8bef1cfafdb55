"""Ingest a bundle, all or nothing: used by `skyrelay bundle ingest` and by POST /ingest.

Three steps, each a task of the job:
1. **validating** streams through the tar once: every member header is checked, metadata.json
   is read (bounded) and validated, and every file record must have its bytes in the bundle or
   here already. Nothing is written, so a bundle with a bad member stores nothing at all.
2. **ingest files** streams through it again and stages each `data/<file_id>` with its record's
   MD5 (Archive.stage_bytes); a mismatch refuses the bundle. metadata.json may come before or
   after the data: after step 1 it is always known, and file bytes are never held in memory.
3. **ingest metadata** stores every status, file record and event in ONE transaction,
   together with their trace events.
Whatever happens, the bytes this bundle staged and no record claimed are removed at the end.
"""

import logging
import os
import tarfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Callable

from model.archive.archive import Archive, BundleResult, MissingData, MissingStatus, Outcome
from model.bundles.format import (METADATA, BundleMetadata, BundleRefused, classify,
                                  members, parse_metadata)
from model.ops import jobs as job_tasks
from model.ops.traces import FAILED, OK, TraceEvent, Traces
from model.protocol.vocabulary import COMPLETE, EVENT, FILE, STATUS, answer_text
from model.store.blobs import Md5Mismatch, TooLarge, check_stream
from model.store.database import DatabaseBusy, now_ms

log = logging.getLogger("skyrelay.bundles")
Progress = Callable[[str, float], None]   # (task, percent)
_TAR_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)


@dataclass(frozen=True)
class IngestLimits:
    max_bundle_bytes: int
    max_metadata_bytes: int
    max_file_bytes: int

    @classmethod
    def from_settings(cls, settings) -> "IngestLimits":
        """From a site's configuration (anything with `["importer.…"]`)."""
        return cls(settings["importer.max_bundle_bytes"],
                   settings["importer.max_bundle_metadata_bytes"],
                   settings["importer.max_file_bytes"])


@dataclass(frozen=True)
class IngestReport:
    statuses: int
    files: int
    events: int
    stored: int
    held: int
    conflicts: int

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Origin:
    """Who asked for the ingest, for the trace events: the site user, the component (importer,
    cli), the trace ID and the job."""
    user: str
    component: str
    trace_id: str
    job_id: int


class _Counting:
    """A read-only file that counts the (compressed) bytes read, for progress."""

    def __init__(self, raw: BinaryIO, total: int, progress: Callable[[float], None]):
        self._raw, self._total, self._progress, self.count = raw, max(total, 1), progress, 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.count += len(data)
        self._progress(100.0 * self.count / self._total)
        return data


def _members(path: str, total: int, on_percent: Callable[[float], None]):
    """(tar, member, Member) for every member of a complete bundle, streamed
    (`format.members`)."""
    seen: set[str] = set()
    with open(path, "rb") as raw:
        for tar, member in members(_Counting(raw, total, on_percent)):
            yield tar, member, classify(member, seen)


def ingest_bundle(archive: Archive, traces: Traces, path: str, origin: Origin,
                  limits: IngestLimits, progress: Progress) -> IngestReport:
    """Ingest the bundle at `path`; raise BundleRefused (nothing stored) when it cannot be."""
    size = os.path.getsize(path)
    if size > limits.max_bundle_bytes:
        raise BundleRefused(f"the bundle is {size} bytes, larger than the limit of "
                            f"{limits.max_bundle_bytes} (importer.max_bundle_bytes)")
    metadata = None
    staged: list[tuple[str, str]] = []
    try:
        progress(job_tasks.VALIDATING, 0.0)
        metadata = _validate(archive, path, size, limits,
                             lambda p: progress(job_tasks.VALIDATING, p))
        progress(job_tasks.INGEST_FILES, 0.0)
        _stage_files(archive, path, size, metadata, limits, staged,
                     lambda p: progress(job_tasks.INGEST_FILES, p))
        progress(job_tasks.INGEST_METADATA, 0.0)
        return _store(archive, traces, metadata, origin, size)
    except BundleRefused as exc:
        _record_refusal(traces, metadata, origin, str(exc), size)
        raise
    except Exception as exc:
        message = _describe(exc)
        if message is None:
            log.exception("bundle ingest of %s failed unexpectedly", path)
            first_line = str(exc).splitlines()[0][:300] if str(exc) else ""
            message = f"internal error while ingesting ({type(exc).__name__}: {first_line})"
        _record_refusal(traces, metadata, origin, message, size)
        raise BundleRefused(message) from exc
    finally:
        archive.unstage(staged)


def _describe(exc: Exception) -> str | None:
    """A readable reason for the errors a bad bundle or a busy site can cause."""
    if isinstance(exc, _TAR_ERRORS):
        return f"the bundle is not a readable tar (truncated or corrupt?): {exc}"
    if isinstance(exc, TooLarge):
        return f"a file in the bundle is {exc} (importer.max_file_bytes)"
    if isinstance(exc, MissingStatus):
        return f"{exc}: it is neither in the bundle nor held by this site"
    if isinstance(exc, MissingData):
        return f"{exc}: the bundle changed while it was read"
    if isinstance(exc, DatabaseBusy):
        return "the database stayed busy; send the bundle again later"
    return None


def _validate(archive: Archive, path: str, size: int, limits: IngestLimits,
              on_percent) -> BundleMetadata:
    metadata, data_ids, unpacked = None, set(), 0
    for tar, member, kind in _members(path, size, on_percent):
        unpacked += member.size
        if unpacked > limits.max_bundle_bytes:
            raise BundleRefused(f"the bundle unpacks to more than {limits.max_bundle_bytes} "
                                "bytes (importer.max_bundle_bytes)")
        if kind.kind == "metadata":
            metadata = _read_metadata(tar, member, limits)
        elif kind.kind == "data":
            data_ids.add(kind.file_id)
    if metadata is None:
        raise BundleRefused(f"the bundle has no {METADATA}")
    records = metadata.records()
    unnamed = sorted(data_ids - records.keys())
    if unnamed:
        raise BundleRefused(f"data/{unnamed[0]} is not named by any file record in {METADATA}")
    absent = [r for file_id, r in records.items() if file_id not in data_ids]
    missing = archive.missing_data(absent)
    if missing:
        raise BundleRefused(f"data/{missing[0]} is missing from the bundle (and this site does "
                            "not hold those bytes)")
    return metadata


def _read_metadata(tar: tarfile.TarFile, member: tarfile.TarInfo,
                   limits: IngestLimits) -> BundleMetadata:
    if member.size > limits.max_metadata_bytes:
        raise BundleRefused(f"{METADATA} is {member.size} bytes, larger than the limit of "
                            f"{limits.max_metadata_bytes} (importer.max_bundle_metadata_bytes)")
    raw = tar.extractfile(member).read()
    if len(raw) != member.size:
        raise BundleRefused(f"{METADATA} is truncated")
    return parse_metadata(raw)


def _stage_files(archive: Archive, path: str, size: int, metadata: BundleMetadata,
                 limits: IngestLimits, staged: list, on_percent) -> None:
    """Stage every data member under its record's MD5; `staged` collects what this bundle
    added, so that it can be removed again."""
    records = metadata.records()
    for tar, member, kind in _members(path, size, on_percent):
        if kind.kind != "data":
            continue
        record = records.get(kind.file_id)
        if record is None:
            raise BundleRefused(f"data/{kind.file_id} is not named by any file record")
        stream = tar.extractfile(member)
        if archive.has_data(record.file_id, record.md5):
            try:                 # held already: check the bundle's copy, keep nothing
                check_stream(stream, record.md5)
            except Md5Mismatch as mismatch:
                raise _corrupt(record, mismatch.actual) from None
            continue
        result = archive.stage_bytes(record.file_id, record.md5, stream,
                                     limit=limits.max_file_bytes)
        if result.wrong_md5:
            raise _corrupt(record, result.md5)
        if result.received:
            staged.append((record.file_id, record.md5))


def _corrupt(record, actual_md5: str) -> BundleRefused:
    return BundleRefused(f"data/{record.file_id} is corrupt: its MD5 is {actual_md5}, its "
                         f"record in {METADATA} says {record.md5}")


def _store(archive: Archive, traces: Traces, metadata: BundleMetadata, origin: Origin,
           size: int) -> IngestReport:
    started = now_ms()

    def record_traces(tx, results: list[BundleResult]) -> None:
        report = _report(metadata, results)
        events = [_entity_event(origin, result, started) for result in results]
        events.append(_bundle_event(origin, started, OK, "", size, report))
        traces.record_many(events, tx)

    # Another import storing some of these entities at the same time is no error: the
    # archive decides again after a lost race, and they are simply held (`model.archive.races`).
    results = archive.import_bundle(metadata.statuses, metadata.files, metadata.events,
                                    before_commit=record_traces)
    return _report(metadata, results)


def _report(metadata: BundleMetadata, results: list[BundleResult]) -> IngestReport:
    outcomes = [r.result.outcome for r in results]
    return IngestReport(len(metadata.statuses), len(metadata.records()), len(metadata.events),
                        outcomes.count(Outcome.STORED), outcomes.count(Outcome.HELD),
                        outcomes.count(Outcome.CONFLICT))


_OPERATION = {Outcome.STORED: "store", Outcome.HELD: "held", Outcome.CONFLICT: "conflict"}


def _entity_event(origin: Origin, result: BundleResult, started: int) -> TraceEvent:
    outcome = result.result
    conflict = outcome.outcome is Outcome.CONFLICT
    meta = {"job_id": origin.job_id}
    if conflict:
        meta.update(held_hash=outcome.held_hash, new_hash=outcome.new_hash)
    return TraceEvent(
        trace_id=origin.trace_id, domain=result.kind, domain_id=result.entity_id,
        operation=_OPERATION[outcome.outcome], component=origin.component, user=origin.user,
        trace_event_status=FAILED if conflict else OK, start_time=started,
        status_body=answer_text(COMPLETE), meta=meta,
        exception=(f"{result.kind} {result.entity_id} is held with other content "
                   f"(held {outcome.held_hash}, bundle {outcome.new_hash}); the held version "
                   "is kept") if conflict else "")


def _bundle_event(origin: Origin, started: int, status: str, exception: str, size: int,
                  report: IngestReport | None) -> TraceEvent:
    meta = {"job_id": origin.job_id, "bytes": size}
    if report is not None:
        meta.update(report.to_json())
    return TraceEvent(
        trace_id=origin.trace_id, domain="bundle", domain_id=str(origin.job_id),
        operation="ingest", component=origin.component, user=origin.user,
        trace_event_status=status, start_time=started, meta=meta, exception=exception,
        status_body=answer_text(COMPLETE) if status == OK else "",
        errors=[exception] if exception else [])


def _record_refusal(traces: Traces, metadata: BundleMetadata | None, origin: Origin,
                    reason: str, size: int) -> None:
    """A refused bundle: one FAILED event for the bundle and one per entity it named (so that
    asking about any of them says what happened)."""
    started = now_ms()
    events = []
    if metadata is not None:
        for kind, ids in ((STATUS, [s.status_id for s in metadata.statuses]),
                          (FILE, [f.file_id for f in metadata.files]),
                          (EVENT, [e.event_id for e in metadata.events])):
            events += [TraceEvent(
                trace_id=origin.trace_id, domain=kind, domain_id=entity_id, operation="ingest",
                component=origin.component, user=origin.user, trace_event_status=FAILED,
                start_time=started, meta={"job_id": origin.job_id},
                exception=f"bundle refused: {reason}") for entity_id in ids]
    events.append(_bundle_event(origin, started, FAILED, reason, size, None))
    try:
        traces.record_many(events)
    except Exception:  # noqa: BLE001 - the refusal itself must still reach the job
        log.exception("could not record the trace of refused bundle (job %s)", origin.job_id)
