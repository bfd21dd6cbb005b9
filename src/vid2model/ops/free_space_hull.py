"""Where surface must be, from where the depth maps saw through: the volume no view saw past.

Stereo measures nothing on a plain, evenly coloured object, but it measures the textured floor and table
around and behind it. Every pixel whose depth lies beyond a point of space says that point is empty; what no
view saw through, above the support and within the views, is the object (a visual hull carved by measured
free space rather than by silhouettes: no segmentation, and a background without texture carves nothing
instead of carving wrongly). Its boundary is where the object's surface is, up to its concavities, which no
view can see into either.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Iterable

import numpy as np

from vid2model.camera import Camera


@functools.cache
def _carve_kernel():
    import numba

    @numba.njit(parallel=True, cache=True)
    def carve(lo, voxel, shape, K, R, t, depth, margin, free, seen):  # pragma: no cover - compiled
        nx, ny, nz = shape[0], shape[1], shape[2]
        H, W = depth.shape
        for i in numba.prange(nx):
            x = lo[0] + (i + 0.5) * voxel
            for j in range(ny):
                y = lo[1] + (j + 0.5) * voxel
                for k in range(nz):
                    z = lo[2] + (k + 0.5) * voxel
                    cz = R[2, 0] * x + R[2, 1] * y + R[2, 2] * z + t[2]
                    if cz <= 1e-6:
                        continue
                    cx = R[0, 0] * x + R[0, 1] * y + R[0, 2] * z + t[0]
                    cy = R[1, 0] * x + R[1, 1] * y + R[1, 2] * z + t[1]
                    u = K[0, 0] * cx / cz + K[0, 2]
                    v = K[1, 1] * cy / cz + K[1, 2]
                    if u < 0 or v < 0 or u >= W or v >= H:
                        continue
                    seen[i, j, k] += 1
                    d = depth[int(v), int(u)]
                    if d > cz * (1 + margin) + 0.5 * voxel:
                        free[i, j, k] += 1
    return carve


@dataclass(frozen=True)
class Hull:
    """The carved volume: ``solid`` [X, Y, Z] bool (no view saw through it, enough views framed it), on the
    grid of voxels of ``voxel`` from corner ``lo`` [3]."""

    solid: np.ndarray
    lo: np.ndarray
    voxel: float

    def standing(self, centre: np.ndarray, off_sides: bool = True) -> "Hull":
        """The connected piece that stands on the box's floor nearest ``centre`` (x, y) and keeps off the box's
        sides: an object on its support, not the sky beyond the views' horizon, which nothing carves either
        (and which reaches the box's sides). Empty when none does. ``off_sides`` False: a piece may reach them
        (a box drawn tight round an object found already)."""
        from scipy import ndimage

        lab, n = ndimage.label(self.solid)
        at_sides = np.unique(np.r_[lab[0].ravel(), lab[-1].ravel(), lab[:, 0].ravel(), lab[:, -1].ravel()])
        on_floor = np.setdiff1d(np.unique(lab[:, :, 0]), np.r_[0, at_sides] if off_sides else [0])
        if not len(on_floor):
            return Hull(solid=np.zeros_like(self.solid), lo=self.lo, voxel=self.voxel)
        idx = np.argwhere(np.isin(lab[:, :, 0], on_floor))
        xy = self.lo[:2] + (idx + 0.5) * self.voxel
        pick = lab[:, :, 0][tuple(idx[np.argmin(np.linalg.norm(xy - np.asarray(centre)[:2], axis=1))])]
        return Hull(solid=lab == pick, lo=self.lo, voxel=self.voxel)

    def seen_through(self, X: np.ndarray, clearance: int = 1) -> np.ndarray:
        """[N] which points [N, 3] lie in the grid more than ``clearance`` voxels off the solid: space the
        depth maps saw through (one stray depth carves a voxel; the closing fills such)."""
        from scipy import ndimage

        idx = np.floor((X - self.lo) / self.voxel).astype(np.int64)
        inside = np.all((idx >= 0) & (idx < np.array(self.solid.shape)), axis=1)
        near = ndimage.binary_dilation(self.solid, iterations=clearance) if clearance > 0 else self.solid
        out = np.zeros(len(X), bool)
        out[inside] = ~near[tuple(idx[inside].T)]
        return out

    def buried(self, X: np.ndarray, depth: int = 2) -> np.ndarray:
        """[N] which points [N, 3] lie more than ``depth`` voxels inside the solid: no view saw a surface there."""
        from scipy import ndimage

        idx = np.floor((X - self.lo) / self.voxel).astype(np.int64)
        inside = np.all((idx >= 0) & (idx < np.array(self.solid.shape)), axis=1)
        core = ndimage.binary_erosion(self.solid, iterations=depth, border_value=1)
        out = np.zeros(len(X), bool)
        out[inside] = core[tuple(idx[inside].T)]
        return out

    def lid(self, drop: float = 0.08, span: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """The flat top where the solid stops standing straight: the section [M, 3] just below the first layer
        whose area falls by more than ``drop`` of the largest of the ``span`` layers below it, at that layer's
        top face, and the [M] mask of those inside it (a voxel from its outline). Empty when no layer falls so.

        An orbit's views bound an object's sides closely, but above a top that is plain no view sees past it:
        the solid goes on there as a roof that narrows as fast as the views look down on it. A flat top is where
        the roof starts; whether the top is flat at all the caller must tell (a ball's solid narrows too). The
        sides stand out of the object by about the depth maps' lost pixel at its outline, and the views that
        look past the top's edges chamfer that excess off over the layers just below the top: the layers there
        narrow by a few per cent each, which a threshold from layer to layer would take for the roof."""
        from scipy import ndimage

        area = self.solid.sum(axis=(0, 1))
        k = next((k for k in range(1, len(area))
                  if area[k - 1] > 0 and area[k] < (1 - drop) * area[max(0, k - span):k].max()), None)
        if k is None:
            return np.zeros((0, 3)), np.zeros(0, bool)
        section = self.solid[:, :, k - 1]
        idx = np.argwhere(section)
        inner = ndimage.binary_erosion(section, iterations=1, border_value=0)[tuple(idx.T)]
        # the first falling layer still holds the top: the far views' planes through the top's edges go on down
        # outwards and clip the sides' excess just under it
        X = self.lo + np.c_[(idx + 0.5) * self.voxel, np.full(len(idx), (k + 1) * self.voxel)]
        return X, inner

    def surface(self) -> tuple[np.ndarray, np.ndarray]:
        """The solid's boundary voxels: centres [N, 3] and outward unit normals [N, 3] (the gradient of the
        smoothed solid)."""
        from scipy import ndimage

        s = self.solid
        # the grid's floor is not the object's: the solid goes on below it (to the support), so its bottom
        # layer is no boundary and its smoothing continues downwards
        below = np.concatenate([s[:, :, :1], s], axis=2)
        inner = ndimage.binary_erosion(below, iterations=1, border_value=0)[:, :, 1:]
        # nor are the grid's sides: a solid they cut (the skirt round an object's foot, which only grazing
        # views carve, in a box drawn tight round the object) has no surface there
        inner[[0, -1]] = inner[:, [0, -1]] = True
        idx = np.argwhere(s & ~inner)
        if not len(idx):
            return np.zeros((0, 3)), np.zeros((0, 3))
        smooth = ndimage.gaussian_filter(s.astype(np.float32), 1.0, mode=("reflect", "reflect", "nearest"))
        g = np.stack(np.gradient(smooth), -1)[tuple(idx.T)]
        n = -g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-9)
        return self.lo + (idx + 0.5) * self.voxel, n


def carve(views: Iterable[tuple[Camera, np.ndarray]], lo: np.ndarray, hi: np.ndarray, voxel: float,
          margin: float = 0.005, min_free: int = 1, min_seen: int = 3,
          past: tuple[np.ndarray, np.ndarray] | None = None, closing: int = 1) -> Hull:
    """The voxels of the box [``lo``, ``hi``] (world) that fewer than
    ``min_free`` depth maps saw past (by ``margin`` of the depth and half a voxel) and that at least ``min_seen``
    views framed. ``views``: (camera at its depth map's resolution, z-depth map [H, W], 0 = none) pairs.
    Just above a floor nothing is carved (a ray passing there meets the floor within the margin): start the box a
    few voxels above it.

    A flat side is carved only by the few views that graze it, each leaving a wedge over it as wide as its angle
    to the side: a second view required (``min_free`` 2) leaves the wedge of the second-nearest, about twice as
    wide. One stray depth too far carves a tunnel a pixel wide through the object, which a closing of the
    solid (``closing`` voxels: a pixel's width) fills again.

    ``past``: a box (lo [3], hi [3]) round the object: only the depths whose points lie outside it carve (the
    background seen past the object).
    Stereo on a plain, shaded object matches wrongly, and consistently across neighbouring views: such depths
    carve channels into the object (a plain cylinder's side sank 1-5 cm behind them). A ray that reaches the
    floor or the room beyond passed the object by; the hull of those alone is the object's visual hull."""
    from scipy import ndimage

    kernel = _carve_kernel()
    lo = np.asarray(lo, float)
    shape = np.maximum(np.ceil((np.asarray(hi, float) - lo) / voxel).astype(np.int64), 1)
    free = np.zeros(tuple(shape), np.int16)
    seen = np.zeros(tuple(shape), np.int16)
    for cam, depth in views:
        d = np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)
        if past is not None:
            d[_in_box(cam, d, *past)] = 0
        kernel(lo, float(voxel), shape, cam.K.astype(np.float64), cam.R.astype(np.float64),
               cam.t.astype(np.float64), d, float(margin), free, seen)
    framed = seen >= min_seen
    solid = (free < min_free) & framed
    if min_free <= 1:
        padded = np.pad(solid, 1)
        padded[:, :, 0] = padded[:, :, 1]  # the solid goes on below the grid's floor (to the support)
        padded = np.pad(padded, closing - 1, mode="edge")
        solid = ndimage.binary_closing(padded, iterations=closing)[closing:-closing, closing:-closing,
                                                                    closing:-closing] & framed
    return Hull(solid=solid, lo=lo, voxel=float(voxel))


def _in_box(cam: Camera, depth: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """[H, W] whether each pixel's depth point lies in the box [lo, hi] (pixel j spans [j, j + 1), as the carving
    kernel reads it)."""
    v, u = np.nonzero(depth > 0)
    rays = np.linalg.solve(cam.K, np.stack([u + 0.5, v + 0.5, np.ones(len(u))]))  # [3, N]
    X = (cam.R.T @ (rays * depth[v, u] - cam.t[:, None])).T
    out = np.zeros(depth.shape, bool)
    out[v, u] = np.all((X >= lo) & (X <= hi), axis=1)
    return out


@dataclass(frozen=True)
class Face:
    """A flat side of a section between two corners: the chord ``start`` -> ``end`` [2] (the section runs
    anticlockwise, so ``normal`` [2] points out), and how far out of it the hull may stand there (``reach``)."""

    start: np.ndarray
    end: np.ndarray
    normal: np.ndarray
    reach: float

    def over(self, xy: np.ndarray) -> np.ndarray:
        """[N] how far each point [N, 2] stands out of the face, where it stands over it within its reach; NaN
        elsewhere."""
        d = self.end - self.start
        u = (xy - self.start) @ d / float(d @ d)
        out = (xy - self.start) @ self.normal
        return np.where((u >= 0) & (u <= 1) & (out > 0) & (out <= self.reach), out, np.nan)


def flat_faces(xy: np.ndarray, voxel: float, view_gap_deg: float, *, corner_deg: float = 45.0,
               face_turn_deg: float = 20.0, corner_reach: float = 4.0, slack: float = 1.5) -> list[Face]:
    """The flat faces of one horizontal section of a hull, from its outline's points ``xy`` [N, 2].

    Round an object the views bound each flat side by the lines of the few views that graze it: the hull stands
    over the side as a tent from corner to corner, its ridge up to ``length * tan(gap / 2) / 2`` out for views
    ``view_gap_deg`` apart (a 32 cm side of a box seen every 6-14 degrees: 1 cm), while at a corner the views of
    a whole quarter turn meet, so there the hull is tight. A face is the chord between two corners of the
    section's convex outline (``corner_deg`` of turn within ``corner_reach`` voxels) whose outline between them
    keeps within ``face_turn_deg`` of the chord's direction: a tent, not a curve. Its ``reach`` is ``slack``
    times the largest tent plus a voxel. A curved outline has no corners and gets no face (a circle's hull from
    such views stands out of it by a hundredth of a voxel)."""
    from scipy.spatial import ConvexHull, QhullError

    try:
        poly = xy[ConvexHull(xy).vertices]  # anticlockwise
    except (QhullError, ValueError):
        return []
    n = len(poly)
    edge = np.roll(poly, -1, 0) - poly
    phi = np.arctan2(edge[:, 1], edge[:, 0])
    turn = np.mod(np.diff(np.r_[phi[-1], phi]) + np.pi, 2 * np.pi) - np.pi  # at each vertex
    near = np.linalg.norm(poly[:, None] - poly[None], axis=2) <= corner_reach * voxel  # [n, n]
    hot = (near * turn[None]).sum(1) >= np.radians(corner_deg)
    if hot.all() or not hot.any():
        return []
    corners, run = [], []
    first = int(np.flatnonzero(~hot)[0])
    for i in (np.arange(1, n + 1) + first) % n:
        if hot[i]:
            run.append(int(i))
        elif run:
            corners.append(run)
            run = []
    if run:
        corners.append(run)
    if len(corners) < 2:
        return []
    faces = []
    tent = np.tan(np.radians(view_gap_deg) / 2) / 2
    for a, b in zip(corners, corners[1:] + corners[:1]):
        # the chord: the outer common tangent of the two corners' vertices (a corner rounded by the voxels
        # touches it at its outermost point)
        pts = poly[a + b]
        try:
            hull = ConvexHull(pts).vertices if len(pts) >= 3 else np.arange(len(pts))
        except QhullError:  # all in a line
            hull = np.array([0, len(pts) - 1])
        in_a = hull < len(a)
        k = next((i for i in range(len(hull)) if in_a[i] and not in_a[(i + 1) % len(hull)]), None)
        if k is None:
            continue
        start, end = pts[hull[k]], pts[hull[(k + 1) % len(hull)]]
        d = end - start
        length = float(np.linalg.norm(d))
        if length < 2 * corner_reach * voxel:
            continue
        between = [int(e) for e in (np.arange(a[-1], a[-1] + (b[0] - a[-1]) % n) % n)]
        far = [e for e in between if not (near[e, a].any() or near[e, b].any() or near[(e + 1) % n, a].any()
                                          or near[(e + 1) % n, b].any())]
        dev = np.abs(np.mod(phi[far] - np.arctan2(d[1], d[0]) + np.pi, 2 * np.pi) - np.pi)
        if len(far) and dev.max() > np.radians(face_turn_deg):
            continue
        faces.append(Face(start=start, end=end, normal=np.array([d[1], -d[0]]) / length,
                          reach=slack * tent * length + voxel))
    return faces


def steady_faces(faces: dict[int, list[Face]], layers: int = 3, turn_deg: float = 10.0) -> dict[int, list[Face]]:
    """The faces of each layer (``faces``: layer -> its faces) moved along their normals to where a robust line
    (Theil-Sen) through the same face's places in the ``layers`` layers above and below puts it (a face within
    ``turn_deg`` of its direction whose middle stands over its chord): one layer's chord wanders with the
    voxels and the depth maps' noise (a few mm from layer to layer), a flat side does not, and a sloping one
    moves evenly."""
    from scipy.stats import theilslopes

    cos = np.cos(np.radians(turn_deg))
    out = {}
    for k, fs in faces.items():
        moved = []
        for f in fs:
            d = f.end - f.start
            at, offsets = [], []
            for j in range(k - layers, k + layers + 1):
                for g in faces.get(j, []):
                    mid = (g.start + g.end) / 2
                    if g.normal @ f.normal >= cos and 0 <= (mid - f.start) @ d / (d @ d) <= 1:
                        at.append(j - k)
                        offsets.append((mid - f.start) @ f.normal)
            if len(set(at)) < 3:
                moved.append(f)
                continue
            shift = float(theilslopes(offsets, at)[1]) * f.normal  # the line's place at this layer
            moved.append(replace(f, start=f.start + shift, end=f.end + shift))
        out[k] = moved
    return out


def round_tents(xy: np.ndarray, voxel: float, *, max_turn_deg: float = 30.0, simplify: float = 0.75,
                near: float = 1.5, convex_share: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """The points of one horizontal section's outline ``xy`` [N, 2] that stand on a tent of its convex outline,
    moved in onto the curve the silhouette lines touch, and the mask [N] of those moved.

    Round a smooth side the views' silhouette lines are tangents: each touches the object once, near its middle
    where the lines' turns are even, and the hull stands out of the object between two touching points as a
    tent (an elliptic cylinder's long flank, which few views graze: 2-3 mm at 13 degrees between views). The
    quadratic B-spline on the outline's lines is tangent to each at its middle (it reproduces a circle from
    its circumscribed polygon to the fourth order of the turn), so the curve from each line's middle to the
    next's, under their shared corner, stands in for the side. Only corners turning less than ``max_turn_deg``
    are rounded (a box's corners keep their place; flat faces are the caller's), on the convex outline
    simplified to ``simplify`` voxels, and only where at least ``convex_share`` of the points lie within
    ``near`` voxels of that outline (a section with a concavity is bridged by a line that touches nothing in
    its middle)."""
    import cv2
    from scipy.spatial import ConvexHull, QhullError, cKDTree

    moved = np.zeros(len(xy), bool)
    try:
        poly = xy[ConvexHull(xy).vertices]  # anticlockwise
    except (QhullError, ValueError):
        return xy, moved
    kept = cv2.approxPolyDP(poly.astype(np.float32).reshape(-1, 1, 2), simplify * voxel, True).reshape(-1, 2)
    poly = poly[np.sort(cKDTree(poly).query(kept)[1])]  # the outline's own points, not their float32 copies
    n = len(poly)
    if n < 3:
        return xy, moved
    nxt = np.roll(poly, -1, 0)
    edge = nxt - poly
    length = np.linalg.norm(edge, axis=1)
    normal = np.c_[edge[:, 1], -edge[:, 0]] / np.maximum(length, 1e-12)[:, None]  # outward
    # how far each point lies inside the outline: its largest signed offset over the edges' lines, negated
    off = np.einsum("nkd,kd->nk", xy[:, None, :] - poly[None], normal)  # [N, n]
    on_outline = -off.max(axis=1) <= near * voxel
    if on_outline.mean() < convex_share:
        return xy, moved
    phi = np.arctan2(edge[:, 1], edge[:, 0])
    turn = np.abs(np.mod(phi - np.roll(phi, 1) + np.pi, 2 * np.pi) - np.pi)  # at each vertex, between edge i-1, i
    mid = (poly + nxt) / 2
    s = np.linspace(0.0, 1.0, 33)[:, None]
    curve = []
    for i in range(n):
        a, v, b = mid[i - 1], poly[i], mid[i]
        if turn[i] <= np.radians(max_turn_deg):
            curve.append((1 - s) ** 2 * a + 2 * s * (1 - s) * v + s ** 2 * b)
        else:  # a corner keeps its place
            curve.append(np.r_[a + s * (v - a), v + s * (b - v)])
    curve = np.concatenate(curve)
    # the points standing on the outline outside the curve go onto it
    d, j = cKDTree(curve).query(xy, workers=-1)
    tangent = np.roll(curve, -1, 0) - np.roll(curve, 1, 0)
    out_n = np.c_[tangent[:, 1], -tangent[:, 0]]
    outside = np.einsum("nd,nd->n", xy - curve[j], out_n[j]) > 0
    moved = outside & on_outline & (d > 1e-3 * voxel)
    res = xy.copy()
    res[moved] = curve[j[moved]]
    return res, moved
