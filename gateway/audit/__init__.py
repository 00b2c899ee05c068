"""The gateway's audit log of every call (GB/T 22239 level 3 audit; STANDARDS.md §9).

``spool`` (durable, group-committed file on the edge's disk) -> ``writer`` (a thread in the edge
process moving records into the database exactly once) -> ``log`` (SM3 Merkle log with SM2-signed
checkpoints) -> ``evidence`` (export bundles, offline verification), ``retention`` (archive before
prune), ``api`` (auditor API, scope ``audit:read``), ``pages`` (auditor console), ``cli``
(``xsn audit ...``).
"""
