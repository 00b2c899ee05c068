"""Columns of a stored Merkle log's head, node and checkpoint tables, as declarative mixins.

Each service names its tables (``class LogNode(MerkleNodeMixin, Base): __tablename__ = ...``);
the columns here are exactly those its migrations create, so the mixins change no schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from common.db import UTCDateTime, utcnow

HEAD_ID = 1


class LogHeadMixin:
    """The single row whose ``size`` is the log's committed length and whose lock orders appends."""

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:  # noqa: N805 - declared_attr receives the class
        # A new constraint object per table: one cannot belong to two tables.
        return (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger, default=0)


class MerkleNodeMixin:
    """Hash of the perfect subtree covering leaves ``[index * 2**level, (index + 1) * 2**level)``."""

    # SQLite: store rows in primary-key order, so a node lookup is one B-tree probe, not two.
    __table_args__ = {"sqlite_with_rowid": False}

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column("node_index", BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class CheckpointMixin:
    """A signed tree head, kept forever (auditors compare consecutive ones)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger, unique=True)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
