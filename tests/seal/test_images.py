"""Seal pictures: generated seals with and without a CJK font, and validation of uploads."""

from __future__ import annotations

import io
import os
import struct
import time
import zlib

import pytest
from PIL import Image

from seal import images
from seal.images import InvalidImage, generate_seal_png, validate_png

ORG = "西安市示范科技有限公司"
KIND = "证照专用章"
CODE = "6101260400000001"
# CI installs fonts-wqy-microhei together with Chromium (.ci/run ensure_debian_packages).
REQUIRE_FONT = os.environ.get("XSN_TEST_REQUIRE_BROWSER") == "1"


def _pixels(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image.convert("RGBA")


def _is_red(pixel) -> bool:
    r, g, b, _a = pixel
    return r >= 150 and g <= 90 and b <= 90


def _ink(image: Image.Image, box: tuple[int, int, int, int]) -> int:
    """Opaque pixels inside ``box``."""
    return sum(1 for pixel in image.crop(box).get_flattened_data() if pixel[3] > 128)


def _name_band_ink(image: Image.Image) -> int:
    """Opaque pixels between the star and the ring over the upper half: where the name goes."""
    cx = cy = image.width / 2
    count = 0
    for y in range(0, int(cy)):
        for x in range(image.width):
            if 100 ** 2 <= (x - cx) ** 2 + (y - cy) ** 2 <= 172 ** 2 and image.getpixel((x, y))[3] > 128:
                count += 1
    return count


def _png(width: int, height: int, *, mode: str = "RGBA", noise: bool = False) -> bytes:
    image = Image.frombytes(mode, (width, height), os.urandom(width * height * len(mode))) if noise \
        else Image.new(mode, (width, height), (200, 0, 0, 255)[: len(mode)])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _declared_png(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG whose header declares ``width``×``height`` (a "PNG bomb")."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (images.PNG_MAGIC + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _chunk(b"IEND", b""))


@pytest.fixture
def cjk_font() -> str:
    path = images.cjk_font_path()
    if path is None:
        if REQUIRE_FONT:
            pytest.fail("a CJK font is required on CI (apt-get install fonts-wqy-microhei)")
        pytest.skip("no CJK font on this machine (apt-get install fonts-wqy-microhei)")
    return path


@pytest.fixture
def warnings(monkeypatch) -> list[tuple[str, dict]]:
    """The warnings :mod:`seal.images` logs, as ``(event, fields)``."""
    logged: list[tuple[str, dict]] = []

    class Recorder:
        def warning(self, event, **fields):
            logged.append((event, fields))

    monkeypatch.setattr(images, "logger", Recorder())
    return logged


@pytest.fixture
def no_font(tmp_path, warnings) -> tuple[str, list[tuple[str, dict]]]:
    """A ``SEAL_FONT_PATH`` setting naming a missing file (the shape-only fallback), and the warnings."""
    return str(tmp_path / "no-such-font.ttc"), warnings


def test_generated_with_font_draws_name_and_kind(cjk_font, warnings, tmp_path):
    assert images.draws_chinese(cjk_font)
    with_text = generate_seal_png(ORG, KIND, CODE, font_path=cjk_font)
    assert validate_png(with_text) == (images.SIZE, images.SIZE)
    image = _pixels(with_text)
    assert image.size == (400, 400) and image.mode == "RGBA"
    assert image.getpixel((2, 2))[3] == 0 and image.getpixel((397, 397))[3] == 0  # transparent corners
    opaque = [pixel for pixel in image.get_flattened_data() if pixel[3] > 128]
    assert len(opaque) > 400 * 400 * 0.12
    assert sum(map(_is_red, opaque)) / len(opaque) > 0.98  # red dominates: nothing else is drawn

    shape_only = _pixels(generate_seal_png(ORG, KIND, CODE, font_path=str(tmp_path / "missing.ttc")))
    # The name fills the upper band far more than the fallback's small rings do ...
    assert _name_band_ink(image) > 2 * _name_band_ink(shape_only)
    # ... and the kind is written under the star (the fallback leaves that area empty).
    kind_area = (110, 280, 290, 320)
    assert _ink(image, kind_area) > 1500 and _ink(shape_only, kind_area) == 0
    assert [event for event, _ in warnings] == ["seal_font_unusable"]  # the font itself was fine


def test_generation_is_deterministic_and_handles_long_names(cjk_font):
    assert generate_seal_png(ORG, KIND, CODE) == generate_seal_png(ORG, KIND, CODE)
    long_name = "西安市某某区人民政府行政审批服务局第一分局综合业务受理窗口"
    for name, kind in ((long_name, "法定代表人名章"), ("秦岭", "公章"), ("Acme Xi'an Ltd", "合同专用章")):
        assert validate_png(generate_seal_png(name, kind, CODE)) == (400, 400)


def test_fallback_without_font_is_shape_only_and_warns_once(no_font):
    missing, warned = no_font
    assert images.cjk_font_path(missing) is None
    first = generate_seal_png(ORG, KIND, CODE, font_path=missing)
    second = generate_seal_png("另一家单位", "公章", "6101260100000002", font_path=missing)
    for png in (first, second):
        assert validate_png(png) == (400, 400)
        image = _pixels(png)
        opaque = [pixel for pixel in image.get_flattened_data() if pixel[3] > 128]
        assert len(opaque) > 400 * 400 * 0.08
        assert sum(map(_is_red, opaque)) / len(opaque) > 0.98
    assert [event for event, _ in warned] == ["seal_font_unusable"]
    assert warned[0][1]["path"].endswith("no-such-font.ttc")


def test_a_font_without_chinese_is_not_used(monkeypatch, warnings):
    latin = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    if not os.path.exists(latin):
        pytest.skip("no DejaVu font to stand for a Latin-only font")
    assert not images.draws_chinese(latin)
    assert images.cjk_font_path(latin) is None
    assert not images.draws_chinese("/nonexistent/font.ttf")


def test_setting_from_the_app_config(make_app, tokens, no_font):
    """Inside the service the setting comes from the app config (``XSN_SEAL_FONT_PATH``): the API
    passes it to seal registration, which draws a shape-only picture for a missing font."""
    missing, warned = no_font
    app = make_app("seal", SEAL_FONT_PATH=missing)
    assert app.config["SEAL_FONT_PATH"] == missing
    tokens.install(app)
    admin = tokens.bearer(sub="admin-1", scope="seal:admin", client_id="xsn-console")
    response = app.test_client().post("/seals", json={"org_code": "91110000600037341L", "org_name": ORG,
                                                      "kind": "license"}, headers=admin)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["image_generated"] and (body["image_width"], body["image_height"]) == (400, 400)
    assert validate_png(app.test_client().get(body["image_url"]).data) == (400, 400)
    assert any(fields.get("path") == missing for _, fields in warned)


# -- upload validation -------------------------------------------------------------------------------


def _refused(data: bytes) -> InvalidImage:
    with pytest.raises(InvalidImage) as caught:
        validate_png(data)
    assert caught.value.status == 422
    return caught.value


def test_valid_upload_sizes():
    assert validate_png(_png(100, 100)) == (100, 100)
    assert validate_png(_png(1000, 1000)) == (1000, 1000)
    assert validate_png(_png(300, 200, mode="RGB")) == (300, 200)


def test_not_png():
    gif = _refused(b"GIF89a" + b"\0" * 100)
    assert gif.code == "image_not_png"
    jpeg = io.BytesIO()
    Image.new("RGB", (200, 200), (200, 0, 0)).save(jpeg, format="JPEG")
    assert _refused(jpeg.getvalue()).code == "image_not_png"
    assert _refused(b"").code == "image_corrupt"


def test_oversized_file():
    big = _png(320, 320, mode="RGB", noise=True)  # random pixels do not compress
    assert len(big) > images.MAX_IMAGE_BYTES
    problem = _refused(big)
    assert problem.code == "image_too_large" and str(images.MAX_IMAGE_BYTES) in problem.detail


@pytest.mark.parametrize("size", [(99, 200), (200, 99), (1001, 500), (500, 1001), (1, 1)])
def test_dimensions_out_of_range(size):
    problem = _refused(_png(*size))
    assert problem.code == "image_bad_dimensions" and f"{size[0]}×{size[1]}" in problem.detail


def test_corrupt_and_truncated():
    good = _png(200, 200, noise=True)
    assert _refused(good[: len(good) // 2]).code == "image_corrupt"  # truncated mid-IDAT
    assert _refused(good[:40]).code == "image_corrupt"  # header only
    assert _refused(images.PNG_MAGIC).code == "image_corrupt"
    idat = good.index(b"IDAT")
    flipped = good[: idat + 20] + bytes([good[idat + 20] ^ 0xFF]) + good[idat + 21:]
    assert _refused(flipped).code == "image_corrupt"  # CRC mismatch
    no_end = good[: good.index(b"IEND") - 4]
    assert _refused(no_end).code == "image_corrupt"


def test_png_bomb_is_refused_from_the_header():
    bomb = _declared_png(100_000, 100_000)  # 40 GB of pixels declared in ~100 bytes
    assert len(bomb) < 200
    started = time.perf_counter()
    problem = _refused(bomb)
    assert problem.code == "image_bad_dimensions" and "100000×100000" in problem.detail
    assert time.perf_counter() - started < 1.0
    # Within the limits but with too little pixel data: corrupt, not a crash or a hang.
    assert _refused(_declared_png(1000, 1000)).code == "image_corrupt"


def test_generated_picture_is_small_and_keeps_transparency(cjk_font):
    """The picture travels inside every signature: palette PNG, transparent background."""
    png = images.generate_seal_png("西安市示范科技有限公司", "证照专用章", "6101260166554325")
    assert len(png) <= 32 * 1024
    picture = Image.open(io.BytesIO(png)).convert("RGBA")
    assert picture.getpixel((0, 0))[3] == 0
    assert picture.getpixel((200, 200))[0] > 180  # the red star in the middle
