"""Images: files (JPEG/PNG/...) and arrays -> H x W x 3 uint8 RGB, whatever the mode; resizing and cropping."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError, MediaError
from .timeline import PathLike, _check_file

#: Images smaller than this (either side) are accepted but warned about.
MIN_IMAGE_SIDE = 32
# Pillow's own decompression-bomb guard (Image.MAX_IMAGE_PIXELS, process-wide) is left as the user has
# it: an image beyond it is a MediaError saying so (load_image), never a global raised for everyone.


def _target_size(width: int, height: int, smaller_side: int | None) -> tuple[int, int]:
    if smaller_side is None:
        return width, height
    scale = smaller_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))



def load_image(path: PathLike, *, max_side: int | None = 4096) -> np.ndarray:
    """An image file -> H x W x 3 uint8 RGB (EXIF orientation applied, alpha composited on white).

    Huge images are decoded at a reduced scale (JPEG draft mode) and shrunk so their longer side is
    at most ``max_side``: nothing l3net does needs more than 256 px.
    """
    path = Path(path)
    _check_file(path)
    try:
        with Image.open(path) as image:
            if max_side is not None and max(image.size) > max_side and image.format == "JPEG":
                image.draft("RGB", (max_side, max_side))
            image = ImageOps.exif_transpose(image)
            if max_side is not None and max(image.size) > max_side:
                image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            rgb = _pil_to_rgb(image)
    except Image.DecompressionBombError as exc:
        raise MediaError(path, f"image too large to decode safely ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MediaError(path, f"not an image Pillow can read, or truncated ({exc})") from exc
    _warn_if_tiny(rgb, str(path))
    return rgb


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _warn_if_tiny(image: np.ndarray, name: str) -> None:
    if min(image.shape[:2]) < MIN_IMAGE_SIDE:
        warnings.warn(
            f"{name}: image is only {image.shape[1]}x{image.shape[0]} px; it is upscaled, "
            "and its embedding carries little information"
        )


def to_rgb_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Validate one image array and return it H x W x 3 uint8.

    Accepts greyscale (H x W or H x W x 1), RGB and RGBA (alpha composited on white); uint8,
    uint16, or float (in [0, 1], or [0, 255] when the maximum exceeds 1).
    """
    x = np.asarray(image)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or x.shape[2] not in (1, 3, 4):
        raise InputError(f"{name}: expected H x W, H x W x 3 or H x W x 4, got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(f"{name}: empty image (shape {x.shape})")
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise InputError(f"{name}: image has NaN or infinite values")
        scale = 255.0 if x.max() <= 1.0 else 1.0
        x = np.clip(np.rint(x * scale), 0, 255).astype(np.uint8)
    elif x.dtype == np.uint16:
        x = (x // 257).astype(np.uint8)
    elif x.dtype.kind in "iu":
        if x.min() < 0 or x.max() > 255:
            raise InputError(f"{name}: integer pixel values must lie in [0, 255]")
        x = x.astype(np.uint8)
    else:
        raise InputError(f"{name}: unsupported pixel dtype {x.dtype}")
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    elif x.shape[2] == 4:
        alpha = x[:, :, 3:4].astype(np.float32) / 255.0
        x = np.rint(x[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    _warn_if_tiny(x, name)
    return np.ascontiguousarray(x)


def resize_smaller_side(image: np.ndarray, size: int) -> np.ndarray:
    """Scale an H x W x 3 uint8 image so its smaller side is ``size`` (aspect kept; bilinear, antialiased)."""
    height, width = image.shape[:2]
    new_w, new_h = _target_size(width, height, size)
    if (new_w, new_h) == (width, height):
        return image
    return np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=None))


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` x ``size`` square of an image at least that large."""
    height, width = image.shape[:2]
    if height < size or width < size:
        raise InputError(f"cannot crop {size}x{size} from a {width}x{height} image")
    top, left = (height - size) // 2, (width - size) // 2
    return image[top : top + size, left : left + size]
