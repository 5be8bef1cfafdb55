"""`GET {base}/capabilities`: what this importer offers beyond version 1 (docs/wire.md,
"Extension: version 2, batched"). An exporter that gets 404 here speaks version 1.
"""

from flask import jsonify

from importer.auth import require_role
from importer.state import current

HASHES = ["md5", "sha256"]


def _settings():
    return current().settings


def capabilities_document(settings) -> dict:
    base = settings["importer.url_path"].rstrip("/")
    return {"protocol": list(range(1, min(settings["importer.max_protocol"], 2) + 1)),
            "max_batch": settings["importer.max_batch"],
            "max_body_bytes": settings["importer.max_body_bytes"],
            "max_file_bytes": settings["importer.max_file_bytes"],
            "hashes": HASHES,
            "uploads": f"{base}/uploads"}


@require_role("import")
def capabilities():
    return jsonify(capabilities_document(_settings()))
