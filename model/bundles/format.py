"""The bundle format: a tar (optionally gzip) of `metadata.json` and `data/<file_id>`.

This module knows the names and what a safe member is; `bundle_ingest` reads bundles and
`exporter.bundle_writer` writes them. A bundle comes from another site, possibly a hostile
one: nothing in it is ever extracted to a path, and every member that is not exactly what the
format allows (absolute or `..` paths, links, devices, anything outside `data/` except
`metadata.json`, a name seen twice) refuses the whole bundle.
"""

import json
import tarfile
from dataclasses import dataclass
from typing import Any

from model.protocol import codec
from model.protocol.codec import EntityError
from model.protocol.entities import Event, FileRecord, Status
from model.protocol.errors import Invalid
from model.protocol.vocabulary import EVENT, FILE, STATUS

METADATA = "metadata.json"
DATA_DIR = "data"
# Directory entries a bundle made with `tar -C dir -cf out.tar .` carries; they hold nothing.
_HARMLESS_DIRECTORIES = {"", ".", DATA_DIR}
MAX_ENTITIES = 10_000_000


class BundleRefused(Invalid):
    """The bundle cannot be ingested; the message says why in words a user can act on.
    Nothing of a refused bundle is stored."""


@dataclass(frozen=True)
class Member:
    """What a safe tar member is: the metadata, or the bytes of one file."""
    kind: str              # "metadata" | "data" | "directory"
    file_id: str | None = None


def classify(member: tarfile.TarInfo, seen: set[str]) -> Member:
    """Check one member's header; raise BundleRefused if it is not allowed."""
    name = member.name
    shown = repr(name[:200])
    if name.startswith("/") or name.startswith("\\") or ":" in name.split("/")[0]:
        raise BundleRefused(f"unsafe member {shown}: absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts or any("\\" in part for part in parts):
        raise BundleRefused(f"unsafe member {shown}: path leaves the bundle")
    if member.issym() or member.islnk():
        raise BundleRefused(f"unsafe member {shown}: links are not allowed")
    if member.isdir() and "/".join(parts) in _HARMLESS_DIRECTORIES:
        return Member("directory")
    if not member.isreg():
        raise BundleRefused(f"unsafe member {shown}: only regular files are allowed "
                            f"(this one is a {_kind(member)})")
    normal = "/".join(parts)
    if normal in seen:
        raise BundleRefused(f"member {shown} appears twice")
    seen.add(normal)
    if normal == METADATA:
        return Member("metadata")
    if len(parts) == 2 and parts[0] == DATA_DIR:
        try:
            file_id = codec.uuid_hex(parts[1], "name")
        except EntityError:
            raise BundleRefused(f"member {shown}: a data member is named data/<file_id> "
                                "(32 hex digits)") from None
        if file_id != parts[1]:
            raise BundleRefused(f"member {shown}: write the file ID as 32 lowercase hex "
                                f"digits (data/{file_id})")
        return Member("data", file_id)
    raise BundleRefused(f"unexpected member {shown}: a bundle holds only {METADATA} and "
                        f"{DATA_DIR}/<file_id>")


def _kind(member: tarfile.TarInfo) -> str:
    if member.ischr() or member.isblk():
        return "device"
    if member.isfifo():
        return "FIFO"
    if member.isdir():
        return "directory"
    return f"member of type {member.type!r}"


@dataclass(frozen=True)
class BundleMetadata:
    statuses: tuple[Status, ...]
    files: tuple[FileRecord, ...]     # standalone file records
    events: tuple[Event, ...]

    def records(self) -> dict[str, FileRecord]:
        """Every file record, standalone or part of an event, by file ID."""
        found = {record.file_id: record for record in self.files}
        for event in self.events:
            found.update((record.file_id, record) for record in event.files)
        return found

    def to_json(self) -> dict:
        return {"statuses": [s.to_json() for s in self.statuses],
                "files": [f.to_json() for f in self.files],
                "events": [e.to_json() for e in self.events]}


def parse_metadata(raw: bytes) -> BundleMetadata:
    """Decode and validate `metadata.json` with the entity codec."""
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleRefused(f"{METADATA} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BundleRefused(f"{METADATA} must be an object with statuses, files and events")
    try:
        metadata = BundleMetadata(_list(data, "statuses", Status.from_json),
                                  _list(data, "files", FileRecord.from_json),
                                  _list(data, "events", Event.from_json))
    except EntityError as exc:
        raise BundleRefused(f"{METADATA}: {exc}") from None
    _check_unique(metadata)
    return metadata


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _list(data: dict, key: str, reader) -> tuple:
    value = data.get(key, [])
    return codec.listing(value, key, lambda item, field: reader(item, field),
                         max_items=MAX_ENTITIES)


def _check_unique(metadata: BundleMetadata) -> None:
    """An ID names one entity: a bundle that names one twice cannot mean anything."""
    for kind, ids in ((STATUS, [s.status_id for s in metadata.statuses]),
                      (EVENT, [e.event_id for e in metadata.events]),
                      (FILE, [r.file_id for r in metadata.files]
                       + [r.file_id for e in metadata.events for r in e.files])):
        seen = set()
        for entity_id in ids:
            if entity_id in seen:
                raise BundleRefused(f"{METADATA}: {kind} {entity_id} appears twice")
            seen.add(entity_id)
