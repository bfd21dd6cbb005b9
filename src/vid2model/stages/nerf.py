"""NeRF stage (optional): train a radiance field on the undistorted keyframes, write ``nerf/field.pt``."""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from vid2model.config import NerfConfig
from vid2model.errors import UserError
from vid2model.workspace import Workspace

log = logging.getLogger("vid2model")


def resolutions(cfg: NerfConfig) -> tuple[int, ...]:
    """Coarse to fine in three geometric steps (fewer when they coincide)."""
    lo, hi = min(cfg.coarse_resolution, cfg.resolution), cfg.resolution
    mid = int(round(math.sqrt(lo * hi)))
    return tuple(dict.fromkeys((lo, mid, hi)))


def run(ws: Workspace, cfg: NerfConfig) -> dict:
    """Train from ``dense/sparse`` cameras and ``dense/images``; resumable via ``nerf/checkpoint.pt``."""
    from vid2model.io.colmap import load_points
    from vid2model.nerf.scene import scene_spec
    from vid2model.nerf.train import NerfOptions, save_checkpoint, train
    from vid2model.splat.scenes import views_from_colmap
    from vid2model.splat.train import split_views
    from vid2model.stages.view_models import held_out_check, training_device

    if not ws.has_dense_cameras:
        raise UserError(f"no undistorted cameras in {ws.dense_sparse_dir}; run camera solving first "
                        "(vid2model sfm WORKSPACE)")
    views = views_from_colmap(ws.dense_sparse_dir, ws.undistorted_dir, cfg.max_side)
    if len(views) < 3:
        raise UserError(f"NeRF training needs at least 3 registered images, found {len(views)}")
    xyz, _ = load_points(ws.dense_sparse_dir)
    xyz = xyz[np.isfinite(xyz).all(1)] if len(xyz) else None
    train_idx, eval_idx = split_views(len(views), cfg.eval_every)
    spec = scene_spec(views, xyz, contract=cfg.scene == "unbounded", sh_degree=cfg.sh_degree, shell=cfg.shell)
    depths = _dense_depths(ws, views) if cfg.depth_weight > 0 else None
    opts = NerfOptions(iterations=cfg.iterations, batch_rays=cfg.batch_rays, resolutions=resolutions(cfg),
                       sh_degree=cfg.sh_degree, lr_density=cfg.lr_density, lr_color=cfg.lr_color,
                       tv_density=cfg.tv_density, tv_color=cfg.tv_color, exposure=cfg.exposure,
                       checkpoint_every=cfg.checkpoint_every, threads=cfg.threads,
                       depth_weight=cfg.depth_weight if depths is not None else 0.0, spread_weight=cfg.spread_weight)
    t0 = time.perf_counter()
    ws.nerf_dir.mkdir(parents=True, exist_ok=True)
    res = train(views, train_idx, eval_idx, spec, opts, checkpoint=ws.nerf_checkpoint,
                device=training_device(cfg.device, "nerf.device"), depths=depths)
    save_checkpoint(ws.nerf_field, {"field": res.field.state_dict()})
    summary = {
        "iterations": res.iterations, "resumed_from": res.resumed_from, "seconds": time.perf_counter() - t0,
        "train_seconds": res.seconds, "train_views": len(train_idx), "eval_views": len(eval_idx),
        "eval_psnr": res.eval_psnr, "train_psnr": res.train_psnr, "resolution": cfg.resolution,
        "grid_vertices": res.field.R, "shell": spec.shell if spec.contract else None,
        "grid_rows": res.rows, "image_size": [views[0].camera.width, views[0].camera.height],
        "scene": cfg.scene, "field": ws.relative(ws.nerf_field),
        "depth_prior_views": 0 if depths is None else sum(d is not None for d in depths),
    }
    if res.eval_psnr is not None:
        log.info("NeRF: held-out PSNR %.2f dB on %d views", res.eval_psnr, len(eval_idx))
    summary["held_out_check"] = held_out_check(res.train_psnr, res.eval_psnr, len(eval_idx), "the radiance field")
    return summary


def _dense_depths(ws: Workspace, views: list) -> list[np.ndarray | None] | None:
    """Each view's filtered dense depth map brought to its training size (nearest: no depth is blended with
    an empty pixel), None for views the dense stage left out; None when there are no depth maps at all."""
    import cv2

    from vid2model.io.colmap_dense import read_array

    out: list[np.ndarray | None] = []
    for v in views:
        path = ws.depth_map(v.name)
        if not path.exists():
            out.append(None)
            continue
        d = read_array(path)
        c = v.camera
        out.append(cv2.resize(d, (c.width, c.height), interpolation=cv2.INTER_NEAREST) if d.shape != (c.height, c.width)
                   else d)
    if not any(d is not None for d in out):
        log.info("NeRF: no dense depth maps, so no depth prior (run `vid2model dense` first for one)")
        return None
    return out
