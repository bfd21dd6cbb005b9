"""Mapper strategy for the SfM stage: global first, incremental fallback, relaxed retry, piece merging.

A split model is never returned silently: pieces that share registered frames are merged (similarity
from the shared frames, then re-triangulation and bundle adjustment); what stays apart is reported.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vid2model.config import SfmConfig
from vid2model.errors import UserError

log = logging.getLogger("vid2model")


def _names(rec) -> set[str]:
    return {rec.image(i).name for i in rec.reg_image_ids()}


def _score(rec) -> tuple[int, float]:
    """Ranking of candidate models: registered images first, then lower reprojection error."""
    return rec.num_reg_images(), -float(rec.compute_mean_reprojection_error())


def _incremental_options(relaxed: bool):
    import pycolmap

    opts = pycolmap.IncrementalPipelineOptions()
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


def run_mapper(kind: str, database: Path, images: Path, out: Path) -> list:
    """One mapper run; the models it produced, largest first (empty when it failed)."""
    import pycolmap

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    try:
        if kind == "global":
            models = pycolmap.global_mapping(database, images, out)
        else:
            models = pycolmap.incremental_mapping(database, images, out, _incremental_options(kind == "relaxed"))
    except Exception as exc:  # noqa: BLE001 - a mapper failing is a result; another may succeed
        log.warning("%s mapping failed: %s", kind, exc)
        return []
    models = [m for m in models.values() if m.num_reg_images() >= 3]
    for m in models:
        prune_weak_images(m)
    return sorted(models, key=_score, reverse=True)


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
            shared = _names(base) & _names(other)
            if len(shared) < 2:
                continue
            sim = pycolmap.align_reconstructions_via_reprojections(other, base, 0.3, 8.0)
            if sim is None and len(shared) >= 3:
                sim = pycolmap.align_reconstructions_via_proj_centers(other, base, 0.1 * _extent(base))
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
        base = pycolmap.triangulate_points(base, database, images, scratch, clear_points=True)
        pycolmap.bundle_adjustment(base, pycolmap.BundleAdjustmentOptions())
    return base, merged, pending


def _extent(rec) -> float:
    c = np.array([rec.image(i).projection_center() for i in rec.reg_image_ids()])
    return float(np.linalg.norm(c.max(0) - c.min(0))) if len(c) else 1.0


def solve(database: Path, images: Path, names: list[str], scratch: Path, cfg: SfmConfig,
          add_pairs: Callable[[list[str]], int]) -> tuple[Any, dict[str, Any]]:
    """Run the mappers until every image is placed in one model or all options are spent.

    Args:
        names: all image names to place.
        scratch: folder for mapper outputs.
        add_pairs: callback matching the given unplaced images more widely; returns pairs added.

    Returns:
        (best reconstruction, info: mapper, n_models, pieces_merged, unregistered, timings).
    """
    # Measured on 2 CPU cores (bench/bench_sfm.py): up to ~150 images incremental mapping is as fast
    # as global and places weakly connected images more reliably; beyond that global wins on time.
    auto = ["incremental", "global"] if len(names) <= cfg.incremental_max_images else ["global", "incremental"]
    order = {"global": ["global"], "incremental": ["incremental"]}.get(cfg.mapper, auto) + ["relaxed"]
    best, best_info, tried = None, {}, []
    for kind in order:
        if kind == "relaxed":
            missing = [n for n in names if best is None or n not in _names(best)]
            added = add_pairs(missing)
            log.info("retrying with relaxed incremental mapping (%d extra pairs)", added)
        t0 = time.perf_counter()
        models = run_mapper(kind, database, images, scratch / kind)
        n_merged = 0
        if len(models) > 1:
            rec, n_merged, apart = merge_pieces(models, database, images, scratch / f"{kind}_merged")
            if n_merged:
                log.info("%s mapping: merged %d pieces through shared frames", kind, n_merged)
                models = sorted([rec] + apart, key=_score, reverse=True)
        dt = round(time.perf_counter() - t0, 2)
        if not models:
            tried.append({"mapper": kind, "registered": 0, "s": dt})
            continue
        rec = models[0]
        n_reg, neg_err = _score(rec)
        tried.append({"mapper": kind, "registered": n_reg, "models": len(models), "reproj_px": round(-neg_err, 3),
                      "s": dt})
        log.info("%s mapping: %d/%d images in the largest of %d models, %.2f px", kind, n_reg, len(names),
                 len(models), -neg_err)
        if best is None or _score(rec) > _score(best):
            best = rec
            best_info = {"mapper": kind, "n_models": len(models), "pieces_merged": n_merged}
        if best.num_reg_images() == len(names):
            break
    if best is None:
        raise UserError("no camera could be placed: the images share too few features. Film with more overlap "
                        "(move slower) and more texture in view")
    registered = _names(best)
    missing = [n for n in names if n not in registered]
    if len(registered) < max(3, 0.3 * len(names)):
        raise UserError(f"only {len(registered)} of {len(names)} frames could be placed: the views overlap too "
                        f"little or the camera barely moved; move slowly around the object with overlap")
    if missing:
        log.warning("%d of %d images could not be joined to the model: %s", len(missing), len(names),
                    ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
    return best, {**best_info, "unregistered": missing, "mapper_attempts": tried,
                  "mapping_s": round(sum(t["s"] for t in tried), 2)}
