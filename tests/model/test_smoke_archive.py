"""The archive stores the MeteorPi sample event with its bytes, on every database."""

import hashlib
import io
import pytest

from model.archive.archive import MissingData, MissingStatus, Outcome
from model.protocol.entities import Event, Status

from tests.meteorpi import BODIES as FIXTURES


def test_event_import_needs_status_then_bytes(site):
    archive = site.archive
    event = Event.from_json(FIXTURES["event"]["event"])
    with pytest.raises(MissingStatus):
        archive.import_event(event)
    assert archive.add_status(Status.from_json(FIXTURES["status"]["status"])).outcome \
        is Outcome.STORED
    with pytest.raises(MissingData) as missing:
        archive.import_event(event)
    assert missing.value.file_ids == [f.file_id for f in event.files]
    for record in event.files:
        data = FIXTURES["file_bytes"][record.file_id].encode()
        assert archive.stage_bytes(record.file_id, hashlib.md5(data).hexdigest(),
                                   io.BytesIO(data)).received
    assert archive.import_event(event).outcome is Outcome.STORED
    assert archive.import_event(event).outcome is Outcome.HELD
    assert archive.get_event(event.event_id) == event
    assert archive.counts()["staged"] == 0
