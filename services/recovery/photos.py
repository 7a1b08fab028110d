"""The photo of a person holding their ID card: checked by content (never by
file name or declared type), bounded in bytes and pixels, and re-encoded
with Pillow so nothing of the upload but its pixels is kept — no EXIF (GPS,
device), no trailing data, no second image hidden in a PNG chunk.
Pure: bytes in, bytes out."""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from services.common.contract.errors import RuleViolation

__all__ = ["clean_photo", "PhotoLimits"]

_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}


class PhotoLimits:
    def __init__(self, max_bytes=5 * 1024 * 1024, max_pixels=24_000_000, min_side=200):
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.min_side = min_side


def _sniff(data):
    for magic, kind in _MAGIC.items():
        if data.startswith(magic):
            return kind
    return None


def clean_photo(data, limits=None):
    """``(jpeg_bytes, width, height)`` of the photo, re-encoded, or a
    RuleViolation: ``photo_too_large``, ``photo_not_image``,
    ``photo_too_many_pixels``, ``photo_too_small``."""
    limits = limits or PhotoLimits()
    if len(data) > limits.max_bytes:
        raise RuleViolation("photo_too_large", {"max_bytes": limits.max_bytes})
    kind = _sniff(data)
    if kind is None:
        raise RuleViolation("photo_not_image")
    try:
        with warnings.catch_warnings():
            # Pillow warns, then raises, on decompression bombs; the pixel
            # limit below is ours and is checked before any decoding.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[kind])
            width, height = image.size
            if width * height > limits.max_pixels:
                raise RuleViolation(
                    "photo_too_many_pixels", {"max_pixels": limits.max_pixels}
                )
            if min(width, height) < limits.min_side:
                raise RuleViolation("photo_too_small", {"min_side": limits.min_side})
            image.load()
            image = ImageOps.exif_transpose(image)
            if image.mode not in ("RGB", "L"):
                image = image.convert("RGB")
            out = io.BytesIO()
            image.save(out, format="JPEG", quality=88, optimize=True)
    except RuleViolation:
        raise
    except Image.DecompressionBombError:
        # Pillow's own ceiling, far above ours: a header claiming that many
        # pixels is refused as such, before anything is decoded.
        raise RuleViolation(
            "photo_too_many_pixels", {"max_pixels": limits.max_pixels}
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise RuleViolation("photo_not_image") from None
    return out.getvalue(), image.size[0], image.size[1]
