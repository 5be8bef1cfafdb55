"""Trace events ("what happened to my data") and jobs (bundle ingests a client polls).

Revision ID: 0003_traces
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_traces"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "trace_events",
        sa.Column("trace_event_id", sa.String(32), primary_key=True),
        sa.Column("trace_id", sa.String(64), nullable=False),
        sa.Column("domain", sa.String(16), nullable=False),
        sa.Column("domain_id", sa.String(64), nullable=False),
        sa.Column("start_time", sa.BigInteger, nullable=False),
        sa.Column("end_time", sa.BigInteger, nullable=False),
        sa.Column("trace_status", sa.String(16), nullable=False),
        sa.Column("trace_event_status", sa.String(16), nullable=False),
        sa.Column("user", sa.String(64), nullable=False),
        sa.Column("component", sa.String(32), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("status_body", sa.Text, nullable=False),
        sa.Column("meta", sa.Text, nullable=False),
        sa.Column("duration", sa.BigInteger, nullable=False),
        sa.Column("exception", sa.Text, nullable=False),
        sa.Column("errors", sa.Text, nullable=False),
        sa.Column("recorded_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_trace_events_trace", "trace_events", ["trace_id", "start_time"])
    op.create_index("ix_trace_events_domain_id", "trace_events", ["domain_id"])
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user", sa.String(64), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("task_percent", sa.Float, nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
        sa.Column("exception", sa.Text, nullable=False),
        sa.Column("trace_id", sa.String(64), nullable=False),
        sa.Column("bundle_path", sa.Text, nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
    )


def downgrade():
    op.drop_table("jobs")
    op.drop_index("ix_trace_events_domain_id", "trace_events")
    op.drop_index("ix_trace_events_trace", "trace_events")
    op.drop_table("trace_events")
