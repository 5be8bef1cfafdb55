"""The JSON codec follows docs/wire.md "Conventions" and "Entities": decoding then encoding
gives the body back (the MeteorPi samples too), IDs and names are normalised, null keys are
left out. Property tests: encode∘decode is the identity for any valid entity."""

import copy
import json

import pytest
from hypothesis import given, settings

from tests import strategies
from tests.meteorpi import BODIES
from model.protocol.entities import (Event, FileRecord, Meta, Status, canonical_json, content_hash)

SAMPLES = [(Status, BODIES["status"]["status"]), (FileRecord, BODIES["file"]["file"]),
           (Event, BODIES["event"]["event"])]


def round_trip(kind, body: dict) -> dict:
    """Decode, encode, and pass through JSON text as the wire does."""
    return json.loads(canonical_json(kind.from_json(body).to_json()))


@pytest.mark.parametrize("kind, body", SAMPLES, ids=["status", "file", "event"])
def test_meteorpi_bodies_reencode_unchanged(kind, body):
    sent = copy.deepcopy(body)
    assert round_trip(kind, body) == body
    assert canonical_json(kind.from_json(body).to_json()) == canonical_json(body)
    assert body == sent, "decoding must not change its input"


def test_meteorpi_numbers_keep_their_json_type():
    """`lat: 30` stays an int and `error: 1.0` a float, so the text is the same."""
    status = Status.from_json(BODIES["status"]["status"])
    assert type(status.location.lat) is int and type(status.location.error) is float
    text = canonical_json(status.to_json())
    assert '"lat":30,' in text and '"error":1.0' in text
    file_meta = FileRecord.from_json(BODIES["file"]["file"]).meta
    assert file_meta[1] == Meta("number", "meteorpi:number_key", 1e-05)
    assert file_meta[2] == Meta("date", "meteorpi:date_key", 1427891400000)


def test_minimal_entities_round_trip():
    status = {"status_id": "0" * 32, "camera_id": "c1", "valid_from": 0,
              "location": {"lat": 0, "long": 0}, "orientation": {"alt": 0, "az": 0}}
    record = {"file_id": "1" * 32, "camera_id": "c1", "status_id": "0" * 32, "file_time": 5,
              "mime_type": "image/png", "semantic_type": "x:y", "file_size": 0,
              "md5": "d41d8cd98f00b204e9800998ecf8427e", "meta": []}
    event = {"event_id": "2" * 32, "camera_id": "c1", "status_id": "0" * 32, "event_time": 5,
             "event_type": "x:y", "files": [record], "meta": []}
    for kind, body in ((Status, status), (FileRecord, record), (Event, event)):
        assert round_trip(kind, body) == body


@pytest.mark.parametrize("meta", [
    {"type": "string", "key": "a:b", "value": ""},
    {"type": "string", "key": "a:b", "value": "ünïcødé ✓ 流星"},
    {"type": "number", "key": "a:b", "value": -3},
    {"type": "number", "key": "a:b", "value": 2.5e-300},
    {"type": "date", "key": "a:b", "value": 0},
])
def test_meta_round_trips(meta):
    assert Meta.from_json(meta).to_json() == meta


# -- normalisation ----------------------------------------------------------------------------

def test_dashed_and_upper_case_ids_are_normalised():
    body = copy.deepcopy(BODIES["event"]["event"])
    body["event_id"] = "7D1B3C2A-4E5F-46A7-B8C9-D0E1F2A3B4C5"
    body["status_id"] = "5c2e0b8a-9d6b-4f1e-8a3f-0c1d2e3f4a5b"
    body["files"][0]["file_id"] = "00000000-0000-0000-0000-000000001001"
    body["files"][0]["status_id"] = "5C2E0B8A9D6B4F1E8A3F0C1D2E3F4A5B"
    body["files"][1]["md5"] = body["files"][1]["md5"].upper()
    event = Event.from_json(body)
    assert event.event_id == "7d1b3c2a4e5f46a7b8c9d0e1f2a3b4c5"
    assert event.status_id == event.files[0].status_id == "5c2e0b8a9d6b4f1e8a3f0c1d2e3f4a5b"
    assert event.files[0].file_id == "00000000000000000000000000001001"
    assert event.files[1].md5 == "e814d621a8f5127a8c796ee9d6aa2270"
    assert event.to_json() == BODIES["event"]["event"]
    assert content_hash(event.to_json()) == content_hash(BODIES["event"]["event"])


def test_names_without_namespace_get_meteorpi():
    body = copy.deepcopy(BODIES["event"]["event"])
    body["event_type"] = "foo"
    body["files"][0]["semantic_type"] = "bar/baz"
    body["meta"][0]["key"] = "file_count"
    body["files"][1]["meta"][0]["key"] = "other:kept"
    event = Event.from_json(body)
    assert event.event_type == "meteorpi:foo"
    assert event.files[0].semantic_type == "meteorpi:bar/baz"
    assert event.meta[0].key == "meteorpi:file_count"
    assert event.files[1].meta[0].key == "other:kept"


def test_null_keys_are_left_out_and_mean_absent():
    body = copy.deepcopy(BODIES["status"]["status"])
    with_nulls = dict(body, valid_to=None, lens=None, regions=None,
                      location=dict(body["location"], gps=None))
    del body["lens"]
    encoded = Status.from_json(with_nulls).to_json()
    assert "valid_to" not in encoded and "lens" not in encoded and "regions" not in encoded
    assert "gps" not in encoded["location"]
    assert None not in encoded.values()
    record = dict(BODIES["file"]["file"], file_name=None)
    assert "file_name" not in FileRecord.from_json(record).to_json()


def test_integral_float_times_become_ints_and_unknown_keys_are_dropped():
    body = dict(BODIES["file"]["file"], file_time=1427891400000.0, file_size=21.0,
                future_field={"x": 1})
    encoded = FileRecord.from_json(body).to_json()
    assert type(encoded["file_time"]) is int and type(encoded["file_size"]) is int
    assert "future_field" not in encoded
    assert encoded == BODIES["file"]["file"]


def test_content_hash_follows_content_not_spelling():
    body = BODIES["file"]["file"]
    reordered = dict(reversed(list(body.items())))
    assert content_hash(reordered) == content_hash(body)
    assert content_hash(dict(body, file_size=22)) != content_hash(body)


def test_canonical_json_is_compact_sorted_utf8():
    assert canonical_json({"b": 1, "a": "ü"}) == '{"a":"ü","b":1}'


# -- properties -------------------------------------------------------------------------------

@settings(max_examples=150)
@given(strategies.status_json())
def test_status_decode_encode_is_identity(body):
    assert round_trip(Status, body) == body
    status = Status.from_json(body)
    assert Status.from_json(status.to_json()) == status


@settings(max_examples=150)
@given(strategies.file_json())
def test_file_record_decode_encode_is_identity(body):
    assert round_trip(FileRecord, body) == body
    record = FileRecord.from_json(body)
    assert FileRecord.from_json(record.to_json()) == record


@settings(max_examples=100)
@given(strategies.event_json())
def test_event_decode_encode_is_identity(body):
    assert round_trip(Event, body) == body
    event = Event.from_json(body)
    assert event.canonical_text == canonical_json(event.to_json()) == canonical_json(body)
    assert event.content_hash == content_hash(body)   # (computed once, then remembered)


@settings(max_examples=150)
@given(strategies.meta_json())
def test_meta_decode_encode_is_identity(body):
    assert round_trip(Meta, body) == body


@given(strategies.events())
def test_encoding_an_event_object_and_decoding_gives_it_back(event):
    assert Event.from_json(json.loads(canonical_json(event.to_json()))) == event


@settings(max_examples=100)
@given(strategies.event_json().flatmap(
    lambda body: strategies.as_sent(body).map(lambda sent: (body, sent))))
def test_any_careless_spelling_decodes_to_the_normalised_event(pair):
    body, sent = pair
    assert Event.from_json(sent).to_json() == body
    assert content_hash(Event.from_json(sent).to_json()) == content_hash(body)
