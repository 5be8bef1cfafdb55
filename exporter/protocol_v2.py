"""The version 2 (batched) exchange as a pure state machine: a batch of entities in, the
requests to make out, one outcome per entity at the end. No I/O, so every result state (and
every garbage answer) is tested with plain dicts; `exporter.sync_v2` does the HTTP.

    exchange = BatchExchange([("event", body), ...])
    action = exchange.start()                        # PostBatch
    while not isinstance(action, Finished):
        if isinstance(action, PostBatch):
            action = exchange.answered(post("/batch", action.body))
        else:                                         # Supply: statuses and file bytes
            action = exchange.supplied(statuses, upload_failures)

A batch whose entities all need bytes costs two batch requests plus the uploads, or one when
the bytes go first, unasked (`bytes_first`). Termination:
at most `max_rounds` batch requests, and an entity that asks for the same status after it was
sent, or for the same file `SAME_NEED_LIMIT` times, fails; a misbehaving importer can never
hang a sync.
"""

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from model.protocol.stored_json import json_text
from model.protocol.vocabulary import (COMPLETE, EVENT, FAILED, FILE, NEED_FILE_DATA,
                                       NEED_STATUS, Complete, Failed, Outcome, file_records,
                                       named_statuses)

SAME_NEED_LIMIT = 3
MAX_ROUNDS = 8
Key = tuple[str, str]   # (kind, entity id)


@dataclass(frozen=True)
class FileNeed:
    file_id: str
    md5: str
    size: int


@dataclass(frozen=True)
class PostBatch:
    """POST this body to `{base}/batch`."""
    body: dict


@dataclass(frozen=True)
class Supply:
    """Read these statuses from the archive and upload these files' bytes, then call
    `supplied`."""
    status_ids: tuple[str, ...]
    files: tuple[FileNeed, ...]


@dataclass(frozen=True)
class Finished:
    outcomes: dict             # Key → Outcome, for every entity of the batch


Action = PostBatch | Supply | Finished


@dataclass
class _Entity:
    kind: str
    body: dict
    files: dict                                  # file_id → FileNeed
    needs: dict = field(default_factory=dict)    # file_id or status_id → times asked
    answered: bool = False                       # the importer answered it before
    bytes_sent: bool = False                     # some of its files went before any ask


def _file_needs(kind: str, body: dict) -> list[FileNeed]:
    return [FileNeed(r["file_id"], r["md5"], int(r["file_size"]))
            for r in file_records(kind, body)]


class BatchExchange:
    def __init__(self, entities: Iterable[tuple[str, dict]], max_rounds: int = MAX_ROUNDS,
                 max_batch: int = 500, statuses: Mapping[str, dict] | None = None,
                 bytes_first_up_to: int = 0):
        """`statuses`: status bodies to send in the first request, unasked (the ones the
        entities name that the importer has not confirmed yet): a new importer then answers
        the entities in the same request instead of asking for their status first.
        `bytes_first_up_to`: the entities' files up to this size go before the first
        request, unasked, for the same reason (see `BatchDriver` for when; 0: none)."""
        self._open: dict[Key, _Entity] = {}
        for kind, body in entities:
            files = {need.file_id: need for need in _file_needs(kind, body)}
            self._open[(kind, body[f"{kind}_id"])] = _Entity(kind, body, files)
        self.keys = list(self._open)
        self.outcomes: dict[Key, Outcome] = {}
        self.max_rounds = max_rounds
        self.max_batch = max_batch
        self.rounds = 0
        self._statuses: dict[str, dict] = dict(statuses or {})   # for the next batch
        self._statuses_sent: set[str] = set()
        self._sent: list[Key] = []
        self._status_order: list[str] = []
        self.status_results: list[tuple[str, Any]] = []   # statuses of the last batch
        self._files_asked: set[str] = set()               # by the importer, in any round
        self._files = {need.file_id: need for entity in self._open.values()
                       for need in entity.files.values()}
        self._bytes_first = tuple(need for need in self._files.values()
                                  if need.size <= bytes_first_up_to)

    # -- requests ---------------------------------------------------------------------------

    def start(self) -> Action:
        if self._bytes_first:
            sent = {need.file_id for need in self._bytes_first}
            for entity in self._open.values():
                entity.bytes_sent = not sent.isdisjoint(entity.files)
            return Supply((), self._bytes_first)
        return self._next_batch()

    def _next_batch(self) -> Action:
        if not self._open:
            return Finished(dict(self.outcomes))
        if self.rounds >= self.max_rounds:
            for key in list(self._open):
                self._fail(key, f"not complete after {self.rounds} batch requests")
            return Finished(dict(self.outcomes))
        self.rounds += 1
        # Statuses and entities together must fit in max_batch; if they do not, the
        # statuses go first, alone (the entities follow in the next batch).
        alone = len(self._statuses) + len(self._open) > self.max_batch
        body = {"statuses": list(self._statuses.values()),
                "files": [] if alone else [e.body for k, e in self._open.items()
                                           if k[0] == FILE],
                "events": [] if alone else [e.body for k, e in self._open.items()
                                            if k[0] == EVENT]}
        self._statuses_sent |= set(self._statuses)
        self._status_order = list(self._statuses)
        self._statuses = {}
        # The importer answers statuses, then files, then events: keep the same order.
        self._sent = [] if alone else ([k for k in self._open if k[0] == FILE]
                                       + [k for k in self._open if k[0] == EVENT])
        return PostBatch(body)

    def _fail(self, key: Key, reason: str) -> None:
        self._open.pop(key, None)
        self.outcomes[key] = Failed(reason)

    def _fail_all(self, reason: str) -> Finished:
        for key in list(self._open):
            self._fail(key, reason)
        return Finished(dict(self.outcomes))

    # -- answers ----------------------------------------------------------------------------

    def answered(self, answer: Any) -> Action:
        """The next action after the importer's answer to the last batch."""
        results = answer.get("results") if isinstance(answer, dict) else None
        expected = len(self._status_order) + len(self._sent)
        if not isinstance(results, list) or len(results) != expected:
            return self._fail_all(f"protocol: the answer to a batch of {expected} entities is "
                                  f"not {expected} results: {_show(answer)}")
        self.status_results = list(zip(self._status_order, results[:len(self._status_order)]))
        status_ids, files = [], {}
        for key, result in zip(self._sent, results[len(self._status_order):]):
            self._read_result(key, result, status_ids, files)
        if not status_ids and not files:
            return self._next_batch()   # (also after a batch of statuses alone)
        return Supply(tuple(dict.fromkeys(status_ids)), tuple(files.values()))

    def _read_result(self, key: Key, result: Any, status_ids: list, files: dict) -> None:
        entity = self._open[key]
        if not isinstance(result, dict) or (result.get("type"), result.get("id")) != key:
            self._fail(key, f"protocol: result {_show(result)} is not for {key[0]} {key[1]}")
            return
        state, first_answer, entity.answered = result.get("state"), not entity.answered, True
        if state == COMPLETE:
            self._open.pop(key)
            self.outcomes[key] = Complete(already_present=first_answer and not entity.bytes_sent)
        elif state == FAILED:
            self._fail(key, f"importer answered failed: {result.get('message') or 'no reason'}")
        elif state == NEED_STATUS:
            self._need_status(key, entity, result.get("status_id"), status_ids)
        elif state == NEED_FILE_DATA:
            self._need_files(key, entity, result.get("file_ids"), files)
        else:
            self._fail(key, f"protocol: unexpected result {_show(result)}")

    def _need_status(self, key: Key, entity: _Entity, status_id, status_ids: list) -> None:
        if not isinstance(status_id, str) or \
                status_id not in named_statuses(entity.kind, entity.body):
            self._fail(key, f"protocol: importer asked for status {status_id!r}, which the "
                       f"{key[0]} does not name")
        elif status_id in self._statuses_sent:
            self._fail(key, f"importer asked again for status {status_id} after it was sent")
        else:
            status_ids.append(status_id)

    def _need_files(self, key: Key, entity: _Entity, file_ids, files: dict) -> None:
        if not isinstance(file_ids, list) or not file_ids or \
                any(f not in entity.files for f in file_ids):
            self._fail(key, f"protocol: importer asked for files {_show(file_ids)}, which the "
                       f"{key[0]} does not list")
            return
        for file_id in file_ids:
            entity.needs[file_id] = entity.needs.get(file_id, 0) + 1
            if entity.needs[file_id] >= SAME_NEED_LIMIT:
                self._fail(key, f"importer asked for the bytes of file {file_id} "
                           f"{SAME_NEED_LIMIT} times")
                return
        for file_id in file_ids:
            files[file_id] = entity.files[file_id]
        self._files_asked.update(file_ids)

    def asked_for_every_file(self, up_to: int) -> bool:
        """Whether the importer asked for the bytes of every file up to `up_to` bytes that
        the batch lists (and it lists some): an importer catching up."""
        listed = {f for f, need in self._files.items() if need.size <= up_to}
        return bool(listed) and listed <= self._files_asked

    def supplied(self, statuses: dict[str, dict | None],
                 upload_failures: dict[str, str]) -> Action:
        """Statuses read (None: not in this archive) and files that could not be sent (file
        ID → reason); then the next batch with the entities still open. Files that could not
        go first, unasked, fail nothing yet: the importer asks for them if it lacks them."""
        for status_id, body in statuses.items():
            if body is None:
                self._fail_needing_status(status_id)
            else:
                self._statuses[status_id] = body
        if self._bytes_first:
            self._bytes_first = ()
            upload_failures = {}
        for file_id, reason in upload_failures.items():
            for key in [k for k, e in self._open.items() if file_id in e.files]:
                self._fail(key, f"file {file_id}: {reason}")
        return self._next_batch()

    def _fail_needing_status(self, status_id: str) -> None:
        for key in [k for k, e in self._open.items()
                    if status_id in named_statuses(e.kind, e.body)]:
            self._fail(key, f"status {status_id} is not in this archive")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


# -- planning (pure) ------------------------------------------------------------------------

def split_batches(entities: Sequence[tuple[str, dict]], batch_size: int,
                  max_body_bytes: int) -> list[list[tuple[str, dict]]]:
    """Consecutive groups of at most `batch_size` entities whose JSON stays well under the
    importer's body limit (half of it: room for the statuses a later round adds)."""
    budget = max(1, max_body_bytes // 2)
    batches, current, size = [], [], 0
    for kind, body in entities:
        length = len(json_text(body)) + 1
        if current and (len(current) >= batch_size or size + length > budget):
            batches.append(current)
            current, size = [], 0
        current.append((kind, body))
        size += length
    if current:
        batches.append(current)
    return batches


def plan_uploads(files: Sequence[FileNeed], small_file_bytes: int, request_bytes: int
                 ) -> tuple[list[list[FileNeed]], list[FileNeed]]:
    """(groups of small files, one `/blobs` request each, at most `request_bytes` of file
    data per request; large files, one resumable upload each)."""
    small = [f for f in files if f.size <= small_file_bytes]
    large = [f for f in files if f.size > small_file_bytes]
    groups, current, size = [], [], 0
    for need in small:
        if current and size + need.size > request_bytes:
            groups.append(current)
            current, size = [], 0
        current.append(need)
        size += need.size
    if current:
        groups.append(current)
    return groups, large
