"""Compare a workspace's results with a synthetic capture's ground truth (tests and benchmarks)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from vid2model.io.colmap import load_views
from vid2model.ops.metrics import fscore, precision, sample_surface, visible_points
from vid2model.ops.similarity import pose_errors, rotation_angle_deg, umeyama
from vid2model.workspace import Workspace


def load_gt(gt_path: str | Path) -> dict[str, Any]:
    gt = json.loads(Path(gt_path).read_text())
    gt["c2w"] = {f["index"]: np.array(f["cam_to_world"]) for f in gt["frames"]}
    gt["K"] = np.array(gt["K"])
    return gt


def frame_index(name: str) -> int:
    """Source frame index encoded in a keyframe name (frame_000123.jpg -> 123)."""
    return int(re.search(r"(\d+)", Path(name).stem).group(1))


def camera_errors(ws: Workspace, gt: dict[str, Any]) -> dict[str, Any]:
    """Registered share and pose errors of ``sparse/0`` against GT after a similarity alignment."""
    views = load_views(ws.sparse_dir)
    kf = ws.read_json(ws.keyframes_json, default={}) or {}
    n_key = len(kf.get("keyframes", [])) or len(views)
    est = np.array([v.cam_to_world for v in views])
    ref = np.array([gt["c2w"][frame_index(v.name)] for v in views])
    return {"registered": len(views), "keyframes": n_key, "registered_share": len(views) / n_key,
            **pose_errors(est, ref)}


ROT_OK_DEG = 0.5  # a solved capture is correct under this median rotation error ...
CENTRE_OK_REL = 0.01  # ... and this median centre error (fraction of the trajectory extent)


def judge_cameras(ws: Workspace, gt: dict[str, Any]) -> dict[str, Any]:
    """:func:`camera_errors` plus focal-length error, pixel aspect and the verdict ``correct``."""
    err = camera_errors(ws, gt)
    views = load_views(ws.sparse_dir)
    v, f_gt = views[0], gt["K"][0][0]
    err["focal_err_rel"] = float(abs(0.5 * (v.fx + v.fy) / (v.width / gt["width"]) - f_gt) / f_gt)
    err["aspect"] = float(v.fy / v.fx)
    err["correct"] = bool(err["rot_median_deg"] < ROT_OK_DEG and err["center_median_rel"] < CENTRE_OK_REL)
    return err


def to_gt_frame(ws: Workspace, gt: dict[str, Any]) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) taking workspace coordinates to GT: x_gt = s R x + t."""
    views = load_views(ws.sparse_dir)
    est = np.array([v.center for v in views])
    ref = np.array([gt["c2w"][frame_index(v.name)][:3, 3] for v in views])
    return umeyama(est, ref)


def region_of(gt: dict[str, Any], region_radii: float = 2.0) -> tuple[np.ndarray, float] | None:
    """(centre, radius) of the ball an orbit is scored in (the object and the floor around it, DTU-style);
    None for walks, which are scored wherever their frames see."""
    if gt["path"] != "orbit":
        return None
    return np.asarray(gt["scene_center"], float), region_radii * float(gt["scene_radius"])


def crop_to_ball(vertices: np.ndarray, faces: np.ndarray, centre: np.ndarray, radius: float,
                 max_rounds: int = 14) -> tuple[np.ndarray, np.ndarray]:
    """The part of a mesh (V, 3), (F, 3) near a ball: faces that reach it, the large ones split (4-way)
    until each is under a tenth of the radius, so that a floor of two triangles keeps only its piece
    inside. Faces crossing the sphere are kept whole; the caller masks samples by distance."""
    import trimesh

    V, F = np.asarray(vertices, float), np.asarray(faces, np.int64)
    for _ in range(max_rounds):
        tri = V[F]
        cen = tri.mean(1)
        reach = np.linalg.norm(tri - cen[:, None], axis=2).max(1)
        near = np.linalg.norm(cen - centre, axis=1) <= radius + reach
        F, reach = F[near], reach[near]
        used, F = np.unique(F, return_inverse=True)
        V, F = V[used], F.reshape(-1, 3)
        big = np.flatnonzero(reach > 0.1 * radius)
        if not len(big):
            break
        V, F = trimesh.remesh.subdivide(V, F, face_index=big)
    return V, F


def gt_surface_samples(gt: dict[str, Any], mesh_vertices: np.ndarray, mesh_faces: np.ndarray,
                       n_samples: int = 1_000_000, region_radii: float = 2.0,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(whole (N, 3), seen mask (N,)): samples of the GT surface and which of them any GT frame sees.

    Orbits are sampled only inside their scoring region (:func:`region_of`): precision and recall are
    measured to the nearest sample, so the samples must be far denser than the tightest threshold, and
    spread over a whole room only a few percent of them fell near a small object (a perfect cloud then
    scored F@0.5% 0.59).

    Rendering every frame's depth is the costly part of scoring: compute it once per capture and pass it
    to :func:`surface_fscore` for each point set scored.
    """
    from vid2model.synth.generate import render_depth, scene_of_gt

    region = region_of(gt, region_radii)
    if region is not None:
        mesh_vertices, mesh_faces = crop_to_ball(mesh_vertices, mesh_faces, *region)
    samples = sample_surface(mesh_vertices, mesh_faces, n_samples, seed)
    cfg = scene_of_gt(gt)  # the capture's own scene: a default one would judge visibility wrongly
    idx = sorted(gt["c2w"])
    c2w = np.array([gt["c2w"][i] for i in idx])
    depths = render_depth(cfg, gt["K"], gt["width"], gt["height"], c2w)
    return samples, visible_points(samples, list(depths), [gt["K"]] * len(idx), [np.linalg.inv(m) for m in c2w])


def surface_fscore(points_ws: np.ndarray, ws: Workspace, gt: dict[str, Any], mesh_vertices: np.ndarray,
                   mesh_faces: np.ndarray, thresholds=(0.01, 0.005), n_samples: int = 1_000_000,
                   region_radii: float = 2.0, with_whole: bool = False,
                   gt_samples: tuple[np.ndarray, np.ndarray] | None = None, icp: bool = False) -> dict[str, Any]:
    """Precision/recall/F-score of workspace points against the GT surface the cameras see.

    ``with_whole`` adds ``whole_at_<th>``: precision against the whole GT surface, so that a mesh closing a
    real surface no camera saw (the back of an object on a partial arc) is not counted as wrong; recall
    stays on the seen surface.

    Thresholds are fractions of the scene size (GT ``scene_radius`` * 2). For orbits the evaluation
    region is the sphere of ``region_radii`` scene radii around the object, and the GT samples are drawn
    inside it (see :func:`gt_surface_samples`).
    ``gt_samples``: :func:`gt_surface_samples` of this capture, when already computed.
    ``icp``: refine the camera-based alignment by rigid ICP onto the GT surface first (``icp`` in the result:
    the correction), so that the score judges the surface's shape, not the cameras' registration, which
    :func:`camera_errors` judges (a 0.3 % error of the camera centres is most of 0.5 % of the scene size).
    """
    s, R, t = to_gt_frame(ws, gt)
    pts = (s * (R @ points_ws.T)).T + t
    whole, vis = gt_samples if gt_samples is not None else gt_surface_samples(gt, mesh_vertices, mesh_faces,
                                                                              n_samples, region_radii)
    samples = whole[vis]
    region = region_of(gt, region_radii)
    if region is not None:
        # An orbit films an object: evaluate the object and the floor around it (DTU-style region),
        # not the far floor seen at grazing angles near the horizon.
        c, r = region
        samples = samples[np.linalg.norm(samples - c, axis=1) <= r]
        pts = pts[np.linalg.norm(pts - c, axis=1) <= r]
    else:
        lo, hi = samples.min(0) - 0.02, samples.max(0) + 0.02
        pts = pts[np.all((pts >= lo) & (pts <= hi), axis=1)]
    size = 2 * float(gt["scene_radius"])
    out = {"n_points": int(len(pts)), "n_gt_samples": int(len(samples)), "scene_size": size}
    if icp and len(pts) >= 3:
        pts, out["icp"] = refine_by_icp(pts, samples, 0.01 * size)
    for th in thresholds:
        out[f"at_{th}"] = fscore(pts, samples, th * size)
        if with_whole:
            p = precision(pts, whole, th * size)
            r = out[f"at_{th}"]["recall"]
            out[f"whole_at_{th}"] = {"precision": p, "recall": r, "fscore": 2 * p * r / (p + r) if p + r > 0 else 0.0}
    return out


def refine_by_icp(pts: np.ndarray, samples: np.ndarray, max_dist: float,
                  n_max: int = 200_000) -> tuple[np.ndarray, dict[str, float]]:
    """``pts`` (N, 3) moved by rigid point-to-point ICP onto ``samples`` (M, 3), pairs at most ``max_dist``
    apart in the last of four passes (8, 4, 2 and 1 times that); and the correction (translation, rotation
    in degrees)."""
    import open3d as o3d

    rng = np.random.default_rng(0)
    sub = pts if len(pts) <= n_max else pts[rng.choice(len(pts), n_max, replace=False)]
    src = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(sub))
    dst = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(samples))
    # coarse to fine: the cameras' registration of a small object can be off by several times max_dist (5 % of
    # the scene size was seen), past which pairs at max_dist alone never form and the ICP stays where it began
    T = np.eye(4)
    for scale in (8.0, 4.0, 2.0, 1.0):
        T = np.asarray(o3d.pipelines.registration.registration_icp(
            src, dst, scale * max_dist, T, o3d.pipelines.registration.TransformationEstimationPointToPoint(),
            o3d.pipelines.registration.ICPConvergenceCriteria(max_iteration=50)).transformation)
    angle = rotation_angle_deg(T[:3, :3], np.eye(3))
    return pts @ T[:3, :3].T + T[:3, 3], {"translation": float(np.linalg.norm(T[:3, 3])), "rotation_deg": angle,
                                           "matrix": T.tolist()}
