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
            im = ImageOps.exif_transpose(im).convert("RGB")
            if max_side and max(im.size) > max_side:
                s = max_side / max(im.size)
                im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.LANCZOS)
            return np.asarray(im)
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"cannot read image {path.name}: {exc}") from None


def exif_focal_px(path: Path) -> float | None:
    """Focal length in pixels of the upright full image from EXIF (35 mm equivalent), if recorded."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            exif = im.getexif()
            sub = exif.get_ifd(0x8769)
            f35 = sub.get(0xA405) or exif.get(0xA405)
            w, h = ImageOps.exif_transpose(im).size
    except OSError:
        return None
    if not f35:
        return None
    # 35 mm film is 36 mm wide: the equivalent focal maps onto the long side.
    return float(f35) / 36.0 * max(w, h)
