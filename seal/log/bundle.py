"""Evidence bundles of the signature log: one format, gathered from the database or the auditor API.

A bundle (read by :mod:`seal.log.verify_offline`) holds a signed checkpoint, a range of entries
with their inclusion proofs and SES signatures, optional consistency proofs from older tree
sizes, and the log key the checkpoint names. Operators export one next to the database
(:class:`DatabaseSource`); auditors, who have a token with ``audit:read`` and no database,
fetch the same bundle over the auditor API (:class:`AuditorApiSource`). Either way nothing in
it is trusted until ``xsn seal log verify`` checks it against a key pinned out of band.
"""

from __future__ import annotations

from typing import Any, Protocol

import requests
from sqlalchemy.orm import Session

from common.errors import Problem
from common.http import ServiceClient
from seal.log import checkpoints, entries, proofs
from seal.log.service import LogSettings, entry_dict, keys_document, publish
from seal.log.verify_offline import BUNDLE_FORMAT


class BundleSource(Protocol):
    def checkpoint(self, tree_size: int | None) -> dict[str, Any]:
        """``{"tree_size", "note", "key_id"}``: the given size's checkpoint, or the latest."""

    def entries(self, start: int, end: int, tree_size: int) -> list[dict[str, Any]]:
        """Entries ``[start, end)``: ``index, leaf, leaf_hash, ses_signature, inclusion_proof``."""

    def consistency(self, first: int, second: int) -> list[str]:
        """Hex hashes proving the tree of size ``second`` extends the one of size ``first``."""

    def keys(self) -> dict[str, Any]:
        """The log's keys document (``origin``, ``keys``), as ``GET /log/keys``."""


class BundleSourceError(Exception):
    """The source could not answer (unreachable, refused, or an answer that does not fit)."""


def assemble_bundle(source: BundleSource, *, start: int = 0, end: int | None = None, tree_size: int | None = None,
                    consistency_from: tuple[int, ...] = ()) -> dict[str, Any]:
    """:raise BundleSourceError: a bad range, an unknown size, or a source failure."""
    checkpoint = source.checkpoint(tree_size)
    size = checkpoint["tree_size"]
    end = size if end is None else end
    if not 0 <= start <= end <= size:
        raise BundleSourceError(f"range [{start}, {end}) is not within the checkpoint's tree [0, {size})")
    keys = source.keys()
    key = next((k for k in keys["keys"] if k["key_id"] == checkpoint["key_id"]), None)
    if key is None:
        raise BundleSourceError(f"the log publishes no key {checkpoint['key_id']!r}, which signed the checkpoint")
    return {
        "format": BUNDLE_FORMAT,
        "origin": keys["origin"],
        "tree_size": size,
        "range": {"start": start, "end": end},
        "checkpoint": checkpoint["note"],
        "public_key": {"pem": key["public_key_pem"], "key_hint": key["key_hint"], "key_id": key["key_id"]},
        "entries": source.entries(start, end, size),
        "consistency": [{"first": m, "second": size, "proof": source.consistency(m, size)} for m in consistency_from],
    }


class DatabaseSource:
    """Next to the database (operators): the latest checkpoint is signed first if the log grew."""

    def __init__(self, session: Session, settings: LogSettings) -> None:
        self.session, self.settings = session, settings

    def checkpoint(self, tree_size: int | None) -> dict[str, Any]:
        try:
            if tree_size is None:
                row = publish(self.session, self.settings)
            else:
                row = checkpoints.checkpoint_for_size(self.session, tree_size)
        except Problem as exc:
            raise BundleSourceError(exc.detail) from None
        return {"tree_size": row.tree_size, "note": row.note, "key_id": row.key_id}

    def entries(self, start: int, end: int, tree_size: int) -> list[dict[str, Any]]:
        items = []
        for first in range(start, end, entries.MAX_RANGE):
            for entry in entries.entries_range(self.session, first, min(first + entries.MAX_RANGE, end)):
                item = entry_dict(entry)
                item.pop("event")
                item["inclusion_proof"] = [h.hex() for h in proofs.inclusion_proof(self.session, entry.leaf_index,
                                                                                    tree_size)]
                items.append(item)
        return items

    def consistency(self, first: int, second: int) -> list[str]:
        try:
            return [h.hex() for h in proofs.consistency_proof(self.session, first, second)]
        except Problem as exc:
            raise BundleSourceError(exc.detail) from None

    def keys(self) -> dict[str, Any]:
        return keys_document(self.session, self.settings)


class AuditorApiSource:
    """Over the seal node's auditor API with an ``audit:read`` token (auditors; no database).

    ``base_url`` is the seal node's, directly or through the gateway
    (``http://127.0.0.1:8000/seal``). Each query is recorded by the node as an auditor query.
    """

    def __init__(self, base_url: str, token: str, *, timeout: float = 15.0) -> None:
        self.client = ServiceClient(base_url, timeout=timeout, token_provider=lambda: token)

    def _get(self, path: str, **params: Any) -> dict[str, Any]:
        try:
            response = self.client.get(path, params=params or None)
        except requests.RequestException as exc:
            raise BundleSourceError(f"cannot reach {self.client.base_url}: {exc.__class__.__name__}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200:
            detail = body.get("detail") if isinstance(body, dict) else None
            code = body.get("code") if isinstance(body, dict) else None
            raise BundleSourceError(f"GET {path} answered {response.status_code}"
                                    + (f" ({code}): {detail}" if code else ""))
        if not isinstance(body, dict):
            raise BundleSourceError(f"GET {path} did not answer with a JSON object")
        return body

    def checkpoint(self, tree_size: int | None) -> dict[str, Any]:
        if tree_size is None:
            body = self._get("/log/checkpoint")
        else:
            # The API proves against a named size through an entry; leaf 0 is in every tree of
            # size >= 1, so asking for it is the one-request way to get that size's checkpoint.
            body = self._get("/log/entries/0", tree_size=tree_size)["checkpoint"]
        return {"tree_size": int(body["tree_size"]), "note": body["note"], "key_id": body["key_id"]}

    def entries(self, start: int, end: int, tree_size: int) -> list[dict[str, Any]]:
        items = []
        for index in range(start, end):
            body = self._get(f"/log/entries/{index}", tree_size=tree_size)
            if body.get("tree_size") != tree_size or body["entry"].get("index") != index:
                raise BundleSourceError(f"the answer for entry {index} is not for tree size {tree_size}")
            entry = body["entry"]
            items.append({"index": index, "leaf": entry["leaf"], "leaf_hash": entry["leaf_hash"],
                          "ses_signature": entry.get("ses_signature"), "inclusion_proof": body["inclusion_proof"]})
        return items

    def consistency(self, first: int, second: int) -> list[str]:
        return list(self._get("/log/proof/consistency", first=first, second=second)["proof"])

    def keys(self) -> dict[str, Any]:
        return self._get("/log/keys")
