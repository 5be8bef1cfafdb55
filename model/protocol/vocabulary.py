"""The words both sides of the import protocol use, defined once: entity kinds, the states an
importer answers with, and what an exchange ends in.

The importer decides answers with these names (`importer.handshake`), the exporter reads
answers by them (`exporter.protocol_v1`, `exporter.protocol_v2`); nothing else spells a
state as a string.
"""

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

# Entity kinds: the `type` of a version 1 request, the `type` of a version 2 result, the
# `domain` of a trace event, the `kind` of an export queue row.
STATUS, FILE, EVENT = "status", "file", "event"
KINDS = (STATUS, FILE, EVENT)
CACHED_ENTITY = "cached_entity"       # the request form that names an entity sent before

# The answer states (docs/wire.md, "The answer table").
COMPLETE = "complete"
NEED_STATUS = "need_status"
NEED_FILE_DATA = "need_file_data"
CONTINUE = "continue"
CONTINUE_NOCACHE = "continue-nocache"
FAILED = "failed"


def answer(state: str, **fields: Any) -> dict:
    """An answer body: the state and the fields that are not None."""
    return {"state": state, **{key: value for key, value in fields.items() if value is not None}}


def answer_text(state: str, **fields: Any) -> str:
    """`answer(...)` as compact JSON: the answer's text in a trace event's `status_body`."""
    return json.dumps(answer(state, **fields), separators=(",", ":"))


def state_of(body: Any) -> str | None:
    """The `state` of an answer, or None when the body is no answer."""
    if isinstance(body, dict) and isinstance(body.get("state"), str):
        return body["state"]
    return None


@dataclass(frozen=True)
class Complete:
    """The importer holds the entity; `already_present` when it said so at once (nothing had
    to be sent). `steps` counts the requests a version 1 exchange spent on it."""
    already_present: bool
    steps: int = 0


@dataclass(frozen=True)
class Failed:
    """The entity did not arrive; `reason` says why in words an admin can act on."""
    reason: str
    steps: int = 0


Outcome = Complete | Failed


def file_records(kind: str, entity) -> Sequence:
    """An entity's file records: an event's files, or the standalone file record itself (a
    status has none). `entity` is parsed (`model.protocol.entities`) or in its JSON form (a
    dict, as the exporter sends it): the one rule for both."""
    if kind == EVENT:
        return entity.get("files", []) if isinstance(entity, dict) else entity.files
    return (entity,) if kind == FILE else ()


def named_statuses(kind: str, body: Mapping) -> list[str]:
    """The statuses an entity's JSON names (its own, then its file records'), once each."""
    return list(dict.fromkeys([body.get("status_id")]
                              + [record.get("status_id")
                                 for record in file_records(kind, body)]))
