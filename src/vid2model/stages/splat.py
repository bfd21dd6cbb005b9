"""Splat stage: train 3D Gaussian splats on the undistorted keyframes, write ``splat/point_cloud.ply``."""

from __future__ import annotations

import logging
import time

import numpy as np

from vid2model.config import SplatConfig
from vid2model.errors import UserError
from vid2model.stages.view_models import held_out_check, training_device
from vid2model.workspace import Workspace

log = logging.getLogger("vid2model")


def _init_points(ws: Workspace, max_points: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """Seed points (N, 3) and colours (N, 3) uint8: the fused dense cloud when present, else SfM points."""
    if ws.fused_ply.exists():
        from plyfile import PlyData

        v = PlyData.read(str(ws.fused_ply))["vertex"].data
        xyz = np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float64)
        names = v.dtype.names
        rgb = (np.stack([v["red"], v["green"], v["blue"]], 1).astype(np.uint8) if "red" in names
               else np.full((len(xyz), 3), 128, np.uint8))
        source = "dense"
    else:
        from vid2model.io.colmap import load_points

        xyz, rgb = load_points(ws.dense_sparse_dir)
        source = "sparse"
    ok = np.isfinite(xyz).all(1)
    return (*subsample_points(xyz[ok], rgb[ok], max_points, seed), source)


def subsample_points(xyz: np.ndarray, rgb: np.ndarray, max_points: int, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` of the seed points [N, 3] and their colours [N, 3], drawn without replacement."""
    if len(xyz) <= max_points:
        return xyz, rgb
    idx = np.random.default_rng(seed).choice(len(xyz), max_points, replace=False)
    return xyz[idx], rgb[idx]


def run(ws: Workspace, cfg: SplatConfig) -> dict:
    """Train splats from ``dense/sparse`` cameras and ``dense/images``; resumable via ``splat/checkpoint.pt``."""
    from vid2model.io.splat_formats import SplatData, write_ply
    from vid2model.splat.scenes import views_from_colmap
    from vid2model.splat.train import TrainOptions, split_views, train

    sparse, images = ws.dense_sparse_dir, ws.undistorted_dir
    if not ws.has_dense_cameras:
        raise UserError(f"no undistorted cameras in {sparse}; run camera solving first (vid2model sfm WORKSPACE)")
    views = views_from_colmap(sparse, images, cfg.max_side)
    if len(views) < 3:
        raise UserError(f"splat training needs at least 3 registered images, found {len(views)}")
    xyz, rgb, source = _init_points(ws, cfg.max_init_points)
    if len(xyz) < 4:
        raise UserError("too few 3D points to start splat training; check the sfm stage output")
    train_idx, eval_idx = split_views(len(views), cfg.eval_every)
    opts = TrainOptions(iterations=cfg.iterations, sh_degree=cfg.sh_degree, max_gaussians=cfg.max_gaussians,
                        exposure=cfg.exposure, far_points=cfg.far_points, checkpoint_every=cfg.checkpoint_every,
                        threads=cfg.threads)
    t0 = time.perf_counter()
    res = train(views, train_idx, eval_idx, xyz, rgb, opts, checkpoint=ws.splat_checkpoint,
                device=training_device(cfg.device, "splat.device"), cache_mb=cfg.image_cache_mb)
    write_ply(SplatData.from_model(res.model), ws.splat_ply)
    summary = {
        "gaussians": len(res.model), "iterations": res.iterations, "resumed_from": res.resumed_from,
        "train_views": len(train_idx), "eval_views": len(eval_idx), "init_points": int(len(xyz)),
        "init_source": source, "resolution": [views[0].camera.width, views[0].camera.height],
        "eval_psnr": res.eval_psnr, "eval_ssim": res.eval_ssim, "train_psnr": res.train_psnr,
        "sec_per_iter": res.sec_per_iter, "seconds": time.perf_counter() - t0,
        "ply": str(ws.splat_ply.relative_to(ws.root)),
    }
    if res.eval_psnr is not None:
        log.info("splats: %d, held-out PSNR %.2f dB, SSIM %.3f", len(res.model), res.eval_psnr, res.eval_ssim)
    summary["held_out_check"] = held_out_check(res.train_psnr, res.eval_psnr, len(eval_idx), "the splat model")
    return summary
