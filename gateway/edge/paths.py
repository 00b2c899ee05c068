"""What a request path may look like at the gateway.

The gateway matches prefixes and routes on the raw path and forwards that same raw path,
so the path must read the same to the gateway and to the service behind it. Rather than
normalise (and risk normalising differently from Werkzeug), the gateway refuses every path
that a normaliser would change: dot segments (``..``, ``.``), percent-encoded slashes,
backslashes, dots or other unreserved characters (``%2e%2e``, ``%2f``), encoded percent
signs (double encoding, ``%252e``), empty segments (``//``), control characters and
malformed escapes. What is left decodes to the same segments everywhere, so it can never
normalise into another service's prefix.
"""

from __future__ import annotations

import re

from gateway.edge.problems import BadPath, PathTraversal

MAX_PATH_BYTES = 4096
_ESCAPE = re.compile(r"%(..)")
# RFC 3986 §2.3: encoding an unreserved character changes nothing but how filters see it.
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Allowed raw: RFC 3986 pchar plus "/" (unreserved, sub-delims, ":", "@", and escapes).
_RAW_OK = re.compile(r"^/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$")
# Bytes whose escape would change how the path splits or decodes.
_STRUCTURAL = frozenset(b"/\\%")


def check_path(path: str) -> None:
    """Accept ``path`` (the raw path, no query) only if it is already in canonical form.

    :raise PathTraversal: dot segments, encoded slashes, dots or percent signs.
    :raise BadPath: not absolute, too long, empty segments, characters outside RFC 3986,
        control characters, malformed or non-UTF-8 escapes.
    """
    if len(path) > MAX_PATH_BYTES:
        raise BadPath("the path is too long")
    if not _RAW_OK.match(path):
        raise BadPath("the path must be absolute and use only RFC 3986 path characters")
    decoded = bytearray()
    position = 0
    for escape in _ESCAPE.finditer(path):
        decoded += path[position:escape.start()].encode("ascii")
        try:
            byte = int(escape.group(1), 16)
        except ValueError:
            raise BadPath("the path has a malformed percent-escape") from None
        if byte in _STRUCTURAL or byte == ord("."):
            raise PathTraversal("encoded slashes, dots and percent signs are refused")
        if byte in _UNRESERVED:
            raise BadPath("unreserved characters must not be percent-encoded")
        if byte < 0x20 or byte == 0x7F:
            raise BadPath("control characters are refused in paths")
        decoded.append(byte)
        position = escape.end()
    tail = path[position:]
    if "%" in tail:
        raise BadPath("the path has a malformed percent-escape")
    decoded += tail.encode("ascii")
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise BadPath("the path does not decode as UTF-8") from None
    segments = path.split("/")[1:]
    for index, segment in enumerate(segments):
        if segment in (".", ".."):
            raise PathTraversal("dot segments are refused")
        if segment == "" and index != len(segments) - 1:
            raise BadPath("empty path segments (//) are refused")
