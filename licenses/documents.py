"""A licence's stored canonical document as online verification reads it (see :mod:`licenses.issuing`
for what the document is and how it is built)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from common.crypto.gm import sm3
from common.crypto.pii import PiiCipher
from common.ttl_cache import TtlCache


@dataclass(frozen=True)
class StoredDocument:
    """A licence's canonical document as its row holds it: the SM3 of its bytes, and its face."""

    sm3: str
    fields: dict[str, Any]


class DocumentCache:
    """Documents read by online verification, by their exact stored ciphertext.

    A ciphertext decrypts to one plaintext only (SM4-GCM under this node's key, the tag checked
    on the first read), so the SM3 and the face read once stand for every later read of the same
    ciphertext: each verification still compares the SM3 of the document its row holds now with
    the digest the seal signed, and a changed document is a different key. Entries last
    ``seconds`` (decrypted faces do not linger) and the cache is emptied when it reaches ``size``.
    """

    def __init__(self, seconds: float = 60.0, size: int = 4096) -> None:
        self._read: TtlCache[str, StoredDocument] = TtlCache(seconds, size)

    def read(self, cipher: PiiCipher, document_enc: str) -> StoredDocument:
        """:raise common.crypto.gm.GMError: the ciphertext was altered (never cached)."""
        read = self._read.get(document_enc)
        if read is None:
            document = cipher.decrypt("document", document_enc).encode()
            read = StoredDocument(sm3(document).hex(), json.loads(document)["fields"])
            self._read.put(document_enc, read)
        return read
