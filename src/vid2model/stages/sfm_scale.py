"""Metric scale for the SfM stage: an ArUco marker of known size, or a known camera-to-camera distance."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from vid2model.config import SfmConfig
from vid2model.errors import UserError
from vid2model.ops.marker import detect_aruco, marker_edge_length
from vid2model.workspace import Workspace

log = logging.getLogger("vid2model")


def _marker_scale(ws: Workspace, rec, size: float) -> float | None:
    import cv2

    obs: dict[int, list] = {}
    for image_id in rec.reg_image_ids():
        img = rec.image(image_id)
        gray = cv2.imread(str(ws.images_dir / img.name), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            continue
        for mid, corners in detect_aruco(gray).items():
            norm = np.asarray(img.camera.cam_from_img(corners.astype(np.float64)))[:, :2]
            m = np.asarray(img.cam_from_world().matrix())
            obs.setdefault(mid, []).append((norm, m[:, :3], m[:, 3]))
    obs = {k: v for k, v in obs.items() if len(v) >= 2}
    if not obs:
        return None
    mid = max(obs, key=lambda k: len(obs[k]))
    edge, _ = marker_edge_length(obs[mid])
    log.info("marker %d seen in %d views; edge %.4f model units", mid, len(obs[mid]), edge)
    return size / edge


def metric_scale(ws: Workspace, rec, cfg: SfmConfig) -> tuple[float | None, str]:
    """Scale factor model units -> metres, and where it came from ('marker', 'known_distance' or 'none')."""
    if cfg.marker_size > 0:
        s = _marker_scale(ws, rec, cfg.marker_size)
        if s is None:
            raise UserError(f"--marker-size was given but no ArUco marker (DICT_4X4_50) was seen in two or more "
                            f"keyframes: print one and keep it in view, or drop --marker-size")
        return s, "marker"
    if cfg.known_distance > 0:
        names = [n.strip() for n in cfg.known_distance_images.split(",") if n.strip()]
        if len(names) != 2:
            raise UserError("a known distance needs two image names: --set sfm.known_distance_images=A.jpg,B.jpg")
        centers = []
        for n in names:
            img = rec.find_image_with_name(n)
            if img is None or not img.has_pose:
                raise UserError(f"image {n} is not among the solved cameras")
            centers.append(np.asarray(img.projection_center()))
        d = float(np.linalg.norm(centers[0] - centers[1]))
        if d <= 0:
            raise UserError("the two images for the known distance were taken from the same place")
        return cfg.known_distance / d, "known_distance"
    return None, "none"


