"""Where the radiance field's fine cube goes: the scene's normalisation (centre, half size, near distance)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from vid2model.nerf.field import FieldSpec
from vid2model.ops.scene_frame import capture_kind, look_at_point

ENV_SIZE = (16, 32)  # an unbounded scene's background at infinity: latitude x longitude cells


def scene_spec(views: Sequence[Any], points: np.ndarray | None, *, contract: bool, sh_degree: int,
               background=(0.0, 0.0, 0.0), center=None, half=None, near_share: float = 0.2,
               shell: float = 1.0) -> FieldSpec:
    """The normalisation: the given centre and half size, else for an unbounded orbit the cube of what
    every camera sees (:func:`common_view_cube`), else the cube round the robust extent of ``points`` (else
    the cameras); rays start ``near_share`` of the cameras' median distance to the centre out."""
    if center is None or half is None:
        c, h = (common_view_cube(views, points) if contract else None) or _points_cube(views, points)
        center = c if center is None else center
        half = h if half is None else half
    scale = float(max(half, 1e-6))
    cams = np.array([v.camera.center for v in views])
    near = near_share * float(np.median(np.linalg.norm(cams - np.asarray(center), axis=1))) / scale
    return FieldSpec(contract=contract, sh_degree=sh_degree, center=tuple(float(x) for x in center),
                     scale=scale, background=tuple(float(x) for x in background), near=near,
                     env_size=ENV_SIZE if contract else (0, 0), shell=shell)


def _points_cube(views: Sequence[Any], points: np.ndarray | None) -> tuple[np.ndarray, float]:
    pts = np.asarray(points, np.float64) if points is not None and len(points) >= 8 else \
        np.array([v.camera.center for v in views])
    lo, hi = np.percentile(pts, 2, axis=0), np.percentile(pts, 98, axis=0)
    return (lo + hi) / 2, float((hi - lo).max() / 2 * 1.1)


def common_view_cube(views: Sequence[Any], points: np.ndarray | None, *, share: float = 0.8,
                     min_points: int = 8) -> tuple[np.ndarray, float] | None:
    """For cameras that look at a common point from around it (an orbit, judged in a z-up frame by the scene
    frame's ``capture_kind``), the cube round the ``points`` that at least ``share`` of the cameras see in
    their frame, no larger than what the median camera's narrower field of view spans at its distance to
    that point; None for other captures.

    The points' own box holds the room or the garden behind the object, and spends the fine voxels there:
    on the synthetic orbit that cube was 4.2 m across for a 1 m scene, and the training views stayed blurred
    (bench/results/nerf-2026-12-06-orbit-floaters.md). What the contraction leaves outside the cube is
    still represented, more coarsely."""
    if len(views) < 3:
        return None
    Rs = np.array([v.camera.world_to_cam[:3, :3] for v in views])  # [V, 3, 3]
    Cs = np.array([v.camera.center for v in views])  # [V, 3]
    target = look_at_point(Rs, Cs)
    if capture_kind(Rs, Cs, target) != "orbit":
        return None
    dist = float(np.median(np.linalg.norm(Cs - target, axis=1)))
    tan_half = float(np.median([min(v.camera.width / 2 / v.camera.fx, v.camera.height / 2 / v.camera.fy)
                                for v in views]))
    cap = dist * tan_half
    if points is None or len(points) < min_points:
        return target, cap
    pts = np.asarray(points, np.float64)  # [N, 3]
    seen = np.zeros(len(pts), np.int32)
    for v in views:
        seen += v.camera.in_frame(*v.camera.project(pts))
    common = pts[seen >= share * len(views)]
    if len(common) < min_points:
        return target, cap
    lo, hi = np.percentile(common, 2, axis=0), np.percentile(common, 98, axis=0)
    return (lo + hi) / 2, min(float((hi - lo).max() / 2 * 1.1), cap)
