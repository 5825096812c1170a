"""Legal holds (SPEC §5): the cases that hold a CM's documents (client disputes,
investigations, risk-fund deductions) or one document (a manual hold), and each hold.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "holdcase",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("branch", sa.String(length=16), nullable=False),
        sa.Column("cm_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("opened_by", sa.String(length=64), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_by", sa.String(length=64), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("close_reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_key"),
    )
    op.create_index("ix_holdcase_cm_id", "holdcase", ["cm_id"])
    op.create_table(
        "legalhold",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("case_key", sa.String(length=64), nullable=False),
        sa.Column("placed_by", sa.String(length=64), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_by", sa.String(length=64), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_legalhold_serial", "legalhold", ["serial"])
    op.create_index("ix_legalhold_case_key", "legalhold", ["case_key"])
    op.create_index("ux_legalhold_active", "legalhold", ["serial", "case_key"], unique=True,
                    sqlite_where=sa.text("released_at IS NULL"),
                    postgresql_where=sa.text("released_at IS NULL"))


def downgrade() -> None:
    op.drop_table("legalhold")
    op.drop_table("holdcase")
