"""Resumable uploads on an object store: the ledger of each upload's multipart parts, and the
SHA-256 a client may announce for an upload.

Revision ID: 0005_multipart_uploads
Revises: 0004_uploads
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_multipart_uploads"
down_revision = "0004_uploads"
branch_labels = None
depends_on = None

ID = sa.String(32)


def upgrade():
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("sha256", sa.String(64)))
    op.create_table(
        "multipart_uploads",
        sa.Column("upload_id", ID, primary_key=True),
        sa.Column("object_key", sa.Text, nullable=False),
        sa.Column("multipart_id", sa.Text, nullable=False),
        sa.Column("length", sa.BigInteger, nullable=False),
        sa.Column("part_bytes", sa.BigInteger, nullable=False),
        sa.Column("received_bytes", sa.BigInteger, nullable=False),
        sa.Column("tail_key", sa.Text),
        sa.Column("tail_bytes", sa.BigInteger, nullable=False),
        sa.Column("digests", sa.LargeBinary, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "multipart_parts",
        sa.Column("upload_id", ID, sa.ForeignKey("multipart_uploads.upload_id",
                                                 ondelete="CASCADE"), primary_key=True),
        sa.Column("part_number", sa.Integer, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("etag", sa.Text, nullable=False),
        sa.Column("md5", sa.String(32), nullable=False),
    )


def downgrade():
    op.drop_table("multipart_parts")
    op.drop_table("multipart_uploads")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("sha256")
