"""Missing-correspondence test for solved cameras: pairs whose poses promise shared points they lack.

Two cameras placed close together in a model should see most of each other's 3D points. A pair of
images linked only by look-alike structure (a symmetric object seen from opposite sides, repeated
facades) gets placed side by side by the mapper, yet shares just the few points of the false match:
the poses predict hundreds of common points that the images do not have.

The prediction uses the model only: points one camera observes that project into the other's image,
in front of it, seen along rays at most ``max_ray_deg`` apart and from similar distances (where local
features repeat), and not hidden behind a clearly nearer point the other camera observes. A predicted
point counts as seen when the other camera observes it, or observes a point within ``radius_px`` of
its projection at about the same depth (the same surface point in a track of its own, as loop
closures leave them). On the benchmark models (bench/bench_sfm.py) the lowest correct pair reached
0.34 of the model's typical share (fox; synthetic walk 0.5, orbit 0.68), the false links of the NeRF
lego set 0.15-0.2 of it: the threshold is 0.25.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vid2model.camera import Camera

OCCLUSION_PX = 6.0


@dataclass(frozen=True)
class View:
    """A posed image: its camera (with the SfM lens: the model's points are where it saw them) and the
    indices of the points it observes."""

    camera: Camera
    points: np.ndarray  # indices into the point array


def _image_points(xyz: np.ndarray, v: View):
    """A view's own observed points in its image: (KD-tree of pixels, depths)."""
    from scipy.spatial import cKDTree

    Xc = v.camera.to_cam(xyz[v.points])
    keep = Xc[:, 2] > 1e-9
    uv = v.camera.project_cam(Xc[keep]) if keep.any() else np.zeros((0, 2))
    return cKDTree(uv), Xc[keep, 2], v.points[keep]


def predicted_shared(xyz: np.ndarray, a: View, b: View, max_ray_deg: float = 10.0, radius_px: float = 2.0,
                     depth_tol: float = 0.1, occlusion_px: float = OCCLUSION_PX, max_scale: float = 1.25,
                     own_a=None) -> tuple[int, int]:
    """Points of ``b`` that ``a`` should see, and how many of them ``a`` does observe.

    Only points both cameras see from a similar direction (rays within ``max_ray_deg``) and distance
    (ratio up to ``max_scale``) are predicted: there local features repeat reliably.
    A point is taken as hidden from ``a`` (not predicted) when ``a`` observes a point clearly nearer
    to it within ``occlusion_px`` of its projection.

    Args:
        own_a: ``a``'s points in its image, as made by ``_image_points`` (computed when None).

    Returns:
        (predicted, seen).
    """
    if not len(b.points):
        return 0, 0
    X = xyz[b.points]
    ca = a.camera
    ra, rb = X - ca.center, X - b.camera.center
    da, db = np.linalg.norm(ra, axis=1), np.linalg.norm(rb, axis=1)
    cos = (ra * rb).sum(1) / np.maximum(da * db, 1e-12)
    Xc = ca.to_cam(X)
    scale = np.maximum(da, db) / np.maximum(np.minimum(da, db), 1e-12)
    ok = (cos > np.cos(np.radians(max_ray_deg))) & (scale <= max_scale) & (Xc[:, 2] > 1e-9)
    if not ok.any():
        return 0, 0
    uv = ca.project_cam(Xc[ok])
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < ca.width) & (uv[:, 1] >= 0) & (uv[:, 1] < ca.height)
    pred, uv, z = b.points[ok][inside], uv[inside], Xc[ok][inside, 2]
    if not len(pred):
        return 0, 0
    seen = np.isin(pred, a.points, assume_unique=True)
    hidden = np.zeros_like(seen)
    tree, depth, _ = own_a if own_a is not None else _image_points(xyz, a)
    if len(depth) and not seen.all():
        rest = np.flatnonzero(~seen)
        dist, k = tree.query(uv[rest], k=min(8, len(depth)), distance_upper_bound=max(radius_px, occlusion_px))
        dist, k = dist.reshape(len(rest), -1), k.reshape(len(rest), -1)
        found = np.isfinite(dist)
        dz = np.where(found, depth[np.minimum(k, len(depth) - 1)], np.inf) - z[rest, None]
        seen[rest] = (found & (dist <= radius_px) & (np.abs(dz) <= depth_tol * z[rest, None])).any(1)
        hidden[rest] = ~seen[rest] & (found & (dist <= occlusion_px) & (dz < -depth_tol * z[rest, None])).any(1)
    return int((~hidden).sum()), int(seen.sum())


def pair_covisibility(xyz: np.ndarray, views: dict[int, View], pairs: list[tuple[int, int]],
                      max_ray_deg: float = 10.0) -> dict[tuple[int, int], tuple[int, int]]:
    """(predicted, seen) for each pair, the larger prediction of both directions."""
    out = {}
    own: dict[int, tuple] = {}
    for a, b in pairs:
        if a not in views or b not in views:
            continue
        for v in (a, b):
            if v not in own:
                own[v] = _image_points(xyz, views[v])
        pa, sa = predicted_shared(xyz, views[a], views[b], max_ray_deg, own_a=own[a])
        pb, sb = predicted_shared(xyz, views[b], views[a], max_ray_deg, own_a=own[b])
        out[(a, b)] = (pa, sa) if pa >= pb else (pb, sb)
    return out


def conflicting_pairs(stats: dict[tuple[int, int], tuple[int, int]], inliers: dict[tuple[int, int], int] | None = None,
                      min_predicted: int = 100, rel: float = 0.25, min_pairs: int = 10) -> list[tuple[int, int]]:
    """Pairs that see far fewer of their predicted common points than the model's pairs do.

    The typical share (seen / predicted) is the median over pairs with at least ``min_predicted``
    predicted points, so texture, resolution and feature settings calibrate themselves; a pair is in
    conflict when both its seen points and its own verified matches (``inliers``, when given) fall
    under ``rel`` times that share of the prediction. Images that do match well where the model
    says they overlap are no conflict, even if the mapper kept their points in separate tracks. With
    fewer than ``min_pairs`` such pairs there is no reliable median and nothing is flagged.
    """
    big = {k: v for k, v in stats.items() if v[0] >= min_predicted}
    if len(big) < min_pairs:
        return []
    typical = float(np.median([s / p for p, s in big.values()]))
    inliers = inliers or {}
    return sorted(k for k, (p, s) in big.items() if max(s, inliers.get(k, 0)) < rel * typical * p)
