"""Sending one queue row with protocol version 1: the I/O around the pure
`protocol_v1.V1Exchange`, one request at a time (the entity, a status the importer asks for,
a file's bytes) until the importer answers `complete` or the entity fails.

Every request body goes out with the keys MeteorPi's 2015 importer reads unconditionally
(`exporter.meteorpi_keys`): a version 1 importer may be that one. Transport errors are left
to the sync, which sorts them by whose fault they are (`exporter.retry`).
"""

from dataclasses import dataclass

from exporter.meteorpi_keys import with_neutral_values
from exporter.protocol_v1 import PostEntity, SendStatus, UploadFile, V1Exchange
from exporter.sync_traces import SyncTracer
from exporter.transport import Transport
from model.archive.archive import Archive
from model.export.queue import QueueItem
from model.protocol.vocabulary import STATUS, Complete, Failed, Outcome
from model.store.database import now_ms


@dataclass
class EntityDriver:
    archive: Archive
    transport: Transport
    max_steps: int

    def send(self, item: QueueItem, tracer: SyncTracer) -> Outcome:
        """The outcome of one event or standalone file record; statuses sent on the way are
        traced."""
        exchange = V1Exchange(item.kind, item.body, self.max_steps)
        action = exchange.start()
        while not isinstance(action, (Complete, Failed)):
            if isinstance(action, PostEntity):
                answer = self._post(action.body)
            elif isinstance(action, SendStatus):
                status = self.archive.get_status(action.status_id)
                if status is None:
                    return Failed(f"status {action.status_id} is not in this archive")
                sent = now_ms()
                answer = self._post({"type": STATUS, STATUS: status.to_json()})
                tracer.status_sent(action.status_id, answer, sent)
            else:
                answer = self._upload(action)
                if answer is None:
                    return Failed(f"bytes of file {action.file_id} are not in this archive")
            action = exchange.step(answer)
        return action

    def _post(self, body: dict):
        return self.transport.post_json(with_neutral_values(body))

    def _upload(self, action: UploadFile):
        """Stream the file's bytes from the blob store; never read whole into memory."""
        opened = self.archive.open_data(action.file_id)
        if opened is None:
            return None
        stream, record = opened
        with stream:
            return self.transport.upload(action.file_id, action.md5, stream, record.file_size)
