"""Version 2 of the import protocol (docs/wire.md, "Extension: version 2, batched"): the
capabilities, batch and blobs routes under the import path, in one blueprint; the tus
uploads have a blueprint of their own (`uploads`).

`importer.max_protocol: 1` turns every version 2 route off (404), so that a site can behave
exactly like a version 1 importer.
"""

from flask import Blueprint

from importer.errors import ApiError
from importer.routes import batch, blobs, capabilities
from importer.state import current


def version2_only():
    """before_request of every version 2 blueprint: 404 while version 2 is switched off."""
    if current().settings["importer.max_protocol"] < 2:
        raise ApiError(404, "not found (this importer speaks protocol version 1 only)")


def blueprint(url_path: str) -> Blueprint:
    base = url_path.rstrip("/")
    bp = Blueprint("v2", __name__)
    bp.before_request(version2_only)
    bp.add_url_rule(f"{base}/capabilities", view_func=capabilities.capabilities,
                    methods=["GET"])
    bp.add_url_rule(f"{base}/batch", view_func=batch.batch, methods=["POST"])
    bp.add_url_rule(f"{base}/blobs", view_func=blobs.blobs, methods=["POST"])
    return bp
