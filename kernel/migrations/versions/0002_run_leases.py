"""Flow-run leases and recoveries; the owner of a serial's reservation (issue 9).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runlease",
        sa.Column("flow_run_id", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("flow_run_id"),
    )
    op.create_table(
        "runrecovery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flow_run_id", sa.String(length=64), nullable=False),
        sa.Column("from_state_id", sa.String(length=64), nullable=False),
        sa.Column("from_state", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("from_state_id"),
    )
    with op.batch_alter_table("runrecovery", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runrecovery_flow_run_id"), ["flow_run_id"],
                              unique=False)
    with op.batch_alter_table("serialrecord", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("serialrecord", schema=None) as batch_op:
        batch_op.drop_column("owner")
    with op.batch_alter_table("runrecovery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runrecovery_flow_run_id"))
    op.drop_table("runrecovery")
    op.drop_table("runlease")
