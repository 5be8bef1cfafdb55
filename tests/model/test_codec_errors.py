"""Malformed entities are refused with one error type, `EntityError`, whose `field` is the path
of the offending field and whose message says what is wrong (docs/wire.md "Errors")."""

import copy
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import strategies
from tests.meteorpi import BODIES
from model.protocol.entities import EntityError, Event, FileRecord, Meta, Status

DELETE = object()
STATUS, FILE, EVENT = (BODIES["status"]["status"], BODIES["file"]["file"],
                       BODIES["event"]["event"])


def changed(base, path: str, value):
    """A deep copy of `base` with the value at `path` (`files[1].md5`) replaced or deleted."""
    body = copy.deepcopy(base)
    steps = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    target = body
    for step in steps[:-1]:
        target = target[int(step[1:-1])] if step.startswith("[") else target[step]
    last = steps[-1]
    key = int(last[1:-1]) if last.startswith("[") else last
    if value is DELETE:
        del target[key]
    else:
        target[key] = value
    return body


# (case, entity class, body, expected field, words the message must contain)
CASES = [
    ("status missing status_id", Status, changed(STATUS, "status_id", DELETE),
     "status.status_id", "is required"),
    ("status null camera_id", Status, changed(STATUS, "camera_id", None),
     "status.camera_id", "is required"),
    ("status bad camera_id", Status, changed(STATUS, "camera_id", "cam era"),
     "status.camera_id", "letters, digits"),
    ("status bad hex id", Status, changed(STATUS, "status_id", "zz" * 16),
     "status.status_id", "32 hex digits"),
    ("status short id", Status, changed(STATUS, "status_id", "a" * 31),
     "status.status_id", "32 hex digits"),
    ("status id as number", Status, changed(STATUS, "status_id", 12345),
     "status.status_id", "32 hex digits"),
    ("time as string", Status, changed(STATUS, "valid_from", "1427891400000"),
     "status.valid_from", "expected an integer"),
    ("negative time", Status, changed(STATUS, "valid_to", -1),
     "status.valid_to", "at least 0"),
    ("fractional time", Status, changed(STATUS, "valid_from", 1.5),
     "status.valid_from", "expected an integer"),
    ("time past 64 bits", Status, changed(STATUS, "valid_from", 2 ** 63),
     "status.valid_from", "64-bit"),
    ("location missing lat", Status, changed(STATUS, "location.lat", DELETE),
     "status.location.lat", "is required"),
    ("location list instead of object", Status, changed(STATUS, "location", [30, 20]),
     "status.location", "expected an object"),
    ("gps not a boolean", Status, changed(STATUS, "location.gps", "yes"),
     "status.location.gps", "true or false"),
    ("bool as number", Status, changed(STATUS, "orientation.alt", True),
     "status.orientation.alt", "expected a number"),
    ("NaN", Status, changed(STATUS, "orientation.az", math.nan),
     "status.orientation.az", "finite"),
    ("infinity", Status, changed(STATUS, "orientation.width", -math.inf),
     "status.orientation.width", "finite"),
    ("region point missing x", Status, changed(STATUS, "regions[0][1].x", DELETE),
     "status.regions[0][1].x", "is required"),
    ("regions not a list", Status, changed(STATUS, "regions", {"x": 0}),
     "status.regions", "expected a list"),
    ("software_version as string", Status, changed(STATUS, "software_version", "1"),
     "status.software_version", "expected an integer"),
    ("lens with NUL", Status, changed(STATUS, "lens", "VF\x00DCS"),
     "status.lens", "NUL"),
    ("inst_name lone surrogate", Status, changed(STATUS, "inst_name", "a\ud800b"),
     "status.inst_name", "surrogate"),
    ("status body a string", Status, "status", "status", "expected an object"),
    ("status body a list", Status, [STATUS], "status", "expected an object"),
    ("status body null", Status, None, "status", "expected an object"),
    ("file bad md5 hex", FileRecord, changed(FILE, "md5", "g" * 32),
     "file.md5", "MD5 digest"),
    ("file md5 too short", FileRecord, changed(FILE, "md5", "fb49ad20"),
     "file.md5", "MD5 digest"),
    ("file negative size", FileRecord, changed(FILE, "file_size", -1),
     "file.file_size", "at least 0"),
    ("file size as string", FileRecord, changed(FILE, "file_size", "21"),
     "file.file_size", "expected an integer"),
    ("file size bool", FileRecord, changed(FILE, "file_size", False),
     "file.file_size", "expected an integer"),
    ("file missing meta", FileRecord, changed(FILE, "meta", DELETE),
     "file.meta", "is required"),
    ("file meta an object", FileRecord, changed(FILE, "meta", {"type": "string"}),
     "file.meta", "expected a list"),
    ("unknown meta type", FileRecord, changed(FILE, "meta[0].type", "blob"),
     "file.meta[0].type", "expected one of string, number, date"),
    ("number meta with text", FileRecord, changed(FILE, "meta[1].value", "1e-05"),
     "file.meta[1].value", "expected a number"),
    ("date meta negative", FileRecord, changed(FILE, "meta[2].value", -5),
     "file.meta[2].value", "at least 0"),
    ("meta value null", FileRecord, changed(FILE, "meta[0].value", None),
     "file.meta[0].value", "is required"),
    ("meta key empty", FileRecord, changed(FILE, "meta[0].key", ""),
     "file.meta[0].key", "namespace:name"),
    ("meta key empty namespace", FileRecord, changed(FILE, "meta[0].key", ":x"),
     "file.meta[0].key", "namespace:name"),
    ("semantic_type a number", FileRecord, changed(FILE, "semantic_type", 7),
     "file.semantic_type", "expected a string"),
    ("mime_type too long", FileRecord, changed(FILE, "mime_type", "x" * 256),
     "file.mime_type", "longer than 255"),
    ("file_time past 64 bits", FileRecord, changed(FILE, "file_time", 1e19),
     "file.file_time", "64-bit"),
    ("too many meta items", FileRecord, changed(FILE, "meta", [FILE["meta"][0]] * 1001),
     "file.meta", "more than 1000"),
    ("event file with another camera", Event, changed(EVENT, "files[1].camera_id", "other"),
     "event.files[1].camera_id", "event's camera_id"),
    ("duplicate file ids", Event,
     changed(EVENT, "files[1].file_id", "00000000-0000-0000-0000-000000001001"),
     "event.files[1].file_id", "appears twice"),
    ("event file bad md5", Event, changed(EVENT, "files[0].md5", "not-an-md5"),
     "event.files[0].md5", "MD5 digest"),
    ("event file missing file_id", Event, changed(EVENT, "files[1].file_id", DELETE),
     "event.files[1].file_id", "is required"),
    ("event files null", Event, changed(EVENT, "files", None), "event.files", "is required"),
    ("event files an object", Event, changed(EVENT, "files", {}),
     "event.files", "expected a list"),
    ("event meta item a list", Event, changed(EVENT, "meta[0]", ["number", "k", 2]),
     "event.meta[0]", "expected an object"),
    ("event_type with NUL", Event, changed(EVENT, "event_type", "meteor\x00"),
     "event.event_type", "NUL"),
    ("event time bool", Event, changed(EVENT, "event_time", True),
     "event.event_time", "expected an integer"),
    ("event body a list", Event, [EVENT], "event", "expected an object"),
]


@pytest.mark.parametrize("kind, body, field, words", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_malformed_entity_is_refused_naming_the_field(kind, body, field, words):
    kept = copy.deepcopy(body)
    with pytest.raises(EntityError) as refused:
        kind.from_json(body)
    assert refused.value.field == field
    assert words in str(refused.value)
    assert str(refused.value).startswith(field + ": ")
    assert body == kept, "decoding must not change its input"


def test_there_are_at_least_25_cases():
    assert len(CASES) >= 25
    assert len({case[0] for case in CASES}) == len(CASES)


def test_meta_alone_names_its_own_path():
    with pytest.raises(EntityError) as refused:
        Meta.from_json({"type": "number", "key": "k", "value": "x"})
    assert refused.value.field == "meta.value"


# -- nothing but EntityError, whatever arrives --------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=10)


def _leaf_paths(value, prefix=""):
    """Every path into `value`, in the syntax `changed` reads."""
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            yield path
            yield from _leaf_paths(item, path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield f"{prefix}[{index}]"
            yield from _leaf_paths(item, f"{prefix}[{index}]")


@settings(max_examples=200)
@given(st.data())
def test_a_damaged_valid_event_decodes_or_raises_entity_error(data):
    """The importer turns EntityError into 400; any other exception would be a 500."""
    event = data.draw(strategies.event_json())
    path = data.draw(st.sampled_from(list(_leaf_paths(event))))
    damaged = changed(event, path, data.draw(st.just(DELETE) | json_values))
    try:
        Event.from_json(damaged)
    except EntityError as refused:
        assert refused.field.startswith("event")


@given(json_values)
def test_arbitrary_json_decodes_or_raises_entity_error(value):
    for kind in (Status, FileRecord, Event, Meta):
        try:
            kind.from_json(value)
        except EntityError:
            pass
