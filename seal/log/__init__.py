"""The signature transparency log: every signature the node makes, in an append-only Merkle tree.

RFC 6962 / RFC 9162 Merkle tree with SM3 (STANDARDS.md §5) built on :mod:`common.crypto.merkle`,
with C2SP signed-note checkpoints signed with SM2. Where each part lives:

* :mod:`seal.log.models` the tables; :mod:`seal.log.tree` the head row and the stored nodes;
* :mod:`seal.log.appends` appending events (one or a batch) inside the signer's transaction;
* :mod:`seal.log.proofs` roots, inclusion and consistency proofs from the stored nodes;
* :mod:`seal.log.entries` reading and searching entries;
* :mod:`seal.log.checkpoints` signing and serving checkpoints; :mod:`seal.log.keys` the log key;
* :mod:`seal.log.self_check` recomputing the whole log (tamper evidence);
* :mod:`seal.log.audit_queries` the record of who asked the log what;
* :mod:`seal.log.service` the use cases the API, the console and the CLI share (Flask-free);
* :mod:`seal.log.api`, :mod:`seal.log.pages`, :mod:`seal.log.cli` the auditor API, console, CLI;
* :mod:`seal.log.bundle` and :mod:`seal.log.verify_offline` evidence bundles and their offline check.
"""
