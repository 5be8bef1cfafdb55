"""The read API (role `user`): search events and files, get one entity, download bytes.

Entities are sent as the stored canonical JSON, byte for byte. Listings use keyset
pagination over (time, id): a cursor names the last entity of a page, so a page never skips
or repeats entities when new ones arrive meanwhile, and deep pages cost the same as the first.
"""

import base64
import binascii
import io
import json

from flask import Blueprint, Response, request
from werkzeug.wsgi import wrap_file

from importer.auth import require_role
from importer.errors import not_found
from importer.query import millis, param
from importer.state import current
from model.archive.catalog import Filters
from model.protocol import codec
from model.protocol.entities import EntityError

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
LISTINGS = {"events": ("event", "event_type"), "files": ("file", "semantic_type")}


def blueprint() -> Blueprint:
    bp = Blueprint("read_api", __name__, url_prefix="/api")
    bp.add_url_rule("/events", "events", lambda: listing("events"))
    bp.add_url_rule("/files", "files", lambda: listing("files"))
    bp.add_url_rule("/events/<entity_id>", "event", lambda entity_id: one("event", entity_id))
    bp.add_url_rule("/files/<entity_id>", "file", lambda entity_id: one("file", entity_id))
    bp.add_url_rule("/statuses/<entity_id>", "status",
                    lambda entity_id: one("status", entity_id))
    bp.add_url_rule("/files/<entity_id>/data", "data", data)
    return bp


def _json_text(text: str) -> Response:
    return Response(text, mimetype="application/json")


@require_role("user")
def listing(name: str) -> Response:
    kind, type_param = LISTINGS[name]
    filters = Filters(camera_id=param("camera_id", codec.camera_id),
                      type=param(type_param, codec.namespaced),
                      after=param("after", millis), before=param("before", millis))
    limit = min(param("limit", _limit) or DEFAULT_LIMIT, MAX_LIMIT)
    page = current().site.catalog.page(kind, filters, limit, param("cursor", decode_cursor))
    next_cursor = json.dumps(encode_cursor(page.next_key) if page.next_key else None)
    return _json_text(f'{{"{name}":[{",".join(page.bodies)}],"next_cursor":{next_cursor}}}')


def _limit(text: str, field: str) -> int:
    return codec.decimal(text, field, minimum=1,
                         expected=f"a positive integer (at most {MAX_LIMIT} are returned)")


def encode_cursor(key: tuple[int, str]) -> str:
    """Opaque to clients: base64url of "time:id" of the last entity of the page."""
    return base64.urlsafe_b64encode(f"{key[0]}:{key[1]}".encode()).decode().rstrip("=")


def decode_cursor(text: str, field: str = "cursor") -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        time, ident = raw.split(":")
        return millis(time, field), codec.uuid_hex(ident, field)
    except (binascii.Error, ValueError):
        raise EntityError(field, "not a cursor this server gave out (use next_cursor "
                                 "of the previous page)") from None


@require_role("user")
def one(kind: str, entity_id: str) -> Response:
    body = current().site.catalog.body(kind, _known_id(kind, entity_id))
    if body is None:
        raise not_found(f"{kind} {entity_id}")
    return _json_text(body)


def _known_id(kind: str, entity_id: str) -> str:
    """The normalised ID; text that is no ID at all names no entity: 404, like an unknown one.
    (So the EntityError is caught here: by its kind it would be a 400.)"""
    try:
        return codec.uuid_hex(entity_id, f"{kind}_id")
    except EntityError:
        raise not_found(f"{kind} {entity_id[:64]!r} (IDs are 32 hex digits)") from None


@require_role("user")
def data(entity_id: str) -> Response:
    """The file's bytes; ETag is the quoted MD5; Range and If-None-Match are honoured."""
    opened = current().site.archive.open_data(_known_id("file", entity_id))
    if opened is None:
        raise not_found(f"file {entity_id}")
    handle, record = opened
    size = handle.seek(0, io.SEEK_END)   # a local file or an object store's reader
    handle.seek(0)
    response = Response(wrap_file(request.environ, handle), direct_passthrough=True,
                        content_type=_header_safe(record.mime_type))
    response.content_length = size
    response.set_etag(record.md5)
    environ = request.environ
    if request.range is not None and len(request.range.ranges) > 1:
        # werkzeug serves one range only and would answer 416; RFC 9110 lets a server
        # ignore Range instead, which is what a client can use: the whole file.
        environ = {k: v for k, v in environ.items() if k != "HTTP_RANGE"}
    try:
        return response.make_conditional(environ, accept_ranges=True, complete_length=size)
    except Exception:
        handle.close()
        raise


def _header_safe(mime_type: str) -> str:
    """A stored MIME type may hold anything; a header value may not hold control or
    non-Latin-1 characters."""
    if mime_type.isprintable() and mime_type.isascii():
        return mime_type
    return "application/octet-stream"
