"""Opening data (SPEC §10): import batches of a branch's existing attributions or opening
carried state, and the opening carried state an approved batch recorded.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "openingimport",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("branch", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("rows", sa.Text(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("submitted_by", sa.String(length=64), nullable=False),
        sa.Column("list_serial", sa.String(length=40), nullable=False),
        sa.Column("record_serial", sa.String(length=40), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("flow_run_id", sa.String(length=64), nullable=True),
        sa.Column("form_attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_openingimport_branch", "openingimport", ["branch"])
    op.create_index("ix_openingimport_status", "openingimport", ["status"])
    op.create_table(
        "openingcarry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("branch", sa.String(length=16), nullable=False),
        sa.Column("cm_id", sa.String(length=64), nullable=False),
        sa.Column("as_of", sa.String(length=7), nullable=False),
        sa.Column("excess_carry", sa.String(length=32), nullable=False),
        sa.Column("risk_fund_balance", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=16), nullable=True),
        sa.Column("ytd_absent_half_days", sa.Integer(), nullable=False),
        sa.Column("ytd_personal_leave_days", sa.String(length=32), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["import_id"], ["openingimport.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("branch", "cm_id"),
    )
    op.create_index("ix_openingcarry_branch", "openingcarry", ["branch"])


def downgrade() -> None:
    op.drop_table("openingcarry")
    op.drop_table("openingimport")
