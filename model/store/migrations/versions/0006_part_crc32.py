"""Parts of resumable uploads on an object store are checked by CRC32, not MD5: the ledger
keeps each part's CRC32.

A multipart upload started before this revision was created without a checksum algorithm,
and its parts cannot be completed with CRC32s; uploads in flight on an object store at the
upgrade are therefore dropped (their ledger and their row: a client's HEAD answers 404 and it
starts the upload again), and `gc` aborts their multipart uploads in the store as strays.

Revision ID: 0006_part_crc32
Revises: 0005_multipart_uploads
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_part_crc32"
down_revision = "0005_multipart_uploads"
branch_labels = None
depends_on = None

ID = sa.String(32)


def _drop_uploads_in_flight() -> None:
    op.execute("DELETE FROM uploads WHERE upload_id IN (SELECT upload_id FROM multipart_uploads)")
    op.execute("DELETE FROM multipart_parts")
    op.execute("DELETE FROM multipart_uploads")


def _parts_table(checksum: sa.Column) -> None:
    op.drop_table("multipart_parts")
    op.create_table(
        "multipart_parts",
        sa.Column("upload_id", ID, sa.ForeignKey("multipart_uploads.upload_id",
                                                 ondelete="CASCADE"), primary_key=True),
        sa.Column("part_number", sa.Integer, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("etag", sa.Text, nullable=False),
        checksum,
    )


def upgrade():
    _drop_uploads_in_flight()
    _parts_table(sa.Column("crc32", sa.String(8), nullable=False))


def downgrade():
    _drop_uploads_in_flight()
    _parts_table(sa.Column("md5", sa.String(32), nullable=False))
