"""Training views from a COLMAP PINHOLE model, from in-memory arrays (synthetic scenes), and from a
NeRF-synthetic (Blender) folder, all resized to a working resolution."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vid2model.camera import Camera
from vid2model.errors import UserError
from vid2model.splat.train import TrainView


def working_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    s = min(1.0, max_side / max(width, height))
    return max(1, round(width * s)), max(1, round(height * s))


def _read_rgb(path: Path, size: tuple[int, int], bg: tuple[float, float, float] | None = None) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise UserError(f"cannot read image {path}; re-run the sfm stage to rewrite the undistorted images")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.dtype != np.uint8:
        img = (img / 257).astype(np.uint8)
    if img.shape[2] == 4:  # composite RGBA on the background colour (NeRF synthetic)
        a = img[..., 3:4].astype(np.float32) / 255
        b = np.array(bg or (0, 0, 0), np.float32)[::-1] * 255
        img = (img[..., :3] * a + b * (1 - a) + 0.5).astype(np.uint8)
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if (img.shape[1], img.shape[0]) != size:
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return img


def views_from_colmap(sparse_dir: Path, images_dir: Path, max_side: int) -> list[TrainView]:
    """One view per registered image of a PINHOLE model, resized to at most ``max_side`` pixels."""
    from vid2model.io.colmap import load_views

    out = []
    for v in load_views(sparse_dir):
        if v.model not in ("PINHOLE", "SIMPLE_PINHOLE"):
            raise UserError(f"splat training needs undistorted PINHOLE cameras, {sparse_dir} has {v.model}; "
                            "re-run the sfm stage")
        w, h = working_size(v.width, v.height, max_side)
        path = Path(images_dir) / v.name
        out.append(TrainView(name=v.name, camera=v.resized(w, h), load=lambda p=path, s=(w, h): _read_rgb(p, s)))
    return out


def views_from_arrays(images: np.ndarray, K: np.ndarray, cam_to_world: np.ndarray,
                      names: list[str] | None = None) -> list[TrainView]:
    """Views from in-memory images (N, H, W, 3) uint8, one K (3, 3) and poses (N, 4, 4) OpenCV c2w."""
    n, h, w = images.shape[:3]
    out = []
    for i in range(n):
        out.append(TrainView(name=names[i] if names else f"{i:04d}",
                             camera=Camera.from_cam_to_world(K, cam_to_world[i], w, h), load=lambda im=images[i]: im))
    return out


def views_from_nerf_synthetic(folder: Path, size: int, background=(1.0, 1.0, 1.0),
                              split: str = "train") -> list[TrainView]:
    """NeRF Blender scenes (``transforms_<split>.json``, RGBA PNGs) at ``size`` x ``size``, on ``background``."""
    folder = Path(folder)
    meta = json.loads((folder / f"transforms_{split}.json").read_text())
    out = []
    flip = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenGL camera axes -> OpenCV
    full = None
    for fr in meta["frames"]:
        path = folder / (fr["file_path"].removeprefix("./") + ".png")
        if full is None:
            import cv2

            full = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape[1]
        f = 0.5 * full / np.tan(0.5 * float(meta["camera_angle_x"]))
        s = size / full
        K = np.array([[f * s, 0, 0.5 * size], [0, f * s, 0.5 * size], [0, 0, 1.0]])
        c2w = np.asarray(fr["transform_matrix"], np.float64) @ flip
        out.append(TrainView(name=path.name, camera=Camera.from_cam_to_world(K, c2w, size, size),
                             load=lambda p=path: _read_rgb(p, (size, size), background)))
    return out
