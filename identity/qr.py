"""QR codes as inline SVG (no JavaScript, no image files) for TOTP enrolment."""

from __future__ import annotations

import io

import qrcode
import qrcode.image.svg
from markupsafe import Markup


def qr_svg(data: str) -> Markup:
    """An ``<svg>`` element encoding ``data``; safe to embed (generated, no user markup)."""
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    svg = buffer.getvalue().decode()
    svg = svg[svg.index("<svg"):]  # drop the XML declaration
    return Markup(svg)  # noqa: S704 - produced by qrcode from a URI we built, not user markup
