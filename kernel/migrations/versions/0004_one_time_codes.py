"""One-time codes for signatures: the encrypted seed of each user, the time steps used
(issue 11, finding 3).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("totp_seed", sa.String(length=255), nullable=True))
    op.create_table(
        "totpuse",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "step"),
    )


def downgrade() -> None:
    op.drop_table("totpuse")
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("totp_seed")
