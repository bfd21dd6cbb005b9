"""Operations on camera models shared by the mappers (sfm_mapping) and the rescue (sfm_rescue): ranking,
mapper options, pruning weakly held frames, and joining pieces through the frames they share.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from vid2model.io.colmap import SEED, bundle_adjust
from vid2model.ops.similarity import mean_rotation, rotation_angle_deg

log = logging.getLogger("vid2model")


def names_of(rec) -> set[str]:
    return {rec.image(i).name for i in rec.reg_image_ids()}


def model_score(rec) -> tuple[int, float]:
    """Ranking of candidate models: registered images first, then lower reprojection error."""
    return rec.num_reg_images(), -float(rec.compute_mean_reprojection_error())


def incremental_options(relaxed: bool):
    import pycolmap

    opts = pycolmap.IncrementalPipelineOptions()
    opts.random_seed = SEED
    # COLMAP's multi-threaded mapping steps reach different results under different thread timing (cameras
    # move a little between runs on a loaded machine); one thread gives the same cameras.
    opts.num_threads = 1
    opts.min_model_size = 3
    opts.multiple_models = True
    if relaxed:  # weaker views: accept smaller inlier sets and narrower initial baselines
        opts.min_num_matches = 10
        opts.mapper.init_min_num_inliers = 50
        opts.mapper.init_min_tri_angle = 8.0
        opts.mapper.abs_pose_min_num_inliers = 15
        opts.mapper.abs_pose_min_inlier_ratio = 0.15
        opts.mapper.max_reg_trials = 5
    return opts


def prune_weak_images(rec, min_points: int = 20, rel: float = 0.1) -> list[str]:
    """Deregister images held by too few 3D points to trust their pose; their names.

    Global SfM places every image its rotation averaging reaches, even one that shares only a dozen
    points with the rest; such poses can be far off while the reprojection error looks fine.
    """
    counts = {i: rec.image(i).num_points3D for i in rec.reg_image_ids()}
    if len(counts) < 3:
        return []
    floor = max(min_points, rel * float(np.median(list(counts.values()))))
    weak = [i for i, c in counts.items() if c < floor]
    names = []
    for i in weak:
        names.append(rec.image(i).name)
        rec.deregister_frame(rec.image(i).frame_id)
    if names:
        log.info("dropped %d weakly held images: %s", len(names), ", ".join(sorted(names)[:10]))
    return names


def pose(rec, image_id: int) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(rec.image(image_id).cam_from_world().matrix())
    return m[:, :3], m[:, 3]


def align_by_poses(src, tgt, max_rot_deg: float = 5.0, max_centre_rel: float = 0.1):
    """Similarity taking ``src``'s world to ``tgt``'s from the full poses of the frames both models
    registered (at least 2), or None when those frames disagree.

    Pieces that meet only at a weakly held frame or two share no 3D points, so a point- or
    reprojection-based alignment has nothing to work with; two shared camera poses still fix rotation,
    scale and translation.
    """
    import pycolmap

    tgt_ids = {tgt.image(i).name: i for i in tgt.reg_image_ids()}
    pairs = [(i, tgt_ids[src.image(i).name]) for i in src.reg_image_ids() if src.image(i).name in tgt_ids]
    if len(pairs) < 2:
        return None
    # tgt cam_from_world = src cam_from_world * sim^-1, so R_sim = R_tgt^T R_src for every shared frame
    Rs = np.array([pose(tgt, j)[0].T @ pose(src, i)[0] for i, j in pairs])
    R = mean_rotation(Rs)
    if max(rotation_angle_deg(R, r) for r in Rs) > max_rot_deg:
        return None
    cs = np.array([src.image(i).projection_center() for i, _ in pairs])
    ct = np.array([tgt.image(j).projection_center() for _, j in pairs])
    ds, dt = (cs - cs.mean(0)) @ R.T, ct - ct.mean(0)
    denom = float((ds ** 2).sum())
    if denom < 1e-18:
        return None
    s = float((ds * dt).sum() / denom)
    spread = float(np.linalg.norm(dt, axis=1).max())
    if s <= 0 or np.linalg.norm(s * ds - dt, axis=1).max() > max_centre_rel * 2 * spread:
        return None
    t = ct.mean(0) - s * R @ cs.mean(0)
    return pycolmap.Sim3d(s, pycolmap.Rotation3d(R), t)


def rotations(rec) -> dict[str, np.ndarray]:
    """World-to-camera rotation of each registered frame, by image name."""
    return {rec.image(i).name: pose(rec, i)[0] for i in rec.reg_image_ids()}


def centres(rec) -> dict[str, np.ndarray]:
    """Camera centre of each registered frame, by image name."""
    return {rec.image(i).name: np.asarray(rec.image(i).projection_center()) for i in rec.reg_image_ids()}


def merge_pieces(models: list, database: Path, images: Path, scratch: Path) -> tuple[Any, int, list]:
    """Merge models that share registered frames into the largest one.

    The similarity between two pieces comes from their shared frames (reprojection-based, with a
    camera-centre fallback); the frames only the other piece has are added with aligned poses, then
    points are re-triangulated and everything bundle-adjusted.

    Args:
        models: reconstructions from one database (same image and camera ids), largest first.

    Returns:
        (merged reconstruction, number of pieces merged into it, pieces left apart).
    """
    import pycolmap

    base = models[0]
    merged = 0
    pending = list(models[1:])
    progress = True
    while pending and progress:
        progress = False
        for other in list(pending):
            shared = names_of(base) & names_of(other)
            if len(shared) < 2:
                continue
            sim = pycolmap.align_reconstructions_via_reprojections(other, base, 0.3, 8.0)
            if sim is None and len(shared) >= 3:
                sim = pycolmap.align_reconstructions_via_proj_centers(other, base, 0.1 * extent(base))
            if sim is None:  # pieces meeting at weakly held frames share no points: align the shared poses
                sim = align_by_poses(other, base)
            if sim is None:
                continue
            other.transform(sim)
            for image_id in other.reg_image_ids():
                img = other.image(image_id)
                if base.exists_image(image_id):
                    known = base.image(image_id)
                    if not known.has_pose:  # loaded but unplaced in this piece: place it
                        frame = base.frame(known.frame_id)
                        frame.set_cam_from_world(img.camera_id, img.cam_from_world())
                        base.register_frame(known.frame_id)
                    continue
                if not base.exists_camera(img.camera_id):
                    base.add_camera_with_trivial_rig(img.camera)
                kp = np.array([p.xy for p in img.points2D], dtype=np.float64).reshape(-1, 2)
                new = pycolmap.Image(name=img.name, keypoints=kp, camera_id=img.camera_id, image_id=image_id)
                base.add_image_with_trivial_frame(new, img.cam_from_world())
            pending.remove(other)
            merged += 1
            progress = True
    if merged:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        base = pycolmap.triangulate_points(base, database, images, scratch, clear_points=True,
                                          options=incremental_options(relaxed=False))
        bundle_adjust(base)
    return base, merged, pending


def extent(rec) -> float:
    c = np.array([rec.image(i).projection_center() for i in rec.reg_image_ids()])
    return float(np.linalg.norm(c.max(0) - c.min(0))) if len(c) else 1.0
