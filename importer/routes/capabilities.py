"""`GET {base}/capabilities`: what this importer offers beyond version 1 (docs/wire.md,
"Extension: version 2, batched"). An exporter that gets 404 here speaks version 1.

`importer.max_protocol: 1` turns every version 2 route off (404), so that a site can behave
exactly like a version 1 importer.
"""

from flask import Blueprint, jsonify

from importer.auth import require_role
from importer.errors import ApiError
from importer.state import current

HASHES = ["md5", "sha256"]


def _settings():
    return current().settings


def version2_only():
    """before_request of every version 2 blueprint: 404 while version 2 is switched off."""
    if _settings()["importer.max_protocol"] < 2:
        raise ApiError(404, "not found (this importer speaks protocol version 1 only)")


def capabilities_document(settings) -> dict:
    base = settings["importer.url_path"].rstrip("/")
    return {"protocol": list(range(1, min(settings["importer.max_protocol"], 2) + 1)),
            "max_batch": settings["importer.max_batch"],
            "max_body_bytes": settings["importer.max_body_bytes"],
            "max_file_bytes": settings["importer.max_file_bytes"],
            "hashes": HASHES,
            "uploads": f"{base}/uploads"}


def blueprint(url_path: str) -> Blueprint:
    bp = Blueprint("capabilities", __name__)
    bp.before_request(version2_only)

    @bp.get(f"{url_path.rstrip('/')}/capabilities")
    @require_role("import")
    def capabilities():
        return jsonify(capabilities_document(_settings()))

    return bp
