"""Hypothesis strategies for valid entities, for every test that needs many of them.

Two forms of each entity: its wire form (`status_json()`, `file_json()`, `event_json()`,
`meta_json()`: a dict exactly as `to_json()` gives it, IDs already normalised) and the value
object (`statuses()`, `file_records()`, `events()`, `metas()`). `file_with_bytes()` and
`event_with_bytes()` also draw the files' bytes, with `md5` and `file_size` that match them,
for tests that store or send data. `as_sent(entity_json)` draws an equivalent body the way a
careless peer may write it (dashed or upper-case IDs, names without their namespace).

Strings never hold NUL or lone surrogates and integers stay within 64 bits: the codec
refuses those (see docs/protocol.md), so they are not valid entities.
"""

import hashlib
import string

from hypothesis import strategies as st

from model.protocol.entities import Event, FileRecord, Meta, Status

INT64_MAX = 2 ** 63 - 1

hex_ids = st.binary(min_size=16, max_size=16).map(bytes.hex)
md5s = st.binary(min_size=16, max_size=16).map(bytes.hex)
camera_ids = st.text(string.ascii_letters + string.digits + "_.:-", min_size=1, max_size=64)
# Mostly realistic times, sometimes the edges of the range.
millis = st.one_of(st.integers(1_000_000_000_000, 2_000_000_000_000),
                   st.sampled_from([0, 1, INT64_MAX]))
texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)
_names = st.from_regex(r"[a-z][a-z0-9_/.]{0,15}", fullmatch=True)
namespaced = st.builds("{}:{}".format, st.sampled_from(["meteorpi", "skyrelay", "x"]), _names)
numbers = st.one_of(st.integers(-INT64_MAX, INT64_MAX),
                    st.floats(allow_nan=False, allow_infinity=False))


def meta_json() -> st.SearchStrategy[dict]:
    value_of = {"string": texts, "number": numbers, "date": millis}
    return st.sampled_from(sorted(value_of)).flatmap(lambda kind: st.fixed_dictionaries(
        {"type": st.just(kind), "key": namespaced, "value": value_of[kind]}))


def _location() -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({"lat": numbers, "long": numbers},
                                 optional={"gps": st.booleans(), "error": numbers})


def _orientation() -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({"alt": numbers, "az": numbers},
                                 optional={"rot": numbers, "error": numbers, "width": numbers})


_regions = st.lists(st.lists(st.fixed_dictionaries({"x": numbers, "y": numbers}), max_size=5),
                    min_size=1, max_size=3)   # [] decodes as absent (docs/protocol.md)


def status_json(camera_id=None, status_id=None) -> st.SearchStrategy[dict]:
    """A status; `camera_id`/`status_id` fix those fields (else drawn)."""
    return st.fixed_dictionaries(
        {"status_id": st.just(status_id) if status_id else hex_ids,
         "camera_id": st.just(camera_id) if camera_id else camera_ids,
         "valid_from": millis, "location": _location(), "orientation": _orientation()},
        optional={"valid_to": millis, "software_version": st.integers(-100, INT64_MAX),
                  "lens": texts, "sensor": texts, "inst_name": texts, "inst_url": texts,
                  "regions": _regions})


def file_json(camera_id=None, status_id=None, file_id=None) -> st.SearchStrategy[dict]:
    """A file record; the keyword arguments fix those fields (else drawn)."""
    return st.fixed_dictionaries(
        {"file_id": st.just(file_id) if file_id else hex_ids,
         "camera_id": st.just(camera_id) if camera_id else camera_ids,
         "status_id": st.just(status_id) if status_id else hex_ids,
         "file_time": millis, "mime_type": st.sampled_from(["image/png", "text/plain",
                                                            "video/mp4", "application/x"]),
         "semantic_type": namespaced, "file_size": st.integers(0, INT64_MAX), "md5": md5s,
         "meta": st.lists(meta_json(), max_size=4)},
        optional={"file_name": texts})


@st.composite
def event_json(draw, camera_id=None, status_id=None, max_files=4) -> dict:
    """An event whose files all have the event's camera_id and distinct file_ids."""
    camera = camera_id or draw(camera_ids)
    status = status_id or draw(hex_ids)
    file_ids = draw(st.lists(hex_ids, max_size=max_files, unique=True))
    return {"event_id": draw(hex_ids), "camera_id": camera, "status_id": status,
            "event_time": draw(millis), "event_type": draw(namespaced),
            "files": [draw(file_json(camera, status, file_id)) for file_id in file_ids],
            "meta": draw(st.lists(meta_json(), max_size=4))}


@st.composite
def file_with_bytes(draw, camera_id=None, status_id=None,
                    max_size=2048) -> tuple[dict, bytes]:
    """(file record, its bytes) with `md5` and `file_size` matching the bytes."""
    data = draw(st.binary(max_size=max_size))
    record = draw(file_json(camera_id, status_id))
    record.update(md5=hashlib.md5(data).hexdigest(), file_size=len(data))
    return record, data


@st.composite
def event_with_bytes(draw, camera_id=None, status_id=None,
                     max_files=3) -> tuple[dict, dict[str, bytes]]:
    """(event, {file_id: bytes}) with each file's `md5` and `file_size` matching its bytes."""
    event = draw(event_json(camera_id, status_id, max_files))
    data = {}
    for record in event["files"]:
        data[record["file_id"]] = draw(st.binary(max_size=2048))
        record.update(md5=hashlib.md5(data[record["file_id"]]).hexdigest(),
                      file_size=len(data[record["file_id"]]))
    return event, data


def metas() -> st.SearchStrategy[Meta]:
    return meta_json().map(Meta.from_json)


def statuses(**fixed) -> st.SearchStrategy[Status]:
    return status_json(**fixed).map(Status.from_json)


def file_records(**fixed) -> st.SearchStrategy[FileRecord]:
    return file_json(**fixed).map(FileRecord.from_json)


def events(**fixed) -> st.SearchStrategy[Event]:
    return event_json(**fixed).map(Event.from_json)


# -- careless spellings of the same entity ---------------------------------------------------

_ID_KEYS = ("status_id", "event_id", "file_id")


def _dashed(hex_id: str) -> str:
    return "-".join((hex_id[:8], hex_id[8:12], hex_id[12:16], hex_id[16:20], hex_id[20:]))


@st.composite
def as_sent(draw, entity: dict) -> dict:
    """The same entity as a peer may write it: IDs dashed and/or upper case, MD5 in upper
    case, `meteorpi:` names without their namespace. Decoding it gives `entity` back."""
    def respell(value: dict) -> dict:
        value = dict(value)
        for key in _ID_KEYS:
            if key in value:
                spelled = _dashed(value[key]) if draw(st.booleans()) else value[key]
                value[key] = spelled.upper() if draw(st.booleans()) else spelled
        if "md5" in value and draw(st.booleans()):
            value["md5"] = value["md5"].upper()
        for key in ("event_type", "semantic_type", "key"):
            if key in value and value[key].startswith("meteorpi:") and draw(st.booleans()):
                value[key] = value[key][len("meteorpi:"):]
        for key in ("files", "meta"):
            if key in value:
                value[key] = [respell(item) for item in value[key]]
        return value
    return respell(entity)
