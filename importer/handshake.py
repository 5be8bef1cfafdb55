"""The version 1 handshake decision as a pure function over plain data.

What to answer to an entity depends only on the entity and on a few facts about what the
archive holds (`Held`). Keeping the decision apart from the I/O that gathers those facts and
stores the entity lets the rules of docs/wire.md be tested with plain values, and lets the
routes re-decide after a store that lost a race against another request.
"""

from dataclasses import dataclass, field
from typing import Mapping

from model.protocol.entities import Event, FileRecord, Status
from model.protocol.vocabulary import (COMPLETE, CONTINUE, CONTINUE_NOCACHE, FAILED,
                                       NEED_FILE_DATA, NEED_STATUS, answer)

Entity = Status | FileRecord | Event


@dataclass(frozen=True)
class Held:
    """What the archive holds that matters to one entity."""
    held_hash: str | None = None     # content hash of the version held under the entity's ID
    status_held: bool = False        # the entity's status and its records' statuses are held
    missing_status_id: str | None = None  # the first of those that is not (entity's first)
    missing_data: frozenset = frozenset()   # file IDs whose bytes (with the record's MD5) are not here
    taken_file_ids: frozenset = frozenset()  # file IDs of its records held as another entity's


@dataclass(frozen=True)
class Answer:
    """One answer of the answer table; `conflict` is for the caller's log, not the wire."""
    state: str
    status_id: str | None = None
    file_id: str | None = None
    message: str | None = None
    conflict: bool = field(default=False, compare=False)

    def to_json(self) -> dict:
        return answer(self.state, status_id=self.status_id, file_id=self.file_id,
                      message=self.message)


class Store:
    """Not an answer: store the entity, then decide again with what is held afterwards."""

    def __repr__(self) -> str:
        return "STORE"


STORE = Store()
NOCACHE = Answer(CONTINUE_NOCACHE)


def taken_file_ids(event: Event, holders: Mapping[str, str | None]) -> frozenset:
    """`Held.taken_file_ids` of `event`, from `holders` ({file ID: the event holding it, None
    for a standalone record}, `Catalog.file_holders`): its records held as part of another
    entity. A record held as part of this very event is not taken: the facts are read in
    several queries, not one snapshot, and a concurrent import of the same event committed
    between them; the store that follows finds the event held and answers `complete`."""
    return frozenset(r.file_id for r in event.files
                     if r.file_id in holders and holders[r.file_id] != event.event_id)


def decide(entity: Entity, held: Held, cached: bool = False) -> Answer | Store:
    """The answer to `entity` (sent in full, or named by the `cached_entity` form when
    `cached`), or STORE when everything it needs is here."""
    if isinstance(entity, Status):
        return _decide_status(entity, held, cached)
    return _decide_with_files(entity, held)


def _decide_status(status: Status, held: Held, cached: bool) -> Answer | Store:
    """A status is stored if new and answered `continue`: the exporter goes on with the
    entity that needed it. Named by `cached_entity`, a status that is held is `complete`,
    so an exporter that replicates a status for its own sake gets to the end."""
    if held.held_hash is None:
        return STORE
    return Answer(COMPLETE if cached else CONTINUE, conflict=_differs(status, held))


def _decide_with_files(entity: FileRecord | Event, held: Held) -> Answer | Store:
    if held.held_hash is not None:
        return Answer(COMPLETE, conflict=_differs(entity, held))
    if not held.status_held:
        return Answer(NEED_STATUS, status_id=held.missing_status_id or entity.status_id)
    records = entity.file_records
    for record in records:
        if record.file_id in held.taken_file_ids:  # no upload can make this storable
            return Answer(FAILED, message=f"file {record.file_id} is already held as part of "
                          "another entity; an ID names one entity forever")
    for record in records:
        if record.file_id in held.missing_data:
            return Answer(NEED_FILE_DATA, file_id=record.file_id)
    return STORE


def _differs(entity: Entity, held: Held) -> bool:
    return held.held_hash != entity.content_hash
