"""The audit spool: framed audit records on the edge's own disk, made durable by ``fdatasync``
before a request's response completes, and moved into the database's Merkle log later by the
writer process.

- ``accepting``: :class:`AuditSpool`, the edge's side: records accepted, grouped and their
  callers answered after the fsync that covers them (the on-disk layout is described there);
- ``segment_writer``: the newest segment's file (zeros filled ahead, rotation, torn-tail
  recovery, a failed write undone, a full disk);
- ``reader``: :class:`SpoolReader`, the writer process's side;
- ``files``: the frame and segment format both sides share;
- ``state``: the mapped file through which the two tell each other the durable end and what moved.
"""

from gateway.audit.spool.accepting import AuditSpool, AuditUnavailable
from gateway.audit.spool.reader import SpoolReader

__all__ = ["AuditSpool", "AuditUnavailable", "SpoolReader"]
