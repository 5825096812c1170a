"""Staff lifecycle II (SPEC §8.3): pay-rules versions, risk-fund movements, the client
dispute register, the policy and business report of a closing, hire and leave dates.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payrollrun", schema=None) as batch_op:
        batch_op.add_column(sa.Column("policy_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("policy_filing", sa.String(length=40), nullable=False,
                                      server_default=""))
        batch_op.add_column(sa.Column("policy_note", sa.String(length=200), nullable=False,
                                      server_default=""))
        batch_op.add_column(sa.Column("figures", sa.Text(), nullable=False,
                                      server_default="{}"))
        batch_op.add_column(sa.Column("rpt_serial", sa.String(length=40), nullable=False,
                                      server_default=""))
    with op.batch_alter_table("payrollcarry", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hire_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("leave_date", sa.Date(), nullable=True))
    op.create_table(
        "payrulesversion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("branch", sa.String(length=16), nullable=False),
        sa.Column("filing_id", sa.Integer(), nullable=False),
        sa.Column("effective_month", sa.String(length=7), nullable=False),
        sa.Column("policy", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("filing_serial", sa.String(length=40), nullable=False),
        sa.Column("result_serial", sa.String(length=40), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["filing_id"], ["filing.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("branch", "version"),
        sa.UniqueConstraint("filing_id"),
    )
    op.create_index("ix_payrulesversion_branch", "payrulesversion", ["branch"])
    op.create_index("ix_payrulesversion_status", "payrulesversion", ["status"])
    op.create_table(
        "riskfundmovement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("branch", sa.String(length=16), nullable=False),
        sa.Column("cm_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("cause", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("leave_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("proposed_by", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rfd_serial", sa.String(length=40), nullable=False),
        sa.Column("applied_month", sa.String(length=7), nullable=False),
        sa.Column("flow_run_id", sa.String(length=64), nullable=True),
        sa.Column("form_attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_riskfundmovement_branch", "riskfundmovement", ["branch"])
    op.create_index("ix_riskfundmovement_cm_id", "riskfundmovement", ["cm_id"])
    op.create_index("ix_riskfundmovement_status", "riskfundmovement", ["status"])
    op.create_table(
        "clientdispute",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("branch", sa.String(length=16), nullable=False),
        sa.Column("cm_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("opened_by", sa.String(length=64), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cleared_by", sa.String(length=64), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("clearing_note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_clientdispute_branch", "clientdispute", ["branch"])
    op.create_index("ix_clientdispute_cm_id", "clientdispute", ["cm_id"])
    op.create_index("ix_clientdispute_status", "clientdispute", ["status"])


def downgrade() -> None:
    op.drop_table("clientdispute")
    op.drop_table("riskfundmovement")
    op.drop_table("payrulesversion")
    with op.batch_alter_table("payrollcarry", schema=None) as batch_op:
        batch_op.drop_column("leave_date")
        batch_op.drop_column("hire_date")
    with op.batch_alter_table("payrollrun", schema=None) as batch_op:
        batch_op.drop_column("rpt_serial")
        batch_op.drop_column("figures")
        batch_op.drop_column("policy_note")
        batch_op.drop_column("policy_version")
        batch_op.drop_column("policy_filing")
