"""Quarterly evaluation (SPEC §8.2): a branch's evaluation of a quarter and the forms its
evaluators submitted.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("branch", sa.String(length=16), nullable=False),
        sa.Column("quarter", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("plan", sa.Text(), nullable=False),
        sa.Column("closed_reason", sa.String(length=16), nullable=False),
        sa.Column("evl_serial", sa.String(length=40), nullable=False),
        sa.Column("flow_run_id", sa.String(length=64), nullable=True),
        sa.Column("form_attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("branch", "quarter"),
    )
    op.create_index("ix_evaluation_branch", "evaluation", ["branch"])
    op.create_table(
        "evaluationform",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("evaluation_id", sa.Integer(), nullable=False),
        sa.Column("evaluatee_id", sa.String(length=72), nullable=False),
        sa.Column("evaluator_id", sa.String(length=64), nullable=False),
        sa.Column("evaluator_group", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("scores", sa.Text(), nullable=False),
        sa.Column("total", sa.String(length=16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("form_key", sa.String(length=128), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["evaluation_id"], ["evaluation.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("evaluation_id", "evaluatee_id", "evaluator_id", "evaluator_group"),
    )
    op.create_index("ix_evaluationform_evaluation_id", "evaluationform", ["evaluation_id"])


def downgrade() -> None:
    op.drop_table("evaluationform")
    op.drop_table("evaluation")
