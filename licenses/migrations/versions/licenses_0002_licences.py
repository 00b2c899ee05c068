"""Licences: the catalogue, licences and their history, authorisations, use records, bulk jobs,
the notification outbox, counters and the key store.

Revision ID: licenses_0002
Revises: licenses_0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from common.db import UTCDateTime

revision = "licenses_0002"
down_revision = "licenses_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('counters',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_counters'))
    )
    op.create_table('holder_links',
    sa.Column('sub', sa.String(length=255), nullable=False),
    sa.Column('holder_index', sa.String(length=64), nullable=False),
    sa.Column('seen_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('sub', 'holder_index', name=op.f('pk_holder_links'))
    )
    op.create_table('licence_types',
    sa.Column('code', sa.String(length=21), nullable=False),
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('name_en', sa.String(length=128), nullable=True),
    sa.Column('holder_kind', sa.String(length=16), nullable=False),
    sa.Column('issuers', sa.JSON(), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('validity_days', sa.Integer(), nullable=True),
    sa.Column('seal_kind', sa.String(length=16), nullable=False),
    sa.Column('face_prefix', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('updated_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_licence_types')),
    sa.UniqueConstraint('slug', name=op.f('uq_licence_types_slug'))
    )
    op.create_table('notifications',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('template', sa.String(length=64), nullable=False),
    sa.Column('variables', sa.JSON(), nullable=False),
    sa.Column('recipients', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=255), nullable=True),
    sa.Column('message_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('sent_at', UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications'))
    )
    op.create_index(op.f('ix_notifications_status'), 'notifications', ['status'], unique=False)
    op.create_table('signing_keys',
    sa.Column('kid', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=64), nullable=False),
    sa.Column('algorithm', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('public_pem', sa.Text(), nullable=False),
    sa.Column('encrypted_private', sa.Text(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('retired_at', UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('kid', name=op.f('pk_signing_keys'))
    )
    op.create_index(op.f('ix_signing_keys_purpose'), 'signing_keys', ['purpose'], unique=False)
    op.create_table('bulk_jobs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('type_code', sa.String(length=21), nullable=False),
    sa.Column('issuer_code', sa.String(length=18), nullable=False),
    sa.Column('issuer_name', sa.String(length=128), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('client_id', sa.String(length=255), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('invalid', sa.Integer(), nullable=False),
    sa.Column('issued', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=255), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('finished_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['type_code'], ['licence_types.code'], name=op.f('fk_bulk_jobs_type_code_licence_types')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bulk_jobs'))
    )
    op.create_table('licences',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('identifier', sa.String(length=128), nullable=False),
    sa.Column('type_code', sa.String(length=21), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('face_number', sa.String(length=64), nullable=False),
    sa.Column('issuer_code', sa.String(length=18), nullable=False),
    sa.Column('issuer_name', sa.String(length=128), nullable=False),
    sa.Column('holder_kind', sa.String(length=16), nullable=False),
    sa.Column('holder_name', sa.String(length=128), nullable=False),
    sa.Column('holder_index', sa.String(length=64), nullable=False),
    sa.Column('holder_code_enc', sa.Text(), nullable=False),
    sa.Column('holder_code_masked', sa.String(length=32), nullable=False),
    sa.Column('fields_enc', sa.Text(), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_until', sa.Date(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_reason', sa.String(length=255), nullable=True),
    sa.Column('status_index', sa.Integer(), nullable=False),
    sa.Column('document_enc', sa.Text(), nullable=False),
    sa.Column('document_sm3', sa.String(length=64), nullable=False),
    sa.Column('seal_id', sa.String(length=32), nullable=True),
    sa.Column('signature_id', sa.String(length=32), nullable=True),
    sa.Column('signature_b64', sa.Text(), nullable=True),
    sa.Column('signed_at', UTCDateTime(), nullable=True),
    sa.Column('previous_id', sa.String(length=32), nullable=True),
    sa.Column('idempotency_scope', sa.String(length=255), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('issued_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('issued_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['previous_id'], ['licences.id'], name=op.f('fk_licences_previous_id_licences')),
    sa.ForeignKeyConstraint(['type_code'], ['licence_types.code'], name=op.f('fk_licences_type_code_licence_types')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_licences')),
    sa.UniqueConstraint('idempotency_scope', 'idempotency_key', name='uq_licences_idempotency'),
    sa.UniqueConstraint('identifier', name=op.f('uq_licences_identifier')),
    sa.UniqueConstraint('status_index', name=op.f('uq_licences_status_index'))
    )
    op.create_index(op.f('ix_licences_face_number'), 'licences', ['face_number'], unique=False)
    op.create_index('ix_licences_holder_index_status', 'licences', ['holder_index', 'status'], unique=False)
    op.create_index(op.f('ix_licences_issuer_code'), 'licences', ['issuer_code'], unique=False)
    op.create_index(op.f('ix_licences_status'), 'licences', ['status'], unique=False)
    op.create_index(op.f('ix_licences_type_code'), 'licences', ['type_code'], unique=False)
    op.create_table('authorisations',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('licence_id', sa.String(length=32), nullable=False),
    sa.Column('granted_by', sa.String(length=255), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('purpose', sa.String(length=255), nullable=False),
    sa.Column('audience', sa.String(length=255), nullable=False),
    sa.Column('expires_at', UTCDateTime(), nullable=False),
    sa.Column('max_uses', sa.Integer(), nullable=False),
    sa.Column('uses', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('revoked_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['licence_id'], ['licences.id'], name=op.f('fk_authorisations_licence_id_licences'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_authorisations')),
    sa.UniqueConstraint('code', name=op.f('uq_authorisations_code'))
    )
    op.create_index(op.f('ix_authorisations_licence_id'), 'authorisations', ['licence_id'], unique=False)
    op.create_table('bulk_rows',
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.String(length=255), nullable=True),
    sa.Column('licence_id', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['bulk_jobs.id'], name=op.f('fk_bulk_rows_job_id_bulk_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'line', name=op.f('pk_bulk_rows'))
    )
    op.create_table('licence_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('licence_id', sa.String(length=32), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=True),
    sa.Column('reason', sa.String(length=255), nullable=True),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('client_id', sa.String(length=255), nullable=True),
    sa.Column('at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['licence_id'], ['licences.id'], name=op.f('fk_licence_events_licence_id_licences'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_licence_events'))
    )
    op.create_index(op.f('ix_licence_events_licence_id'), 'licence_events', ['licence_id'], unique=False)
    op.create_table('use_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('licence_id', sa.String(length=32), nullable=True),
    sa.Column('authorisation_id', sa.String(length=32), nullable=True),
    sa.Column('verifier', sa.String(length=255), nullable=False),
    sa.Column('verifier_client', sa.String(length=255), nullable=True),
    sa.Column('verifier_org', sa.String(length=64), nullable=True),
    sa.Column('purpose', sa.String(length=255), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=True),
    sa.Column('request_id', sa.String(length=128), nullable=True),
    sa.Column('at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['licence_id'], ['licences.id'], name=op.f('fk_use_records_licence_id_licences'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_use_records'))
    )
    op.create_index(op.f('ix_use_records_licence_id'), 'use_records', ['licence_id'], unique=False)


def downgrade() -> None:
    op.drop_table("use_records")
    op.drop_table("licence_events")
    op.drop_table("bulk_rows")
    op.drop_table("authorisations")
    op.drop_table("licences")
    op.drop_table("bulk_jobs")
    op.drop_table("signing_keys")
    op.drop_table("notifications")
    op.drop_table("licence_types")
    op.drop_table("holder_links")
    op.drop_table("counters")
