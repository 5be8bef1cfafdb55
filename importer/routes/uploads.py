"""`{base}/uploads`: resumable uploads for large files, tus 1.0.0 (core, creation, checksum,
termination, expiration), so that a stock tus client can use it.

Only HTTP lives here: headers in, headers out. What an upload is, where its bytes go and when
they count is `model.uploads.resumable`; the statuses of its errors (410, 423, 460, 409 with
`Upload-Offset`) are rows of `importer.errors.TRANSLATIONS`.
"""

import base64
import binascii

from flask import Blueprint, g, jsonify, make_response, request, url_for
from werkzeug.http import http_date

from importer.auth import require_role
from importer.errors import error_body
from importer.routes.v2 import version2_only
from importer.socket_body import body_readinto
from importer.state import current
from model.protocol import codec
from model.protocol.codec import EntityError
from model.uploads.resumable import CHECKSUMS, Upload, Uploads

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,checksum,termination,expiration"
OFFSET_TYPE = "application/offset+octet-stream"


def _uploads() -> Uploads:
    return current().site.uploads


def blueprint(url_path: str) -> Blueprint:
    bp = Blueprint("uploads", __name__, url_prefix=f"{url_path.rstrip('/')}/uploads")
    bp.before_request(version2_only)
    bp.before_request(check_version)
    bp.after_request(tus_headers)
    for rule, method, view in (("", "OPTIONS", options), ("/<upload_id>", "OPTIONS", options),
                               ("", "POST", create), ("/<upload_id>", "HEAD", upload),
                               ("/<upload_id>", "PATCH", append),
                               ("/<upload_id>", "DELETE", terminate)):
        bp.add_url_rule(rule, view.__name__, view, methods=[method],
                        provide_automatic_options=False)
    return bp


def check_version():
    sent = request.headers.get("Tus-Resumable")
    if request.method != "OPTIONS" and sent != TUS_VERSION:
        response = jsonify(error_body(f"Tus-Resumable must be {TUS_VERSION}, got {sent!r}"))
        response.status_code = 412
        response.headers["Tus-Version"] = TUS_VERSION
        return response
    return None


def tus_headers(response):
    """On every answer, error answers too: the app's handlers answer model errors
    (`importer.errors`), and a blueprint's after_request runs on their responses as well."""
    response.headers["Tus-Resumable"] = TUS_VERSION
    return response


@require_role("import")
def options(upload_id=None):
    response = make_response("", 204)
    response.headers.update({
        "Tus-Version": TUS_VERSION, "Tus-Extension": EXTENSIONS,
        "Tus-Max-Size": str(current().settings["importer.max_file_bytes"]),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUMS)})
    return response


@require_role("import")
def create():
    length = _int_header("Upload-Length")
    raw_metadata = request.headers.get("Upload-Metadata", "")
    metadata = _parse_metadata(raw_metadata)
    missing = [key for key in ("file_id", "md5") if not metadata.get(key)]
    if missing:
        raise EntityError("Upload-Metadata", f"must carry {' and '.join(missing)} "
                          "(base64-encoded values)")
    created = _uploads().create(g.user.name, metadata["file_id"], metadata["md5"], length,
                                raw_metadata, metadata.get("sha256"))
    response = make_response("", 201)
    response.headers["Location"] = url_for(".upload", upload_id=created.upload_id,
                                           _external=True)
    response.headers["Upload-Offset"] = str(created.offset)
    response.headers.update(_expiry(created))
    return response


@require_role("import")
def upload(upload_id):
    held = _uploads().settled(g.user.name, upload_id)
    response = make_response("", 200)
    response.headers.update({"Upload-Offset": str(held.offset),
                             "Upload-Length": str(held.length),
                             "Cache-Control": "no-store", **_expiry(held)})
    if held.metadata:
        response.headers["Upload-Metadata"] = held.metadata
    return response


@require_role("import")
def append(upload_id):
    if request.mimetype != OFFSET_TYPE:
        raise EntityError("Content-Type", f"must be {OFFSET_TYPE}, got "
                          f"{request.mimetype or 'nothing'}")
    offset = _int_header("Upload-Offset")
    checksum = _parse_checksum(request.headers.get("Upload-Checksum"))
    # File bytes are not bound by importer.max_body_bytes; the upload's length bounds them.
    request.max_content_length = None
    readinto = body_readinto(request.environ, request.stream,
                             current().settings["importer.upload_read_timeout_s"])
    held = _uploads().append(g.user.name, upload_id, offset, readinto,
                             request.content_length, checksum)
    response = make_response("", 204)
    response.headers["Upload-Offset"] = str(held.offset)
    response.headers.update(_expiry(held))
    return response


@require_role("import")
def terminate(upload_id):
    _uploads().terminate(g.user.name, upload_id)
    return make_response("", 204)


def _expiry(upload: Upload) -> dict:
    return {} if upload.complete else {"Upload-Expires": http_date(upload.expires_ms / 1000)}


def _int_header(name: str) -> int:
    """A tus length or offset: a non-negative integer within 64 bits (`codec.decimal`)."""
    value = request.headers.get(name)
    if value is None:
        raise EntityError(name, "header missing")
    return codec.decimal(value, name, minimum=0, expected="a non-negative integer")


def _parse_metadata(header: str) -> dict[str, str]:
    """`key base64,key base64,key` (tus creation) → {key: decoded text}."""
    metadata = {}
    for pair in filter(None, (item.strip() for item in header.split(","))):
        key, _, encoded = pair.partition(" ")
        try:
            metadata[key] = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise EntityError(f"Upload-Metadata.{key}",
                              "value is not base64-encoded UTF-8") from exc
    return metadata


def _parse_checksum(header: str | None) -> tuple[str, bytes] | None:
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    if algorithm not in CHECKSUMS:
        raise EntityError("Upload-Checksum", f"algorithm {algorithm!r} not supported "
                          f"(supported: {', '.join(CHECKSUMS)})")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error as exc:
        raise EntityError("Upload-Checksum", "digest is not base64") from exc
    if len(digest) != CHECKSUMS[algorithm]().digest_size:
        raise EntityError("Upload-Checksum", f"not a {algorithm} digest")
    return algorithm, digest
