"""Reading images: the size in an image's header is checked before its pixels are decoded, so a huge file is one
line naming it instead of minutes of decoding (or PIL's decompression-bomb traceback)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import FormatError

MAX_IMAGE_PIXELS = 8192 * 8192
"""The most pixels :func:`read_image` reads by default; set ``divergen_lib.formats.images.MAX_IMAGE_PIXELS`` higher to
read larger images (past 89 MP, PIL's own ``PIL.Image.MAX_IMAGE_PIXELS`` too)."""
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def read_image(path: str | os.PathLike, mode: str = "RGB", max_pixels: int | None = None) -> np.ndarray:
    """An image as a uint8 array in PIL ``mode`` (RGB, RGBA or L). A missing, corrupt or larger image than
    ``max_pixels`` (default :data:`MAX_IMAGE_PIXELS`) raises FormatError naming it, before anything is decoded."""
    return read_image_and_alpha(path, mode, max_pixels)[0]


def read_image_and_alpha(
    path: str | os.PathLike, mode: str = "RGBA", max_pixels: int | None = None
) -> tuple[np.ndarray, bool]:
    """:func:`read_image`, and whether the file has an alpha channel (or a transparent colour)."""
    path = Path(path)
    limit = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # replaced by the limit here
        try:
            with Image.open(path) as img:
                width, height = img.size
                if width * height > limit:
                    raise FormatError(
                        f"{path}: {width}×{height} image ({width * height} pixels) is over the limit of {limit} pixels"
                    )
                alpha = img.mode in ALPHA_MODES or "transparency" in img.info
                img.load()
                return np.asarray(img.convert(mode)), alpha
        except FileNotFoundError:
            raise FormatError(f"{path}: image not found") from None
        except Image.DecompressionBombError:
            raise FormatError(
                f"{path}: image of more than {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels, over the limit of {limit} "
                "pixels"
            ) from None
        except (OSError, SyntaxError, ValueError) as err:
            if isinstance(err, FormatError):
                raise
            raise FormatError(f"{path}: unreadable image ({err})") from None
