"""Descriptor matching for learned features: mutual nearest neighbours with a similarity floor and ratio test."""

from __future__ import annotations

import numpy as np


def _neighbour_pairs(kp: np.ndarray, centres: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """(query index, keypoint index) for every keypoint of ``kp`` within ``radius`` of each query centre."""
    from scipy.spatial import cKDTree

    lists = cKDTree(kp).query_ball_point(centres, radius)
    counts = np.fromiter((len(x) for x in lists), int, len(lists))
    q = np.repeat(np.arange(len(centres)), counts)
    k = np.fromiter((j for x in lists for j in x), int, int(counts.sum()))
    return q, k


def mutual_nn(d1: np.ndarray, d2: np.ndarray, min_sim: float = 0.82, max_ratio: float = 0.9,
              kp1: np.ndarray | None = None, kp2: np.ndarray | None = None, radius: float = 0.0) -> np.ndarray:
    """Indices (M, 2) uint32 of mutual nearest neighbours between L2-normalised descriptors.

    Args:
        d1, d2: (N1, D), (N2, D) L2-normalised descriptors.
        min_sim: cosine similarity a match needs (XFeat's own matcher uses 0.82).
        max_ratio: Lowe's ratio on Euclidean distances, best / second best, checked both ways (1 = off).
        kp1, kp2, radius: with keypoint positions, the second best is looked for only farther than
            ``radius`` from the best. Descriptors sampled from a coarse map are nearly equal for
            neighbouring keypoints; without this the ratio test rejects most right matches.
    """
    if len(d1) == 0 or len(d2) == 0:
        return np.zeros((0, 2), np.uint32)
    sim = np.asarray(d1, np.float32) @ np.asarray(d2, np.float32).T
    idx = np.arange(len(d1))
    j12 = sim.argmax(1)
    s12 = sim[idx, j12]
    # row i is its column's best exactly when its own best reaches that column's maximum (only
    # row-wise reductions: column argmax over a C-ordered matrix is slow)
    ok = (s12 >= sim.max(0)[j12]) & (s12 >= min_sim)
    if max_ratio < 1 and sim.shape[0] > 1 and sim.shape[1] > 1:
        spatial = radius > 0 and kp1 is not None and kp2 is not None
        # rows: hide each row's best (and the keypoints next to it in image 2)
        if spatial:
            q, k = _neighbour_pairs(np.asarray(kp2, float), np.asarray(kp2, float)[j12], radius)
            rows, cols = q, k
        else:
            rows, cols = idx, j12
        saved = sim[rows, cols].copy()
        sim[rows, cols] = -np.inf
        second12 = sim.max(1)
        sim[rows, cols] = saved
        # columns: hide only the candidate match (and the keypoints next to it in image 1)
        cand = idx[ok]
        if spatial:
            q, k = _neighbour_pairs(np.asarray(kp1, float), np.asarray(kp1, float)[cand], radius)
            rows, cols = k, j12[cand][q]
        else:
            rows, cols = cand, j12[cand]
        saved = sim[rows, cols].copy()
        sim[rows, cols] = -np.inf
        second21 = sim.max(0)[j12]
        sim[rows, cols] = saved

        def dist(c):  # unit vectors: |a - b|^2 = 2 - 2 cos
            return np.sqrt(np.maximum(2.0 - 2.0 * c, 0.0))

        ok &= dist(s12) <= max_ratio * np.minimum(dist(second12), dist(second21))
    return np.stack([idx[ok], j12[ok]], axis=1).astype(np.uint32)
