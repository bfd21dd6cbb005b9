"""Steps of the dense stage's own backend (``cpu``); :func:`vid2model.stages.dense.run` strings them together.

Shapes: ``n`` stereo views, ``P`` sparse points, ``H, W`` a view's working resolution (its long side brought
to ``dense.max_side``). Each view's undistorted image is decoded once, into :class:`Frames`; the depth,
filtering and fusion steps all read it from there.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from vid2model.config import DenseConfig
from vid2model.errors import UserError
from vid2model.io.colmap import View
from vid2model.io.colmap_dense import write_array
from vid2model.ops.mvs.filtering import (consistency, depth_normals, flat_fringe, incidence_cos, peel_rims,
                                         small_gaps)
from vid2model.ops.mvs.fusion import VoxelFusion
from vid2model.ops.mvs.plane_fill import fill_levels, seen_through
from vid2model.ops.mvs.plane_sweep import box, sweep_depth
from vid2model.ops.mvs.view_selection import covisibility, depth_ranges, select_sources, sweep_planes, visibility
from vid2model.ops.threads import ordered_map
from vid2model.progress import bar
from vid2model.workspace import Workspace

if TYPE_CHECKING:
    import torch


def check_settings(cfg: DenseConfig) -> None:
    """Raise :class:`UserError` for settings no backend can run."""
    if cfg.backend not in ("auto", "cpu", "colmap_cuda"):
        raise UserError(f"dense.backend must be auto, cpu or colmap_cuda, not {cfg.backend!r}")
    if any(px < 1 for px in cfg.propagate_px):
        raise UserError(f"dense.propagate_px must list pixel distances of 1 or more, not {cfg.propagate_px}")


def torch_device(cfg: DenseConfig) -> torch.device:
    """The device ``dense.device`` names (``auto``: CUDA when present); sets torch's CPU threads too."""
    import torch

    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise UserError("dense.device=cuda was asked for but no CUDA device is available; use dense.device=auto")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise UserError(f"dense.device must be auto, cpu or cuda, not {cfg.device!r}")
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cfg.threads or cores))
    return torch.device("cuda" if use_cuda else "cpu")


def read_image(path, size: tuple[int, int] | None = None) -> np.ndarray:
    """RGB uint8 [H, W, 3], resized (area filter) to ``size`` = (W, H) when given."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise UserError(f"cannot read {path}; rerun: vid2model sfm WORKSPACE --force")
    if size is not None and img.shape[1::-1] != tuple(size):
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img[:, :, ::-1])


@dataclass
class Geometry:
    """What the sparse model says about the stereo views."""

    points: np.ndarray  # [P, 3] sparse points seen by at least one stereo view
    ranges: list[tuple[float, float]]  # per view, the (near, far) depths searched
    vis: Any  # [n, P] sparse bool: view i observes point p
    covis: np.ndarray  # [n, n] sparse points each pair of views shares
    centers: np.ndarray  # [n, 3] camera centres
    axes: np.ndarray  # [n, 3] viewing directions
    mids: list[float]  # per view, the geometric mean of its depth range

    def sources(self, i: int, k: int) -> list[int]:
        """Up to ``k`` views to match view ``i`` against."""
        return select_sources(i, self.centers, self.axes, self.covis, self.mids[i], k, vis=self.vis)


def _fallback_range(scene: dict[str, Any], views: list[View]) -> tuple[float, float] | None:
    """Depth range from the scene sphere (scene.json) when the sparse points cannot bound one."""
    if scene.get("center") is None or scene.get("radius") is None:
        return None
    c, r = np.asarray(scene["center"], float), float(scene["radius"])
    far = max(float(np.linalg.norm(v.center - c)) for v in views) + 2 * r
    return 0.02 * far, far


def sparse_geometry(rec, views: list[View], scene: dict[str, Any]) -> Geometry:
    """Depth ranges, visibility and camera layout of ``views`` from the reconstruction ``rec``."""
    idx = {v.image_id: i for i, v in enumerate(views)}
    pts, tracks = [], []  # tracks: per point, the indices (into views) of the views observing it
    for p in rec.points3D.values():
        tr = np.array([idx[e.image_id] for e in p.track.elements if e.image_id in idx], np.int64)
        if len(tr):
            pts.append(p.xyz)
            tracks.append(tr)
    points = np.array(pts) if pts else np.zeros((0, 3))
    ranges = depth_ranges(points, tracks, views, fallback=_fallback_range(scene, views))
    if any(r is None for r in ranges):
        raise UserError("too few 3D points to bound depths; the camera solution is too sparse for dense stereo")
    vis = visibility(tracks, len(views))
    return Geometry(points=points, ranges=ranges, vis=vis, covis=covisibility(tracks, len(views), vis),
                    centers=np.array([v.center for v in views]), axes=np.array([v.R[2] for v in views]),
                    mids=[float(np.sqrt(lo * hi)) for lo, hi in ranges])


@dataclass
class Frames:
    """The stereo views at working resolution, each image decoded once."""

    cams: list[View]  # resized to the working resolution
    sizes: list[tuple[int, int]]  # (W, H)
    rgbs: list[np.ndarray]  # [H, W, 3] uint8, read-only (shared by the filtering threads)
    grays: list[torch.Tensor]  # [H, W] float32 in [0, 1], on the stereo device


def load_frames(ws: Workspace, views: list[View], max_side: int, dev: torch.device) -> Frames:
    """Each view's undistorted image at working resolution: its long side brought to ``max_side``."""
    import torch

    frames = Frames([], [], [], [])
    for v in views:
        s = min(1.0, max_side / max(v.width, v.height))
        size = (max(16, round(v.width * s)), max(16, round(v.height * s)))
        rgb = read_image(ws.undistorted_image(v.name), size)
        rgb.setflags(write=False)
        gray = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0
        frames.cams.append(v.resized(*size))
        frames.sizes.append(size)
        frames.rgbs.append(rgb)
        frames.grays.append(torch.from_numpy(gray).to(dev))
    return frames


@dataclass
class DepthMaps:
    """Per view: the matched depths before the views are checked against each other."""

    depths: list[np.ndarray]  # [H, W] float32, 0 = no depth
    plains: list[np.ndarray]  # [H, W] bool, untextured pixels
    rescued: list[np.ndarray | None]  # [H, W] bool, depths the rim rules kept only for small gaps
    n_planes: list[int]  # planes of the global sweep (0: no sources)
    secs: list[float]  # time taken


def view_depth(frames: Frames, i: int, src: list[int], depth_range: tuple[float, float],
               cfg: DenseConfig) -> tuple[np.ndarray, np.ndarray, int, np.ndarray | None]:
    """Depth of view ``i`` matched against ``src`` (non-empty): depth [H, W] float32 (0 where no match is
    trusted), plain [H, W] bool (untextured), the planes swept and the depths [H, W] bool kept only because
    the rim rules spared small gaps (None: none)."""
    import torch

    lo, hi = depth_range
    cam, g = frames.cams[i], frames.grays[i]
    src_cams, src_grays = [frames.cams[j] for j in src], [frames.grays[j] for j in src]
    # a denser global sweep where planes would jump; the refinement keeps searching +-1.5 steps of
    # n_planes (narrower, it misses the half-resolution sweep's errors)
    planes = sweep_planes(cam, src_cams, lo, hi, frames.sizes[i], cfg.n_planes, max(cfg.max_planes, cfg.n_planes),
                          cfg.plane_step_px)
    d, sc = sweep_depth(g, src_grays, cam, src_cams, lo, hi, n_planes=planes, refine_planes=cfg.n_planes,
                        n_refine=cfg.n_refine, window=cfg.window, best_k=min(cfg.best_k, len(src)),
                        rounds=cfg.rounds, propagate=tuple(cfg.propagate_px))
    mean = box(g, cfg.window)
    std = torch.sqrt((box(g * g, cfg.window) - mean ** 2).clamp_min(0))
    strong = std >= cfg.weak_texture
    textured = strong | ((std >= cfg.min_texture) & (mean >= cfg.dark_level))
    match = torch.where(strong, sc >= cfg.min_ncc, sc >= cfg.weak_min_ncc)
    keep = (match & textured & (d >= lo) & (d <= hi)).cpu().numpy()
    plain, gray = (~textured).cpu().numpy(), g.cpu().numpy()
    gaps = small_gaps(keep, round(cfg.rim_gap_share * keep.size), plain=plain, edge_clear=4 * cfg.window)
    gaps = gaps if gaps.any() else None
    kept = _rim_rules(keep, gray, frames.rgbs[i], cfg, gaps)
    # what only the gaps kept is unchecked by the rim rules: more views must agree on it (filter_view)
    rescued = None if gaps is None else kept & ~_rim_rules(keep, gray, frames.rgbs[i], cfg, None)
    return np.where(kept, d.cpu().numpy(), 0).astype(np.float32), plain, planes, rescued


def _rim_rules(keep: np.ndarray, gray: np.ndarray, rgb: np.ndarray, cfg: DenseConfig,
               gaps: np.ndarray | None) -> np.ndarray:
    """``keep`` [H, W] bool less the fattened fringe and peeled rims (:func:`flat_fringe`, :func:`peel_rims`)."""
    if cfg.fringe_radius > 0:
        keep = keep & ~flat_fringe(keep, gray, cfg.window, cfg.fringe_flat_std, cfg.fringe_radius, gaps=gaps)
    if cfg.peel_iters > 0:
        keep = peel_rims(rgb, keep, cfg.peel_iters, gaps=gaps)
    return keep


def depth_maps(frames: Frames, geo: Geometry, sources: list[list[int]], cfg: DenseConfig) -> DepthMaps:
    """:func:`view_depth` of every view, in order (a view without sources gets an empty map)."""
    import torch

    out = DepthMaps([], [], [], [], [])
    with bar("depth maps", len(frames.cams)) as b, torch.no_grad():
        for i, src in enumerate(sources):
            t0 = time.perf_counter()
            if src:
                d, plain, planes, rescued = view_depth(frames, i, src, geo.ranges[i], cfg)
            else:
                shape = tuple(frames.grays[i].shape)
                d, plain, planes, rescued = np.zeros(shape, np.float32), np.zeros(shape, bool), 0, None
            out.depths.append(d)
            out.plains.append(plain)
            out.rescued.append(rescued)
            out.n_planes.append(planes)
            out.secs.append(time.perf_counter() - t0 if src else 0.0)
            b.advance()
    return out


def scene_radius(scene: dict[str, Any], points: np.ndarray) -> float:
    """The scene sphere's radius (scene.json), else the 95th percentile of the sparse points' spread."""
    return float(scene.get("radius") or float(np.percentile(np.linalg.norm(points - np.median(points, 0), axis=1), 95)))


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


@dataclass(frozen=True)
class Checks:
    """How a depth is checked against the other views' depths."""

    n_sources: int  # views checked against
    need: int  # of which this many must agree
    max_px: float  # reprojection tolerance, working-resolution pixels
    max_rel: float  # relative depth tolerance
    min_cos: float  # grazing-angle limit (cosine of the incidence)
    rescued_need: int  # agreeing views needed by depths kept only for small gaps (DepthMaps.rescued)
    fill: dict[str, Any] | None  # plain-level fill settings, None = off

    @classmethod
    def of(cls, cfg: DenseConfig, scene: dict[str, Any], radius: float, n_views: int) -> Checks:
        # the matching sources plus a few more neighbours: more chances to agree
        return cls(n_sources=cfg.num_sources + 2, need=min(cfg.min_consistent, n_views - 1),
                   rescued_need=min(max(cfg.min_consistent, cfg.rim_gap_min_consistent), n_views - 1),
                   max_px=cfg.consistency_px, max_rel=cfg.consistency_rel,
                   min_cos=float(np.cos(np.radians(cfg.max_incidence_deg))), fill=_level_fill(cfg, scene, radius))


@dataclass
class Filtered:
    """One view's depth map after the checks."""

    depth: np.ndarray  # [H, W] float32, 0 = dropped
    normals: np.ndarray  # [H, W, 3] camera frame, 0 where dropped
    ok: np.ndarray  # [H, W] bool, depth > 0
    points: np.ndarray  # [H, W, 3] world points of ``depth``
    n_filled: int  # pixels given a plain level's depth


def filter_view(i: int, frames: Frames, geo: Geometry, dm: DepthMaps, checks: Checks) -> Filtered:
    """View ``i``'s depths that enough neighbours agree on (plus filled plain levels), at a usable angle."""
    cam, depths = frames.cams[i], dm.depths
    src = geo.sources(i, checks.n_sources)
    src_depths, src_cams = [depths[j] for j in src], [frames.cams[j] for j in src]
    cnt, d_avg = consistency(depths[i], cam, src_depths, src_cams, max_px=checks.max_px, max_rel=checks.max_rel)
    need = checks.need if dm.rescued[i] is None else np.where(dm.rescued[i], checks.rescued_need, checks.need)
    d = np.where((cnt >= need) & (depths[i] > 0), d_avg, 0).astype(np.float32)
    n_filled = 0
    if checks.fill is not None:
        f = fill_levels(d, dm.plains[i], cam, max_depth=geo.ranges[i][1], min_cos=checks.min_cos, **checks.fill)
        got = f > 0
        if got.any():  # a view that measured a surface behind a filled point sees through it
            X = cam.backproject(f)[got]
            got[got] = seen_through(X, src_depths, src_cams) < 2
            d = np.where(got, f, d).astype(np.float32)
            n_filled = int(got.sum())
    n_cam = depth_normals(d, cam, step=2)
    ok = (d > 0) & (incidence_cos(n_cam, cam) >= checks.min_cos)
    d[~ok] = 0
    n_cam[~ok] = 0
    return Filtered(depth=d, normals=n_cam, ok=ok, points=cam.backproject(d), n_filled=n_filled)


@dataclass
class Fused:
    """The fused cloud and what each view gave it."""

    xyz: np.ndarray  # [M, 3] world
    rgb: np.ndarray  # [M, 3] uint8
    normals: np.ndarray  # [M, 3] world, unit
    kept: list[float]  # per view, share of its pixels kept
    filled: list[float]  # per view, share of its pixels filled with a plain level


def filter_and_fuse(ws: Workspace, views: list[View], frames: Frames, geo: Geometry, dm: DepthMaps, checks: Checks,
                    voxel: float, workers: int) -> Fused:
    """Filter every view, write its depth and normal maps and fuse its points into voxels of ``voxel``."""
    fusion = VoxelFusion(voxel)
    kept, filled = [], []
    with bar("filtering + fusion", len(views)) as b:
        # views are filtered on threads (numpy and OpenCV release the GIL), fused in order
        for i, f in enumerate(ordered_map(lambda i: filter_view(i, frames, geo, dm, checks), len(views), workers)):
            write_array(ws.depth_map(views[i].name), f.depth)
            write_array(ws.normal_map(views[i].name), f.normals)
            kept.append(float(f.ok.mean()))
            fusion.add(f.points[f.ok], frames.rgbs[i][f.ok], f.normals[f.ok] @ frames.cams[i].R)  # camera -> world
            filled.append(f.n_filled / f.ok.size)
            b.advance()
    xyz, rgb, nrm = fusion.result()
    return Fused(xyz=xyz, rgb=rgb, normals=nrm, kept=kept, filled=filled)


def summary(dev: torch.device, threads: int, views: list[View], n_held: int, frames: Frames, geo: Geometry,
            sources: list[list[int]], dm: DepthMaps, fused: Fused, secs: tuple[float, float, float]) -> dict[str, Any]:
    """The stage's summary; ``secs`` = (set-up, depth maps, total) seconds."""
    t_setup, t_depth, total = secs
    per_view = [{"name": v.name, "sec": round(dm.secs[i], 3), "sources": len(sources[i]), "planes": dm.n_planes[i],
                 "kept": round(fused.kept[i], 3),
                 "depth_range": [round(geo.ranges[i][0], 4), round(geo.ranges[i][1], 4)]}
                for i, v in enumerate(views)]
    return {"backend": "cpu", "device": str(dev), "threads": threads, "n_views": len(views), "held_out": n_held,
            "n_points": int(len(fused.xyz)), "resolution": list(frames.sizes[0]),
            "sec_per_view": round(float(np.mean(dm.secs)), 3), "sec_setup": round(t_setup, 2),
            "sec_depth": round(t_depth, 2), "sec_fusion": round(total - t_setup - t_depth, 2),
            "kept_pixel_share": round(float(np.mean(fused.kept)), 3),
            "plain_filled_share": round(float(np.mean(fused.filled)), 3),
            "median_planes": int(np.median(dm.n_planes)),
            "median_depth_range": [round(float(np.median([r[0] for r in geo.ranges])), 4),
                                   round(float(np.median([r[1] for r in geo.ranges])), 4)],
            "per_view": per_view}
