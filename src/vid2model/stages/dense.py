"""Dense stage: per-keyframe depth maps by plane-sweep stereo, geometric filtering, fused point cloud.

Reads the undistorted COLMAP dense workspace (``dense/images``, ``dense/sparse``) written by SfM and
writes COLMAP-format ``dense/stereo/{depth,normal}_maps/<image>.geometric.bin``, ``dense/fused.ply`` and
``dense/holdout.json`` (views kept out of stereo and meshing for evaluation, ``holdout_every``).
Backends: ``cpu`` (ours: fused numba kernels on the CPU, vectorised torch on CUDA when present),
``colmap_cuda`` (COLMAP's PatchMatch, pycolmap CUDA builds only); ``auto`` picks ours.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np

from vid2model.config import DenseConfig
from vid2model.errors import UserError
from vid2model.io.colmap import load_views, quiet_colmap, read_model
from vid2model.io.colmap_dense import write_array, write_points_ply
from vid2model.ops.mvs.filtering import consistency, depth_normals, flat_fringe, incidence_cos, peel_rims
from vid2model.ops.mvs.fusion import VoxelFusion
from vid2model.ops.mvs.plane_fill import fill_levels, seen_through
from vid2model.ops.mvs.plane_sweep import box, sweep_depth
from vid2model.ops.mvs.view_selection import covisibility, depth_ranges, select_sources, sweep_planes, visibility
from vid2model.progress import bar
from vid2model.workspace import Workspace

log = logging.getLogger("vid2model")


def _device(cfg: DenseConfig):
    import torch

    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise UserError("dense.device=cuda was asked for but no CUDA device is available; use dense.device=auto")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise UserError(f"dense.device must be auto, cpu or cuda, not {cfg.device!r}")
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if use_cuda else "cpu")


def _read_image(path, size: tuple[int, int] | None = None) -> np.ndarray:
    """RGB uint8 (H, W, 3), resized (area filter) to ``size`` = (W, H) when given."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise UserError(f"cannot read {path}; rerun: vid2model sfm WORKSPACE --force")
    if size is not None and img.shape[1::-1] != tuple(size):
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img[:, :, ::-1])


def _sparse_geometry(rec, views) -> tuple[np.ndarray, list[np.ndarray]]:
    """Sparse points (P, 3) and, per point, the indices (into ``views``) of the views observing it."""
    idx = {v.image_id: i for i, v in enumerate(views)}
    pts, tracks = [], []
    for p in rec.points3D.values():
        tr = np.array([idx[e.image_id] for e in p.track.elements if e.image_id in idx], np.int64)
        if len(tr):
            pts.append(p.xyz)
            tracks.append(tr)
    return (np.array(pts) if pts else np.zeros((0, 3))), tracks


def _fallback_range(ws: Workspace, views) -> tuple[float, float] | None:
    """Depth range from the scene sphere (scene.json) when the sparse points cannot bound one."""
    scene = ws.read_json(ws.scene_json, default={}) or {}
    if scene.get("center") is None or scene.get("radius") is None:
        return None
    c, r = np.asarray(scene["center"], float), float(scene["radius"])
    far = max(float(np.linalg.norm(v.center - c)) for v in views) + 2 * r
    return 0.02 * far, far


def ordered_map(fn, n: int, workers: int):
    """Yield ``fn(0) ... fn(n - 1)`` in order, computed on ``workers`` threads with at most 2 x workers
    results waiting (memory stays bounded however many views there are)."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    if workers <= 1:
        yield from (fn(i) for i in range(n))
        return
    with ThreadPoolExecutor(workers) as ex:
        queue: deque = deque()
        for i in range(n):
            queue.append(ex.submit(fn, i))
            if len(queue) >= 2 * workers:
                yield queue.popleft().result()
        while queue:
            yield queue.popleft().result()


def _level_fill(cfg: DenseConfig, scene: dict[str, Any], radius: float) -> dict[str, Any] | None:
    """Settings of :func:`fill_levels` for this scene, or None when plain levels are not filled."""
    if not cfg.fill_plain_levels or scene.get("up") is None:
        return None
    region = None
    if scene.get("capture", "orbit") == "orbit" and scene.get("center") is not None:
        # an orbit films what lies inside its circle of cameras
        reach = max(2 * radius, float(scene.get("camera_distance_median") or 0.0))
        region = (np.asarray(scene["center"], float), reach)
    return {"up": np.asarray(scene["up"], float), "tol": 0.01 * radius, "region": region}


def split_holdout(views: list, every: int) -> tuple[list, list]:
    """(used, held out): every ``every``-th view by image name (0, n, 2n, ...) is held out; none when
    ``every`` <= 1 or fewer than 3 views would remain."""
    order = sorted(range(len(views)), key=lambda i: views[i].name)
    out = {i for k, i in enumerate(order) if every > 1 and k % every == 0}
    if len(views) - len(out) < 3:
        out = set()
    return [v for i, v in enumerate(views) if i not in out], [v for i, v in enumerate(views) if i in out]


def run(ws: Workspace, cfg: DenseConfig) -> dict[str, Any]:
    """Depth maps for every registered keyframe and the fused coloured point cloud with normals."""
    import torch

    quiet_colmap()
    if cfg.backend not in ("auto", "cpu", "colmap_cuda"):
        raise UserError(f"dense.backend must be auto, cpu or colmap_cuda, not {cfg.backend!r}")
    if any(px < 1 for px in cfg.propagate_px):
        raise UserError(f"dense.propagate_px must list pixel distances of 1 or more, not {cfg.propagate_px}")
    if cfg.backend == "colmap_cuda":
        if cfg.holdout_every > 1:
            raise UserError("dense.holdout_every needs dense.backend=cpu (COLMAP's stereo uses every view)")
        ws.write_json(ws.holdout_json, [])
        return _colmap_cuda(ws, cfg)
    t_start = time.perf_counter()
    sparse = ws.dense_sparse_dir
    views, held = split_holdout(load_views(sparse), cfg.holdout_every)
    ws.write_json(ws.holdout_json, sorted(v.name for v in held))
    for v in held:  # maps of an earlier run without the hold-out must not leak into meshing
        for kind in ("geometric", "photometric"):
            ws.depth_map(v.name, kind).unlink(missing_ok=True)
            ws.normal_map(v.name, kind).unlink(missing_ok=True)
    if len(views) < 2:
        raise UserError("dense stereo needs at least 2 solved cameras; capture more overlapping views")
    dev = _device(cfg)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cfg.threads or cores))
    points, tracks = _sparse_geometry(read_model(sparse), views)
    ranges = depth_ranges(points, tracks, views, fallback=_fallback_range(ws, views))
    if any(r is None for r in ranges):
        raise UserError("too few 3D points to bound depths; the camera solution is too sparse for dense stereo")
    vis = visibility(tracks, len(views))
    covis = covisibility(tracks, len(views), vis)
    # working resolution: the long side of the largest image brought to cfg.max_side
    cams, grays, sizes = [], [], []
    for v in views:
        s = min(1.0, cfg.max_side / max(v.width, v.height))
        size = (max(16, round(v.width * s)), max(16, round(v.height * s)))
        cams.append(v.resized(*size))
        rgb = _read_image(ws.undistorted_image(v.name), size)
        gray = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0
        grays.append(torch.from_numpy(gray).to(dev))
        sizes.append(size)
    centers = np.array([v.center for v in views])
    axes = np.array([v.R[2] for v in views])  # viewing directions
    mids = [float(np.sqrt(lo * hi)) for lo, hi in ranges]
    sources = [select_sources(i, centers, axes, covis, mids[i], cfg.num_sources, vis=vis) for i in range(len(views))]
    t_setup = time.perf_counter() - t_start

    depths, timings, n_planes, plains = [], [], [], []
    with bar("depth maps", len(views)) as b, torch.no_grad():
        for i, v in enumerate(views):
            t0 = time.perf_counter()
            src = sources[i]
            if not src:
                depths.append(np.zeros(grays[i].shape, np.float32))
                plains.append(np.zeros(grays[i].shape, bool))
                timings.append(0.0)
                n_planes.append(0)
                b.advance()
                continue
            lo, hi = ranges[i]
            # a denser global sweep where planes would jump; the refinement keeps searching +-1.5 steps of
            # n_planes (narrower, it misses the half-resolution errors: synthetic orbit F@0.5% 0.95 -> 0.84)
            planes = sweep_planes(cams[i], [cams[j] for j in src], lo, hi, sizes[i], cfg.n_planes,
                                  max(cfg.max_planes, cfg.n_planes), cfg.plane_step_px)
            n_planes.append(planes)
            d, sc = sweep_depth(grays[i], [grays[j] for j in src], cams[i], [cams[j] for j in src], lo, hi,
                                n_planes=planes, refine_planes=cfg.n_planes, n_refine=cfg.n_refine, window=cfg.window,
                                best_k=min(cfg.best_k, len(src)), rounds=cfg.rounds,
                                propagate=tuple(cfg.propagate_px))
            g = grays[i]
            mean = box(g, cfg.window)
            std = torch.sqrt((box(g * g, cfg.window) - mean ** 2).clamp_min(0))
            strong = std >= cfg.weak_texture
            textured = strong | ((std >= cfg.min_texture) & (mean >= cfg.dark_level))
            match = torch.where(strong, sc >= cfg.min_ncc, sc >= cfg.weak_min_ncc)
            keep = (match & textured & (d >= lo) & (d <= hi)).cpu().numpy()
            plains.append((~textured).cpu().numpy())
            if cfg.fringe_radius > 0:
                keep &= ~flat_fringe(keep, g.cpu().numpy(), cfg.window, cfg.fringe_flat_std, cfg.fringe_radius)
            if cfg.peel_iters > 0:
                keep = peel_rims(_read_image(ws.undistorted_image(v.name), sizes[i]), keep, cfg.peel_iters)
            depths.append(np.where(keep, d.cpu().numpy(), 0).astype(np.float32))
            timings.append(time.perf_counter() - t0)
            b.advance()
    t_depth = time.perf_counter() - t_start - t_setup

    scene = ws.read_json(ws.scene_json, default={}) or {}
    radius = scene.get("radius") or float(np.percentile(np.linalg.norm(points - np.median(points, 0), axis=1), 95))
    fusion = VoxelFusion(float(radius) / cfg.voxel_divisions)
    need = min(cfg.min_consistent, len(views) - 1)
    min_cos = float(np.cos(np.radians(cfg.max_incidence_deg)))
    fill = _level_fill(cfg, scene, float(radius))

    def filtered(i: int):
        # check against the matching sources plus a few more neighbours: more chances to agree
        src = select_sources(i, centers, axes, covis, mids[i], cfg.num_sources + 2, vis=vis)
        cnt, d_avg = consistency(depths[i], cams[i], [depths[j] for j in src], [cams[j] for j in src],
                                 max_px=cfg.consistency_px, max_rel=cfg.consistency_rel)
        d = np.where((cnt >= need) & (depths[i] > 0), d_avg, 0).astype(np.float32)
        n_filled = 0
        if fill is not None:
            f = fill_levels(d, plains[i], cams[i], max_depth=ranges[i][1], min_cos=min_cos, **fill)
            got = f > 0
            if got.any():  # a view that measured a surface behind a filled point sees through it
                X = cams[i].backproject(f)[got]
                got[got] = seen_through(X, [depths[j] for j in src], [cams[j] for j in src]) < 2
                d = np.where(got, f, d).astype(np.float32)
                n_filled = int(got.sum())
        n_cam = depth_normals(d, cams[i], step=2)
        ok = (d > 0) & (incidence_cos(n_cam, cams[i]) >= min_cos)
        d[~ok] = 0
        n_cam[~ok] = 0
        rgb = _read_image(ws.undistorted_image(views[i].name), sizes[i])
        return d, n_cam, ok, rgb, cams[i].backproject(d), n_filled

    kept_share, per_view, filled_share = [], [], []
    with bar("filtering + fusion", len(views)) as b:
        # views are filtered on threads (numpy and OpenCV release the GIL), fused in order
        for i, (d, n_cam, ok, rgb, X, n_filled) in enumerate(ordered_map(filtered, len(views),
                                                                           torch.get_num_threads())):
            v = views[i]
            write_array(ws.depth_map(v.name), d)
            write_array(ws.normal_map(v.name), n_cam)
            kept_share.append(float(ok.mean()))
            fusion.add(X[ok], rgb[ok], n_cam[ok] @ cams[i].R)  # normals camera -> world
            filled_share.append(n_filled / ok.size)
            per_view.append({"name": v.name, "sec": round(timings[i], 3), "sources": len(sources[i]),
                             "planes": n_planes[i],
                             "kept": round(kept_share[-1], 3), "depth_range": [round(ranges[i][0], 4),
                                                                               round(ranges[i][1], 4)]})
            b.advance()
    xyz, rgb, nrm = fusion.result()
    if len(xyz) < 100:
        raise UserError("dense stereo found almost no reliable depth: the surfaces may lack texture or the views "
                        "overlap too little")
    write_points_ply(ws.fused_ply, xyz, nrm, rgb)
    total = time.perf_counter() - t_start
    log.info("dense: %d views at %dx%d, %d points, %.1fs (%.2fs/view depth)", len(views), *sizes[0], len(xyz),
             total, t_depth / len(views))
    if any(filled_share):  # inferred, not measured: say so
        log.info("dense: %.1f %% of the pixels lie on plain levels (no texture: their depth is the level their "
                 "measured rim agrees on)", 100 * float(np.mean(filled_share)))
    return {"backend": "cpu", "device": str(dev), "threads": torch.get_num_threads(), "n_views": len(views),
            "held_out": len(held),
            "n_points": int(len(xyz)), "resolution": list(sizes[0]),
            "sec_per_view": round(float(np.mean(timings)), 3), "sec_setup": round(t_setup, 2),
            "sec_depth": round(t_depth, 2), "sec_fusion": round(total - t_setup - t_depth, 2),
            "kept_pixel_share": round(float(np.mean(kept_share)), 3),
            "plain_filled_share": round(float(np.mean(filled_share)), 3),
            "median_planes": int(np.median(n_planes)),
            "median_depth_range": [round(float(np.median([r[0] for r in ranges])), 4),
                                   round(float(np.median([r[1] for r in ranges])), 4)],
            "per_view": per_view}


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
