"""Signature transparency log: head, entries, perfect-subtree nodes, checkpoints, auditor queries.

Revision ID: seal_0003
Revises: seal_0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from common.db import UTCDateTime

revision = "seal_0003"
down_revision = "seal_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    head = op.create_table(
        "log_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_log_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_head")),
    )
    # The one head row every append updates (and so locks): the log starts empty.
    op.bulk_insert(head, [{"id": 1, "size": 0}])

    op.create_table(
        "log_entries",
        sa.Column("leaf_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("leaf", sa.Text(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("time", UTCDateTime(), nullable=False),
        sa.Column("seal_id", sa.String(length=64), nullable=True),
        sa.Column("seal_code", sa.String(length=64), nullable=True),
        sa.Column("org_code", sa.String(length=32), nullable=True),
        sa.Column("signer", sa.String(length=255), nullable=True),
        sa.Column("client_id", sa.String(length=255), nullable=True),
        sa.Column("document_digest", sa.String(length=128), nullable=True),
        sa.Column("signature_digest", sa.String(length=128), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("ses_signature", sa.Text(), nullable=True),
        sa.Column("appended_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("leaf_index", name=op.f("pk_log_entries")),
    )
    op.create_index("ix_log_entries_seal_code_leaf_index", "log_entries", ["seal_code", "leaf_index"])
    op.create_index("ix_log_entries_org_code_leaf_index", "log_entries", ["org_code", "leaf_index"])
    op.create_index("ix_log_entries_signer_leaf_index", "log_entries", ["signer", "leaf_index"])
    op.create_index("ix_log_entries_document_digest", "log_entries", ["document_digest"])
    op.create_index("ix_log_entries_seal_id", "log_entries", ["seal_id"])
    op.create_index("ix_log_entries_time", "log_entries", ["time"])
    op.create_index("ix_log_entries_leaf_hash", "log_entries", ["leaf_hash"])

    op.create_table(
        "log_nodes",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("node_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "node_index", name=op.f("pk_log_nodes")),
        sqlite_with_rowid=False,
    )

    op.create_table(
        "log_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_checkpoints")),
        sa.UniqueConstraint("tree_size", name=op.f("uq_log_checkpoints_tree_size")),
    )
    op.create_index(op.f("ix_log_checkpoints_created_at"), "log_checkpoints", ["created_at"])

    op.create_table(
        "audit_queries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("time", UTCDateTime(), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=True),
        sa.Column("client_id", sa.String(length=255), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_queries")),
    )
    op.create_index(op.f("ix_audit_queries_time"), "audit_queries", ["time"])
    op.create_index(op.f("ix_audit_queries_subject"), "audit_queries", ["subject"])


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_queries_subject"), table_name="audit_queries")
    op.drop_index(op.f("ix_audit_queries_time"), table_name="audit_queries")
    op.drop_table("audit_queries")
    op.drop_index(op.f("ix_log_checkpoints_created_at"), table_name="log_checkpoints")
    op.drop_table("log_checkpoints")
    op.drop_table("log_nodes")
    for name in ("leaf_hash", "time", "seal_id", "document_digest", "signer_leaf_index",
                 "org_code_leaf_index", "seal_code_leaf_index"):
        op.drop_index(f"ix_log_entries_{name}", table_name="log_entries")
    op.drop_table("log_entries")
    op.drop_table("log_head")
