"""Dense stage: per-keyframe depth maps by plane-sweep stereo, geometric filtering, fused point cloud.

Reads the undistorted COLMAP dense workspace (``dense/images``, ``dense/sparse``) written by SfM and
writes COLMAP-format ``dense/stereo/{depth,normal}_maps/<image>.geometric.bin`` and ``dense/fused.ply``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from vid2model.config import DenseConfig
from vid2model.errors import UserError
from vid2model.io.colmap import load_views, quiet_colmap, read_model
from vid2model.io.colmap_dense import write_array, write_points_ply
from vid2model.ops.mvs.filtering import backproject, consistency, depth_normals, select_sources
from vid2model.ops.mvs.plane_sweep import Cam, sweep_depth
from vid2model.progress import bar
from vid2model.workspace import Workspace

log = logging.getLogger("vid2model")


def _device(cfg: DenseConfig):
    import torch

    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise UserError("--set dense.device=cuda was asked for but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


def _load_gray(path, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise UserError(f"cannot read {path}; rerun: vid2model sfm WORKSPACE --force")
    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA) if img.shape[1::-1] != size else img
    rgb = img[:, :, ::-1].copy()
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0, rgb


def _ranges_and_covis(rec, views) -> tuple[list[tuple[float, float]], np.ndarray]:
    """Per-view depth range from the sparse points it sees, and the (N, N) co-visibility counts."""
    idx = {v.image_id: i for i, v in enumerate(views)}
    n = len(views)
    covis = np.zeros((n, n))
    seen: list[list[np.ndarray]] = [[] for _ in range(n)]
    for p in rec.points3D.values():
        ims = sorted({idx[e.image_id] for e in p.track.elements if e.image_id in idx})
        for a in ims:
            seen[a].append(p.xyz)
        for i, a in enumerate(ims):
            for b in ims[i + 1:]:
                covis[a, b] += 1
                covis[b, a] += 1
    all_pts = np.array([p.xyz for p in rec.points3D.values()]) if rec.num_points3D() else np.zeros((0, 3))
    ranges = []
    for v, pts in zip(views, seen):
        P = np.array(pts) if len(pts) >= 10 else all_pts
        z = (P @ v.R.T + v.t)[:, 2] if len(P) else np.array([])
        z = z[z > 0]
        if len(z) < 5:
            raise UserError("too few 3D points to bound depths; the camera solution is too sparse for dense stereo")
        lo, hi = np.percentile(z, 1), np.percentile(z, 99)
        ranges.append((max(lo * 0.6, 1e-3), hi * 1.5))
    return ranges, covis


def run(ws: Workspace, cfg: DenseConfig) -> dict[str, Any]:
    """Depth maps for every registered keyframe and the fused coloured point cloud with normals."""
    import torch

    quiet_colmap()
    if cfg.backend == "colmap_cuda":
        return _colmap_cuda(ws, cfg)
    sparse = ws.dense_dir / "sparse"
    views = load_views(sparse)
    rec = read_model(sparse)
    if len(views) < 2:
        raise UserError("dense stereo needs at least 2 solved cameras")
    dev = _device(cfg)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    ranges, covis = _ranges_and_covis(rec, views)
    s = min(1.0, cfg.max_side / max(views[0].width, views[0].height))
    cams, grays, rgbs = [], [], []
    for v in views:
        size = (max(8, round(v.width * s)), max(8, round(v.height * s)))
        K = v.K.copy()
        K[0] *= size[0] / v.width
        K[1] *= size[1] / v.height
        cams.append(Cam(K, v.R, v.t))
        g, rgb = _load_gray(ws.dense_dir / "images" / v.name, size)
        grays.append(torch.from_numpy(g).to(dev))
        rgbs.append(rgb)
    centers = np.array([v.center for v in views])
    axes = np.array([v.R[2] for v in views])
    depths, scores, timings = [], [], []
    with bar("depth maps", len(views)) as b:
        for i, v in enumerate(views):
            t0 = time.perf_counter()
            mid = float(np.sqrt(ranges[i][0] * ranges[i][1]))
            src = select_sources(i, centers, axes, covis, mid, cfg.num_sources)
            with torch.no_grad():
                d, sc = sweep_depth(grays[i], [grays[j] for j in src], cams[i], [cams[j] for j in src],
                                    ranges[i][0], ranges[i][1], n_planes=cfg.n_planes, n_refine=cfg.n_refine,
                                    window=cfg.window, best_k=min(2, len(src)))
            d = d.cpu().numpy()
            sc = sc.cpu().numpy()
            d[(sc < cfg.min_ncc) | (d < ranges[i][0]) | (d > ranges[i][1])] = 0
            depths.append(d.astype(np.float32))
            scores.append(sc)
            timings.append(time.perf_counter() - t0)
            b.advance()
    pts, cols, nrms = [], [], []
    need = min(cfg.min_consistent, len(views) - 1)
    kept_share = []
    with bar("filtering + fusion", len(views)) as b:
        for i, v in enumerate(views):
            mid = float(np.sqrt(ranges[i][0] * ranges[i][1]))
            src = select_sources(i, centers, axes, covis, mid, cfg.num_sources + 2)
            cnt = consistency(depths[i], cams[i], [depths[j] for j in src], [cams[j] for j in src],
                              max_px=cfg.consistency_px, max_rel=cfg.consistency_rel)
            d = np.where(cnt >= need, depths[i], 0).astype(np.float32)
            n_cam = depth_normals(d, cams[i].K)
            write_array(ws.depth_maps_dir / f"{v.name}.geometric.bin", d)
            write_array(ws.normal_maps_dir / f"{v.name}.geometric.bin", n_cam)
            ok = (d > 0) & (np.abs(n_cam).sum(-1) > 0)
            kept_share.append(float(ok.mean()))
            X = backproject(d, cams[i].K, cams[i].R, cams[i].t)
            pts.append(X[ok])
            cols.append(rgbs[i][ok])
            nrms.append(n_cam[ok] @ cams[i].R)  # camera -> world
            b.advance()
    xyz = np.concatenate(pts) if pts else np.zeros((0, 3))
    if len(xyz) < 100:
        raise UserError("dense stereo found almost no reliable depth: the surfaces may lack texture or the views "
                        "overlap too little")
    xyz, rgb, nrm = _voxel_merge(xyz, np.concatenate(cols), np.concatenate(nrms), ws, cfg)
    write_points_ply(ws.fused_ply, xyz, nrm, rgb)
    return {"n_views": len(views), "device": str(dev), "n_points": int(len(xyz)),
            "resolution": [int(grays[0].shape[1]), int(grays[0].shape[0])],
            "sec_per_view": round(float(np.mean(timings)), 3), "kept_pixel_share": round(float(np.mean(kept_share)), 3)}


def _voxel_merge(xyz, rgb, nrm, ws: Workspace, cfg: DenseConfig):
    """Average points per voxel (size from the scene scale) so overlapping views do not pile up."""
    scene = ws.read_json(ws.scene_json, default={}) or {}
    extent = float(np.percentile(np.linalg.norm(xyz - np.median(xyz, 0), axis=1), 95))
    voxel = extent / cfg.voxel_divisions if scene.get("radius") is None else min(
        extent, float(scene["radius"])) / cfg.voxel_divisions
    keys = np.floor(xyz / voxel).astype(np.int64)
    _, inv, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    m = len(counts)

    def mean(a):
        out = np.zeros((m, a.shape[1]))
        np.add.at(out, inv, a)
        return out / counts[:, None]

    n = mean(nrm)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return mean(xyz), np.clip(mean(rgb.astype(np.float64)), 0, 255).astype(np.uint8), n


def _colmap_cuda(ws: Workspace, cfg: DenseConfig) -> dict[str, Any]:
    """COLMAP's PatchMatch stereo + fusion (CUDA builds of pycolmap only)."""
    import pycolmap

    if not pycolmap.has_cuda:
        raise UserError("--set dense.backend=colmap_cuda needs pycolmap built with CUDA; use backend=cpu")
    opts = pycolmap.PatchMatchOptions()
    opts.max_image_size = cfg.max_side
    pycolmap.patch_match_stereo(ws.dense_dir, options=opts)
    pycolmap.stereo_fusion(ws.fused_ply, ws.dense_dir)
    return {"backend": "colmap_cuda"}
