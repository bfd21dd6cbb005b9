"""Similarity alignment (Umeyama) and camera-pose error metrics against ground truth."""

from __future__ import annotations

import numpy as np


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity with ``dst ~ s * R @ src + t``.

    Args:
        src, dst: (N, 3) corresponding points, N >= 3.

    Returns:
        (s, R (3, 3), t (3,)).
    """
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1
    R = U @ D @ Vt
    var = (xs ** 2).sum() / len(src)
    s = float(np.trace(np.diag(S) @ D) / var)
    return s, R, mu_d - s * R @ mu_s


def rotation_angle_deg(Ra: np.ndarray, Rb: np.ndarray) -> float:
    """Angle of the relative rotation between two (3, 3) rotations, degrees."""
    c = (np.trace(Ra.T @ Rb) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(c, -1, 1))))


def pose_errors(est_c2w: np.ndarray, gt_c2w: np.ndarray) -> dict[str, float]:
    """Errors of estimated camera-to-world poses (N, 4, 4) vs ground truth after a similarity alignment.

    Returns:
        rotation errors (median/max, degrees), centre errors (median/max) as a fraction of the GT
        trajectory extent (largest distance between GT centres), and the alignment scale.
    """
    s, R, t = umeyama(est_c2w[:, :3, 3], gt_c2w[:, :3, 3])
    centers = (s * (R @ est_c2w[:, :3, 3].T)).T + t
    extent = float(np.max(np.linalg.norm(gt_c2w[:, None, :3, 3] - gt_c2w[None, :, :3, 3], axis=-1)))
    cerr = np.linalg.norm(centers - gt_c2w[:, :3, 3], axis=1) / max(extent, 1e-12)
    rerr = np.array([rotation_angle_deg(R @ e[:3, :3], g[:3, :3]) for e, g in zip(est_c2w, gt_c2w)])
    return {"rot_median_deg": float(np.median(rerr)), "rot_max_deg": float(rerr.max()),
            "center_median_rel": float(np.median(cerr)), "center_max_rel": float(cerr.max()),
            "scale": s, "extent": extent}
