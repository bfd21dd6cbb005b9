"""Metric scale from an ArUco marker of known size: detect its corners, triangulate, measure."""

from __future__ import annotations

import numpy as np


def detect_aruco(gray: np.ndarray, dictionary: int | None = None) -> dict[int, np.ndarray]:
    """ArUco markers in a grey uint8 image: {id: (4, 2) corner pixels}."""
    import cv2

    d = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50 if dictionary is None else dictionary)
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    corners, ids, _ = cv2.aruco.ArucoDetector(d, params).detectMarkers(gray)
    if ids is None:
        return {}
    return {int(i): c.reshape(4, 2) for i, c in zip(ids.ravel(), corners)}


def triangulate(rays_cam: list[np.ndarray], R_w2c: list[np.ndarray], t_w2c: list[np.ndarray]) -> np.ndarray:
    """Linear multi-view triangulation from normalised image points (x, y) (one per view)."""
    rows = []
    for (x, y), R, t in zip(rays_cam, R_w2c, t_w2c):
        P = np.hstack([R, t[:, None]])
        rows.append(x * P[2] - P[0])
        rows.append(y * P[2] - P[1])
    _, _, vt = np.linalg.svd(np.array(rows))
    X = vt[-1]
    return X[:3] / X[3]


def marker_edge_length(observations: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[float, np.ndarray]:
    """Mean edge length of a square marker in model units.

    Args:
        observations: per view (normalised corner coords (4, 2), R (3, 3), t (3,)).

    Returns:
        (mean edge length, corners (4, 3) in model coordinates).
    """
    corners = np.array([triangulate([o[0][k] for o in observations], [o[1] for o in observations],
                                    [o[2] for o in observations]) for k in range(4)])
    edges = np.linalg.norm(corners - np.roll(corners, -1, axis=0), axis=1)
    return float(edges.mean()), corners
