"""The archive's tables (SQLAlchemy Core). Migrations in `model/migrations` create them.

Entity rows keep the entity's canonical JSON in `body`: it is what the read API and the
exporter send, byte for byte, so a multi-hop copy hashes the same on every site. The other
columns are there to be searched.
"""

from sqlalchemy import (BigInteger, Column, ForeignKey, Index, Integer, MetaData, String,
                        Table, Text, Float)

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
