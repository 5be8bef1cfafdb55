"""The keys the 2015 MeteorPi importer reads without asking, sent on every version 1 request.

MeteorPi's model builds an entity with `from_dict`, which reads most keys only `if key in d`
but a few unconditionally (`d['regions']`): a body without one of them is a KeyError there,
answered 500, and the entity can never arrive. The wire contract lets a sender leave some of
them out (a status without regions), so a version 1 exporter, which may be talking to that
importer, sends each of them, with its neutral value when the entity has none.

`READ_UNCONDITIONALLY` lists them all, per kind (the list docs/protocol.md shows). Most are
keys skyrelay's codec requires or always writes (`model.protocol.entities`; a test holds it
to that); `NEUTRAL` holds the ones an entity may lack, and what they mean when absent.
"""

import copy
from typing import Any

from model.protocol.vocabulary import EVENT, FILE, STATUS

META = "meta item"

READ_UNCONDITIONALLY: dict[str, tuple[str, ...]] = {
    STATUS: ("location", "orientation", "regions"),
    EVENT: ("files", "meta"),
    FILE: ("file_size", "meta"),        # MeteorPi takes int(file_size): null would not do
    META: ("key", "type"),
}

NEUTRAL: dict[str, dict[str, Any]] = {
    STATUS: {"regions": []},            # no polygon: the camera sees all of its frame
}


def with_neutral_values(body: Any) -> Any:
    """A version 1 request body (`{"type": kind, kind: entity}`) with every key of
    `NEUTRAL` the entity lacks (or holds as null) added. The body itself when nothing is
    missing, so a stored entity's text goes out as it is; other bodies unchanged."""
    if not isinstance(body, dict):
        return body
    kind = body.get("type")
    entity = body.get(kind) if isinstance(kind, str) else None
    missing = {key: copy.deepcopy(value) for key, value in NEUTRAL.get(kind, {}).items()
               if isinstance(entity, dict) and entity.get(key) is None}
    if not missing:
        return body
    return {**body, kind: {**entity, **missing}}
