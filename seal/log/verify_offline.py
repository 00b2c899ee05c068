"""Offline verification of signature-log evidence: pure functions, no network, no database.

Used by ``xsn seal log verify``, the auditor console and the tests. Input is a *bundle*: the
JSON written by ``xsn seal log export``::

    {"format": "xsn-seal-log-bundle/1",
     "range": {"start": 0, "end": 7},          # which entries the bundle claims to hold
     "checkpoint": "<C2SP signed note>",
     "public_key": {"pem": "...", "key_hint": "<hex>", "key_id": "..."},   # informational only
     "entries": [{"index": 3, "leaf": "<canonical JSON>", "leaf_hash": "<hex>",
                  "inclusion_proof": ["<hex>", ...], "ses_signature": "<base64 DER>|null"}],
     "consistency": [{"first": 2, "second": 7, "proof": ["<hex>", ...]}]}

or the auditor API's ``GET /log/entries/{index}`` response, which carries the same pieces. The
log key is never taken from the bundle: the caller pins it (a PEM file obtained out of band).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from common.crypto import merkle
from common.crypto.gm import sm3
from common.crypto.signed_note import Checkpoint
from common.merkle_log import offline
from common.merkle_log.offline import BundleError, hex_hashes, load_public_key

BUNDLE_FORMAT = "xsn-seal-log-bundle/1"
HASH = merkle.sm3


# Each kind of check and its English name (``entry <index>: `` before those of one entry).
# The kind and the detail's ``code`` with its ``params`` let a page say them in its own language
# (seal/log/pages.py); ``name`` and ``detail`` are the CLI's English.
KINDS = {"checkpoint_signature": "checkpoint signature", "older_checkpoint_signature": "older checkpoint signature",
         "leaf": "leaf", "leaf_hash": "leaf hash", "inclusion": "inclusion", "signature_digest": "signature digest",
         "ses_signature": "SES signature", "range": "range", "full_range": "full range",
         "consistency": "consistency"}


class Report(offline.Report):
    def __init__(self) -> None:
        super().__init__(KINDS)


# -- parsing inputs -------------------------------------------------------------------------


def normalise_bundle(data: Any) -> dict[str, Any]:
    """Accept an export bundle or an API entry-with-proof response. :raise BundleError:"""
    if not isinstance(data, dict):
        raise BundleError("the bundle must be a JSON object")
    if "entry" in data and isinstance(data.get("checkpoint"), dict):  # GET /log/entries/{index}
        entry = dict(data["entry"])
        entry["inclusion_proof"] = data.get("inclusion_proof", [])
        data = {"format": BUNDLE_FORMAT, "checkpoint": data["checkpoint"].get("note"), "entries": [entry],
                "consistency": []}
    if data.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"not a signature-log bundle (format {data.get('format')!r}, want {BUNDLE_FORMAT!r})")
    if not isinstance(data.get("checkpoint"), str):
        raise BundleError("the bundle has no checkpoint note")
    if not isinstance(data.get("entries", []), list) or not isinstance(data.get("consistency", []), list):
        raise BundleError("entries and consistency must be lists")
    for entry in data.get("entries", []):
        if not isinstance(entry, dict) or not isinstance(entry.get("index"), int) or \
                not isinstance(entry.get("leaf"), str):
            raise BundleError("every entry needs an integer index and a leaf string")
    return data


def read_bundle(text: str | bytes) -> dict[str, Any]:
    """:raise BundleError: not JSON, or not a bundle."""
    return normalise_bundle(offline.load_json(text))


# -- the checks -----------------------------------------------------------------------------


def check_entry(report: Report, entry: dict[str, Any], checkpoint: Checkpoint) -> bytes | None:
    """Leaf canonical form, leaf hash and inclusion proof of one entry; returns its leaf hash."""
    index = entry["index"]
    leaf = entry["leaf"].encode()
    canonical = offline.is_canonical_object(leaf)
    if not report.add("leaf", canonical, "canonical JSON (RFC 8785)" if canonical else "the leaf is not canonical JSON",
                      entry=index, code="canonical" if canonical else "not_canonical"):
        return None
    leaf_hash = merkle.leaf_hash(leaf, hash_fn=HASH)
    if entry.get("leaf_hash") not in (None, leaf_hash.hex()):
        report.add("leaf_hash", False, "the stated leaf hash is not SM3(0x00 || leaf)", entry=index,
                   code="leaf_hash_mismatch")
        return None
    try:
        proof = hex_hashes(entry.get("inclusion_proof", []), "the inclusion proof")
        merkle.verify_inclusion(leaf_hash, index, checkpoint.size, proof, checkpoint.root_hash, hash_fn=HASH)
    except (merkle.ProofError, BundleError) as exc:
        report.add("inclusion", False, f"not included in the checkpoint: {exc}", entry=index, code="not_included",
                   reason=exc.reason)
        return leaf_hash
    report.add("inclusion", True,
               f"audit path of {len(proof)} hashes leads to the checkpoint root (size {checkpoint.size})",
               entry=index, code="included", hashes=len(proof), size=checkpoint.size)
    return leaf_hash


def check_ses(report: Report, entry: dict[str, Any], *, trusted_root_cert_der: bytes | None = None) -> None:
    """The entry's own SES_Signature: its SM3 matches the leaf, and it verifies (seal.ses)."""
    index = entry["index"]
    event = json.loads(entry["leaf"])
    encoded = entry.get("ses_signature")
    if not encoded:
        report.add("ses_signature", False, "the bundle carries no SES signature for this entry", entry=index,
                   code="ses_missing")
        return
    try:
        der = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        report.add("ses_signature", False, "the SES signature is not base64", entry=index, code="ses_not_base64")
        return
    if sm3(der).hex() != str(event.get("signature_digest", "")).lower():
        report.add("signature_digest", False, "SM3 of the SES signature differs from the logged signature_digest",
                   entry=index, code="digest_differs")
        return
    report.add("signature_digest", True, "SM3 of the SES signature matches the logged digest", entry=index,
               code="digest_matches")
    from seal.ses_verify import verify_ses_signature  # imported late: the log checks work without it

    try:
        digest = bytes.fromhex(str(event.get("document_digest", "")))
    except ValueError:
        digest = None
    result = verify_ses_signature(der, digest, trusted_root_cert_der=trusted_root_cert_der)
    # ``reasons``: the failed checks' names (seal.ses_verify.CHECK_NAMES) or, for a structure
    # that does not parse, its SESFormatError code: stable codes a page words in its language.
    failed = [name for name, check in _checks(result) if not check]
    error = getattr(result, "error", None) or {}
    reasons = failed or [error.get("code") or "ses_malformed"]
    english = ", ".join(failed) or error.get("detail") or "invalid"
    detail = "all GB/T 38540 checks pass" if result.valid else f"fails: {english}"
    report.add("ses_signature", bool(result.valid), detail, entry=index,
               code="ses_valid" if result.valid else "ses_invalid", **({} if result.valid else {"reasons": reasons}))


def _checks(result: Any) -> list[tuple[str, bool]]:
    """(name, ok) of each check in a ``seal.ses_verify.VerificationReport`` (an ordered name -> result map)."""
    checks = getattr(result, "checks", None) or {}
    return [(str(name), bool(getattr(check, "ok", False))) for name, check in checks.items()]


def check_claimed_range(report: Report, bundle: dict[str, Any], checkpoint: Checkpoint) -> None:
    """An export says which range it holds: every index of it, no other, exactly once."""
    claimed = bundle.get("range")
    if not isinstance(claimed, dict):
        return
    start, end = claimed.get("start"), claimed.get("end")
    if not isinstance(start, int) or not isinstance(end, int) or not 0 <= start <= end <= checkpoint.size:
        report.add("range", False, f"the claimed range {claimed} is not within the checkpoint's tree",
                   code="range_outside", claimed=str(claimed))
        return
    indexes = [e["index"] for e in bundle.get("entries", [])]
    missing = sorted(set(range(start, end)) - set(indexes))
    extra = sorted(set(indexes) - set(range(start, end)))
    duplicated = len(indexes) != len(set(indexes))
    ok = not missing and not extra and not duplicated
    report.add("range", ok, f"entries [{start}, {end}) are all present, once each" if ok else
               f"entries [{start}, {end}): missing {missing[:10]}, unexpected {extra[:10]}"
               + (", duplicated indexes" if duplicated else ""),
               code="range_complete" if ok else "range_incomplete", start=start, end=end,
               missing=str(missing[:10]), extra=str(extra[:10]))


def check_full_range(report: Report, leaf_hashes: dict[int, bytes], checkpoint: Checkpoint,
                     older: Checkpoint | None) -> bool:
    """With every leaf of the tree present, recompute its root (and the older root) directly."""
    if set(leaf_hashes) != set(range(checkpoint.size)):
        return False
    ordered = [leaf_hashes[i] for i in range(checkpoint.size)]
    ok = merkle.root_from_leaf_hashes(ordered, hash_fn=HASH) == checkpoint.root_hash
    report.add("full_range", ok, "the root recomputed from all entries matches the checkpoint" if ok
               else "the root recomputed from all entries differs from the checkpoint",
               code="root_matches" if ok else "root_differs")
    if older is not None and older.size <= checkpoint.size:
        ok_old = merkle.root_from_leaf_hashes(ordered[:older.size], hash_fn=HASH) == older.root_hash
        report.add("consistency", ok_old, f"the first {older.size} entries reproduce the older checkpoint's root"
                   if ok_old else f"the first {older.size} entries do not reproduce the older checkpoint's root",
                   code="older_root_matches" if ok_old else "older_root_differs", size=older.size)
    return True


def verify_bundle(bundle: dict[str, Any], pinned_key_pem: bytes | str, *, saved_checkpoint: str | None = None,
                  older_checkpoint: str | None = None, check_signatures: bool = True,
                  trusted_root_cert_der: bytes | None = None) -> Report:
    """Run every check the evidence allows and report each one.

    ``saved_checkpoint`` replaces the bundle's checkpoint (proofs must be for its size);
    ``older_checkpoint`` is checked for consistency with it. :raise BundleError: unreadable input.
    """
    bundle = normalise_bundle(bundle)
    key = load_public_key(pinned_key_pem)
    report = Report()
    checkpoint = offline.check_checkpoint(report, saved_checkpoint or bundle["checkpoint"], key)
    if checkpoint is None:
        return report
    older = None
    if older_checkpoint is not None:
        older = offline.check_checkpoint(report, older_checkpoint, key, kind="older_checkpoint_signature",
                                         origin=checkpoint.origin)
    leaf_hashes: dict[int, bytes] = {}
    for entry in bundle.get("entries", []):
        leaf_hash = check_entry(report, entry, checkpoint)
        if leaf_hash is not None:
            leaf_hashes[entry["index"]] = leaf_hash
        if check_signatures and leaf_hash is not None:
            check_ses(report, entry, trusted_root_cert_der=trusted_root_cert_der)
    check_claimed_range(report, bundle, checkpoint)
    full = check_full_range(report, leaf_hashes, checkpoint, older) if leaf_hashes else False
    if older is not None and not full:
        offline.check_consistency(report, older, checkpoint, bundle)
    return report
