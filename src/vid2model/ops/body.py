"""A standing body's measurements from its gravity-aligned mesh (+Z up): girths of horizontal sections, as a
tape drawn round them reads (the convex outline of each separate piece a section cuts).

Where a section splits into two large pieces the legs begin (the crotch); above it the largest piece is the
torso. The usual girths are then found in bands of the height, as tailors' charts place them: the hips
fullest just above the crotch, the waist narrowest above them, the chest fullest higher up, the thigh fullest
just below the crotch (where it runs straight or tapers: the end of a line through its sections). Arms held
away from the body are pieces of their own and do not count in the torso.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vid2model.ops.measure import running_median

# bands above the crotch, as fractions of the height (a person's crotch is at about 0.45-0.48 of it, hips
# at 0.52, waist 0.62, chest 0.72)
HIP_BAND = (0.0, 0.12)
WAIST_BAND = (0.09, 0.24)
CHEST_BAND = (0.20, 0.33)
THIGH_BAND = (-0.08, -0.02)  # the top of the thigh, just below the crotch, where a tape takes it


def section_pieces(V: np.ndarray, F: np.ndarray, z: float) -> list[np.ndarray]:
    """The separate loops the level ``z`` cuts through a mesh (vertices [N, 3], triangles [M, 3]): each as its
    points [K, 2] in (x, y), largest outline first."""
    import trimesh
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree
    from trimesh.intersections import mesh_plane

    seg = mesh_plane(trimesh.Trimesh(V, F, process=False), plane_normal=[0.0, 0.0, 1.0],
                     plane_origin=[0.0, 0.0, float(z)])
    if len(seg) < 3:
        return []
    pts = seg.reshape(-1, 3)[:, :2]
    n = len(pts)
    # a segment joins its two ends; ends of neighbouring segments meet at the same edge's crossing
    near = cKDTree(pts).query_pairs(1e-9 * max(float(np.ptp(pts)), 1e-9) + 1e-12, output_type="ndarray")
    rows = np.r_[np.arange(0, n, 2), near[:, 0]]
    cols = np.r_[np.arange(1, n, 2), near[:, 1]]
    _, lab = connected_components(coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)), directed=False)
    pieces = [pts[lab == k] for k in np.unique(lab)]
    return sorted(pieces, key=lambda p: -tape(p))


def tape(points: np.ndarray) -> float:
    """The length of a tape drawn round points [K, 2]: their convex outline's perimeter."""
    import cv2

    if len(points) < 3:
        return 0.0
    rel = (points - points[0]).astype(np.float32)  # float32 (what OpenCV takes) keeps its digits near 0
    return float(cv2.arcLength(cv2.convexHull(rel), True))


@dataclass(frozen=True)
class Body:
    """A body's measurements in model units (metres when the model is metric); heights are above its base."""

    height: float
    chest: float
    waist: float
    hips: float
    thigh: float
    levels: dict[str, float]  # where each girth was taken, and the crotch
    profile: np.ndarray  # [K, 3]: height, torso girth (nan below the crotch), girth of one leg (nan above)


def body_measurements(V: np.ndarray, F: np.ndarray, base: float, n_sections: int = 400) -> Body | None:
    """Height and chest, waist, hip and thigh girths of the body a mesh shows standing on the level ``base``
    (the mesh holds the body only: see :func:`vid2model.ops.measure.object_faces`); None when no section
    splits into legs in the lower 60 % of the height."""
    top = float(V[:, 2].max())
    height = top - base
    z = base + height * (np.arange(n_sections) + 0.5) / n_sections
    torso = np.full(n_sections, np.nan)
    leg = np.full(n_sections, np.nan)
    split = np.zeros(n_sections, bool)
    for i, level in enumerate(z):
        pieces = [tape(p) for p in section_pieces(V, F, level)]
        if not pieces:
            continue
        # two pieces of comparable size are legs; an arm or a stray fragment is much smaller than what it is beside
        split[i] = len(pieces) >= 2 and pieces[1] >= 0.5 * pieces[0]
        torso[i] = pieces[0]
        if split[i]:
            leg[i] = 0.5 * (pieces[0] + pieces[1])
    low = np.flatnonzero(split & (z < base + 0.6 * height))
    if not len(low):
        return None
    crotch = float(z[low.max()])
    torso[z <= crotch] = np.nan
    leg[z > crotch] = np.nan
    # a girth belongs to a stretch of the body many centimetres long: a running median over 2.5 % of the
    # height (4 cm) keeps those and drops narrower bulges of the surface (a rounded join, a lump of noise)
    k = max(3, int(round(0.025 * n_sections))) | 1
    t = running_median(torso, k)  # nan beside the crotch stays nan

    def pick(curve: np.ndarray, band: tuple[float, float], fullest: bool) -> tuple[float, float]:
        inside = (z >= crotch + band[0] * height) & (z <= crotch + band[1] * height) & np.isfinite(curve)
        if not inside.any():
            return np.nan, np.nan
        i = np.flatnonzero(inside)[np.argmax(curve[inside]) if fullest else np.argmin(curve[inside])]
        return float(curve[i]), float(z[i] - base)

    hips, zh = pick(t, HIP_BAND, True)
    waist, zw = pick(t, WAIST_BAND, False)
    chest, zc = pick(t, CHEST_BAND, True)
    thigh, zt = _fullest_on_a_line(z, leg, crotch + THIGH_BAND[0] * height, crotch + THIGH_BAND[1] * height)
    return Body(height=height, chest=chest, waist=waist, hips=hips, thigh=thigh,
                levels={"crotch": crotch - base, "hips": zh, "waist": zw, "chest": zc, "thigh": zt - base},
                profile=np.c_[z - base, torso, leg])


def _fullest_on_a_line(z: np.ndarray, girth: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """The fullest girth of a stretch (levels ``z`` [K] from ``lo`` to ``hi``) where the body runs straight or
    tapers (the top of the thigh), and its level: the end of a line fitted to the sections' girths there. The
    fullest single section would be the largest of the surface's wander about the true girth, always too
    large."""
    inside = (z >= lo) & (z <= hi) & np.isfinite(girth)
    if inside.sum() < 3:
        return np.nan, np.nan
    zi, gi = z[inside], girth[inside]
    slope, at = np.polyfit(zi - zi.mean(), gi, 1)
    end = zi.max() if slope > 0 else zi.min()
    return float(at + slope * (end - zi.mean())), float(end)
