"""The ID-card photo: judged by content, bounded, re-encoded without EXIF."""

import io

import pytest
from PIL import Image

from services.common.contract.errors import RuleViolation
from services.recovery.photos import PhotoLimits, clean_photo


def image_bytes(fmt="JPEG", size=(400, 300), exif=None, mode="RGB"):
    out = io.BytesIO()
    image = Image.new(mode, size, (200, 120, 40) if mode == "RGB" else None)
    kwargs = {"exif": exif} if exif is not None else {}
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def with_gps_exif():
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0112] = 6  # Orientation: rotated 90°
    exif[0x8825] = {2: (39.0, 54.0, 0.0)}  # GPSInfo: latitude
    return exif


def test_a_jpeg_is_re_encoded_without_exif_and_turned_upright():
    raw = image_bytes(exif=with_gps_exif())
    assert b"PhoneMaker" in raw
    clean, width, height = clean_photo(raw)
    assert b"PhoneMaker" not in clean and b"Exif" not in clean
    assert (width, height) == (300, 400)  # orientation applied, then dropped
    again = Image.open(io.BytesIO(clean))
    assert again.format == "JPEG" and not again.getexif()


def test_a_png_with_alpha_becomes_a_jpeg():
    clean, width, height = clean_photo(image_bytes("PNG", mode="RGBA"))
    assert clean.startswith(b"\xff\xd8\xff") and (width, height) == (400, 300)


def test_a_png_with_trailing_data_keeps_only_its_pixels():
    raw = image_bytes("PNG") + b"<script>alert(1)</script>"
    clean, _, _ = clean_photo(raw)
    assert b"script" not in clean


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"GIF89a" + b"\x00" * 100,
        b"%PDF-1.7\n",
        b"\xff\xd8\xff" + b"\x00" * 50,  # a JPEG header and nothing else
        b"BM" + b"\x00" * 60,  # BMP
        image_bytes()[:200],  # truncated
    ],
)
def test_what_is_not_a_whole_jpeg_or_png_is_refused(raw):
    with pytest.raises(RuleViolation) as refused:
        clean_photo(raw)
    assert refused.value.code == "photo_not_image"


def test_a_gif_named_like_a_jpeg_is_refused_by_content():
    out = io.BytesIO()
    Image.new("RGB", (400, 300)).save(out, format="GIF")
    with pytest.raises(RuleViolation) as refused:
        clean_photo(out.getvalue())
    assert refused.value.code == "photo_not_image"


def test_limits_in_bytes_pixels_and_size():
    raw = image_bytes()
    with pytest.raises(RuleViolation) as too_big:
        clean_photo(raw, PhotoLimits(max_bytes=len(raw) - 1))
    assert too_big.value.code == "photo_too_large"
    with pytest.raises(RuleViolation) as too_many:
        clean_photo(raw, PhotoLimits(max_pixels=400 * 300 - 1))
    assert too_many.value.code == "photo_too_many_pixels"
    with pytest.raises(RuleViolation) as too_small:
        clean_photo(image_bytes(size=(150, 600)))
    assert too_small.value.code == "photo_too_small"
    clean_photo(raw, PhotoLimits(max_bytes=len(raw), max_pixels=400 * 300))


def test_a_decompression_bomb_is_refused_before_decoding():
    # A PNG claiming 30000 x 30000 pixels in a few hundred bytes.
    out = io.BytesIO()
    Image.new("1", (30000, 30000)).save(out, format="PNG")
    assert len(out.getvalue()) < 200_000
    with pytest.raises(RuleViolation) as refused:
        clean_photo(out.getvalue())
    assert refused.value.code == "photo_too_many_pixels"
