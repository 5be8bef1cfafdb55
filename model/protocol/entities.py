"""The archive's value objects and their JSON form, exactly as docs/wire.md "Entities" has it.

`X.from_json(data)` validates and normalises (IDs to 32 lowercase hex, names into a
namespace, integral floats in times to ints) and raises `EntityError` naming the field.
`x.to_json()` gives the wire form back, keys with null values left out. Unknown keys are
ignored, so a newer peer's additions do not make an entity unreadable.
"""

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Mapping

from model.protocol import codec
from model.protocol.codec import EntityError
from model.protocol.vocabulary import EVENT, FILE, STATUS, file_records

__all__ = ["EntityError", "Meta", "Location", "Orientation", "Status", "FileRecord", "Event",
           "canonical_json", "content_hash"]

META_TYPES = ("string", "number", "date")


def canonical_json(data: Any) -> str:
    """One text per value: sorted keys, no spaces. Stored as the entity's body and hashed."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(entity_json: Mapping) -> str:
    """SHA-256 of the canonical JSON: two sites agree on it iff they hold the same content."""
    return hashlib.sha256(canonical_json(entity_json).encode()).hexdigest()


class _Content:
    """An entity's canonical JSON text and content hash, computed once: an entity is
    stored, traced and compared by them, and it is frozen, so they never change."""

    @cached_property
    def canonical_text(self) -> str:
        return canonical_json(self.to_json())

    @cached_property
    def content_hash(self) -> str:
        return hashlib.sha256(self.canonical_text.encode()).hexdigest()


@dataclass(frozen=True)
class Meta:
    type: str
    key: str
    value: str | int | float

    @classmethod
    def from_json(cls, data: Any, field: str = "meta") -> "Meta":
        data = codec.mapping(data, field)
        kind = codec.required(data, "type", field)
        if kind not in META_TYPES:
            raise EntityError(f"{field}.type",
                              f"expected one of {', '.join(META_TYPES)}, got {kind!r}")
        key = codec.namespaced(codec.required(data, "key", field), f"{field}.key")
        value = codec.required(data, "value", field)
        read_value = {"string": codec.text, "number": codec.number, "date": codec.millis}[kind]
        return cls(kind, key, read_value(value, f"{field}.value"))

    def to_json(self) -> dict:
        return {"type": self.type, "key": self.key, "value": self.value}


@dataclass(frozen=True)
class Location:
    lat: int | float
    long: int | float
    gps: bool | None = None
    error: int | float | None = None

    @classmethod
    def from_json(cls, data: Any, field: str) -> "Location":
        data = codec.mapping(data, field)
        return cls(codec.number(codec.required(data, "lat", field), f"{field}.lat"),
                   codec.number(codec.required(data, "long", field), f"{field}.long"),
                   codec.optional(data, "gps", field, codec.boolean),
                   codec.optional(data, "error", field, codec.number))

    def to_json(self) -> dict:
        return codec.without_nulls(
            {"lat": self.lat, "long": self.long, "gps": self.gps, "error": self.error})


@dataclass(frozen=True)
class Orientation:
    alt: int | float
    az: int | float
    rot: int | float | None = None
    error: int | float | None = None
    width: int | float | None = None

    @classmethod
    def from_json(cls, data: Any, field: str) -> "Orientation":
        data = codec.mapping(data, field)
        return cls(codec.number(codec.required(data, "alt", field), f"{field}.alt"),
                   codec.number(codec.required(data, "az", field), f"{field}.az"),
                   *(codec.optional(data, key, field, codec.number)
                     for key in ("rot", "error", "width")))

    def to_json(self) -> dict:
        return codec.without_nulls({"alt": self.alt, "az": self.az, "rot": self.rot,
                                    "error": self.error, "width": self.width})


def _point(value: Any, field: str) -> tuple:
    value = codec.mapping(value, field)
    return (codec.number(codec.required(value, "x", field), f"{field}.x"),
            codec.number(codec.required(value, "y", field), f"{field}.y"))


def _region(value: Any, field: str) -> tuple:
    return codec.listing(value, field, _point)


@dataclass(frozen=True)
class Status(_Content):
    kind: ClassVar[str] = STATUS
    status_id: str
    camera_id: str
    valid_from: int
    location: Location
    orientation: Orientation
    valid_to: int | None = None
    software_version: int | None = None
    lens: str | None = None
    sensor: str | None = None
    inst_name: str | None = None
    inst_url: str | None = None
    regions: tuple | None = None

    @property
    def id(self) -> str:
        return self.status_id

    @property
    def file_records(self) -> tuple:
        return file_records(self.kind, self)

    @classmethod
    def from_json(cls, data: Any, field: str = "status") -> "Status":
        data = codec.mapping(data, field)
        req = lambda key: codec.required(data, key, field)  # noqa: E731
        opt = lambda key, reader: codec.optional(data, key, field, reader)  # noqa: E731
        return cls(
            status_id=codec.uuid_hex(req("status_id"), f"{field}.status_id"),
            camera_id=codec.camera_id(req("camera_id"), f"{field}.camera_id"),
            valid_from=codec.millis(req("valid_from"), f"{field}.valid_from"),
            location=Location.from_json(req("location"), f"{field}.location"),
            orientation=Orientation.from_json(req("orientation"), f"{field}.orientation"),
            valid_to=opt("valid_to", codec.millis),
            software_version=opt("software_version", codec.integer),
            lens=opt("lens", codec.text),
            sensor=opt("sensor", codec.text),
            inst_name=opt("inst_name", codec.text),
            inst_url=opt("inst_url", codec.text),
            # [] is no regions, as absent is: MeteorPi (and a version 1 exporter) always
            # sends the key, so both spellings must hash alike (docs/protocol.md).
            regions=opt("regions", lambda v, f: codec.listing(v, f, _region)) or None,
        )

    def to_json(self) -> dict:
        regions = None if self.regions is None else [
            [{"x": x, "y": y} for x, y in region] for region in self.regions]
        return codec.without_nulls({
            "status_id": self.status_id, "camera_id": self.camera_id,
            "valid_from": self.valid_from, "valid_to": self.valid_to,
            "software_version": self.software_version, "lens": self.lens,
            "sensor": self.sensor, "inst_name": self.inst_name, "inst_url": self.inst_url,
            "location": self.location.to_json(), "orientation": self.orientation.to_json(),
            "regions": regions,
        })


def _meta_list(data: Mapping, field: str) -> tuple:
    return codec.listing(codec.required(data, "meta", field), f"{field}.meta",
                         Meta.from_json, max_items=1000)


@dataclass(frozen=True)
class FileRecord(_Content):
    kind: ClassVar[str] = FILE
    file_id: str
    camera_id: str
    status_id: str
    file_time: int
    mime_type: str
    semantic_type: str
    file_size: int
    md5: str
    meta: tuple = ()
    file_name: str | None = None

    @property
    def id(self) -> str:
        return self.file_id

    @property
    def file_records(self) -> tuple["FileRecord", ...]:
        return file_records(self.kind, self)

    @classmethod
    def from_json(cls, data: Any, field: str = "file") -> "FileRecord":
        data = codec.mapping(data, field)
        req = lambda key: codec.required(data, key, field)  # noqa: E731
        return cls(
            file_id=codec.uuid_hex(req("file_id"), f"{field}.file_id"),
            camera_id=codec.camera_id(req("camera_id"), f"{field}.camera_id"),
            status_id=codec.uuid_hex(req("status_id"), f"{field}.status_id"),
            file_time=codec.millis(req("file_time"), f"{field}.file_time"),
            mime_type=codec.text(req("mime_type"), f"{field}.mime_type", 255),
            semantic_type=codec.namespaced(req("semantic_type"), f"{field}.semantic_type"),
            file_size=codec.integer(req("file_size"), f"{field}.file_size", minimum=0),
            md5=codec.md5_hex(req("md5"), f"{field}.md5"),
            meta=_meta_list(data, field),
            file_name=codec.optional(data, "file_name", field,
                                     lambda v, f: codec.text(v, f, 255)),
        )

    def to_json(self) -> dict:
        return codec.without_nulls({
            "file_id": self.file_id, "camera_id": self.camera_id, "status_id": self.status_id,
            "file_time": self.file_time, "mime_type": self.mime_type,
            "semantic_type": self.semantic_type, "file_name": self.file_name,
            "file_size": self.file_size, "md5": self.md5,
            "meta": [meta.to_json() for meta in self.meta],
        })


@dataclass(frozen=True)
class Event(_Content):
    kind: ClassVar[str] = EVENT
    event_id: str
    camera_id: str
    status_id: str
    event_time: int
    event_type: str
    files: tuple = ()
    meta: tuple = ()

    @property
    def id(self) -> str:
        return self.event_id

    @property
    def file_records(self) -> tuple[FileRecord, ...]:
        return file_records(self.kind, self)

    @classmethod
    def from_json(cls, data: Any, field: str = "event") -> "Event":
        data = codec.mapping(data, field)
        req = lambda key: codec.required(data, key, field)  # noqa: E731
        event = cls(
            event_id=codec.uuid_hex(req("event_id"), f"{field}.event_id"),
            camera_id=codec.camera_id(req("camera_id"), f"{field}.camera_id"),
            status_id=codec.uuid_hex(req("status_id"), f"{field}.status_id"),
            event_time=codec.millis(req("event_time"), f"{field}.event_time"),
            event_type=codec.namespaced(req("event_type"), f"{field}.event_type"),
            files=codec.listing(codec.required(data, "files", field), f"{field}.files",
                                FileRecord.from_json, max_items=1000),
            meta=_meta_list(data, field),
        )
        event._check_files(field)
        return event

    def _check_files(self, field: str) -> None:
        seen = set()
        for index, record in enumerate(self.files):
            where = f"{field}.files[{index}]"
            if record.camera_id != self.camera_id:
                raise EntityError(f"{where}.camera_id", f"must be the event's camera_id "
                                  f"{self.camera_id!r}, got {record.camera_id!r}")
            if record.file_id in seen:
                raise EntityError(f"{where}.file_id", f"{record.file_id} appears twice")
            seen.add(record.file_id)

    def to_json(self) -> dict:
        return {
            "event_id": self.event_id, "camera_id": self.camera_id,
            "status_id": self.status_id, "event_time": self.event_time,
            "event_type": self.event_type, "files": [f.to_json() for f in self.files],
            "meta": [meta.to_json() for meta in self.meta],
        }
