"""POST /ingest (a bundle as the body → 202 and a job) and GET /get_state?job_id= (the job).

The body is streamed to a file in the site's spool folder (never held in memory) while it is
counted against `importer.max_bundle_bytes`; the ingest itself runs in the background
(`ingest_pool`), and the client polls the job.
"""

import time
from pathlib import Path

from flask import Blueprint, g, jsonify, request
from werkzeug.exceptions import ClientDisconnected

from importer import query
from importer.auth import authenticate_any, require_role
from importer.errors import ApiError
from importer.ingest_pool import IngestPool
from importer.state import Importer, current
from importer.tracing import request_trace_id
from model.bundles.ingest import IngestLimits
from model.ops.jobs import Job, Jobs

BUNDLE_TYPES = ("application/x-tar", "application/tar", "application/gzip",
                "application/x-gzip")
CHUNK = 1024 * 1024


def blueprint() -> Blueprint:
    bp = Blueprint("bundles", __name__)
    bp.record_once(lambda state: _start(state.app))
    bp.add_url_rule("/ingest", view_func=ingest, methods=["POST"])
    bp.add_url_rule("/get_state", view_func=get_state, methods=["GET"])
    return bp


def _start(app) -> None:
    importer = Importer.of(app)
    settings = importer.settings
    pool = IngestPool(importer.site, IngestLimits.from_settings(settings),
                      Path(settings.storage_path) / "bundles",
                      settings["importer.ingest_workers"], settings["importer.ingest_queue"])
    pool.recover()
    importer.ingest_pool = pool


def _pool() -> IngestPool:
    return current().ingest_pool


def _jobs() -> Jobs:
    return current().site.jobs


def _limit() -> int:
    return current().settings["importer.max_bundle_bytes"]


@require_role("import")
def ingest():
    if request.mimetype not in BUNDLE_TYPES:
        raise ApiError(415, f"a bundle is sent as {' or '.join(BUNDLE_TYPES[::2])}, got "
                            f"{request.mimetype or 'no Content-Type'}")
    trace_id = request_trace_id()
    limit = _limit()
    request.max_content_length = None  # the app-wide JSON limit is not a bundle's; see _spool
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"the bundle is {request.content_length} bytes, larger than the "
                            f"limit of {limit} (importer.max_bundle_bytes)")
    pool = _pool()
    if not pool.reserve():
        raise ApiError(503, "every ingest worker is busy and the queue is full; send the "
                            "bundle again later", headers={"Retry-After": "30"})
    try:
        job = _receive(pool, trace_id, limit)
    except BaseException:
        pool.release()
        raise
    pool.submit(job)
    return jsonify(job.to_json()), 202


def _receive(pool: IngestPool, trace_id: str, limit: int) -> Job:
    """Create the job and spool the body; on failure the job is FAILED and nothing is kept."""
    jobs = _jobs()
    job = jobs.create(g.user.name, trace_id)
    path = pool.spool_path(job.job_id)
    jobs.set_bundle_path(job.job_id, str(path))
    try:
        _spool(request.stream, path, limit, request.content_length,
               lambda percent: jobs.advance(job.job_id, "UPLOADING", percent))
    except ApiError as exc:
        path.unlink(missing_ok=True)
        jobs.fail(job.job_id, exc.message)
        exc.extra["job_id"] = job.job_id
        raise
    except BaseException:
        path.unlink(missing_ok=True)
        jobs.fail(job.job_id, "the upload stopped before the whole bundle arrived")
        raise
    jobs.advance(job.job_id, "UPLOADING", 100.0)
    return jobs.get(job.job_id)


def _spool(stream, path: Path, limit: int, expected: int | None, on_percent) -> None:
    received, last = 0, time.monotonic()
    with open(path, "wb") as out:
        try:
            while chunk := stream.read(CHUNK):
                received += len(chunk)
                if received > limit:
                    raise ApiError(413, f"the bundle is larger than the limit of {limit} bytes "
                                        "(importer.max_bundle_bytes)")
                out.write(chunk)
                if expected and time.monotonic() - last > 1.0:
                    last = time.monotonic()
                    on_percent(100.0 * received / expected)
        except ClientDisconnected:
            raise ApiError(400, "the upload stopped before the whole bundle arrived") from None
    if expected is not None and received != expected:
        raise ApiError(400, f"the upload stopped after {received} of {expected} bytes")
    if received == 0:
        raise ApiError(400, "the body is empty: send the bundle as the request body")


def get_state():
    user = authenticate_any(current().credentials)
    job_id = query.required("job_id", query.whole_number)
    job = _jobs().get(job_id)
    if job is None:
        raise ApiError(404, f"job {job_id} not found")
    if job.user != user.name and "camera_admin" not in user.roles:
        raise ApiError(403, f"job {job_id} belongs to another user (role camera_admin sees "
                            "all)")
    return jsonify(job.to_json())
