"""Image-folder input: common formats, EXIF orientation honoured, EXIF focal length as a prior."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from vid2model.errors import UserError

log = logging.getLogger("vid2model")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".heic"}


def list_images(folder: str | Path) -> list[Path]:
    """Image files of a folder, sorted by name (capture order for phone exports)."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"{folder} holds no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def read_image(path: Path, max_side: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB, upright per EXIF orientation, optionally downscaled."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if max_side and im.format == "JPEG":
                im.draft("RGB", (max_side, max_side))  # decode JPEG at a reduced scale: much faster
            if im.mode in _HIGH_DEPTH_MODES:
                im = _to_8bit(ImageOps.exif_transpose(im))
            im = ImageOps.exif_transpose(im).convert("RGB")
            if max_side and max(im.size) > max_side:
                s = max_side / max(im.size)
                im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.LANCZOS)
            return np.asarray(im)
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"cannot read image {path.name}: {exc}") from None


# PIL's convert("RGB") clips these at 255 (a 16-bit photo reads as all white): scale them instead.
_HIGH_DEPTH_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}


def _to_8bit(im):
    from PIL import Image

    a = np.asarray(im, dtype=np.float64)
    top = 65535.0 if im.mode.startswith("I;16") else max(float(np.nanmax(a)), 1.0)
    return Image.fromarray(np.clip(a * (255.0 / top), 0, 255).astype(np.uint8), "L")


def exif_focal_px(path: Path) -> float | None:
    """Focal length in pixels of the full image from EXIF, if recorded.

    Uses the 35 mm-equivalent focal length (defined on the 43.27 mm film diagonal), else the
    focal length in mm with the focal-plane resolution.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            exif = im.getexif()
            sub = exif.get_ifd(0x8769)
            w, h = im.size  # diagonal and long side do not depend on EXIF orientation
    except OSError:
        return None
    f35 = sub.get(0xA405) or exif.get(0xA405)
    if f35 and float(f35) > 0:
        return float(f35) / 43.267 * float(np.hypot(w, h))
    f_mm, xres, unit = sub.get(0x920A), sub.get(0xA20E), sub.get(0xA210, 2)
    mm_per_unit = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}.get(int(unit or 2))
    try:
        if f_mm and xres and mm_per_unit and float(f_mm) > 0 and float(xres) > 0:
            return float(f_mm) * float(xres) / mm_per_unit
    except (TypeError, ZeroDivisionError, ValueError):
        pass
    return None
