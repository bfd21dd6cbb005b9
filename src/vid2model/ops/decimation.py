"""Quadric edge-collapse decimation of triangle meshes, vertex colours carried along.

fast-simplification (Fast Quadric Mesh Simplification) decimates a 1.6M-face Poisson mesh to 200k faces in
a sixth of open3d's time with the same accuracy against the ground truth (bench/results/).
"""

from __future__ import annotations

import numpy as np


def quadric(vertices: np.ndarray, faces: np.ndarray, target_faces: int,
            colors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """At most ``target_faces`` triangles: (V', 3) float64 vertices, (F', 3) int64 faces and, when
    ``colors`` [V, C] are given, each new vertex's colour as the mean of the vertices collapsed into it."""
    import fast_simplification as fs

    V = np.ascontiguousarray(vertices, np.float64)
    F = np.ascontiguousarray(faces, np.int64)
    if len(F) <= target_faces:
        return V, F, colors
    if colors is None:
        V2, F2 = fs.simplify(V, F, target_count=int(target_faces))
        return np.asarray(V2, np.float64), np.asarray(F2, np.int64), None
    V2, F2, collapses = fs.simplify(V, F, target_count=int(target_faces), return_collapses=True)
    # the replay gives the same mesh (in float32) and which new vertex each old one went into
    _, _, into = fs.replay_simplification(V, F.astype(np.int32), collapses)
    n = len(V2)
    counts = np.maximum(np.bincount(into, minlength=n), 1)[:, None]
    C = np.asarray(colors, np.float64)
    mean = np.stack([np.bincount(into, C[:, k], minlength=n) for k in range(C.shape[1])], 1) / counts
    return np.asarray(V2, np.float64), np.asarray(F2, np.int64), mean
