"""Payment notices, fees, orders, refunds, channel callbacks, statements, differences, e-receipts and
the double-entry ledger.

Revision ID: payment_0002
Revises: payment_0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from common.db import UTCDateTime


revision = 'payment_0002'
down_revision = 'payment_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('channel_callbacks',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('received_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('notification_id', sa.String(length=64), nullable=True),
    sa.Column('order_id', sa.String(length=64), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=True),
    sa.Column('source', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_channel_callbacks'))
    )
    with op.batch_alter_table('channel_callbacks', schema=None) as batch_op:
        batch_op.create_index('ix_channel_callbacks_order', ['order_id'], unique=False)

    op.create_table('fees',
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('department_code', sa.String(length=18), nullable=False),
    sa.Column('department_name', sa.String(length=255), nullable=False),
    sa.Column('unit_amount', sa.BigInteger(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_fees'))
    )
    op.create_table('ledger_accounts',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('debits_must_not_exceed_credits', sa.Boolean(), nullable=False),
    sa.Column('credits_must_not_exceed_debits', sa.Boolean(), nullable=False),
    sa.Column('debits_pending', sa.BigInteger(), nullable=False),
    sa.Column('debits_posted', sa.BigInteger(), nullable=False),
    sa.Column('credits_pending', sa.BigInteger(), nullable=False),
    sa.Column('credits_posted', sa.BigInteger(), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('NOT credits_must_not_exceed_debits OR credits_pending + credits_posted <= debits_posted', name=op.f('ck_ledger_accounts_credits_within_debits')),
    sa.CheckConstraint('NOT debits_must_not_exceed_credits OR debits_pending + debits_posted <= credits_posted', name=op.f('ck_ledger_accounts_debits_within_credits')),
    sa.CheckConstraint('debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 AND credits_posted >= 0', name=op.f('ck_ledger_accounts_sums_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_accounts'))
    )
    op.create_table('notices',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('payment_code', sa.String(length=20), nullable=False),
    sa.Column('department_code', sa.String(length=18), nullable=False),
    sa.Column('department_name', sa.String(length=255), nullable=False),
    sa.Column('payer_kind', sa.String(length=16), nullable=False),
    sa.Column('payer_name', sa.String(length=255), nullable=False),
    sa.Column('payer_id_encrypted', sa.Text(), nullable=False),
    sa.Column('payer_index', sa.String(length=64), nullable=False),
    sa.Column('payer_id_masked', sa.String(length=32), nullable=False),
    sa.Column('payer_subject', sa.String(length=255), nullable=True),
    sa.Column('total_amount', sa.BigInteger(), nullable=False),
    sa.Column('paid_amount', sa.BigInteger(), nullable=False),
    sa.Column('refunded_amount', sa.BigInteger(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('late_fee_per_day_permille', sa.Integer(), nullable=True),
    sa.Column('case_reference', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=True),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('paid_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('paid_order_id', sa.String(length=32), nullable=True),
    sa.CheckConstraint('paid_amount >= 0 AND refunded_amount >= 0 AND refunded_amount <= paid_amount', name=op.f('ck_notices_refunds_within_paid')),
    sa.CheckConstraint('total_amount > 0', name=op.f('ck_notices_total_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notices')),
    sa.UniqueConstraint('department_code', 'idempotency_key', name='uq_notices_idempotency'),
    sa.UniqueConstraint('payment_code', name=op.f('uq_notices_payment_code'))
    )
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.create_index('ix_notices_payer_index', ['payer_index'], unique=False)
        batch_op.create_index('ix_notices_status_due', ['status', 'due_date'], unique=False)

    op.create_table('notifications',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('template', sa.String(length=64), nullable=False),
    sa.Column('variables', sa.JSON(), nullable=False),
    sa.Column('recipients', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=255), nullable=True),
    sa.Column('message_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications'))
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notifications_status'), ['status'], unique=False)

    op.create_table('statements',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('lines', sa.Integer(), nullable=False),
    sa.Column('total_amount', sa.BigInteger(), nullable=False),
    sa.Column('matched', sa.Integer(), nullable=False),
    sa.Column('imported_by', sa.String(length=255), nullable=False),
    sa.Column('imported_at', UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_statements')),
    sa.UniqueConstraint('channel', 'day', name='uq_statements_channel_day')
    )
    op.create_table('ledger_transfers',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('debit_account_id', sa.String(length=128), nullable=False),
    sa.Column('credit_account_id', sa.String(length=128), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('pending_id', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reference', sa.String(length=64), nullable=True),
    sa.Column('batch_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'posted', 'voided')", name=op.f('ck_ledger_transfers_known_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_ledger_transfers_amount_positive')),
    sa.CheckConstraint('debit_account_id <> credit_account_id', name=op.f('ck_ledger_transfers_distinct_accounts')),
    sa.ForeignKeyConstraint(['credit_account_id'], ['ledger_accounts.id'], name=op.f('fk_ledger_transfers_credit_account_id_ledger_accounts')),
    sa.ForeignKeyConstraint(['debit_account_id'], ['ledger_accounts.id'], name=op.f('fk_ledger_transfers_debit_account_id_ledger_accounts')),
    sa.ForeignKeyConstraint(['pending_id'], ['ledger_transfers.id'], name=op.f('fk_ledger_transfers_pending_id_ledger_transfers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_transfers')),
    sa.UniqueConstraint('pending_id', name=op.f('uq_ledger_transfers_pending_id'))
    )
    with op.batch_alter_table('ledger_transfers', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_transfers_credit', ['credit_account_id'], unique=False)
        batch_op.create_index('ix_ledger_transfers_debit', ['debit_account_id'], unique=False)
        batch_op.create_index('ix_ledger_transfers_reference', ['reference'], unique=False)

    op.create_table('notice_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('notice_id', sa.String(length=32), nullable=False),
    sa.Column('from_status', sa.String(length=24), nullable=True),
    sa.Column('to_status', sa.String(length=24), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('at', UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['notice_id'], ['notices.id'], name=op.f('fk_notice_events_notice_id_notices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notice_events'))
    )
    with op.batch_alter_table('notice_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notice_events_notice_id'), ['notice_id'], unique=False)

    op.create_table('notice_items',
    sa.Column('notice_id', sa.String(length=32), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('fee_code', sa.String(length=32), nullable=False),
    sa.Column('fee_name', sa.String(length=255), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_amount', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('refunded_amount', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('quantity > 0 AND unit_amount > 0 AND amount = quantity * unit_amount', name=op.f('ck_notice_items_item_amount')),
    sa.CheckConstraint('refunded_amount >= 0 AND refunded_amount <= amount', name=op.f('ck_notice_items_item_refunds_within_amount')),
    sa.ForeignKeyConstraint(['fee_code'], ['fees.code'], name=op.f('fk_notice_items_fee_code_fees')),
    sa.ForeignKeyConstraint(['notice_id'], ['notices.id'], name=op.f('fk_notice_items_notice_id_notices')),
    sa.PrimaryKeyConstraint('notice_id', 'line', name=op.f('pk_notice_items'))
    )
    op.create_table('payment_orders',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('notice_id', sa.String(length=32), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('channel_transaction_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('paid_at', UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint('amount > 0', name=op.f('ck_payment_orders_order_amount_positive')),
    sa.ForeignKeyConstraint(['notice_id'], ['notices.id'], name=op.f('fk_payment_orders_notice_id_notices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_orders')),
    sa.UniqueConstraint('channel', 'channel_transaction_id', name='uq_payment_orders_channel_txn')
    )
    with op.batch_alter_table('payment_orders', schema=None) as batch_op:
        batch_op.create_index('ix_payment_orders_notice', ['notice_id'], unique=False)

    op.create_table('receipts',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('notice_id', sa.String(length=32), nullable=False),
    sa.Column('code', sa.String(length=8), nullable=False),
    sa.Column('number', sa.String(length=10), nullable=False),
    sa.Column('check_code', sa.String(length=6), nullable=False),
    sa.Column('department_code', sa.String(length=18), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('seal_id', sa.String(length=64), nullable=True),
    sa.Column('signature', sa.Text(), nullable=True),
    sa.Column('issued_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('sealed_at', UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['notice_id'], ['notices.id'], name=op.f('fk_receipts_notice_id_notices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_receipts')),
    sa.UniqueConstraint('code', 'number', name='uq_receipts_code_number'),
    sa.UniqueConstraint('notice_id', name=op.f('uq_receipts_notice_id'))
    )
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.create_index('ix_receipts_status', ['status'], unique=False)

    op.create_table('recon_differences',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('statement_id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=True),
    sa.Column('line', sa.Integer(), nullable=True),
    sa.Column('amount_here', sa.BigInteger(), nullable=True),
    sa.Column('amount_at_channel', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('resolution', sa.String(length=24), nullable=True),
    sa.Column('resolved_by', sa.String(length=255), nullable=True),
    sa.Column('resolved_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['statement_id'], ['statements.id'], name=op.f('fk_recon_differences_statement_id_statements')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recon_differences'))
    )
    with op.batch_alter_table('recon_differences', schema=None) as batch_op:
        batch_op.create_index('ix_recon_differences_statement', ['statement_id'], unique=False)

    op.create_table('refunds',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('notice_id', sa.String(length=32), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_refunds_refund_amount_positive')),
    sa.ForeignKeyConstraint(['notice_id'], ['notices.id'], name=op.f('fk_refunds_notice_id_notices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refunds')),
    sa.UniqueConstraint('notice_id', 'idempotency_key', name='uq_refunds_idempotency')
    )
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refunds_notice_id'), ['notice_id'], unique=False)

    op.create_table('statement_lines',
    sa.Column('statement_id', sa.String(length=32), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('channel_transaction_id', sa.String(length=64), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('outcome', sa.String(length=24), nullable=False),
    sa.ForeignKeyConstraint(['statement_id'], ['statements.id'], name=op.f('fk_statement_lines_statement_id_statements')),
    sa.PrimaryKeyConstraint('statement_id', 'line', name=op.f('pk_statement_lines'))
    )


def downgrade() -> None:
    op.drop_table('statement_lines')
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refunds_notice_id'))

    op.drop_table('refunds')
    with op.batch_alter_table('recon_differences', schema=None) as batch_op:
        batch_op.drop_index('ix_recon_differences_statement')

    op.drop_table('recon_differences')
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.drop_index('ix_receipts_status')

    op.drop_table('receipts')
    with op.batch_alter_table('payment_orders', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_orders_notice')

    op.drop_table('payment_orders')
    op.drop_table('notice_items')
    with op.batch_alter_table('notice_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notice_events_notice_id'))

    op.drop_table('notice_events')
    with op.batch_alter_table('ledger_transfers', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_transfers_reference')
        batch_op.drop_index('ix_ledger_transfers_debit')
        batch_op.drop_index('ix_ledger_transfers_credit')

    op.drop_table('ledger_transfers')
    op.drop_table('statements')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notifications_status'))

    op.drop_table('notifications')
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.drop_index('ix_notices_status_due')
        batch_op.drop_index('ix_notices_payer_index')

    op.drop_table('notices')
    op.drop_table('ledger_accounts')
    op.drop_table('fees')
    with op.batch_alter_table('channel_callbacks', schema=None) as batch_op:
        batch_op.drop_index('ix_channel_callbacks_order')

    op.drop_table('channel_callbacks')
