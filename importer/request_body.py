"""Reading request bodies within limits, before anything parses them.

A JSON body is read into memory, so its size is checked first: against Content-Length when
the client sent one, and by a bounded read for a chunked body that did not. File bytes are
never held in memory: `file_source` gives an iterator of chunks, from the multipart field
`file` or from a raw `application/octet-stream` body, that the blob store streams to disk.
"""

import json
from typing import Any, BinaryIO, Iterator

from flask import request
from werkzeug.sansio.multipart import (NEED_DATA, Data, Epilogue, Field, File,
                                       MultipartDecoder)

from importer.errors import bad_request
from model.protocol.errors import OverLimit

CHUNK = 1024 * 1024
FILE_FIELD = "file"
# Preamble and part headers are buffered until complete; this bounds that buffer.
MAX_MULTIPART_HEADER_BYTES = 64 * 1024


def too_large(what: str, setting: str, limit: int) -> OverLimit:
    """Over a limit, like the blob store's TooLarge (413), but naming the setting to change."""
    return OverLimit(f"{what}: larger than {setting} ({limit} bytes)")


def read_json(limit: int) -> Any:
    """The request body parsed as JSON (never YAML), refused with 413 past `limit` bytes
    before parsing and with 400 when it is not JSON."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large("body", "importer.max_body_bytes", limit)
    chunks, total = [], 0
    while chunk := request.stream.read(min(CHUNK, limit + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise too_large("body", "importer.max_body_bytes", limit)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise bad_request(f"body: not valid JSON ({_short(exc)})") from None


def read_object(limit: int) -> dict:
    """`read_json`, for a route whose body must be a JSON object (400 if it is not)."""
    body = read_json(limit)
    if not isinstance(body, dict):
        raise bad_request("body: expected a JSON object")
    return body


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def file_source(limit: int) -> BinaryIO | Iterator[bytes]:
    """The uploaded bytes as a stream, by Content-Type; 400 for any other type, 413 when a
    raw body announces more than `limit` bytes (a multipart body is checked as it streams)."""
    if request.mimetype == "multipart/form-data":
        boundary = request.mimetype_params.get("boundary")
        if not boundary:
            raise bad_request("Content-Type: multipart/form-data needs a boundary")
        return _multipart_field(request.stream, boundary.encode("latin-1"), FILE_FIELD)
    if request.mimetype == "application/octet-stream":
        if request.content_length is not None and request.content_length > limit:
            raise too_large("file", "importer.max_file_bytes", limit)
        return request.stream
    raise bad_request(f"Content-Type: expected multipart/form-data (field '{FILE_FIELD}') or "
                      f"application/octet-stream, got {request.mimetype or 'none'!r}")


def _multipart_field(stream: BinaryIO, boundary: bytes, name: str) -> Iterator[bytes]:
    """The bytes of the first part called `name`, chunk by chunk; other parts are skipped.

    Raises ApiError(400) (from inside the iteration, so the blob store discards what it
    wrote) when the body is not well-formed multipart or has no such part."""
    decoder = MultipartDecoder(boundary)
    current = None
    try:
        while True:
            event = decoder.next_event()
            if event is NEED_DATA:
                if len(decoder.buffer) > MAX_MULTIPART_HEADER_BYTES:
                    raise bad_request("multipart: no boundary or part headers within "
                                      f"{MAX_MULTIPART_HEADER_BYTES} bytes")
                decoder.receive_data(stream.read(CHUNK) or None)
            elif isinstance(event, (File, Field)):
                current = event.name
            elif isinstance(event, Data) and current == name:
                if event.data:
                    yield event.data
                if not event.more_data:
                    return
            elif isinstance(event, Epilogue):
                break
    except ValueError as exc:  # the decoder's word for a malformed body
        raise bad_request(f"multipart: {_short(exc)}") from None
    raise bad_request(f"multipart: no field '{name}'")
