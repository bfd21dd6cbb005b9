"""Capture checks for the SfM stage: degenerate motion (turning in place) and too little parallax."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from vid2model.errors import UserError

log = logging.getLogger("vid2model")

ROTATION_ADVICE = ("the camera only turned in place (no sideways movement), so depth cannot be measured: "
                   "walk around the object or along the room instead of panning from one spot")


def homography_is_rotation(H: np.ndarray, min_angle_deg: float = 3.0, tol: float = 0.01) -> bool | None:
    """Whether a homography is a conjugate rotation K R K^-1 (a camera turning in place).

    Eigenvalue magnitudes are invariant to the unknown K: for K R K^-1 they are all equal (1 after
    fixing the determinant), while a translation seen across a plane makes them differ. Pairs whose
    homography barely rotates say nothing (None): a near-identity map fits both.
    """
    H = np.asarray(H, float)
    det = np.linalg.det(H) if np.isfinite(H).all() else 0.0
    if abs(det) < 1e-12:
        return None
    ev = np.linalg.eigvals(H / np.cbrt(det))
    if np.degrees(np.abs(np.angle(ev)).max()) < min_angle_deg:
        return None
    mag = np.abs(ev)
    return bool(mag.max() / mag.min() < 1 + tol)


def pair_geometry_stats(database: Path, min_inliers: int = 15) -> dict[str, float]:
    """Verified image pairs, and the share of them that look like pure rotations."""
    import pycolmap

    db = pycolmap.Database.open(database)
    try:
        _, geoms = db.read_two_view_geometries()
    finally:
        db.close()
    geoms = [g for g in geoms if len(g.inlier_matches) >= min_inliers]
    pano = sum(g.config == pycolmap.TwoViewGeometryConfiguration.PANORAMIC for g in geoms)
    rot = [homography_is_rotation(g.H) for g in geoms]
    rot = [r for r in rot if r is not None]
    return {"n_verified_pairs": len(geoms), "rotation_only_share": round(sum(rot) / max(len(rot), 1), 3),
            "n_rotating_pairs": len(rot), "panoramic_share": round(pano / max(len(geoms), 1), 3)}


def check_pairs(database: Path) -> dict[str, float]:
    """Raise a clear error before mapping when nearly every verified pair is a pure rotation."""
    stats = pair_geometry_stats(database)
    if stats["n_verified_pairs"] == 0:
        raise UserError("no two images could be matched: the views do not overlap or show too little texture; "
                        "film slowly with plenty of overlap between views")
    rotation = stats["n_rotating_pairs"] >= 3 and stats["rotation_only_share"] > 0.8
    if stats["n_verified_pairs"] >= 3 and (stats["panoramic_share"] > 0.7 or rotation):
        raise UserError(ROTATION_ADVICE)
    return stats


def median_triangulation_angle(rec, max_points: int = 5000) -> float:
    """Median over 3D points of the largest angle (degrees) between two of its viewing rays."""
    rng = np.random.default_rng(0)
    ids = list(rec.point3D_ids())
    if not ids:
        return 0.0
    if len(ids) > max_points:
        ids = [ids[i] for i in rng.choice(len(ids), max_points, replace=False)]
    centers = {i: np.asarray(rec.image(i).projection_center()) for i in rec.reg_image_ids()}
    angles = []
    for pid in ids:
        p = rec.point3D(pid)
        cs = np.array([centers[el.image_id] for el in p.track.elements if el.image_id in centers])
        if len(cs) < 2:
            continue
        rays = p.xyz - cs
        rays /= np.maximum(np.linalg.norm(rays, axis=1, keepdims=True), 1e-12)
        cos = np.clip(rays @ rays.T, -1, 1)
        angles.append(np.degrees(np.arccos(cos.min())))
    return float(np.median(angles)) if angles else 0.0


def check_motion(database: Path, rec, n_images: int) -> dict[str, float]:
    """Raise :class:`UserError` for a solved model without the parallax a 3D model needs."""
    tri = median_triangulation_angle(rec)
    log.info("median triangulation angle %.2f deg", tri)
    if tri < 0.5:
        raise UserError(ROTATION_ADVICE)
    return {"median_triangulation_angle_deg": round(tri, 3)}


MAX_MEAN_REPROJ_PX = 4.0  # COLMAP drops observations over 4 px while mapping: a larger mean is a broken solve


def check_solution(rec) -> None:
    """Refuse a solved model whose own statistics cannot be right (a diverged bundle adjustment)."""
    if rec.num_points3D():
        rec.update_point_3d_errors()  # the stored per-point errors can be stale after the last adjustment
        err = float(rec.compute_mean_reprojection_error())
    else:
        err = float("nan")
    params = np.concatenate([np.asarray(c.params, float) for c in rec.cameras.values()] or [np.zeros(1)])
    poses = np.array([np.asarray(rec.image(i).cam_from_world().matrix()) for i in rec.reg_image_ids()])
    if not (np.isfinite(err) and err <= MAX_MEAN_REPROJ_PX and np.isfinite(params).all()
            and np.isfinite(poses).all()):
        shown = f"{err:.3g} px" if np.isfinite(err) else "not a number"
        raise UserError(f"the camera solve broke down (mean reprojection error {shown}, at most "
                        f"{MAX_MEAN_REPROJ_PX:g} px is possible); run again, and if it repeats film more slowly "
                        "with more texture in view")
