"""Users who left (disabled from a date on), failed logins for the lockout, server-side
sessions of the archive page, who started each monthly closing, where the keyed audit chain
begins (issue 11).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audithead", schema=None) as batch_op:
        batch_op.add_column(sa.Column("legacy_last_id", sa.Integer(), nullable=False,
                                      server_default="0"))
    # the rows so far keep their plain SHA-256 links; every later row is keyed
    op.execute("UPDATE audithead SET legacy_last_id = last_id")
    with op.batch_alter_table("payrollrun", schema=None) as batch_op:
        batch_op.add_column(sa.Column("started_by", sa.String(length=64), nullable=False,
                                      server_default="system"))
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("left_on", sa.Date(), nullable=True))
    op.create_table(
        "loginfailure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("loginfailure", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_loginfailure_user_id"), ["user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_loginfailure_address"), ["address"], unique=False)
    op.create_table(
        "websession",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("websession", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_websession_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("websession", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_websession_user_id"))
    op.drop_table("websession")
    with op.batch_alter_table("loginfailure", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loginfailure_address"))
        batch_op.drop_index(batch_op.f("ix_loginfailure_user_id"))
    op.drop_table("loginfailure")
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("left_on")
    with op.batch_alter_table("payrollrun", schema=None) as batch_op:
        batch_op.drop_column("started_by")
    with op.batch_alter_table("audithead", schema=None) as batch_op:
        batch_op.drop_column("legacy_last_id")
