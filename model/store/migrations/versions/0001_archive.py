"""The archive: blobs, statuses, events, file records, meta, staged bytes, users.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(32)


def upgrade():
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("md5", sa.String(32), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "statuses",
        sa.Column("status_id", ID, primary_key=True),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("valid_from", sa.BigInteger, nullable=False),
        sa.Column("valid_to", sa.BigInteger),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_statuses_camera_time", "statuses", ["camera_id", "valid_from"])
    op.create_table(
        "events",
        sa.Column("event_id", ID, primary_key=True),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("status_id", ID, sa.ForeignKey("statuses.status_id"), nullable=False),
        sa.Column("event_time", sa.BigInteger, nullable=False),
        sa.Column("event_type", sa.String(256), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_events_time", "events", ["event_time", "event_id"])
    op.create_index("ix_events_camera_time", "events", ["camera_id", "event_time"])
    op.create_table(
        "files",
        sa.Column("file_id", ID, primary_key=True),
        sa.Column("event_id", ID, sa.ForeignKey("events.event_id", ondelete="CASCADE")),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("status_id", ID, sa.ForeignKey("statuses.status_id"), nullable=False),
        sa.Column("file_time", sa.BigInteger, nullable=False),
        sa.Column("semantic_type", sa.String(256), nullable=False),
        sa.Column("mime_type", sa.String(255), nullable=False),
        sa.Column("file_size", sa.BigInteger, nullable=False),
        sa.Column("md5", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_files_time", "files", ["file_time", "file_id"])
    op.create_index("ix_files_event", "files", ["event_id"])
    op.create_index("ix_files_sha256", "files", ["sha256"])
    op.create_table(
        "meta",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", ID, sa.ForeignKey("events.event_id", ondelete="CASCADE")),
        sa.Column("file_id", ID, sa.ForeignKey("files.file_id", ondelete="CASCADE")),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("type", sa.String(8), nullable=False),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("string_value", sa.Text),
        sa.Column("number_value", sa.Float),
        sa.Column("date_value", sa.BigInteger),
    )
    op.create_index("ix_meta_key", "meta", ["key"])
    op.create_index("ix_meta_event", "meta", ["event_id"])
    op.create_index("ix_meta_file", "meta", ["file_id"])
    op.create_table(
        "staged",
        sa.Column("file_id", ID, primary_key=True),
        sa.Column("md5", sa.String(32), primary_key=True),
        sa.Column("sha256", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_staged_sha256", "staged", ["sha256"])
    op.create_table(
        "users",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("password_hash", sa.String(512), nullable=False),
        sa.Column("roles", sa.String(256), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )


def downgrade():
    for table in ("users", "staged", "meta", "files", "events", "statuses", "blobs"):
        op.drop_table(table)
