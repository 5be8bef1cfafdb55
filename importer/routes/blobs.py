"""`POST {base}/blobs`: many small files in one multipart request (protocol version 2).

Each part is named `<file_id>.<md5>` and holds that file's bytes. Parts are read one at a
time from the request stream (never the whole body in memory), hashed on the way into the
blob store, and kept only if their MD5 matches; the staging rows of the request are then
written together, in one transaction per `STAGE_EVERY` files instead of one per file.

The request as a whole is bounded by `importer.max_file_bytes` (a /blobs request is never
bigger than the largest single file an importer accepts); a part past it fails alone.
"""

from flask import jsonify, request
from werkzeug.exceptions import ClientDisconnected
from werkzeug.http import parse_options_header

from importer.auth import require_role
from importer.errors import ApiError, bad_request
from importer.multipart import MultipartError, iter_parts
from importer.state import current
from model.archive.staging import StagingBatch
from model.protocol.codec import EntityError, md5_hex, uuid_hex
from model.store.blobs import TooLarge

# Files made durable (one syncfs, which costs about the same whatever it flushes) and
# recorded together: in practice once per request, as an exporter bounds its /blobs requests.
STAGE_EVERY = 2048


def parse_part_name(name: str) -> tuple[str, str]:
    """`<file_id>.<md5>` → (file_id, md5), normalised; EntityError if it is not that."""
    file_id, dot, md5 = name.partition(".")
    if not dot:
        raise EntityError("part name", f"must be <file_id>.<md5>, got {name!r}")
    return uuid_hex(file_id, "part name file_id"), md5_hex(md5, "part name md5")


def receive_parts(archive, read, boundary: bytes, limit: int) -> list[dict]:
    """Stage every part whose bytes match its MD5; one result per part, in order."""
    results, batch = [], StagingBatch(archive)
    try:
        for name, data in iter_parts(read, boundary):
            results.append(_receive_part(batch, name, data, limit))
            if len(batch) >= STAGE_EVERY:
                _flush(batch, results)
    except MultipartError as exc:
        _flush(batch, results)
        raise ApiError(400, str(exc), results=results) from exc
    except BaseException:
        batch.discard()
        raise
    _flush(batch, results)
    return results


def _receive_part(batch: StagingBatch, name: str, data, limit: int) -> dict:
    try:
        file_id, md5 = parse_part_name(name)
    except EntityError as exc:
        return {"file_id": name, "received": False, "message": str(exc)}
    try:
        staged = batch.add(file_id, md5, data, limit)
    except TooLarge as exc:
        return {"file_id": file_id, "received": False,
                "message": f"part {exc} (importer.max_file_bytes)"}
    result = {"file_id": file_id, "received": staged.received}
    if not staged.received:
        result["message"] = staged.message
    return result


def _flush(batch: StagingBatch, results: list[dict]) -> None:
    lost = batch.flush()
    for result in results:
        if result["received"] and result["file_id"] in lost:
            result.update(received=False, message=lost[result["file_id"]])


@require_role("import")
def blobs():
    importer = current()
    mimetype, options = parse_options_header(request.headers.get("Content-Type", ""))
    if mimetype != "multipart/form-data" or not options.get("boundary"):
        raise bad_request("Content-Type must be multipart/form-data with a boundary")
    limit = importer.settings["importer.max_file_bytes"]
    request.max_content_length = limit
    results = receive_parts(importer.site.archive, _reader(request.stream),
                            options["boundary"].encode("latin-1"), limit)
    return jsonify({"results": results})


def _reader(stream):
    def read(size: int) -> bytes:
        try:
            return stream.read(size)
        except ClientDisconnected:
            return b""
    return read
