"""Sending a page of the export queue with protocol version 2: the I/O around the pure
`protocol_v2.BatchExchange`.

A page is cut into batches of `batch_size` entities (and well under the importer's body
limit). For each batch: one `/batch` request, with the statuses its entities name that the
importer has not confirmed yet in this run (unasked: a new importer then needs no round to
ask for them); a status it still asks for goes into the next one; the bytes it lacks go
small files together through `/blobs` (at most
`blobs_request_bytes` per request), large files one by one as resumable uploads; then one
more `/batch` with only the entities that were not complete. After a batch that lacked every
small file, the next one sends its small files first, unasked, and needs one `/batch`.
An entity's fault at `/batch` (`exporter.retry.fault_of`) fails the batch's entities that are
not complete yet; every other transport error is left to the sync, which sorts it as for
version 1.

Entities the importer answers `complete` are marked done as each answer arrives (`mark_done`),
not when the page ends: a fault in a later request of the page (an importer killed during a
large upload) then loses none of them, and the next run does not send them again.
"""

from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable
from urllib.parse import urljoin, urlsplit

from exporter import errors
from exporter.protocol_v2 import (BatchExchange, FileNeed, Finished, PostBatch, plan_uploads,
                                  split_batches)
from exporter.resumable import Resumable, UploadRefused
from exporter.retry import Fault, fault_of
from exporter.transport import Transport
from model.archive.archive import Archive
from model.export.queue import QueueItem
from model.export.upload_urls import UploadUrls
from model.protocol.vocabulary import (COMPLETE, Complete, Failed, Outcome, file_records,
                                       named_statuses, state_of)


@dataclass
class PageOutcome:
    """What a page delivered so far: filled in as the importer answers, so that what it
    answered before a fault is still known when the page ends with one."""
    outcomes: dict[int, Outcome] = field(default_factory=dict)   # per queue row ID
    statuses_sent: list[tuple[str, Any]] = field(default_factory=list)  # (status ID, result)


@dataclass
class BatchDriver:
    archive: Archive
    transport: Transport
    capabilities: dict
    upload_urls: UploadUrls
    target_name: str
    batch_size: int
    small_file_bytes: int
    blobs_request_bytes: int
    upload_chunk_bytes: int
    mark_done: Callable[[list[int]], None]          # queue row IDs answered complete

    def __post_init__(self):
        caps = self.capabilities
        # At least 2: room for one status beside one entity.
        self.batch_size = max(2, min(self.batch_size, _int(caps, "max_batch", self.batch_size)))
        self.max_body_bytes = _int(caps, "max_body_bytes", 16 * 1024 * 1024)
        self.blobs_request_bytes = min(self.blobs_request_bytes,
                                       _int(caps, "max_file_bytes", self.blobs_request_bytes))
        self.resumable = Resumable(self.transport, self._uploads_url(), self.upload_urls,
                                   self.target_name, self.upload_chunk_bytes)
        self._status_bodies: dict[str, dict | None] = {}   # read once per run
        self._statuses_held: set[str] = set()   # answered complete by the importer
        self._lacked_all = False   # the last batch asked for every small file it listed

    def _uploads_url(self) -> str:
        """The advertised `uploads` path, on the importer's host (a full URL is taken as
        given)."""
        path = self.capabilities.get("uploads") or urlsplit(self.transport.base_url).path \
            + "/uploads"
        return urljoin(self.transport.base_url + "/", path)

    def send(self, items: list[QueueItem], page: PageOutcome) -> None:
        """Fill `page` with an outcome per queue row ID (rows whose entity left the archive
        are not included); an error leaves in it what was answered before."""
        live = [item for item in items if item.body is not None]
        by_key = {(item.kind, item.entity_id): item.id for item in live}
        for batch in split_batches([(i.kind, i.body) for i in live], self.batch_size,
                                   self.max_body_bytes):
            self._exchange(batch, page, by_key)

    def _deliver(self, outcomes: dict, page: PageOutcome, by_key: dict, batch: list) -> None:
        """Record the outcomes not on the page yet; the completes among them are marked done
        at once, and the upload URLs of their large files forgotten (the importer holds the
        bytes, whichever way they arrived)."""
        fresh = {key: outcome for key, outcome in outcomes.items()
                 if by_key[key] not in page.outcomes}
        page.outcomes.update({by_key[key]: outcome for key, outcome in fresh.items()})
        done = [key for key, outcome in fresh.items() if isinstance(outcome, Complete)]
        if not done:
            return
        self.mark_done([by_key[key] for key in done])
        bodies = dict(((kind, body[f"{kind}_id"]), body) for kind, body in batch)
        uploaded = [record["file_id"] for kind, entity_id in done
                    for record in file_records(kind, bodies[(kind, entity_id)])
                    if int(record["file_size"]) > self.small_file_bytes]
        if uploaded:
            self.upload_urls.forget_files(self.target_name, uploaded)

    def _exchange(self, batch, page: PageOutcome, by_key: dict) -> None:
        named = dict.fromkeys(status_id for kind, body in batch
                              for status_id in named_statuses(kind, body))
        unconfirmed = {status_id: body for status_id in named
                       if status_id not in self._statuses_held
                       and (body := self._status(status_id)) is not None}
        guess, self._lacked_all = self._lacked_all, False
        exchange = BatchExchange(batch, max_batch=self.batch_size, statuses=unconfirmed,
                                 bytes_first_up_to=self.small_file_bytes if guess else 0)
        action = exchange.start()
        while not isinstance(action, Finished):
            if isinstance(action, PostBatch):
                try:
                    answer = self.transport.post_json(action.body, "/batch")
                except errors.ExportError as exc:
                    if fault_of(exc) is not Fault.ENTITY:
                        raise
                    self._deliver({key: Failed(f"batch refused: {exc}")
                                   for key in exchange.keys if key not in exchange.outcomes},
                                  page, by_key, batch)
                    return
                action = exchange.answered(answer)
                self._deliver(exchange.outcomes, page, by_key, batch)
                page.statuses_sent.extend(exchange.status_results)
                self._statuses_held.update(
                    status_id for status_id, result in exchange.status_results
                    if state_of(result) == COMPLETE)
            else:
                statuses = {status_id: self._status(status_id) for status_id in action.status_ids}
                action = exchange.supplied(statuses, self._send_files(action.files))
        # A batch that lacked every small file it listed (an importer catching up) makes the
        # next one send its small files' bytes before asking, which saves a request; the one
        # after asks again, so bytes the importer turns out to hold are sent at most every
        # other batch.
        self._lacked_all = not guess and exchange.asked_for_every_file(self.small_file_bytes)
        self._deliver(action.outcomes, page, by_key, batch)

    def _status(self, status_id: str) -> dict | None:
        if status_id not in self._status_bodies:
            status = self.archive.get_status(status_id)
            self._status_bodies[status_id] = None if status is None else status.to_json()
        return self._status_bodies[status_id]

    # -- file bytes -------------------------------------------------------------------------

    def _send_files(self, files: tuple[FileNeed, ...]) -> dict[str, str]:
        """Upload what the importer lacks; file ID → reason for those that did not arrive."""
        names = self.archive.blob_names([f.file_id for f in files])
        failures = {f.file_id: "bytes are not in this archive" for f in files
                    if f.file_id not in names}
        ready = [f for f in files if f.file_id in names]
        groups, large = plan_uploads(ready, self.small_file_bytes, self.blobs_request_bytes)
        for group in groups:
            failures.update(self._send_blobs(group, names))
        for need in large:
            try:
                self.resumable.send(need.file_id, need.md5, need.size,
                                    self._opener(names[need.file_id]), names[need.file_id])
            except UploadRefused as exc:
                failures[need.file_id] = str(exc)
        return failures

    def _send_blobs(self, group: list[FileNeed], names: dict[str, str]) -> dict[str, str]:
        parts = [(f"{f.file_id}.{f.md5}", self._opener(names[f.file_id]), f.size)
                 for f in group]
        answer = self.transport.post_blobs(parts)
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise errors.ProtocolError(f"protocol: /blobs answered {str(answer)[:80]!r}")
        received = {r.get("file_id") for r in results
                    if isinstance(r, dict) and r.get("received") is True}
        messages = {r.get("file_id"): r.get("message") for r in results if isinstance(r, dict)}
        return {f.file_id: f"not received: {messages.get(f.file_id) or 'no reason given'}"
                for f in group if f.file_id not in received}

    def _opener(self, sha256: str) -> Callable[[], BinaryIO]:
        def open_stream() -> BinaryIO:
            try:
                return self.archive.blobs.open(sha256)
            except FileNotFoundError:
                raise errors.FinalError(f"blob {sha256} left the archive") from None
        return open_stream


def _int(capabilities: dict, key: str, default: int) -> int:
    value = capabilities.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 \
        else default


def speaks_version_2(capabilities: dict | None) -> bool:
    return bool(capabilities) and 2 in capabilities.get("protocol", [])
