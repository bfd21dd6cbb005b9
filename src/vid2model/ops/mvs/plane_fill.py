"""Depth for plain horizontal surfaces (a table top, a floor, a ceiling of one flat colour) that stereo cannot
measure: each plain region of a depth map takes the level its measured rim agrees on, where nothing contradicts.

Stereo needs texture; a region of one flat colour gets no depth at any scale. Its rim does: where a plain
floor meets a table's leg or a box's base, those pixels are measured, and when most of the rim lies at one
height the region is taken to be the horizontal plane at that height (gravity-up is known from the scene
frame). A filled point is dropped where another view measured a surface behind it (that view sees through
it: free space), where the plane is seen at a grazing angle, beyond the depth range of the view's sparse
points, or outside the scene's region. Plain regions whose rim does not agree on one level (the sky beside
an object, a wall) stay empty.
"""

from __future__ import annotations

import numpy as np

from vid2model.camera import Camera
from vid2model.ops.mvs.filtering import depth_seen_at


def fill_levels(depth: np.ndarray, plain: np.ndarray, cam: Camera, up: np.ndarray, *, tol: float, max_depth: float,
                min_cos: float, region: tuple[np.ndarray, float] | None = None, min_area: int = 150, min_rim: int = 30,
                rim_share: float = 0.6, rim_px: int = 6) -> np.ndarray:
    """Depths (H, W) for the plain pixels without depth whose region's rim agrees on one horizontal level.

    Args:
        depth: (H, W) z-depth of the measured pixels, 0 = none.
        plain: (H, W) bool, pixels without texture (no stereo can measure them).
        cam: the view's camera at the map's resolution.
        up: (3,) unit up vector of the world.
        tol: how far (world units) rim heights may lie from their level.
        max_depth: no fill farther than this (the view's depth range).
        min_cos: no fill where the ray meets the plane at a cosine under this (grazing).
        region: (centre (3,), radius): no fill outside this ball.
        min_area: smallest plain region filled (pixels).
        min_rim: fewest measured rim pixels that must agree on the level.
        rim_share: share of the rim's measured pixels that must lie within ``tol`` of the level.
        rim_px: rim width in pixels.

    Returns:
        (H, W) float32 depths, 0 where nothing was filled.
    """
    import cv2

    H, W = depth.shape
    out = np.zeros((H, W), np.float32)
    todo = plain & (depth <= 0)
    if not todo.any():
        return out
    up = np.asarray(up, float) / np.linalg.norm(up)
    centre = cam.center
    rays = cam.pixel_rays(H, W) @ cam.R  # world directions of z = 1 camera rays (H, W, 3)
    # A horizontal plane under the camera is seen only below the horizon, one above it only above: a plain
    # floor and the plain sky or wall behind it meet at the horizon, and as one region their rim (the
    # floor's contacts and the objects' outlines against the sky) agreed on no level.
    below = (rays @ up) < 0
    n_lo, lab_lo = cv2.connectedComponents((todo & below).astype(np.uint8), connectivity=8)
    n_hi, lab_hi = cv2.connectedComponents((todo & ~below).astype(np.uint8), connectivity=8)
    labels = np.where(lab_hi > 0, lab_hi + n_lo - 1, lab_lo).astype(np.int32)
    area = np.bincount(labels.ravel(), minlength=n_lo + n_hi - 1)
    big = np.flatnonzero(area >= min_area)
    big = big[big > 0]
    if not len(big):
        return out
    # each measured pixel next to a region counts for the region beside it (the largest label in reach)
    near = cv2.dilate(labels.astype(np.float32), np.ones((2 * rim_px + 1,) * 2, np.uint8)).astype(np.int64)
    rim = (depth > 0) & (near > 0) & (labels == 0)
    rim_label = near[rim]
    rim_height = ((centre + depth[rim][:, None] * rays[rim]) @ up)
    ray_up = rays @ up  # (H, W): height change per unit of depth along each ray
    ray_len = np.linalg.norm(rays, axis=-1)
    for lab in big:
        hs = rim_height[rim_label == lab]
        if len(hs) < min_rim:
            continue
        level = _agreed_level(hs, tol, min_rim, rim_share)
        if level is None:
            continue
        m = labels == lab
        z = np.zeros((H, W), np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            z[m] = (level - centre @ up) / ray_up[m]
        ok = m & (z > 0) & (z <= max_depth) & (np.abs(ray_up) >= min_cos * ray_len)
        if region is not None and ok.any():
            X = centre + z[ok][:, None] * rays[ok]
            inside = np.linalg.norm(X - region[0], axis=1) <= region[1]
            ok[ok] = inside
        out[ok] = z[ok]
    return out


def _agreed_level(heights: np.ndarray, tol: float, min_rim: int, share: float) -> float | None:
    """The height most of ``heights`` lie within ``tol`` of (at least ``share`` of them and ``min_rim``), or None."""
    lo = heights.min()
    bins = np.floor((heights - lo) / tol).astype(np.int64)
    counts = np.bincount(bins)
    # a level straddling two bins: count each bin with its neighbours
    wide = counts + np.concatenate([[0], counts[:-1]]) + np.concatenate([counts[1:], [0]])
    b = int(np.argmax(wide))
    guess = float(np.median(heights[np.abs(bins - b) <= 1]))
    inliers = np.abs(heights - guess) <= tol
    if inliers.sum() < min_rim or inliers.mean() < share:
        return None
    return float(np.median(heights[inliers]))


def seen_through(points: np.ndarray, depths: list[np.ndarray], cams: list, rel: float = 0.03,
                 min_gap: float = 0.0) -> np.ndarray:
    """How many of the views (N,) measured a surface clearly behind each point (N, 3): a view that sees
    through a point says the point is not there.

    ``cams`` are at their depth maps' resolution; "clearly behind" is farther by ``rel`` of the point's
    depth and by at least ``min_gap``.
    """
    count = np.zeros(len(points), np.int32)
    for d, cam in zip(depths, cams):
        z, measured, inside = depth_seen_at(points, d, cam)
        count += (inside & (measured > z + np.maximum(rel * z, min_gap))).astype(np.int32)
    return count
