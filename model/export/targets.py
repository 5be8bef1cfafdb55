"""Export targets: where this site sends its data, with which credentials and filters.

The only place with SQL for `export_targets`. Validation lives here too, so that the command
line and the HTTP API (`/api/targets`) refuse the same input with the same message.

The password has to be presented to the remote importer, so it is stored as given; it leaves
this module only inside a `Secret`, whose text is a mask: a listing, a log line or a repr can
never show it by accident.
"""

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit

from sqlalchemy import delete, insert, select, update

from model.export.queue import FAILED as QUEUE_FAILED
from model.protocol import codec
from model.protocol.codec import EntityError
from model.protocol.errors import Conflict, Invalid, NotFound
from model.store import schema
from model.store.database import Database, now_ms

PROTOCOLS = ("auto", "v1", "v2")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MASK = "********"


class TargetError(Invalid):
    """A target command cannot be done; the message says why and what to do."""


class UnknownTarget(TargetError, NotFound):
    def __init__(self, name: str):
        super().__init__(f"no export target {name!r} (see `skyrelay target list`)")


class DuplicateTarget(TargetError, Conflict):
    def __init__(self, name: str):
        super().__init__(f"export target {name!r} exists already; remove it first or pick "
                         "another name")


class Secret:
    """A password that shows as a mask everywhere except through `reveal()`."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return MASK

    __str__ = __repr__

    def __eq__(self, other) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Filter:
    """Which events and standalone files a target receives. Empty means everything."""
    camera_ids: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    after_ms: int | None = None       # inclusive
    before_ms: int | None = None      # exclusive

    def to_json(self) -> dict:
        return {"camera_ids": list(self.camera_ids), "event_types": list(self.event_types),
                "after": self.after_ms, "before": self.before_ms}


@dataclass(frozen=True)
class Target:
    target_id: int
    name: str
    url: str
    user: str
    password: Secret
    protocol: str
    filter: Filter
    ca_bundle: str | None
    enabled: bool
    next_attempt_ms: int
    failures: int
    auth_failed: bool
    last_error: str | None
    bwlimit: int | None = None      # bytes per second of file data, None = no limit

    def to_json(self) -> dict:
        """The public view (listing, API): everything but the password."""
        return {"name": self.name, "url": self.url, "user": self.user,
                "protocol": self.protocol, "filter": self.filter.to_json(),
                "ca_bundle": self.ca_bundle, "bwlimit": self.bwlimit, "enabled": self.enabled,
                "next_attempt_ms": self.next_attempt_ms, "failures": self.failures,
                "auth_failed": self.auth_failed, "last_error": self.last_error}


# -- validation ----------------------------------------------------------------------------

def check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise TargetError(f"target name {name!r}: use 1 to 64 letters, digits or '_.-'")
    return name


def check_url(url: Any) -> str:
    """An http(s) URL of the remote import path, without credentials in it."""
    if not isinstance(url, str):
        raise TargetError("url: expected a string such as https://host:8800/import")
    _storable(url, "url")
    parts = urlsplit(url.strip())
    try:
        parts.port
    except ValueError:
        raise TargetError(f"url {url!r}: the port is not a number from 1 to 65535") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"url {url!r}: expected http://HOST[:PORT]/PATH or https://…, "
                          "e.g. https://archive.example.org/import")
    if parts.username or parts.password:
        raise TargetError("url: put no user or password in the URL; use --user and "
                          "--password-stdin")
    if parts.query or parts.fragment:
        raise TargetError(f"url {url!r}: a query or fragment is not allowed")
    return url.strip().rstrip("/")


def check_user(user: Any) -> str:
    if not isinstance(user, str) or not user or len(user) > 256 or ":" in user:
        raise TargetError("user: 1 to 256 characters, no ':' (HTTP Basic cannot carry it)")
    _storable(user, "user")
    return user


def check_password(password: Any) -> str:
    if not isinstance(password, str) or not password:
        raise TargetError("password: must not be empty")
    _storable(password, "password")
    return password


def _storable(text: str, field: str) -> None:
    """Text every database can store (`codec.text`: no NUL, no lone surrogate), refused as a
    TargetError; the length is each field's own rule."""
    try:
        codec.text(text, field, max_length=len(text))
    except EntityError as exc:
        raise TargetError(str(exc)) from None


def check_protocol(protocol: Any) -> str:
    if protocol not in PROTOCOLS:
        raise TargetError(f"protocol {protocol!r}: must be one of {', '.join(PROTOCOLS)}")
    return protocol


def check_ca_bundle(path: Any) -> str | None:
    if path is None:
        return None
    if not isinstance(path, str) or not Path(path).is_file():
        raise TargetError(f"ca_bundle {path!r}: no such file (a PEM file of CA certificates)")
    return str(Path(path).resolve())


_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?(?:/s)?\s*$", re.IGNORECASE)
_RATE_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}


def check_bwlimit(value: Any) -> int | None:
    """A bandwidth limit in bytes per second: an integer, or text such as '2M' (K, M, G are
    powers of 1024, as in rsync's --bwlimit). 0, '' or None: no limit."""
    if value is None or value == "" or value == 0 or value == "0":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return _in_64_bits(value, "bandwidth limit", value)
    match = _RATE.match(value) if isinstance(value, str) else None
    amount = float(match.group(1)) * _RATE_UNITS[match.group(2).upper()] if match else 0.0
    rate = int(min(amount, codec.INT64_MAX + 1))     # (inf included) past the range: refused
    if rate <= 0:
        raise TargetError(f"bandwidth limit {value!r}: expected bytes per second, a number "
                          "with an optional K, M or G suffix (e.g. 2M), or 0 for none")
    return _in_64_bits(rate, "bandwidth limit", value)


def _in_64_bits(number: int | str, what: str, given: Any) -> int:
    """`number` (an integer, or ASCII digits) under the wire's 64-bit rule (`codec.int64`,
    `codec.decimal`: every integer column is 64-bit), refused as a TargetError that names
    what was given."""
    try:
        return codec.decimal(number, what) if isinstance(number, str) else \
            codec.int64(number, what)
    except EntityError:
        raise TargetError(f"{what} {codec.shown(given)}: out of the 64-bit range (at most "
                          f"{codec.INT64_MAX})") from None


def parse_time(value: Any, field: str) -> int | None:
    """Milliseconds since the epoch, or an ISO 8601 date/time (UTC unless it says otherwise)."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return _in_64_bits(value, field, value)
    if isinstance(value, str):
        if value.isascii() and value.isdigit():      # ('²'.isdigit() is true as well)
            return _in_64_bits(value, field, value)
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            return int(moment.timestamp() * 1000)
    raise TargetError(f"{field} {value!r}: expected milliseconds since 1970 or an ISO 8601 "
                      "time such as 2026-01-25 or 2026-01-25T16:54:50Z")


def make_filter(camera_ids: Iterable = (), event_types: Iterable = (), after=None,
                before=None) -> Filter:
    try:
        cameras = tuple(dict.fromkeys(codec.camera_id(c, "camera") for c in camera_ids or ()))
        types = tuple(dict.fromkeys(codec.namespaced(t, "event_type")
                                    for t in event_types or ()))
    except EntityError as exc:
        raise TargetError(str(exc)) from None
    after_ms, before_ms = parse_time(after, "after"), parse_time(before, "before")
    if after_ms is not None and before_ms is not None and after_ms >= before_ms:
        raise TargetError(f"after ({after}) must be earlier than before ({before})")
    return Filter(cameras, types, after_ms, before_ms)


# -- storage -------------------------------------------------------------------------------

def _row_to_target(row) -> Target:
    load = lambda text: tuple(json.loads(text)) if text else ()  # noqa: E731
    return Target(
        target_id=row.target_id, name=row.name, url=row.url, user=row.user_name,
        password=Secret(row.password_secret), protocol=row.protocol,
        filter=Filter(load(row.camera_ids), load(row.event_types), row.after_ms,
                      row.before_ms),
        ca_bundle=row.ca_bundle, enabled=bool(row.enabled),
        next_attempt_ms=row.next_attempt_ms, failures=row.failures,
        auth_failed=bool(row.auth_failed), last_error=row.last_error, bwlimit=row.bwlimit)


_CHANGED = {"next_attempt_ms": 0, "failures": 0, "auth_failed": False, "last_error": None}


class Targets:
    """Add, read, change and remove export targets; record how their syncs went."""

    def __init__(self, database: Database):
        self.db = database

    def add(self, name: str, url: str, user: str, password: str, protocol: str = "auto",
            filter: Filter = Filter(), ca_bundle: str | None = None,
            bwlimit: Any = None) -> Target:
        values = {"bwlimit": check_bwlimit(bwlimit), "name": check_name(name), "url": check_url(url), "user_name": check_user(user),
                  "password_secret": check_password(password),
                  "protocol": check_protocol(protocol), "ca_bundle": check_ca_bundle(ca_bundle),
                  "camera_ids": json.dumps(filter.camera_ids) if filter.camera_ids else None,
                  "event_types": json.dumps(filter.event_types) if filter.event_types else None,
                  "after_ms": filter.after_ms, "before_ms": filter.before_ms,
                  "enabled": True, "created_ms": now_ms(), "changed_ms": now_ms(), **_CHANGED}
        with self.db.transaction() as tx:
            if tx.scalar(select(schema.export_targets.c.target_id)
                         .where(schema.export_targets.c.name == name)) is not None:
                raise DuplicateTarget(name)
            tx.execute(insert(schema.export_targets).values(**values))
        return self.get(name)

    def get(self, name: str) -> Target:
        with self.db.reading() as conn:
            row = conn.execute(select(schema.export_targets)
                               .where(schema.export_targets.c.name == name)).first()
        if row is None:
            raise UnknownTarget(name)
        return _row_to_target(row)

    def list(self) -> list[Target]:
        with self.db.reading() as conn:
            rows = conn.execute(select(schema.export_targets)
                                .order_by(schema.export_targets.c.name))
            return [_row_to_target(row) for row in rows]

    def change(self, name: str, *, url=None, user=None, password=None, protocol=None,
               ca_bundle=None, enabled=None, bwlimit=None) -> Target:
        """Change connection settings. Any change clears the backoff and the auth block:
        the admin has acted, so the next sync tries again at once."""
        values = {}
        if url is not None:
            values["url"] = check_url(url)
        if user is not None:
            values["user_name"] = check_user(user)
        if password is not None:
            values["password_secret"] = check_password(password)
        if protocol is not None:
            values["protocol"] = check_protocol(protocol)
        if ca_bundle is not None:
            values["ca_bundle"] = check_ca_bundle(ca_bundle) if ca_bundle else None
        if enabled is not None:
            values["enabled"] = bool(enabled)
        if bwlimit is not None:
            values["bwlimit"] = check_bwlimit(bwlimit)
        self._update(name, {**values, **_CHANGED, "changed_ms": now_ms()})
        if values.get("enabled"):
            self._retry_failed_now(name)
        return self.get(name)

    def remove(self, name: str) -> None:
        """The target, its queue and its lock, in one transaction."""
        table = schema.export_targets
        with self.db.transaction() as tx:
            target_id = tx.scalar(select(table.c.target_id).where(table.c.name == name))
            if target_id is None:
                raise UnknownTarget(name)
            for child in (schema.export_queue, schema.sync_locks):
                tx.execute(delete(child).where(child.c.target_id == target_id))
            tx.execute(delete(schema.outgoing_uploads)
                       .where(schema.outgoing_uploads.c.target == name))
            tx.execute(delete(table).where(table.c.target_id == target_id))

    # -- outcome of syncs -------------------------------------------------------------------

    def record_success(self, target_id: int) -> None:
        self._update_id(target_id, {"failures": 0, "next_attempt_ms": 0, "last_error": None})

    def record_failure(self, target_id: int, failures: int, message: str,
                       next_attempt_ms: int) -> None:
        """The target failed and waits until `next_attempt_ms`; the wait is decided by the
        exporter's retry policy (`exporter.retry`), not here."""
        self._update_id(target_id, {"failures": failures, "last_error": message,
                                    "next_attempt_ms": next_attempt_ms})

    def record_auth_failure(self, target_id: int, message: str) -> None:
        """401/403: retrying cannot help, so the target waits until an admin changes it."""
        self._update_id(target_id, {"auth_failed": True, "last_error": message})

    def _update(self, name: str, values: dict) -> None:
        table = schema.export_targets
        with self.db.transaction() as tx:
            if not tx.execute(update(table).where(table.c.name == name)
                              .values(**values)).rowcount:
                raise UnknownTarget(name)

    def _update_id(self, target_id: int, values: dict) -> None:
        table = schema.export_targets
        with self.db.transaction() as tx:
            tx.execute(update(table).where(table.c.target_id == target_id).values(**values))

    def _retry_failed_now(self, name: str) -> None:
        queue, table = schema.export_queue, schema.export_targets
        with self.db.transaction() as tx:
            tx.execute(update(queue).where(
                queue.c.target_id == select(table.c.target_id)
                .where(table.c.name == name).scalar_subquery(),
                queue.c.state == QUEUE_FAILED).values(next_attempt_ms=0))
