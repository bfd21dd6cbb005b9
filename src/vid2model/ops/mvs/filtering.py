"""Source-view selection, geometric consistency between depth maps, back-projection, normals."""

from __future__ import annotations

import numpy as np


def select_sources(ref: int, centers: np.ndarray, axes: np.ndarray, covis: np.ndarray, depth: float, k: int,
                   min_angle: float = 4.0, max_angle: float = 40.0) -> list[int]:
    """Pick ``k`` source views for ``ref``: many shared sparse points and a useful baseline.

    Args:
        ref: reference view index.
        centers: (N, 3) camera centres.
        axes: (N, 3) unit viewing directions.
        covis: (N, N) number of shared sparse points.
        depth: typical scene depth of the reference view.
        k: number of sources.
        min_angle, max_angle: preferred triangulation angle (degrees) at the scene point ahead of ``ref``.
    """
    p = centers[ref] + axes[ref] * depth
    a = p - centers[ref]
    score = np.full(len(centers), -np.inf)
    for j in range(len(centers)):
        if j == ref or axes[ref] @ axes[j] < np.cos(np.radians(75)):
            continue
        b = p - centers[j]
        ang = np.degrees(np.arccos(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12), -1, 1)))
        # prefer angles inside the band; penalise tiny baselines (poor depth) and wide ones (poor matching)
        w = 1.0 if min_angle <= ang <= max_angle else max(0.05, ang / min_angle) if ang < min_angle else 0.2
        score[j] = (covis[ref, j] + 1.0) * w
    order = [int(j) for j in np.argsort(-score) if np.isfinite(score[j])]
    return order[:k]


def backproject(depth: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """World points (H, W, 3) of a z-depth map (H, W)."""
    H, W = depth.shape
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    rays = np.stack([u, v, np.ones_like(u)], -1).astype(np.float64) @ np.linalg.inv(K).T
    X = rays * depth[..., None]
    return (X - t) @ R  # R^T (X - t)


def consistency(ref_depth: np.ndarray, ref_cam, src_depths: list[np.ndarray], src_cams: list,
                max_px: float = 1.0, max_rel: float = 0.01) -> np.ndarray:
    """Number of source depth maps that agree with each reference pixel (H, W) int.

    A pixel agrees with a source when its 3D point, projected into the source, lands on a depth
    whose back-projection reprojects within ``max_px`` pixels and ``max_rel`` relative depth.
    """
    import cv2

    H, W = ref_depth.shape
    valid = ref_depth > 0
    X = backproject(np.where(valid, ref_depth, 1.0), ref_cam.K, ref_cam.R, ref_cam.t)
    u0, v0 = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    count = np.zeros((H, W), np.int32)
    for d_s, cam in zip(src_depths, src_cams):
        xs = X @ cam.R.T + cam.t
        zs = xs[..., 2]
        uv = xs[..., :2] / np.maximum(zs[..., None], 1e-9) @ np.eye(2) * 1.0
        px = cam.K[0, 0] * uv[..., 0] + cam.K[0, 2]
        py = cam.K[1, 1] * uv[..., 1] + cam.K[1, 2]
        ds = cv2.remap(d_s.astype(np.float32), px.astype(np.float32), py.astype(np.float32), cv2.INTER_NEAREST,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        ok = (ds > 0) & (zs > 0)
        # the source's own 3D point at that pixel, brought back into the reference camera
        Xc = np.stack([(px - cam.K[0, 2]) / cam.K[0, 0] * ds, (py - cam.K[1, 2]) / cam.K[1, 1] * ds, ds], -1)
        Xs_s = (Xc - cam.t) @ cam.R
        xr = Xs_s @ ref_cam.R.T + ref_cam.t
        zr = xr[..., 2]
        pr = np.stack([ref_cam.K[0, 0] * xr[..., 0] / np.maximum(zr, 1e-9) + ref_cam.K[0, 2],
                       ref_cam.K[1, 1] * xr[..., 1] / np.maximum(zr, 1e-9) + ref_cam.K[1, 2]], -1)
        err = np.hypot(pr[..., 0] - u0, pr[..., 1] - v0)
        rel = np.abs(zr - ref_depth) / np.maximum(ref_depth, 1e-9)
        count += (ok & valid & (err < max_px) & (rel < max_rel)).astype(np.int32)
    return count


def depth_normals(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame unit normals (H, W, 3) from a depth map, facing the camera (zeros where invalid)."""
    H, W = depth.shape
    X = backproject(depth, K, np.eye(3), np.zeros(3))
    dx = np.zeros_like(X)
    dy = np.zeros_like(X)
    dx[:, 1:-1] = X[:, 2:] - X[:, :-2]
    dy[1:-1] = X[2:] - X[:-2]
    n = np.cross(dx, dy)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(norm > 1e-12, n / np.maximum(norm, 1e-12), 0)
    flip = (n * X).sum(-1) > 0
    n[flip] *= -1
    bad = (depth <= 0)
    bad[:, 1:] |= depth[:, :-1] <= 0
    bad[:, :-1] |= depth[:, 1:] <= 0
    bad[1:] |= depth[:-1] <= 0
    bad[:-1] |= depth[1:] <= 0
    n[bad] = 0
    return n.astype(np.float32)
