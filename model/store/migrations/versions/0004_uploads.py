"""Resumable uploads: the importer's uploads being received, the exporter's upload URLs;
and a target's bandwidth limit (which needs the exporter's tables, hence `depends_on`).

Revision ID: 0004_uploads
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_uploads"
down_revision = "0001"
branch_labels = None
depends_on = "0002_export"

ID = sa.String(32)


def upgrade():
    op.create_table(
        "uploads",
        sa.Column("upload_id", ID, primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("file_id", ID, nullable=False),
        sa.Column("md5", sa.String(32), nullable=False),
        sa.Column("upload_length", sa.BigInteger, nullable=False),
        sa.Column("received_bytes", sa.BigInteger, nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("complete", sa.Integer, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_uploads_expires", "uploads", ["expires_ms"])
    op.create_table(
        "outgoing_uploads",
        sa.Column("target", sa.String(64), primary_key=True),
        sa.Column("file_id", ID, primary_key=True),
        sa.Column("md5", sa.String(32), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    with op.batch_alter_table("export_targets") as batch:
        batch.add_column(sa.Column("bwlimit", sa.BigInteger))   # bytes per second, NULL = none


def downgrade():
    with op.batch_alter_table("export_targets") as batch:
        batch.drop_column("bwlimit")
    op.drop_table("outgoing_uploads")
    op.drop_table("uploads")
