"""The archive's tables (SQLAlchemy Core). Migrations in `model/migrations` create them.

Entity rows keep the entity's canonical JSON in `body`: it is what the read API and the
exporter send, byte for byte, so a multi-hop copy hashes the same on every site. The other
columns are there to be searched.
"""

from sqlalchemy import (BigInteger, Boolean, Column, ForeignKey, Index, Integer, LargeBinary,
                        MetaData, String, Table, Text, Float, UniqueConstraint)

metadata = MetaData()

ID = lambda: String(32)  # noqa: E731  (UUID as 32 lowercase hex digits)

blobs = Table(
    "blobs", metadata,
    Column("sha256", String(64), primary_key=True),
    Column("md5", String(32), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

statuses = Table(
    "statuses", metadata,
    Column("status_id", ID(), primary_key=True),
    Column("camera_id", String(64), nullable=False),
    Column("valid_from", BigInteger, nullable=False),
    Column("valid_to", BigInteger),
    Column("body", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Index("ix_statuses_camera_time", "camera_id", "valid_from"),
)

events = Table(
    "events", metadata,
    Column("event_id", ID(), primary_key=True),
    Column("camera_id", String(64), nullable=False),
    Column("status_id", ID(), ForeignKey("statuses.status_id"), nullable=False),
    Column("event_time", BigInteger, nullable=False),
    Column("event_type", String(256), nullable=False),
    Column("body", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Index("ix_events_time", "event_time", "event_id"),
    Index("ix_events_camera_time", "camera_id", "event_time"),
)

files = Table(
    "files", metadata,
    Column("file_id", ID(), primary_key=True),
    Column("event_id", ID(), ForeignKey("events.event_id", ondelete="CASCADE")),
    Column("position", Integer, nullable=False, default=0),
    Column("camera_id", String(64), nullable=False),
    Column("status_id", ID(), ForeignKey("statuses.status_id"), nullable=False),
    Column("file_time", BigInteger, nullable=False),
    Column("semantic_type", String(256), nullable=False),
    Column("mime_type", String(255), nullable=False),
    Column("file_size", BigInteger, nullable=False),
    Column("md5", String(32), nullable=False),
    Column("sha256", String(64), ForeignKey("blobs.sha256"), nullable=False),
    Column("body", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Index("ix_files_time", "file_time", "file_id"),
    Index("ix_files_event", "event_id"),
    Index("ix_files_sha256", "sha256"),
)

# Meta of events and file records, one row per item, for searching by key and value.
meta = Table(
    "meta", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", ID(), ForeignKey("events.event_id", ondelete="CASCADE")),
    Column("file_id", ID(), ForeignKey("files.file_id", ondelete="CASCADE")),
    Column("position", Integer, nullable=False),
    Column("type", String(8), nullable=False),
    Column("key", String(256), nullable=False),
    Column("string_value", Text),
    Column("number_value", Float),
    Column("date_value", BigInteger),
    Index("ix_meta_key", "key"),
    Index("ix_meta_event", "event_id"),
    Index("ix_meta_file", "file_id"),
)

# Bytes received before the record that names them (version 1 uploads): (file_id, md5) → blob.
staged = Table(
    "staged", metadata,
    Column("file_id", ID(), primary_key=True),
    Column("md5", String(32), primary_key=True),
    Column("sha256", String(64), ForeignKey("blobs.sha256"), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Index("ix_staged_sha256", "sha256"),
)

users = Table(
    "users", metadata,
    Column("name", String(64), primary_key=True),
    Column("password_hash", String(512), nullable=False),
    Column("roles", String(256), nullable=False),  # space-separated
    Column("created_ms", BigInteger, nullable=False),
)

# -- the exporter (migration 0002_export) --------------------------------------------------

# Where this site sends its data. The password is a secret the exporter must present to the
# remote importer, so it cannot be hashed; only `model.export.targets` reads it, never a listing.
# `auth_failed` blocks the target (401/403) until an admin changes it.
export_targets = Table(
    "export_targets", metadata,
    Column("target_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("url", Text, nullable=False),
    Column("user_name", String(256), nullable=False),
    Column("password_secret", Text, nullable=False),
    Column("protocol", String(8), nullable=False),           # auto | v1 | v2
    Column("camera_ids", Text),                              # JSON list, NULL = all
    Column("event_types", Text),                             # JSON list, NULL = all
    Column("after_ms", BigInteger),                          # inclusive
    Column("before_ms", BigInteger),                         # exclusive
    Column("ca_bundle", Text),
    Column("bwlimit", BigInteger),                           # bytes/s (migration 0004)
    Column("enabled", Boolean, nullable=False),
    Column("next_attempt_ms", BigInteger, nullable=False),   # target backoff
    Column("failures", Integer, nullable=False),             # consecutive retryable failures
    Column("auth_failed", Boolean, nullable=False),
    Column("last_error", Text),
    Column("created_ms", BigInteger, nullable=False),
    Column("changed_ms", BigInteger, nullable=False),
)

# What each target still needs: one row per (target, event or standalone file).
export_queue = Table(
    "export_queue", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("target_id", Integer, ForeignKey("export_targets.target_id", ondelete="CASCADE"),
           nullable=False),
    Column("kind", String(8), nullable=False),               # event | file
    Column("entity_id", ID(), nullable=False),
    Column("state", String(8), nullable=False),              # pending | done | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_ms", BigInteger, nullable=False),
    Column("lease_until_ms", BigInteger),                    # claimed by a worker until then
    Column("last_error", Text),
    Column("updated_ms", BigInteger, nullable=False),
    UniqueConstraint("target_id", "kind", "entity_id", name="uq_export_queue_entity"),
    Index("ix_export_queue_due", "target_id", "state", "next_attempt_ms", "id"),
)

# One sync at a time per target; a holder that dies stops renewing and its lock expires.
sync_locks = Table(
    "sync_locks", metadata,
    Column("target_id", Integer, ForeignKey("export_targets.target_id", ondelete="CASCADE"),
           primary_key=True),
    Column("holder", String(256), nullable=False),           # pid@host
    Column("token", String(32), nullable=False),
    Column("acquired_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
)

# -- traces and jobs (migration 0003_traces) ------------------------------------------------

# One row per thing that happened to an entity (or a bundle, or a sync run) under a trace ID:
# what the importer answered, what the exporter sent, why it failed. Never updated.
trace_events = Table(
    "trace_events", metadata,
    Column("trace_event_id", ID(), primary_key=True),
    Column("trace_id", String(64), nullable=False),
    Column("domain", String(16), nullable=False),        # event | file | status | bundle
    Column("domain_id", String(64), nullable=False),
    Column("start_time", BigInteger, nullable=False),    # ms since the epoch
    Column("end_time", BigInteger, nullable=False),
    Column("trace_status", String(16), nullable=False),  # CONTINUE | FINISHED
    Column("trace_event_status", String(16), nullable=False),  # OK | FAILED
    Column("user", String(64), nullable=False),
    Column("component", String(32), nullable=False),
    Column("operation", String(32), nullable=False),
    Column("status_body", Text, nullable=False),
    Column("meta", Text, nullable=False),                # JSON object
    Column("duration", BigInteger, nullable=False),      # ms
    Column("exception", Text, nullable=False),
    Column("errors", Text, nullable=False),              # JSON list of strings
    Column("recorded_us", BigInteger, nullable=False),  # orders events that start together
    Index("ix_trace_events_trace", "trace_id", "start_time"),
    Index("ix_trace_events_domain_id", "domain_id"),
)

# Bundle ingests (and anything else long-running a client polls with GET /get_state).
jobs = Table(
    "jobs", metadata,
    Column("job_id", Integer, primary_key=True, autoincrement=True),
    Column("user", String(64), nullable=False),
    Column("state", String(8), nullable=False),          # OK | FAILED
    Column("task", String(32), nullable=False),
    Column("task_percent", Float, nullable=False),
    Column("created", BigInteger, nullable=False),       # ms since the epoch
    Column("updated", BigInteger, nullable=False),
    Column("exception", Text, nullable=False),
    Column("trace_id", String(64), nullable=False),
    Column("bundle_path", Text, nullable=False),
    Column("owner", String(128), nullable=False),        # host:pid:start of its process
)

# Resumable uploads (tus) being received: the partial bytes live in a file named after
# `upload_id` in the uploads folder next to the blob store; this row says how many of them count.
uploads = Table(
    "uploads", metadata,
    Column("upload_id", ID(), primary_key=True),
    Column("owner", String(64), nullable=False),          # the user who created it
    Column("file_id", ID(), nullable=False),
    Column("md5", String(32), nullable=False),
    Column("upload_length", BigInteger, nullable=False),
    Column("received_bytes", BigInteger, nullable=False),  # tus Upload-Offset
    Column("metadata", Text, nullable=False),             # Upload-Metadata as sent, echoed on HEAD
    Column("sha256", String(64)),                         # announced by the client, or NULL
    Column("complete", Integer, nullable=False),          # 1 once the bytes are staged
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Index("ix_uploads_expires", "expires_ms"),
)

# The exporter's side of resumable uploads: the URL a target gave for (file_id, md5), kept so
# that a later run resumes the upload instead of starting it again.
outgoing_uploads = Table(
    "outgoing_uploads", metadata,
    Column("target", String(64), primary_key=True),
    Column("file_id", ID(), primary_key=True),
    Column("md5", String(32), primary_key=True),
    Column("url", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

# A resumable upload on an object store: its bytes go into an S3 multipart upload, and this
# ledger is the truth about them (never the store's own ListParts), so any host can take the
# next chunk. `received_bytes` counts the parts and the tail: bytes after the last part, too
# few for a part of their own (S3's minimum), kept as a temporary object until more arrive.
# `digests` is the running MD5 and SHA-256 of those bytes (model.store.resumable_hash).
multipart_uploads = Table(
    "multipart_uploads", metadata,
    Column("upload_id", ID(), primary_key=True),
    Column("object_key", Text, nullable=False),           # where the multipart upload goes
    Column("multipart_id", Text, nullable=False),         # the store's UploadId
    Column("length", BigInteger, nullable=False),         # the whole upload's
    Column("part_bytes", BigInteger, nullable=False),     # size of every part but the last
    Column("received_bytes", BigInteger, nullable=False),
    Column("tail_key", Text),                             # NULL: no tail
    Column("tail_bytes", BigInteger, nullable=False),
    Column("digests", LargeBinary, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

multipart_parts = Table(
    "multipart_parts", metadata,
    Column("upload_id", ID(), ForeignKey("multipart_uploads.upload_id", ondelete="CASCADE"),
           primary_key=True),
    Column("part_number", Integer, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("etag", Text, nullable=False),
    Column("crc32", String(8), nullable=False),           # base64, as the store checked it
)
