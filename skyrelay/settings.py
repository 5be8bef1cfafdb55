"""Every setting of a site, declared once: its default, its type and what it is for.

This table drives the defaults, the validation at start, the environment overrides
(`SKYRELAY_IMPORTER_PORT` for `importer.port`) and the documentation (`skyrelay config`).
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Setting:
    key: str          # dotted path in config.yaml, e.g. "importer.port"
    default: Any
    type: type
    help: str
    minimum: float | None = None
    choices: tuple[str, ...] | None = None
    secret: bool = False          # never printed (`skyrelay config` shows it masked)

    @property
    def env_var(self) -> str:
        return "SKYRELAY_" + self.key.replace(".", "_").upper()


SETTINGS = (
    Setting("site.name", "local", str, "Name of this site, shown in logs and traces."),
    Setting("database.url", "sqlite:///var/skyrelay.db", str,
            "SQLAlchemy URL of the archive database (sqlite:///… or postgresql+psycopg://…)."),
    Setting("storage.backend", "local", str,
            "Where blobs live: a local folder, or an S3-compatible object store.",
            choices=("local", "s3")),
    Setting("storage.path", "var/blobs", str,
            "Folder of the local blob store; with s3, this host's own temporary files."),
    Setting("storage.bucket", "", str, "s3: the bucket that holds the blobs (must exist)."),
    Setting("storage.endpoint_url", "", str,
            "s3: the object store's URL, e.g. http://127.0.0.1:8333 (empty: AWS)."),
    Setting("storage.region", "us-east-1", str, "s3: the bucket's region."),
    Setting("storage.prefix", "", str,
            "s3: a folder in the bucket for this site's objects, e.g. archive/."),
    Setting("storage.access_key_id", "", str,
            "s3: access key (empty: the standard AWS environment variables or files)."),
    Setting("storage.secret_access_key", "", str,
            "s3: secret key (empty: the standard AWS environment variables or files).",
            secret=True),
    Setting("storage.timeout_s", 10.0, float,
            "s3: seconds to wait for an answer from the object store (tried twice, then the "
            "request gets 503).", minimum=0.1),
    Setting("importer.host", "127.0.0.1", str, "Address `skyrelay serve` binds to."),
    Setting("importer.port", 8800, int, "Port `skyrelay serve` listens on.", minimum=0),
    Setting("importer.url_path", "/import", str, "Path of the import handshake."),
    Setting("importer.workers", 2, int, "gunicorn worker processes.", minimum=1),
    Setting("importer.threads", 8, int, "Threads per worker process.", minimum=1),
    Setting("importer.cache_size", 1024, int, "Entries of the entity cache (per process).",
            minimum=1),
    Setting("importer.max_body_bytes", 16 * 1024 * 1024, int,
            "Largest JSON request body; larger gets 413.", minimum=1),
    Setting("importer.max_file_bytes", 10 * 1024 ** 3, int,
            "Largest file upload; larger gets 413.", minimum=1),
    Setting("importer.staged_ttl_s", 7 * 24 * 3600, int,
            "Seconds that bytes no record has claimed are kept.", minimum=0),
    Setting("importer.max_protocol", 2, int,
            "Highest protocol version offered; 1 turns off capabilities, batch, blobs and "
            "uploads (they answer 404, as on a version 1 importer).", minimum=1),
    Setting("importer.max_batch", 500, int,
            "Most entities in one version 2 batch; more gets 400.", minimum=1),
    Setting("importer.upload_ttl_s", 7 * 24 * 3600, int,
            "Seconds a resumable upload is kept after its last chunk.", minimum=1),
    Setting("importer.upload_read_timeout_s", 60.0, float,
            "Seconds a resumable upload's client may send nothing before the chunk ends "
            "(what arrived counts).", minimum=0.1),
    Setting("importer.auth_cache_s", 60, int,
            "Seconds a verified password is remembered in memory.", minimum=0),
    Setting("exporter.schedule", "*/5 * * * *", str, "Cron expression for `sync --schedule`."),
    Setting("exporter.batch_size", 500, int, "Entities per batch (protocol version 2).",
            minimum=1),
    Setting("exporter.small_file_bytes", 1024 * 1024, int,
            "Protocol version 2: files up to this size go together through /blobs, larger ones "
            "one by one as resumable uploads.", minimum=0),
    Setting("exporter.blobs_request_bytes", 8 * 1024 * 1024, int,
            "Protocol version 2: most file bytes in one /blobs request.", minimum=1),
    Setting("exporter.upload_chunk_bytes", 1024 * 1024 * 1024, int,
            "Protocol version 2: bytes per resumable-upload request (PATCH). Each ends with "
            "the importer making it durable (an fsync, during which no byte flows); an "
            "importer that crashes mid-chunk loses that chunk's progress (a dropped link "
            "loses nothing).", minimum=1),
    Setting("exporter.timeout_s", 30.0, float, "Timeout of every HTTP call, in seconds.",
            minimum=0.001),
    Setting("exporter.max_steps", 50, int, "Requests spent on one entity before it fails.",
            minimum=1),
    Setting("exporter.backoff_base_s", 30.0, float,
            "First wait after a target failed (unreachable, 5xx); doubles per failure.",
            minimum=0),
    Setting("exporter.backoff_max_s", 3600.0, float, "Longest wait between tries of a target.",
            minimum=0),
    Setting("exporter.lock_ttl_s", 120.0, float,
            "A sync renews its target lock within this; a crashed sync's lock expires after it.",
            minimum=1),
    Setting("gc.grace_s", 3600, int, "Unreferenced blobs younger than this are kept.",
            minimum=0),
    Setting("importer.max_bundle_bytes", 64 * 1024 ** 3, int,
            "Largest bundle (POST /ingest, `bundle ingest`), packed or unpacked; larger is "
            "refused.", minimum=1),
    Setting("importer.max_bundle_metadata_bytes", 256 * 1024 ** 2, int,
            "Largest metadata.json in a bundle (it is parsed in memory).", minimum=1),
    Setting("importer.ingest_workers", 1, int,
            "Background threads per server process that ingest bundles.", minimum=1),
    Setting("importer.ingest_queue", 4, int,
            "Bundles per server process that may wait for an ingest thread; more get 503.",
            minimum=0),
)

BY_KEY = {setting.key: setting for setting in SETTINGS}
