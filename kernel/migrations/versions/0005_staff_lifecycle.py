"""Staff lifecycle I (issue 13): the state a closing carries (titles, year-to-date
attendance, withheld pay), title records, level changes, cases and notices.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payrollcarry", schema=None) as batch_op:
        batch_op.add_column(sa.Column("title", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("asset_level", sa.String(length=16), nullable=False,
                                      server_default=""))
        batch_op.add_column(sa.Column("ytd_absent_half_days", sa.Integer(), nullable=False,
                                      server_default="0"))
        batch_op.add_column(sa.Column("ytd_personal_leave_days", sa.String(length=32),
                                      nullable=False, server_default="0.00"))
        batch_op.add_column(sa.Column("withheld_fixed_pay", sa.String(length=32),
                                      nullable=False, server_default="0.00"))
    op.create_table(
        "titlerecord",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("branch", sa.String(length=16), nullable=False),
        sa.Column("cm_id", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=16), nullable=False),
        sa.Column("effective_month", sa.String(length=7), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("approved_by", sa.String(length=256), nullable=False),
        sa.Column("document", sa.String(length=40), nullable=False),
        sa.Column("request_key", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_titlerecord_branch", "titlerecord", ["branch"])
    op.create_index("ix_titlerecord_cm_id", "titlerecord", ["cm_id"])
    op.create_table(
        "levelchange",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("branch", sa.String(length=16), nullable=False),
        sa.Column("cm_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("from_title", sa.String(length=16), nullable=False),
        sa.Column("to_title", sa.String(length=16), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("proposed_by", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("effective_month", sa.String(length=7), nullable=False),
        sa.Column("lvl_serial", sa.String(length=40), nullable=False),
        sa.Column("flow_run_id", sa.String(length=64), nullable=True),
        sa.Column("form_attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_levelchange_branch", "levelchange", ["branch"])
    op.create_index("ix_levelchange_cm_id", "levelchange", ["cm_id"])
    op.create_index("ix_levelchange_status", "levelchange", ["status"])
    op.create_table(
        "staffcase",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("branch", sa.String(length=16), nullable=False),
        sa.Column("cm_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("opened_by", sa.String(length=64), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("confirmed_accounts", sa.Integer(), nullable=False),
        sa.Column("concluded_by", sa.String(length=256), nullable=False),
        sa.Column("concluded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fine_month", sa.String(length=7), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_staffcase_branch", "staffcase", ["branch"])
    op.create_index("ix_staffcase_cm_id", "staffcase", ["cm_id"])
    op.create_index("ix_staffcase_status", "staffcase", ["status"])
    op.create_table(
        "staffnotice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("branch", sa.String(length=16), nullable=False),
        sa.Column("cm_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("due", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_by", sa.String(length=64), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("branch", "cm_id", "kind", "month"),
    )
    op.create_index("ix_staffnotice_branch", "staffnotice", ["branch"])
    op.create_index("ix_staffnotice_cm_id", "staffnotice", ["cm_id"])


def downgrade() -> None:
    op.drop_table("staffnotice")
    op.drop_table("staffcase")
    op.drop_table("levelchange")
    op.drop_table("titlerecord")
    with op.batch_alter_table("payrollcarry", schema=None) as batch_op:
        for column in ("withheld_fixed_pay", "ytd_personal_leave_days", "ytd_absent_half_days",
                       "asset_level", "title"):
            batch_op.drop_column(column)
