"""Test helpers for bundles: fill a site with real-looking data, build bundles (good and bad)
by hand with tarfile, and take snapshots of an archive that two sites can be compared by."""

import hashlib
import io
import json
import random
import tarfile
from pathlib import Path

from model.protocol.entities import Event, FileRecord, Status

from tests.meteorpi import BODIES as FIXTURES


def _hex(rng: random.Random) -> str:
    return "%032x" % rng.getrandbits(128)


def sample_entities(seed: int = 1, events: int = 3, camera: str = "aabbccddeeff"):
    """(status, standalone file record, events, {file_id: bytes}) generated from `seed`."""
    rng = random.Random(seed)
    status = Status.from_json({**FIXTURES["status"]["status"], "status_id": _hex(rng),
                               "camera_id": camera})
    data, made = {}, []

    def record(time_ms: int) -> dict:
        body = rng.randbytes(rng.randint(1, 5000))
        file_id = _hex(rng)
        data[file_id] = body
        return {"file_id": file_id, "camera_id": camera, "status_id": status.status_id,
                "file_time": time_ms, "mime_type": "image/png",
                "semantic_type": "meteorpi:triggers/image", "file_name": "frame.png",
                "file_size": len(body), "md5": hashlib.md5(body).hexdigest(),
                "meta": [{"type": "number", "key": "meteorpi:exposure", "value": 1e-05}]}

    for index in range(events):
        time_ms = 1427891400000 + index * 60_000
        made.append(Event.from_json({
            "event_id": _hex(rng), "camera_id": camera, "status_id": status.status_id,
            "event_time": time_ms, "event_type": "meteorpi:meteor",
            "files": [record(time_ms), record(time_ms + 1)],
            "meta": [{"type": "string", "key": "meteorpi:note", "value": f"event {index}"}]}))
    standalone = FileRecord.from_json(record(1427891400000 + 5))
    return status, standalone, made, data


def fill(archive, seed: int = 1, events: int = 3, camera: str = "aabbccddeeff"):
    """Store sample entities in `archive` the ordinary way (staged bytes, then records)."""
    status, standalone, made, data = sample_entities(seed, events, camera)
    archive.add_status(status)
    for file_id, body in data.items():
        assert archive.stage_bytes(file_id, hashlib.md5(body).hexdigest(),
                                   io.BytesIO(body)).received
    for event in made:
        archive.import_event(event)
    archive.import_file(standalone)
    return status, standalone, made, data


def snapshot(site) -> dict:
    """Everything two sites must agree on: each entity's canonical body, and each file's
    bytes (by MD5 and SHA-256), without creation times."""
    from sqlalchemy import select
    from model.store import schema
    result = {}
    with site.database.reading() as conn:
        for name, table, key in (("statuses", schema.statuses, "status_id"),
                                 ("events", schema.events, "event_id"),
                                 ("files", schema.files, "file_id")):
            result[name] = {row[0]: (row[1], row[2]) for row in conn.execute(
                select(table.c[key], table.c.body, table.c.content_hash))}
    result["bytes"] = {}
    for file_id in result["files"]:
        stream, record = site.archive.open_data(file_id)
        with stream:
            body = stream.read()
        result["bytes"][file_id] = (hashlib.md5(body).hexdigest(),
                                    hashlib.sha256(body).hexdigest())
    return result


def leftovers(site, blob_root: Path) -> dict:
    """What a refused bundle must not leave: staged rows, temporary files, blob files."""
    return {"counts": site.archive.counts(),
            "tmp": sorted(p.name for p in (blob_root / "tmp").iterdir()),
            "blob_files": sorted(p.name for p in blob_root.glob("??/??/*"))}


def metadata_of(status, standalone, events) -> dict:
    return {"statuses": [status.to_json()], "files": [standalone.to_json()],
            "events": [event.to_json() for event in events]}


def build_tar(members: list[tuple[str, bytes]], gzip: bool = False,
              extra: list[tarfile.TarInfo] = ()) -> bytes:
    """A tar of (name, bytes) members in the given order, plus raw TarInfo members."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w|gz" if gzip else "w|",
                      format=tarfile.PAX_FORMAT) as tar:
        for name, body in members:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        for info in extra:
            tar.addfile(info)
    return out.getvalue()


def bundle_members(metadata: dict, data: dict[str, bytes], metadata_first: bool = True):
    meta = [("metadata.json", json.dumps(metadata).encode())]
    files = [(f"data/{file_id}", body) for file_id, body in data.items()]
    return meta + files if metadata_first else files + meta
