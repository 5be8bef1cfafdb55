"""The request bodies the original MeteorPi exporter sent (tests/fixtures/meteorpi_bodies.json,
kept in the repository so that a clean clone tests alone)."""

import json
from pathlib import Path

BODIES = json.loads((Path(__file__).parent / "fixtures/meteorpi_bodies.json").read_text())
FILE_BYTES = {file_id: text.encode() for file_id, text in BODIES["file_bytes"].items()}
