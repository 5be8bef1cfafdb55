"""The version 1 handshake as a pure state machine: an importer's answer in, the next thing
to do out. No I/O, so every answer of docs/wire.md's table (and every garbage answer) is
tested with plain dicts, and the loop that does the I/O (`exporter.sync`) stays trivial.

    exchange = V1Exchange("event", event_json, max_steps=50)
    action = exchange.start()                 # PostEntity(full form)
    while not isinstance(action, (Complete, Failed)):
        answer = do(action)                   # HTTP: post, send a status, upload bytes
        action = exchange.step(answer)

Termination is guaranteed: at most `max_steps` requests per entity, and the same need
(`need_file_data` or `need_status` for the same ID) three times in a row fails the entity,
so a misbehaving importer can never hang a sync.
"""

from dataclasses import dataclass
from typing import Any

from model.protocol import codec
from model.protocol.codec import EntityError
from model.protocol.vocabulary import (CACHED_ENTITY, COMPLETE, CONTINUE, CONTINUE_NOCACHE,
                                       EVENT, FAILED, FILE, NEED_FILE_DATA, NEED_STATUS,
                                       STATUS, Complete, Failed, file_records, state_of)

SAME_NEED_LIMIT = 3


@dataclass(frozen=True)
class PostEntity:
    """POST this JSON body to the import path."""
    body: dict


@dataclass(frozen=True)
class SendStatus:
    """POST the status `status_id` (read from the archive) as `{"type": "status", …}`."""
    status_id: str


@dataclass(frozen=True)
class UploadFile:
    """POST the bytes of `file_id` to `{base}/data/<file_id>/<md5>`."""
    file_id: str
    md5: str


Action = PostEntity | SendStatus | UploadFile | Complete | Failed


def _show(answer: Any) -> str:
    text = repr(answer)
    return text if len(text) <= 120 else text[:117] + "..."


class V1Exchange:
    """Sends one event or standalone file record until the importer answers `complete`."""

    def __init__(self, kind: str, entity: dict, max_steps: int = 50):
        if kind not in (EVENT, FILE):
            raise ValueError(f"kind must be 'event' or 'file', not {kind!r}")
        self.kind = kind
        self.entity = entity
        self.entity_id = entity[f"{kind}_id"]
        self.max_steps = max_steps
        records = file_records(kind, entity)
        self._md5_of = {r["file_id"]: r["md5"] for r in records}
        self._status_ids = {entity["status_id"]} | {r["status_id"] for r in records}
        self.steps = 0
        self._last: Action | None = None
        self._need: tuple[str, str] | None = None
        self._need_count = 0
        self._first_answer = True

    # -- requests ---------------------------------------------------------------------------

    def _issue(self, action: Action) -> Action:
        if self.steps >= self.max_steps:
            return Failed(f"no complete after {self.steps} requests (exporter.max_steps)",
                          steps=self.steps)
        self.steps += 1
        self._last = action
        return action

    def _full(self) -> Action:
        return self._issue(PostEntity({"type": self.kind, self.kind: self.entity}))

    def _cached(self) -> Action:
        return self._issue(PostEntity({"type": CACHED_ENTITY,
                                       "cached_entity_id": self.entity_id}))

    def _fail(self, reason: str) -> Failed:
        return Failed(reason, steps=self.steps)

    def start(self) -> Action:
        return self._full()

    # -- answers ----------------------------------------------------------------------------

    def step(self, answer: Any) -> Action:
        """The next action after `answer` (the importer's JSON for the last request)."""
        state = state_of(answer)
        if state == FAILED:
            message = answer.get("message") or "no reason given"
            return self._fail(f"importer answered failed: {message}")
        if isinstance(self._last, PostEntity):
            first, self._first_answer = self._first_answer, False
            return self._after_entity(state, answer, first)
        return self._after_supply(state, answer)

    def _after_entity(self, state: str | None, answer: Any, first: bool) -> Action:
        if state == COMPLETE:
            return Complete(already_present=first, steps=self.steps)
        if state == CONTINUE:
            self._need = None
            return self._cached()
        if state == CONTINUE_NOCACHE:
            self._need = None
            return self._full()
        if state == NEED_STATUS:
            return self._need_status(answer)
        if state == NEED_FILE_DATA:
            return self._need_file(answer)
        return self._fail(f"protocol: unexpected answer to an entity: {_show(answer)}")

    def _after_supply(self, state: str | None, answer: Any) -> Action:
        """The answer to a status or to file bytes: on success, go on with the cached form."""
        if state not in (CONTINUE, COMPLETE):
            what = "a status" if isinstance(self._last, SendStatus) else "file data"
            return self._fail(f"protocol: unexpected answer to {what}: {_show(answer)}")
        if isinstance(self._last, UploadFile) and answer.get("received") is False:
            message = answer.get("message") or "no reason given"
            return self._fail(f"importer did not accept the bytes of file "
                              f"{self._last.file_id}: {message}")
        return self._cached()

    def _same_need(self, need: tuple[str, str]) -> bool:
        """Count repeats of one need; True when it reached the limit."""
        self._need_count = self._need_count + 1 if need == self._need else 1
        self._need = need
        return self._need_count >= SAME_NEED_LIMIT

    def _need_status(self, answer: dict) -> Action:
        status_id = self._answer_id(answer, "status_id")
        if status_id not in self._status_ids:
            return self._fail(f"protocol: importer asked for status {answer.get('status_id')!r}"
                              f", which this {self.kind} does not reference")
        if self._same_need((STATUS, status_id)):
            return self._fail(f"importer asked for status {status_id} {SAME_NEED_LIMIT} times "
                              "in a row although it was sent")
        return self._issue(SendStatus(status_id))

    def _need_file(self, answer: dict) -> Action:
        file_id = self._answer_id(answer, "file_id")
        if file_id not in self._md5_of:
            return self._fail(f"protocol: importer asked for the data of file "
                              f"{answer.get('file_id')!r}, which is not part of this "
                              f"{self.kind}")
        if self._same_need((FILE, file_id)):
            return self._fail(f"importer asked for the data of file {file_id} "
                              f"{SAME_NEED_LIMIT} times in a row although it was uploaded")
        return self._issue(UploadFile(file_id, self._md5_of[file_id]))

    @staticmethod
    def _answer_id(answer: dict, key: str) -> str | None:
        """IDs are compared normalised (dashes and upper case accepted, as in docs/wire.md)."""
        try:
            return codec.uuid_hex(answer.get(key), key)
        except EntityError:
            return None
