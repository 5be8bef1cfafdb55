"""The bundle format: a tar (optionally gzip) of `metadata.json` and `data/<file_id>`.

This module knows the names, what a safe member is and what a complete tar is;
`bundle_ingest` reads bundles and `exporter.bundle_writer` writes them. A bundle comes from
another site, possibly a hostile one: nothing in it is ever extracted to a path, and every
member that is not exactly what the format allows (absolute or `..` paths, links, devices,
anything outside `data/` except `metadata.json`, a name seen twice) refuses the whole bundle,
as does a tar that is not complete (cut short anywhere before its end-of-archive marker).
"""

import gzip
import json
import tarfile
import zlib
from dataclasses import dataclass
from typing import Any, Iterator

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


_ZERO_BLOCK = tarfile.NUL * tarfile.BLOCKSIZE


class _CompleteTarInfo(tarfile.TarInfo):
    """A member header read by a reader that knows how a complete tar ends.

    tarfile, reading a stream, takes the data's end, a header cut short and a block that is
    no header, anywhere after the first member, for the end of the archive, silently: a
    bundle cut between (or inside the header of) two members would read as the members
    before the cut, and one whose members the site already holds would be `done`. Here the
    only end is the end-of-archive marker, two zero blocks (what follows it, a record's
    padding, is not checked); anything else refuses the bundle. A member whose data is cut
    short is tarfile's own "unexpected end of data"."""

    @classmethod
    def fromtarfile(cls, tar: tarfile.TarFile) -> tarfile.TarInfo:
        at = tar.offset
        try:
            return super().fromtarfile(tar)
        except tarfile.EOFHeaderError:      # a zero block: the first half of the marker
            if tar.fileobj.read(tarfile.BLOCKSIZE) != _ZERO_BLOCK:
                raise BundleRefused(f"the bundle is truncated: its end-of-archive marker (two "
                                    f"zero blocks) at byte {at} of the tar is incomplete; "
                                    "send the whole bundle again") from None
            raise
        except (tarfile.EmptyHeaderError, tarfile.TruncatedHeaderError) as exc:
            if at == 0:                     # not a tar at all: tarfile says so
                raise
            where = "before" if isinstance(exc, tarfile.EmptyHeaderError) else "inside"
            raise BundleRefused(f"the bundle is truncated: it ends {where} the member header "
                                f"at byte {at} of the tar, without the end-of-archive marker; "
                                "send the whole bundle again") from None
        except tarfile.InvalidHeaderError:
            if at == 0:
                raise
            raise BundleRefused(f"the bundle is corrupt: the block at byte {at} of the tar is "
                                "neither a member header nor the end of the archive") from None


GZIP_MAGIC = b"\x1f\x8b"
_DRAIN_BYTES = 1024 * 1024
# What may follow a gzip bundle's tar end (a record's padding: 10 KiB by default, 1 MiB for
# GNU tar's largest blocking factor), decompressed; more is refused, not read on (zeros
# compress a thousandfold).
MAX_AFTER_END = 16 * 1024 * 1024


def members(fileobj) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """(tar, member) for each member of the bundle read from `fileobj`, streamed, by a reader
    that refuses a tar which is not complete (`_CompleteTarInfo`). A gzip bundle is
    decompressed here rather than by tarfile, which never reads gzip's trailer: once the tar
    has ended, the rest of the stream is read, so that a gzip stream cut short (or whose CRC
    is wrong) is refused too. Other compressions are left to tarfile ("r|*")."""
    head = fileobj.read(len(GZIP_MAGIC))
    source = _Prefixed(head, fileobj)
    if head != GZIP_MAGIC:
        with tarfile.open(fileobj=source, mode="r|*", tarinfo=_CompleteTarInfo) as tar:
            for member in tar:
                yield tar, member
        return
    try:
        with gzip.GzipFile(fileobj=source, mode="rb") as unzipped:
            with tarfile.open(fileobj=unzipped, mode="r|", tarinfo=_CompleteTarInfo) as tar:
                for member in tar:
                    yield tar, member
            after = 0
            while block := unzipped.read(_DRAIN_BYTES):   # the padding, then gzip's trailer
                after += len(block)
                if after > MAX_AFTER_END:
                    raise BundleRefused(f"the bundle holds more than {MAX_AFTER_END} bytes "
                                        "after the end of its tar")
    except EOFError:
        raise BundleRefused("the bundle is truncated: its gzip stream ends before its "
                            "end-of-stream marker; send the whole bundle again") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise BundleRefused(f"the bundle's gzip stream is corrupt: {exc}") from None


class _Prefixed:
    """`head`, already read from `rest`, then the rest: a stream whose first bytes were looked
    at."""

    def __init__(self, head: bytes, rest):
        self._head, self._rest = head, rest

    def read(self, size: int = -1) -> bytes:
        """Never shorter than asked before the end (tarfile sniffs a compression's magic
        in its first read)."""
        head, self._head = self._head, b""
        if size < 0:
            return head + self._rest.read()
        if size <= len(head):
            self._head = head[size:]
            return head[:size]
        return head + self._rest.read(size - len(head))


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
