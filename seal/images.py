"""Seal pictures: generated red round seals, and validation of uploaded ones.

A generated seal looks like a Chinese round official seal (圆形公章): a thick red ring, a
five-pointed star in the middle, the organisation's name along the upper arc (each
character upright towards the rim), the seal kind (e.g. 证照专用章) straight across under the
star and the seal code along the lower arc.

Chinese text needs a CJK font, looked for at run time, first usable one wins:

1. the setting ``SEAL_FONT_PATH`` (``XSN_SEAL_FONT_PATH``), passed in by the caller as
   ``font_path``; when it is set it is the only candidate, so pointing it at a missing file
   turns the text off;
2. fontconfig: ``fc-match -f '%{file}' ':lang=zh'`` (checked: fontconfig answers with its
   best match even when that font has no Chinese), then ``fc-list :lang=zh``;
3. the well-known paths of Debian's ``fonts-arphic-*``, ``fonts-noto-cjk``,
   ``fonts-wqy-zenhei`` and ``fonts-wqy-microhei``.

A candidate is used only if it really draws Chinese glyphs (not the "missing glyph" box).
Without any, the picture is still produced, shape-only (ring, star, marks where the
characters would be, the seal code in Pillow's bundled Latin font) and a warning is logged
once, so seal creation never depends on what fonts a machine has.
"""

from __future__ import annotations

import functools
import io
import math
import os
import shutil
import struct
import subprocess
import threading

import structlog
from PIL import Image, ImageDraw, ImageFont

from common.errors import Problem

logger = structlog.get_logger("xsn.seal.images")

MAX_IMAGE_BYTES = 256 * 1024
MIN_SIDE, MAX_SIDE = 100, 1000
SIZE = 400
SCALE = 2  # drawn at 2× and reduced: smooth edges without relying on antialiased primitives
RED = (214, 0, 15, 255)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FONT_SETTING = "SEAL_FONT_PATH"
WELL_KNOWN_FONTS = (
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/arphic/ukai.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
)
_PROBE = "印章西安"  # glyphs a usable font must have
_MISSING = "\U0010fffd"  # a private-use code point no font covers: renders the .notdef glyph

# Geometry, in final (400 px) units.
RING_OUTER, RING_WIDTH = 192, 14
NAME_RADIUS = 145  # about the centre line of the organisation's name
STAR_RADIUS = 58
CODE_RADIUS = 166  # centre line of the seal code along the lower arc
KIND_Y = 100  # centre of the seal kind, below the centre
CHAR_ASPECT = 0.78  # characters of seals are condensed: narrower than tall


class InvalidImage(Problem):
    status, code, title = 422, "invalid_seal_image", "Invalid seal image"


# -- finding a font ----------------------------------------------------------------------------


def draws_chinese(path: str) -> bool:
    """Whether the font at ``path`` exists, loads and has real glyphs for Chinese characters."""
    try:
        font = ImageFont.truetype(path, 32)
    except (OSError, ValueError):
        return False

    def bitmap(char: str) -> bytes:
        canvas = Image.new("L", (48, 48), 0)
        ImageDraw.Draw(canvas).text((24, 24), char, font=font, fill=255, anchor="mm")
        return canvas.tobytes()

    blank, missing = bytes(48 * 48), bitmap(_MISSING)
    return all(bitmap(char) not in (missing, blank) for char in _PROBE)


def _fontconfig_candidates() -> list[str]:
    found: list[str] = []
    fc_match, fc_list = shutil.which("fc-match"), shutil.which("fc-list")
    try:
        if fc_match:
            out = subprocess.run([fc_match, "-f", "%{file}", ":lang=zh"], capture_output=True, text=True,
                                 timeout=10, check=False).stdout.strip()
            if out:
                found.append(out)
        if fc_list:
            out = subprocess.run([fc_list, ":lang=zh", "file"], capture_output=True, text=True, timeout=10,
                                 check=False).stdout
            found.extend(sorted(line.split(":")[0].strip() for line in out.splitlines() if line.strip()))
    except (OSError, subprocess.SubprocessError):
        pass
    return found


@functools.lru_cache(maxsize=8)
def _find_font(configured: str) -> str | None:
    candidates = [configured] if configured else [*_fontconfig_candidates(), *WELL_KNOWN_FONTS]
    for path in dict.fromkeys(candidates):
        if os.path.isfile(path) and draws_chinese(path):
            return path
    return None


_warned: set[str] = set()
_warned_lock = threading.Lock()


def cjk_font_path(configured: str = "") -> str | None:
    """Path of a font that renders Chinese, or ``None`` (warned once per setting).

    ``configured``: the ``SEAL_FONT_PATH`` setting; empty = look for one.
    """
    path = _find_font(configured)
    if path is None:
        with _warned_lock:
            first = configured not in _warned
            _warned.add(configured)
        if first:
            if configured:
                logger.warning("seal_font_unusable", path=configured, setting=f"XSN_{FONT_SETTING}",
                            effect="generated seal pictures are drawn shape-only, without text")
            else:
                logger.warning("seal_font_missing", hint="apt-get install fonts-wqy-microhei, or set "
                            f"XSN_{FONT_SETTING}", effect="generated seal pictures are drawn shape-only, without text")
    return path


@functools.lru_cache(maxsize=32)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


# -- drawing ---------------------------------------------------------------------------------------


def _star(draw: ImageDraw.ImageDraw, cx: float, cy: float, radius: float) -> None:
    points = []
    for i in range(10):
        r = radius if i % 2 == 0 else radius * 0.382
        angle = -math.pi / 2 + i * math.pi / 5
        points.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    draw.polygon(points, fill=RED)


def _glyph(char: str, font: ImageFont.FreeTypeFont, aspect: float, weight: float = 0.0) -> Image.Image:
    """One character, red on transparent, centred in its own tile, condensed to ``aspect``.

    ``weight`` thickens the strokes (a fraction of the font size): seal lettering is bold.
    """
    size = int(font.size * 1.5)
    tile = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(tile).text((size / 2, size / 2), char, font=font, fill=RED, anchor="mm",
                              stroke_width=round(font.size * weight), stroke_fill=RED)
    if aspect != 1:
        tile = tile.resize((max(1, round(size * aspect)), size), Image.Resampling.LANCZOS)
    return tile


def _place(image: Image.Image, tile: Image.Image, x: float, y: float, degrees: float) -> None:
    """Composite ``tile`` centred at ``(x, y)`` after rotating it counter-clockwise by ``degrees``."""
    rotated = tile.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True)
    image.alpha_composite(rotated, (round(x - rotated.width / 2), round(y - rotated.height / 2)))


def _name_layout(count: int) -> tuple[float, float, float]:
    """Angular step (radians), character size and radius (px) of the name's ``count`` characters.

    The name spans 150°–250° of the upper arc (short names spread out, long ones packed);
    characters are as large as their share of the arc allows, standing just inside the ring.
    """
    count = max(count, 1)
    span = min(max(count * 24.0, 150.0), 250.0)
    step = math.radians(span / count)
    size = max(20.0, min(50.0, NAME_RADIUS * step * 0.92 / CHAR_ASPECT))
    return step, size, RING_OUTER - RING_WIDTH - 7 - size / 2


def _name_arc(image: Image.Image, text: str, font_path: str, s: float) -> None:
    """The organisation's name clockwise along the upper arc, tops towards the rim."""
    cx = cy = SIZE * s / 2
    step, size, radius = _name_layout(len(text))
    font = _font(font_path, round(size * s))
    for i, char in enumerate(text):
        angle = -step * (len(text) - 1) / 2 + step * i  # 0 = top, positive = clockwise
        x, y = cx + radius * s * math.sin(angle), cy - radius * s * math.cos(angle)
        _place(image, _glyph(char, font, CHAR_ASPECT, 0.025), x, y, -math.degrees(angle))


def _code_arc(image: Image.Image, code: str, font: ImageFont.FreeTypeFont, s: float) -> None:
    """The seal code left to right along the lower arc, tops towards the centre."""
    cx = cy = SIZE * s / 2
    radius = CODE_RADIUS * s
    step = math.radians(4.6)
    for i, char in enumerate(code):
        angle = -step * (len(code) - 1) / 2 + step * i  # 0 = bottom, positive = to the right
        x, y = cx + radius * math.sin(angle), cy + radius * math.cos(angle)
        _place(image, _glyph(char, font, 1.0), x, y, math.degrees(angle))


def _kind_line(image: Image.Image, text: str, font_path: str, s: float) -> None:
    """The seal kind, straight across below the star, condensed like the name."""
    size = min(38.0, 210 / (max(len(text), 1) * CHAR_ASPECT * 1.06))
    font = _font(font_path, round(size * s))
    width = size * CHAR_ASPECT * 1.06
    cx, y = SIZE * s / 2, (SIZE / 2 + KIND_Y) * s
    for i, char in enumerate(text):
        x = cx + (i - (len(text) - 1) / 2) * width * s
        _place(image, _glyph(char, font, CHAR_ASPECT, 0.03), x, y, 0)


def _marks(draw: ImageDraw.ImageDraw, count: int, s: float) -> None:
    """Shape-only stand-ins for the name's characters: small rings along the upper arc."""
    cx = cy = SIZE * s / 2
    step, size, radius = _name_layout(count)
    dot = min(size * 0.3, 12) * s
    for i in range(count):
        angle = -step * (count - 1) / 2 + step * i
        x, y = cx + radius * s * math.sin(angle), cy - radius * s * math.cos(angle)
        draw.ellipse((x - dot, y - dot, x + dot, y + dot), outline=RED, width=round(3 * s))


def generate_seal_png(organisation: str, kind_label: str = "", code: str = "", *, font_path: str = "") -> bytes:
    """A 400×400 transparent PNG of a red round seal (see the module docstring).

    ``font_path``: the ``SEAL_FONT_PATH`` setting (empty: look for a CJK font).
    """
    s = SCALE
    image = Image.new("RGBA", (SIZE * s, SIZE * s), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    inset = (SIZE / 2 - RING_OUTER) * s
    draw.ellipse((inset, inset, SIZE * s - inset, SIZE * s - inset), outline=RED, width=RING_WIDTH * s)
    _star(draw, SIZE * s / 2, SIZE * s / 2, STAR_RADIUS * s)
    name = " ".join(organisation.split())[:32]
    usable = cjk_font_path(font_path)
    if usable:
        _name_arc(image, name, usable, s)
        if kind_label:
            _kind_line(image, kind_label[:10], usable, s)
        code_font = _font(usable, round(15 * s))
    else:
        _marks(draw, len(name), s)
        code_font = ImageFont.load_default(size=15 * s)
    if code:
        _code_arc(image, code[:24], code_font, s)
    image = image.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    # A one-colour picture needs no true colour: 32 palette entries (red at alpha levels, for
    # the anti-aliased edges) keep it smooth at a fifth of the size (~15 KB instead of ~75 KB).
    # The picture is inside every SESeal and so inside every signature the seal makes.
    image = image.quantize(colors=32, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


# -- uploads ---------------------------------------------------------------------------------------


def validate_png(data: bytes) -> tuple[int, int]:
    """Check an uploaded seal picture; returns ``(width, height)`` in pixels.

    :raise InvalidImage: not PNG (``image_not_png``), too large (``image_too_large``),
        dimensions outside 100–1000 px (``image_bad_dimensions``) or corrupt
        (``image_corrupt``). Dimensions come from the header before any pixel is decoded,
        so a "PNG bomb" (a small file declaring a huge picture) is refused without
        allocating it.
    """
    if not isinstance(data, bytes) or not data:
        raise InvalidImage("no image data", code="image_corrupt")
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidImage(f"the image is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES}",
                           code="image_too_large")
    if not data.startswith(PNG_MAGIC):
        raise InvalidImage("the image is not a PNG", code="image_not_png")
    # The IHDR chunk comes first (PNG §5.6): read the dimensions from it before Pillow opens
    # anything, so a small file declaring a huge picture is refused as such.
    if len(data) < 33 or data[12:16] != b"IHDR" or data[8:12] != b"\0\0\0\r":
        raise InvalidImage("the PNG has no valid header chunk (IHDR)", code="image_corrupt")
    width, height = struct.unpack(">II", data[16:24])
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise InvalidImage(f"the image is {width}×{height} px; each side must be "
                           f"{MIN_SIDE}–{MAX_SIDE} px", code="image_bad_dimensions")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as probe:
            if probe.size != (width, height):  # pragma: no cover - Pillow reads the same header
                raise InvalidImage("the PNG header is inconsistent", code="image_corrupt")
            probe.verify()
        with Image.open(io.BytesIO(data), formats=["PNG"]) as full:
            full.load()
    except InvalidImage:
        raise
    except Exception as exc:  # Pillow raises many types on corrupt input; the contract is one
        raise InvalidImage(f"the PNG is corrupt: {exc}", code="image_corrupt") from exc
    return width, height
