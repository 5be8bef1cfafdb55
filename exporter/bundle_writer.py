"""Write a bundle of the local archive: `metadata.json` first, then `data/<file_id>` for every
file record, streamed from the blob store into a tar in stream mode (optionally gzip). Only the
entities' JSON is in memory; a 10 GiB bundle passes through in 1 MiB pieces.

A bundle written to a path goes to a temporary name beside it and is renamed when complete, so
a failed or interrupted run never leaves something that looks like a bundle.
"""

import io
import json
import os
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from model.archive.archive import Archive
from model.archive.selection import Selection, select_entities
from model.bundles.format import DATA_DIR, METADATA, BundleMetadata


class BundleWriteError(Exception):
    """The bundle could not be written (the message says why); no bundle file was left."""


@dataclass(frozen=True)
class WriteReport:
    statuses: int
    files: int
    events: int
    data_bytes: int


def write_bundle(archive: Archive, out: str, selection: Selection, gzip: bool = False,
                 on_bytes: Callable[[int], None] | None = None) -> WriteReport:
    """Write the bundle to the path `out` ("-" is standard output)."""
    if out == "-":
        return _write(archive, sys.stdout.buffer, selection, gzip, on_bytes)
    target = Path(out)
    handle, temp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            report = _write(archive, stream, selection, gzip, on_bytes)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return report


def _write(archive: Archive, stream: BinaryIO, selection: Selection, gzip: bool,
           on_bytes) -> WriteReport:
    statuses, files, events = select_entities(archive.db, selection)
    metadata = BundleMetadata(tuple(statuses), tuple(files), tuple(events))
    records = list(files) + [record for event in events for record in event.files]
    total = 0
    with tarfile.open(fileobj=stream, mode="w|gz" if gzip else "w|",
                      format=tarfile.PAX_FORMAT) as tar:
        body = json.dumps(metadata.to_json(), ensure_ascii=False).encode()
        tar.addfile(_info(METADATA, len(body), time.time()), io.BytesIO(body))
        for record in records:
            total += _add_data(archive, tar, record)
            if on_bytes:
                on_bytes(total)
    return WriteReport(len(statuses), len(records), len(events), total)


def _add_data(archive: Archive, tar: tarfile.TarFile, record) -> int:
    opened = archive.open_data(record.file_id)
    if opened is None:
        raise BundleWriteError(f"file {record.file_id} vanished from the archive while the "
                               "bundle was written; run it again")
    data, _ = opened
    with data:
        size = data.seek(0, io.SEEK_END)
        data.seek(0)
        tar.addfile(_info(f"{DATA_DIR}/{record.file_id}", size, record.file_time / 1000), data)
    return size


def _info(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(mtime), 0o644
    return info
