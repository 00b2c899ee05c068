"""A Merkle transparency log kept in SQL tables, shared by the seal signature log and the gateway audit log.

Flask-free. The pure tree math is :mod:`common.crypto.merkle` and the signed checkpoints'
format :mod:`common.crypto.signed_note`; this package holds what sits on top of a database:
the table columns (:mod:`.tables`), the stored tree with its roots and proofs (:mod:`.store`),
checkpoint publishing (:mod:`.checkpoints`) and the parts of the whole-log tamper check that do
not depend on what a leaf holds (:mod:`.self_check`). Each service keeps its own table names,
leaf format and problem codes, and passes them in.
"""
