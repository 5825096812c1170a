"""The first landed release's schema (the tables ``create_all`` made before migrations).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('accesslogentry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('target', sa.String(length=255), nullable=False),
    sa.Column('allowed', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('accesslogentry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_accesslogentry_at'), ['at'], unique=False)

    op.create_table('approvaldecision',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_key', sa.String(length=64), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('step', sa.String(length=64), nullable=False),
    sa.Column('signer_id', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=64), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('opinion', sa.Text(), nullable=False),
    sa.Column('department', sa.String(length=64), nullable=True),
    sa.Column('departments', sa.String(length=512), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('approvaldecision', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_approvaldecision_request_key'), ['request_key'], unique=False)

    op.create_table('archiveentry',
    sa.Column('serial', sa.String(length=40), nullable=False),
    sa.Column('branch', sa.String(length=16), nullable=False),
    sa.Column('doc_type', sa.String(length=8), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('subject_key', sa.String(length=255), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('cm_id', sa.String(length=64), nullable=True),
    sa.Column('team', sa.String(length=64), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('object_key', sa.String(length=255), nullable=False),
    sa.Column('version_id', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('serial')
    )
    with op.batch_alter_table('archiveentry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_archiveentry_branch'), ['branch'], unique=False)
        batch_op.create_index(batch_op.f('ix_archiveentry_cm_id'), ['cm_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_archiveentry_doc_type'), ['doc_type'], unique=False)
        batch_op.create_index(batch_op.f('ix_archiveentry_month'), ['month'], unique=False)
        batch_op.create_index('ix_archiveentry_subject', ['doc_type', 'subject_key', 'revision'], unique=False)

    op.create_table('auditevent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('request_key', sa.String(length=64), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('auditevent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auditevent_request_key'), ['request_key'], unique=False)

    op.create_table('audithead',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('last_id', sa.Integer(), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('clientidentity',
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('id_last4', sa.String(length=4), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=True),
    sa.Column('malicious', sa.Boolean(), nullable=False),
    sa.Column('malicious_reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id_hash')
    )
    with op.batch_alter_table('clientidentity', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_clientidentity_client_id'), ['client_id'], unique=False)

    op.create_table('filing',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('branch', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('attachments', sa.Text(), nullable=False),
    sa.Column('submitter_id', sa.String(length=64), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('current_serial', sa.String(length=40), nullable=False),
    sa.Column('result_serial', sa.String(length=40), nullable=False),
    sa.Column('flow_run_id', sa.String(length=64), nullable=True),
    sa.Column('form_attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('flow_run_id')
    )
    with op.batch_alter_table('filing', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_filing_branch'), ['branch'], unique=False)
        batch_op.create_index(batch_op.f('ix_filing_status'), ['status'], unique=False)

    op.create_table('payrollrun',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('branch', sa.String(length=16), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('pay_serial', sa.String(length=40), nullable=False),
    sa.Column('signed_serial', sa.String(length=40), nullable=False),
    sa.Column('totals', sa.Text(), nullable=False),
    sa.Column('flow_run_id', sa.String(length=64), nullable=False),
    sa.Column('form_attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('branch', 'month', 'revision')
    )
    with op.batch_alter_table('payrollrun', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payrollrun_branch'), ['branch'], unique=False)
        batch_op.create_index(batch_op.f('ix_payrollrun_month'), ['month'], unique=False)

    op.create_table('reminder',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_key', sa.String(length=64), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('step', sa.String(length=64), nullable=False),
    sa.Column('waiting_since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reminded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('reminder', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reminder_request_key'), ['request_key'], unique=False)

    op.create_table('serialcounter',
    sa.Column('branch', sa.String(length=16), nullable=False),
    sa.Column('doc_type', sa.String(length=8), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('last_number', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('branch', 'doc_type', 'year')
    )
    op.create_table('serialrecord',
    sa.Column('serial', sa.String(length=40), nullable=False),
    sa.Column('branch', sa.String(length=16), nullable=False),
    sa.Column('doc_type', sa.String(length=8), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('subject_key', sa.String(length=255), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('allocated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('serial')
    )
    with op.batch_alter_table('serialrecord', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_serialrecord_status'), ['status'], unique=False)
        batch_op.create_index('ux_serialrecord_subject', ['doc_type', 'subject_key', 'revision'], unique=True, sqlite_where=sa.text("status != 'void'"), postgresql_where=sa.text("status != 'void'"))

    op.create_table('user',
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('branch', sa.String(length=16), nullable=False),
    sa.Column('team', sa.String(length=64), nullable=False),
    sa.Column('supervisor_id', sa.String(length=64), nullable=True),
    sa.Column('secret_hash', sa.String(length=256), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('user_id')
    )
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_branch'), ['branch'], unique=False)

    op.create_table('waitingstep',
    sa.Column('request_key', sa.String(length=64), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('step', sa.String(length=64), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('flow_run_id', sa.String(length=64), nullable=False),
    sa.Column('last_refusal', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('request_key')
    )
    op.create_table('attribution',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('cm_id', sa.String(length=64), nullable=False),
    sa.Column('branch', sa.String(length=16), nullable=False),
    sa.Column('team', sa.String(length=64), nullable=False),
    sa.Column('asset_size', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('conflict_with', sa.Integer(), nullable=True),
    sa.Column('resolution', sa.String(length=16), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=True),
    sa.Column('registered_by', sa.String(length=64), nullable=False),
    sa.Column('confirmation_serial', sa.String(length=40), nullable=False),
    sa.Column('flow_run_id', sa.String(length=64), nullable=True),
    sa.Column('form_attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('effective_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['id_hash'], ['clientidentity.id_hash'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('attribution', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attribution_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attribution_cm_id'), ['cm_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attribution_id_hash'), ['id_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_attribution_status'), ['status'], unique=False)

    op.create_table('payrollcarry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('branch', sa.String(length=16), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('cm_id', sa.String(length=64), nullable=False),
    sa.Column('excess_carry', sa.String(length=32), nullable=False),
    sa.Column('risk_fund_balance', sa.String(length=32), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('score', sa.String(length=16), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['payrollrun.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('branch', 'month', 'cm_id')
    )
    with op.batch_alter_table('payrollcarry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payrollcarry_month'), ['month'], unique=False)

    op.create_table('payrolllinerecord',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('cm_id', sa.String(length=64), nullable=False),
    sa.Column('line', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['payrollrun.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('payrolllinerecord', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payrolllinerecord_run_id'), ['run_id'], unique=False)

    op.create_table('userrole',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.user_id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'role')
    )
    with op.batch_alter_table('userrole', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_userrole_user_id'), ['user_id'], unique=False)


def downgrade() -> None:

    with op.batch_alter_table('userrole', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_userrole_user_id'))

    op.drop_table('userrole')
    with op.batch_alter_table('payrolllinerecord', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payrolllinerecord_run_id'))

    op.drop_table('payrolllinerecord')
    with op.batch_alter_table('payrollcarry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payrollcarry_month'))

    op.drop_table('payrollcarry')
    with op.batch_alter_table('attribution', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attribution_status'))
        batch_op.drop_index(batch_op.f('ix_attribution_id_hash'))
        batch_op.drop_index(batch_op.f('ix_attribution_cm_id'))
        batch_op.drop_index(batch_op.f('ix_attribution_client_id'))

    op.drop_table('attribution')
    op.drop_table('waitingstep')
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_branch'))

    op.drop_table('user')
    with op.batch_alter_table('serialrecord', schema=None) as batch_op:
        batch_op.drop_index('ux_serialrecord_subject', sqlite_where=sa.text("status != 'void'"), postgresql_where=sa.text("status != 'void'"))
        batch_op.drop_index(batch_op.f('ix_serialrecord_status'))

    op.drop_table('serialrecord')
    op.drop_table('serialcounter')
    with op.batch_alter_table('reminder', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reminder_request_key'))

    op.drop_table('reminder')
    with op.batch_alter_table('payrollrun', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payrollrun_month'))
        batch_op.drop_index(batch_op.f('ix_payrollrun_branch'))

    op.drop_table('payrollrun')
    with op.batch_alter_table('filing', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_filing_status'))
        batch_op.drop_index(batch_op.f('ix_filing_branch'))

    op.drop_table('filing')
    with op.batch_alter_table('clientidentity', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clientidentity_client_id'))

    op.drop_table('clientidentity')
    op.drop_table('audithead')
    with op.batch_alter_table('auditevent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auditevent_request_key'))

    op.drop_table('auditevent')
    with op.batch_alter_table('archiveentry', schema=None) as batch_op:
        batch_op.drop_index('ix_archiveentry_subject')
        batch_op.drop_index(batch_op.f('ix_archiveentry_month'))
        batch_op.drop_index(batch_op.f('ix_archiveentry_doc_type'))
        batch_op.drop_index(batch_op.f('ix_archiveentry_cm_id'))
        batch_op.drop_index(batch_op.f('ix_archiveentry_branch'))

    op.drop_table('archiveentry')
    with op.batch_alter_table('approvaldecision', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_approvaldecision_request_key'))

    op.drop_table('approvaldecision')
    with op.batch_alter_table('accesslogentry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_accesslogentry_at'))

    op.drop_table('accesslogentry')
