"""The exporter: export targets, the export queue, sync locks.

Revision ID: 0002_export
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_export"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = sa.String(32)


def upgrade():
    op.create_table(
        "export_targets",
        sa.Column("target_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("user_name", sa.String(256), nullable=False),
        sa.Column("password_secret", sa.Text, nullable=False),
        sa.Column("protocol", sa.String(8), nullable=False),
        sa.Column("camera_ids", sa.Text),
        sa.Column("event_types", sa.Text),
        sa.Column("after_ms", sa.BigInteger),
        sa.Column("before_ms", sa.BigInteger),
        sa.Column("ca_bundle", sa.Text),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("auth_failed", sa.Boolean, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("changed_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "export_queue",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("target_id", sa.Integer,
                  sa.ForeignKey("export_targets.target_id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("entity_id", ID, nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger, nullable=False),
        sa.Column("lease_until_ms", sa.BigInteger),
        sa.Column("last_error", sa.Text),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("target_id", "kind", "entity_id", name="uq_export_queue_entity"),
    )
    op.create_index("ix_export_queue_due", "export_queue",
                    ["target_id", "state", "next_attempt_ms", "id"])
    op.create_table(
        "sync_locks",
        sa.Column("target_id", sa.Integer,
                  sa.ForeignKey("export_targets.target_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("holder", sa.String(256), nullable=False),
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("acquired_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
    )


def downgrade():
    for table in ("sync_locks", "export_queue", "export_targets"):
        op.drop_table(table)
