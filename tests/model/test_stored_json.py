"""Stored entity JSON sent on as stored: parsed once, its text spliced into batch bodies and
used to size batches, never encoded again."""

import json

from tests.misbehaving import Server, always, json_answer
from exporter.protocol_v2 import split_batches
from exporter.transport import Transport
from model.protocol.stored_json import StoredJson, json_text

# Sorted keys, no spaces, non-ASCII kept: the archive's canonical form, not json.dumps's.
TEXT = '{"a":1,"b":[true,null,2.50],"name":"Ångström"}'


def test_a_stored_object_is_its_parsed_dict_and_keeps_its_text():
    body = StoredJson(TEXT)
    assert body == {"a": 1, "b": [True, None, 2.5], "name": "Ångström"}
    assert body.text == TEXT


def test_json_text_splices_stored_text_anywhere_and_encodes_the_rest_compactly():
    value = {"statuses": [{"x": "é", "n": [1, 2.0]}], "events": [StoredJson(TEXT)] * 2,
             "files": ()}
    text = json_text(value)
    assert text == ('{"statuses":[{"x":"\\u00e9","n":[1,2.0]}],"events":[' + TEXT + "," + TEXT
                    + '],"files":[]}')
    assert json.loads(text) == json.loads(json.dumps(value))


def test_batches_are_sized_by_the_stored_text():
    padded = StoredJson('{"event_id":"e1"' + " " * 300 + "}")   # 300 bytes of it are spaces
    bodies = [("event", padded), ("event", padded)]
    assert [len(b) for b in split_batches(bodies, 10, 1000)] == [1, 1]
    assert [len(b) for b in split_batches([("event", dict(padded))] * 2, 10, 1000)] == [2]


def test_post_json_sends_the_stored_text_as_it_is():
    with Server(always(json_answer({"results": []}))) as server, \
            Transport(server.url, "exporter", "s3cret-pw", 10.0, "0" * 32) as transport:
        transport.post_json({"statuses": [], "files": [], "events": [StoredJson(TEXT)]},
                            "/batch")
    assert server.requests[0].body.decode() == \
        '{"statuses":[],"files":[],"events":[' + TEXT + "]}"
