"""Generated archive content for the demo, the benchmarks and tests: cameras with statuses,
events with small PNG images, standalone files.

Deterministic for a given seed, so a benchmark run is comparable to the next one.
"""

import hashlib
import io
import random
import struct
import zlib
from dataclasses import dataclass, field

from model.archive.archive import Archive
from model.protocol.entities import Event, FileRecord, Meta, Status

BASE_TIME_MS = 1_735_689_600_000   # 2025-01-01T00:00:00Z
EVENT_TYPES = ("meteorpi:meteor", "meteorpi:satellite", "meteorpi:plane")


@dataclass
class Generated:
    statuses: list[Status] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    files: list[FileRecord] = field(default_factory=list)   # standalone files
    file_bytes: int = 0

    def all_file_records(self) -> list[FileRecord]:
        return [f for e in self.events for f in e.files] + self.files


def png(width: int, height: int, rng: random.Random) -> bytes:
    """A valid greyscale PNG of noise: looks like a frame to any image tool."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = b"".join(b"\0" + rng.randbytes(width) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b""))


def _hex(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def _status(rng: random.Random, camera: str, valid_from: int) -> Status:
    return Status.from_json({
        "status_id": _hex(rng), "camera_id": camera, "valid_from": valid_from,
        "software_version": 1, "lens": "VF-DCS", "sensor": "WAT-902H2",
        "inst_name": f"demo {camera}", "location": {"lat": 52.2, "long": 0.12, "gps": True},
        "orientation": {"alt": 45.0, "az": rng.choice([0.0, 90.0, 180.0, 270.0])}})


class SampleWriter:
    """Writes generated entities into an archive (bytes first, then the records)."""

    def __init__(self, archive: Archive, seed: int = 1, file_size: int | None = None):
        self.archive = archive
        self.rng = random.Random(seed)
        self.file_size = file_size       # None: PNG images of 24×24 to 48×48 pixels

    def _bytes(self) -> tuple[bytes, str]:
        if self.file_size is None:
            side = self.rng.randint(24, 48)
            return png(side, side, self.rng), "image/png"
        return self.rng.randbytes(self.file_size), "application/octet-stream"

    def _file(self, status: Status, when: int, semantic: str, out: Generated) -> FileRecord:
        data, mime = self._bytes()
        record = FileRecord.from_json({
            "file_id": _hex(self.rng), "camera_id": status.camera_id,
            "status_id": status.status_id, "file_time": when, "mime_type": mime,
            "semantic_type": semantic, "file_name": "frame.png" if mime == "image/png"
            else "data.bin", "file_size": len(data), "md5": hashlib.md5(data).hexdigest(),
            "meta": [{"type": "number", "key": "meteorpi:exposure", "value": 0.04}]})
        self.archive.stage_bytes(record.file_id, record.md5, io.BytesIO(data))
        out.file_bytes += len(data)
        return record

    def fill(self, cameras: int = 3, events_per_camera: int = 5, files_per_event: int = 2,
             standalone_per_camera: int = 2, start_ms: int = BASE_TIME_MS) -> Generated:
        out = Generated()
        for number in range(cameras):
            status = _status(self.rng, f"cam{number:03d}", start_ms)
            self.archive.add_status(status)
            out.statuses.append(status)
            for index in range(events_per_camera):
                when = start_ms + (index + 1) * 60_000 + number
                files = [self._file(status, when, "meteorpi:triggers/image", out)
                         for _ in range(files_per_event)]
                event = Event(event_id=_hex(self.rng), camera_id=status.camera_id,
                              status_id=status.status_id, event_time=when,
                              event_type=EVENT_TYPES[index % len(EVENT_TYPES)],
                              files=tuple(files),
                              meta=(Meta("number", "meteorpi:brightness", index + 1),))
                self.archive.import_event(event)
                out.events.append(event)
            for index in range(standalone_per_camera):
                when = start_ms + (index + 1) * 3_600_000 + number
                record = self._file(status, when, "meteorpi:timelapse/frame", out)
                self.archive.import_file(record)
                out.files.append(record)
        return out
