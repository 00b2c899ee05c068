"""Seal pictures: generated red round seals, and validation of uploaded ones.

A generated seal is a red ring with a five-pointed star in the middle, the organisation's
name along the upper arc and the seal kind under the star, as Chinese round seals look.
Rendering Chinese needs a CJK font: the first one ``fc-list :lang=zh`` names is used
(``XSN_SEAL_FONT`` may point to one). Without any CJK font the picture is still produced,
shape-only: ring, star, tick marks where the characters would be and the seal code in the
bundled Latin font, so seal creation never depends on what fonts a machine has.
"""

from __future__ import annotations

import functools
import io
import math
import shutil
import subprocess

from PIL import Image, ImageDraw, ImageFont

from common.errors import Problem

MAX_IMAGE_BYTES = 256 * 1024
MIN_SIDE, MAX_SIDE = 100, 1000
SIZE = 400
RED = (220, 20, 20, 255)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class InvalidImage(Problem):
    status, code, title = 422, "invalid_seal_image", "Invalid seal image"


@functools.lru_cache(maxsize=1)
def cjk_font_path() -> str | None:
    """Path of a font that renders Chinese, or ``None``."""
    import os

    configured = os.environ.get("XSN_SEAL_FONT")
    if configured and os.path.exists(configured):
        return configured
    fc_list = shutil.which("fc-list")
    if not fc_list:
        return None
    try:
        out = subprocess.run([fc_list, ":lang=zh", "file"], capture_output=True, text=True, timeout=10,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    paths = sorted(line.split(":")[0].strip() for line in out.splitlines() if line.strip())
    return paths[0] if paths else None


def _star(draw: ImageDraw.ImageDraw, cx: float, cy: float, radius: float) -> None:
    points = []
    for i in range(10):
        r = radius if i % 2 == 0 else radius * 0.382
        angle = -math.pi / 2 + i * math.pi / 5
        points.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    draw.polygon(points, fill=RED)


def _arc_text(image: Image.Image, text: str, font: ImageFont.FreeTypeFont, radius: float) -> None:
    """Characters along the upper arc, each rotated to face the centre."""
    cx = cy = SIZE / 2
    n = len(text)
    span = min(math.radians(240), math.radians(22) * n)
    for i, char in enumerate(text):
        angle = -math.pi / 2 - span / 2 + (span * (i + 0.5) / n)
        tile = Image.new("RGBA", (70, 70), (0, 0, 0, 0))
        ImageDraw.Draw(tile).text((35, 35), char, font=font, fill=RED, anchor="mm")
        tile = tile.rotate(-math.degrees(angle + math.pi / 2), resample=Image.Resampling.BICUBIC)
        x = cx + radius * math.cos(angle) - 35
        y = cy + radius * math.sin(angle) - 35
        image.alpha_composite(tile, (int(x), int(y)))


def _ticks(draw: ImageDraw.ImageDraw, count: int, radius: float) -> None:
    cx = cy = SIZE / 2
    span = min(math.radians(240), math.radians(22) * max(count, 1))
    for i in range(count):
        angle = -math.pi / 2 - span / 2 + (span * (i + 0.5) / count)
        x, y = cx + radius * math.cos(angle), cy + radius * math.sin(angle)
        draw.ellipse((x - 9, y - 9, x + 9, y + 9), outline=RED, width=4)


def generate_seal_png(organisation: str, kind_label: str = "", code: str = "") -> bytes:
    """A 400×400 transparent PNG of a red round seal."""
    image = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((12, 12, SIZE - 12, SIZE - 12), outline=RED, width=14)
    _star(draw, SIZE / 2, SIZE / 2, 62)
    font_path = cjk_font_path()
    if font_path:
        name = organisation[:20]
        size = 46 if len(name) <= 12 else 36
        _arc_text(image, name, ImageFont.truetype(font_path, size), SIZE / 2 - 62)
        if kind_label:
            small = ImageFont.truetype(font_path, 30)
            draw.text((SIZE / 2, SIZE / 2 + 95), kind_label[:8], font=small, fill=RED, anchor="mm")
    else:
        _ticks(draw, min(len(organisation), 20), SIZE / 2 - 62)
    if code:
        latin = ImageFont.load_default(size=18)
        draw.text((SIZE / 2, SIZE / 2 + 130), code, font=latin, fill=RED, anchor="mm")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def validate_png(data: bytes) -> tuple[int, int]:
    """Check an uploaded seal picture; returns ``(width, height)`` in pixels.

    :raise InvalidImage: not PNG (``image_not_png``), too large (``image_too_large``),
        dimensions outside 100–1000 px (``image_bad_dimensions``) or corrupt
        (``image_corrupt``).
    """
    if not isinstance(data, bytes) or not data:
        raise InvalidImage("no image data", code="image_corrupt")
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidImage(f"the image is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES}",
                           code="image_too_large")
    if not data.startswith(PNG_MAGIC):
        raise InvalidImage("the image is not a PNG", code="image_not_png")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as probe:
            width, height = probe.size  # read from the header, before any pixel is decoded
            if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
                raise InvalidImage(f"the image is {width}×{height} px; each side must be "
                                   f"{MIN_SIDE}–{MAX_SIDE} px", code="image_bad_dimensions")
            probe.verify()
        with Image.open(io.BytesIO(data), formats=["PNG"]) as full:
            full.load()
    except InvalidImage:
        raise
    except Exception as exc:  # Pillow raises many types on corrupt input; the contract is one
        raise InvalidImage(f"the PNG is corrupt: {exc}", code="image_corrupt") from exc
    return width, height
