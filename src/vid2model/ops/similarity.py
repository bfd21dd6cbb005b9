"""Similarity alignment (Umeyama) and camera-pose error metrics against ground truth."""

from __future__ import annotations

import numpy as np


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity with ``dst ~ s * R @ src + t``.

    Args:
        src, dst: (N, 3) corresponding points, N >= 3, not all collinear.

    Returns:
        (s, R (3, 3), t (3,)).
    """
    src = np.asarray(src, float)
    dst = np.asarray(dst, float)
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


def robust_umeyama(src: np.ndarray, dst: np.ndarray, iters: int = 5) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Umeyama refitted on inliers so that one misplaced camera does not skew the whole comparison.

    Inliers: residual under max(3 x median residual, 1e-9 x spread).

    Returns:
        (s, R, t, inlier mask (N,)).
    """
    src = np.asarray(src, float)
    dst = np.asarray(dst, float)
    mask = np.ones(len(src), bool)
    for _ in range(iters):
        s, R, t = umeyama(src[mask], dst[mask])
        res = np.linalg.norm(src @ R.T * s + t - dst, axis=1)
        new = res <= max(3 * np.median(res), 1e-9 * np.ptp(dst, axis=0).max())
        if new.sum() < 3 or (new == mask).all():
            break
        mask = new
    return s, R, t, mask


def similarity_residuals(src: np.ndarray, dst: np.ndarray, samples: int = 200) -> np.ndarray:
    """Residuals (N,) of ``dst`` under the similarity from ``src`` (N, 3) that most points fit.

    The best of ``samples`` random 3-point fits (lowest median residual), refitted by least squares on
    its nearer half: a few misplaced points do not drag the fit onto themselves, as they drag a plain
    least-squares fit (:func:`robust_umeyama` starts from one)."""
    rng = np.random.default_rng(0)
    n = len(src)
    best = None
    for _ in range(samples):
        idx = rng.choice(n, 3, replace=False)
        try:
            s, R, t = umeyama(src[idx], dst[idx])
        except np.linalg.LinAlgError:
            continue
        res = np.linalg.norm(src @ R.T * s + t - dst, axis=1)
        score = np.median(res)
        if np.isfinite(score) and (best is None or score < best[0]):
            best = (score, res)
    if best is None:
        return np.full(n, np.inf)
    keep = np.argsort(best[1])[: max(3, n // 2 + 1)]
    s, R, t = umeyama(src[keep], dst[keep])
    return np.linalg.norm(src @ R.T * s + t - dst, axis=1)


def rotation_angle_deg(Ra: np.ndarray, Rb: np.ndarray) -> float:
    """Angle of the relative rotation between two (3, 3) rotations, degrees."""
    c = (np.trace(Ra.T @ Rb) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(c, -1, 1))))


def project_rotation(M: np.ndarray) -> np.ndarray:
    """The rotation nearest (Frobenius) to a (3, 3) matrix."""
    U, _, Vt = np.linalg.svd(M)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt


def mean_rotation(Rs: np.ndarray, robust: bool = True, iters: int = 30) -> np.ndarray:
    """Mean of (N, 3, 3) rotations: chordal L2 mean, refined to the chordal L1 median when ``robust``.

    The L1 median (Weiszfeld iterations) keeps one badly wrong camera from tilting the alignment.
    """
    R = project_rotation(np.sum(Rs, axis=0))
    for _ in range(iters if robust else 0):
        w = 1.0 / np.maximum(np.linalg.norm(Rs - R, axis=(1, 2)), 1e-9)
        R = project_rotation(np.einsum("i,ijk->jk", w, Rs))
    return R


def pose_errors(est_c2w: np.ndarray, gt_c2w: np.ndarray) -> dict[str, float]:
    """Errors of estimated camera-to-world poses (N, 4, 4) vs ground truth, up to a similarity.

    Centres are aligned with a least-squares similarity (Umeyama, refitted without cameras whose
    residual exceeds 3x the median; their count is ``n_center_outliers``). Orientations are compared after
    the best global rotation fitted to the orientations themselves (chordal mean of R_gt R_est^T),
    so that small centre noise does not tilt the orientation comparison; ``rot_sim_*`` gives the
    errors under the centre-based similarity as well.

    Returns:
        rotation errors (median/max, degrees), centre errors (median/max) as a fraction of the GT
        trajectory extent (largest distance between GT centres), the alignment scale and extent.
    """
    est_c2w = np.asarray(est_c2w, float)
    gt_c2w = np.asarray(gt_c2w, float)
    s, R, t, inl = robust_umeyama(est_c2w[:, :3, 3], gt_c2w[:, :3, 3])
    centers = (s * (R @ est_c2w[:, :3, 3].T)).T + t
    extent = float(np.max(np.linalg.norm(gt_c2w[:, None, :3, 3] - gt_c2w[None, :, :3, 3], axis=-1)))
    cerr = np.linalg.norm(centers - gt_c2w[:, :3, 3], axis=1) / max(extent, 1e-12)
    R_rot = mean_rotation(gt_c2w[:, :3, :3] @ np.transpose(est_c2w[:, :3, :3], (0, 2, 1)))
    rerr = np.array([rotation_angle_deg(R_rot @ e[:3, :3], g[:3, :3]) for e, g in zip(est_c2w, gt_c2w)])
    rsim = np.array([rotation_angle_deg(R @ e[:3, :3], g[:3, :3]) for e, g in zip(est_c2w, gt_c2w)])
    return {"rot_median_deg": float(np.median(rerr)), "rot_max_deg": float(rerr.max()),
            "rot_sim_median_deg": float(np.median(rsim)), "rot_sim_max_deg": float(rsim.max()),
            "center_median_rel": float(np.median(cerr)), "center_max_rel": float(cerr.max()),
            "scale": s, "extent": extent, "n_center_outliers": int((~inl).sum()),
            "n_rot_over_5deg": int((rerr > 5).sum())}


def relative_rotation_errors(est_c2w: np.ndarray, gt_c2w: np.ndarray) -> np.ndarray:
    """Angles (degrees) between estimated and true relative rotations of consecutive cameras (N-1,).

    Independent of any global alignment: a check of the solved orientations alone.
    """
    out = []
    for i in range(len(est_c2w) - 1):
        re = est_c2w[i][:3, :3].T @ est_c2w[i + 1][:3, :3]
        rg = gt_c2w[i][:3, :3].T @ gt_c2w[i + 1][:3, :3]
        out.append(rotation_angle_deg(re, rg))
    return np.array(out)
