"""Dense stage: per-keyframe depth maps by plane-sweep stereo, geometric filtering, fused point cloud.

Reads the undistorted COLMAP dense workspace (``dense/images``, ``dense/sparse``) written by SfM and
writes COLMAP-format ``dense/stereo/{depth,normal}_maps/<image>.geometric.bin``, ``dense/fused.ply`` and
``dense/holdout.json`` (views kept out of stereo and meshing for evaluation, ``holdout_every``).
Backends: ``cpu`` (ours: fused numba kernels on the CPU, vectorised torch on CUDA when present),
``colmap_cuda`` (COLMAP's PatchMatch, pycolmap CUDA builds only); ``auto`` picks ours.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from vid2model.config import DenseConfig
from vid2model.errors import UserError
from vid2model.io.colmap import View, load_views, quiet_colmap, read_model
from vid2model.io.colmap_dense import write_points_ply
from vid2model.stages.dense_steps import (Checks, check_settings, depth_maps, filter_and_fuse, load_frames,
                                          scene_radius, sparse_geometry, summary, torch_device)
from vid2model.workspace import Workspace

__all__ = ["run", "split_holdout"]

log = logging.getLogger("vid2model")


def split_holdout(views: list, every: int) -> tuple[list, list]:
    """(used, held out): every ``every``-th view by image name (0, n, 2n, ...) is held out; none when
    ``every`` <= 1 or fewer than 3 views would remain."""
    order = sorted(range(len(views)), key=lambda i: views[i].name)
    out = {i for k, i in enumerate(order) if every > 1 and k % every == 0}
    if len(views) - len(out) < 3:
        out = set()
    return [v for i, v in enumerate(views) if i not in out], [v for i, v in enumerate(views) if i in out]


def _hold_out(ws: Workspace, every: int) -> tuple[list[View], list[View]]:
    """(stereo views, held-out views) of the dense model; lists the held-out ones in holdout.json."""
    views, held = split_holdout(load_views(ws.dense_sparse_dir), every)
    ws.write_json(ws.holdout_json, sorted(v.name for v in held))
    for v in held:  # maps of an earlier run without the hold-out must not leak into meshing
        for kind in ("geometric", "photometric"):
            ws.depth_map(v.name, kind).unlink(missing_ok=True)
            ws.normal_map(v.name, kind).unlink(missing_ok=True)
    return views, held


def run(ws: Workspace, cfg: DenseConfig) -> dict[str, Any]:
    """Depth maps for every registered keyframe and the fused coloured point cloud with normals."""
    import torch

    quiet_colmap()
    check_settings(cfg)
    if cfg.backend == "colmap_cuda":
        if cfg.holdout_every > 1:
            raise UserError("dense.holdout_every needs dense.backend=cpu (COLMAP's stereo uses every view)")
        ws.write_json(ws.holdout_json, [])
        return _colmap_cuda(ws, cfg)
    t_start = time.perf_counter()
    views, held = _hold_out(ws, cfg.holdout_every)
    if len(views) < 2:
        raise UserError("dense stereo needs at least 2 solved cameras; capture more overlapping views")
    dev = torch_device(cfg)
    scene = ws.read_json(ws.scene_json, default={}) or {}
    geo = sparse_geometry(read_model(ws.dense_sparse_dir), views, scene)
    frames = load_frames(ws, views, cfg.max_side, dev)
    sources = [geo.sources(i, cfg.num_sources) for i in range(len(views))]
    t_setup = time.perf_counter() - t_start

    dm = depth_maps(frames, geo, sources, cfg)
    t_depth = time.perf_counter() - t_start - t_setup

    radius = scene_radius(scene, geo.points)
    checks = Checks.of(cfg, scene, radius, len(views))
    fused = filter_and_fuse(ws, views, frames, geo, dm, checks, radius / cfg.voxel_divisions, torch.get_num_threads())
    if len(fused.xyz) < 100:
        raise UserError("dense stereo found almost no reliable depth: the surfaces may lack texture or the views "
                        "overlap too little")
    write_points_ply(ws.fused_ply, fused.xyz, fused.normals, fused.rgb)
    total = time.perf_counter() - t_start
    log.info("dense: %d views at %dx%d, %d points, %.1fs (%.2fs/view depth)", len(views), *frames.sizes[0],
             len(fused.xyz), total, t_depth / len(views))
    if any(fused.filled):  # inferred, not measured: say so
        log.info("dense: %.1f %% of the pixels lie on plain levels (no texture: their depth is the level their "
                 "measured rim agrees on)", 100 * float(np.mean(fused.filled)))
    return summary(dev, torch.get_num_threads(), views, len(held), frames, geo, sources, dm, fused,
                   (t_setup, t_depth, total))


def _colmap_cuda(ws: Workspace, cfg: DenseConfig) -> dict[str, Any]:
    """COLMAP's PatchMatch stereo + fusion (CUDA builds of pycolmap only)."""
    import pycolmap

    if not getattr(pycolmap, "has_cuda", False):
        raise UserError("dense.backend=colmap_cuda needs pycolmap built with CUDA; use dense.backend=cpu")
    t0 = time.perf_counter()
    opts = pycolmap.PatchMatchOptions()
    opts.max_image_size = cfg.max_side
    opts.window_radius = cfg.window
    opts.geom_consistency = True
    pycolmap.patch_match_stereo(ws.dense_dir, options=opts)
    pycolmap.stereo_fusion(ws.fused_ply, ws.dense_dir, input_type="geometric")
    return {"backend": "colmap_cuda", "device": "cuda", "sec_total": round(time.perf_counter() - t0, 2)}
