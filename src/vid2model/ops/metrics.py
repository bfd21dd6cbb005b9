"""Reconstruction accuracy: precision / recall / F-score against a ground-truth surface, silhouette IoU."""

from __future__ import annotations

import numpy as np


def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Area-uniform random points (n, 3) on a triangle mesh."""
    rng = np.random.default_rng(seed)
    tri = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    idx = rng.choice(len(faces), n, p=area / area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    w = np.stack([1 - s, s * (1 - r2), s * r2], 1)
    return np.einsum("ij,ijk->ik", w, tri[idx])


def visible_points(points: np.ndarray, depth_maps: list[np.ndarray], Ks: list[np.ndarray],
                   w2cs: list[np.ndarray], tol: float = 0.01) -> np.ndarray:
    """Mask (N,) of points seen (not occluded) in at least one view, given each view's z-depth map."""
    return view_counts(points, depth_maps, Ks, w2cs, tol) > 0


def view_counts(points: np.ndarray, depth_maps: list[np.ndarray], Ks: list[np.ndarray],
                w2cs: list[np.ndarray], tol: float = 0.01) -> np.ndarray:
    """How many views (N,) see each point (in front, inside, not occluded), given each view's z-depth map,
    intrinsics K (3, 3) at the map's resolution and world-to-camera matrix."""
    from vid2model.camera import Camera
    from vid2model.ops.mvs.filtering import depth_seen_at

    seen = np.zeros(len(points), int)
    for depth, K, m in zip(depth_maps, Ks, w2cs):
        cam = Camera.from_world_to_cam(K, m, depth.shape[1], depth.shape[0])
        z, d, inside = depth_seen_at(points, depth, cam)
        seen += inside & (np.abs(z - d) <= tol * np.maximum(d, 1e-9))
    return seen


def fscore(pred: np.ndarray, gt: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall and F-score of point sets (N, 3) and (M, 3) at a distance threshold."""
    if len(pred) == 0 or len(gt) == 0:
        return {"precision": 0.0, "recall": 0.0, "fscore": 0.0}
    p, r = precision(pred, gt, threshold), precision(gt, pred, threshold)
    return {"precision": p, "recall": r, "fscore": 2 * p * r / (p + r) if p + r > 0 else 0.0}


def precision(pred: np.ndarray, gt: np.ndarray, threshold: float) -> float:
    """Share of ``pred`` (N, 3) within ``threshold`` of ``gt`` (M, 3). Cheaper than :func:`fscore` when only
    precision is wanted: searching a compact prediction from far-away samples (a whole scene's) is slow."""
    from scipy.spatial import cKDTree

    if len(pred) == 0 or len(gt) == 0:
        return 0.0
    # bounded: a point far from everything (a hole's GT sample) would otherwise search much of the tree
    return float((cKDTree(gt).query(pred, workers=-1, distance_upper_bound=threshold)[0] < threshold).mean())


def silhouette_iou(pred_mask: np.ndarray, gt_mask: np.ndarray) -> float:
    """Intersection over union of two boolean masks."""
    union = np.logical_or(pred_mask, gt_mask).sum()
    return float(np.logical_and(pred_mask, gt_mask).sum() / union) if union else 1.0
