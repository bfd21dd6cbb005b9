"""Doors and windows in a room's walls: where a wall plane found by :func:`~vid2model.ops.room.room_layout` has
no surface and the model shows surface beyond the plane, seen through it.

A wall that is merely absent from the model (never filmed, or hidden behind furniture) leaves a hole too, but
nothing stands beyond it: the cameras could not see past a wall that is there. Each wall is rasterised in its
own frame (along the wall from its first corner, and height above the floor); the hole's edges are then read
to a fraction of a cell from how much wall surface lies in strips across them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vid2model.ops.measure import face_geometry


@dataclass(frozen=True, kw_only=True)
class Opening:
    """A rectangular opening in wall ``wall`` of a :class:`~vid2model.ops.room.Room` (model units): from
    ``start`` to ``start + width`` along the wall from its first corner, ``sill`` to ``sill + height`` above
    the floor. ``*_se``: standard errors from how the edges scatter along their length (the start and sill:
    of one edge; the width and height: of two)."""

    wall: int
    start: float
    width: float
    sill: float
    height: float
    kind: str  # "door" (it reaches the floor), "window", or "opening" (its foot runs into wall not seen)
    center: np.ndarray  # [3], its middle on the wall plane
    start_se: float
    width_se: float
    sill_se: float
    height_se: float
    seen_through: float  # share of the hole's cells with surface seen beyond the wall through them
    # sides (left, right, bottom, top: along the wall from its first corner, and up) where the hole runs on into
    # wall the model does not show: that edge is where the unseen part begins, not where the opening ends
    unseen_edges: tuple[str, ...] = ()

    def scaled(self, k: float) -> "Opening":
        return Opening(wall=self.wall, start=self.start * k, width=self.width * k, sill=self.sill * k,
                       height=self.height * k, kind=self.kind, center=self.center * k, start_se=self.start_se * k,
                       width_se=self.width_se * k, sill_se=self.sill_se * k, height_se=self.height_se * k,
                       seen_through=self.seen_through, unseen_edges=self.unseen_edges)


@dataclass(frozen=True, kw_only=True)
class _WallFrame:
    """Wall k's frame: ``origin`` [2] (its first corner), ``along`` [2] and ``inward`` [2] unit vectors,
    ``length``, the floor's height at either end ``z0``, ``z1``, the room's ``height`` and its ``middle`` [2] in
    the wall's frame (along it, in front of it)."""

    origin: np.ndarray
    along: np.ndarray
    inward: np.ndarray
    length: float
    z0: float
    z1: float
    height: float
    middle: np.ndarray

    def coords(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Points [N, 3] as (along the wall, in front of it (+: inside the room), above the floor), each [N]."""
        d = p[:, :2] - self.origin
        u = d @ self.along
        return u, d @ self.inward, p[:, 2] - (self.z0 + (self.z1 - self.z0) * u / self.length)


def _frames(room) -> list[_WallFrame]:
    c = room.corners
    mid = c[:, :2].mean(0)
    height = room.height if room.height is not None else np.nan
    out = []
    for k in range(4):
        a, b = c[k], c[(k + 1) % 4]
        e = (b[:2] - a[:2]) / np.linalg.norm(b[:2] - a[:2])
        n = np.array([-e[1], e[0]])
        n = n if (mid - a[:2]) @ n > 0 else -n
        out.append(_WallFrame(origin=a[:2], along=e, inward=n, length=float(np.linalg.norm(b[:2] - a[:2])),
                              z0=float(a[2]), z1=float(b[2]), height=float(height),
                              middle=np.array([(mid - a[:2]) @ e, (mid - a[:2]) @ n])))
    return out


def _box_blur(a: np.ndarray) -> np.ndarray:
    """3 x 3 mean of a grid [H, W] (edges: the mean of the cells there)."""
    from scipy.ndimage import uniform_filter

    return uniform_filter(a, size=3, mode="nearest")


def _spread(r: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Shares [N, K] of faces spread evenly over their reach ``r`` [N, 2] (least, greatest coordinate) that fall
    within the intervals ``lo``..``hi`` [K] (a face no wider than rounding: all of it where its middle is)."""
    a, b = r[:, :1], r[:, 1:]
    width = b - a
    part = np.clip(np.minimum(b, hi) - np.maximum(a, lo), 0, None) / np.maximum(width, 1e-12)
    mid = (a + b) / 2
    return np.where(width > 1e-12, part, ((mid >= lo) & (mid < hi)).astype(float))


def _edge(across_r: np.ndarray, along_r: np.ndarray, w: np.ndarray, across: tuple[float, float],
          span: tuple[float, float], wall_below: bool, n_strips: int, cell: float) -> tuple[float, float]:
    """Where wall surface ends across one edge of a hole, from samples of the wall: triangles or points, with
    their reach across the edge and along it (``across_r``, ``along_r`` [N, 2]: least and greatest coordinate;
    a point's are equal) and weights ``w`` [N] (a triangle's projected area; 1 a point), in the window
    ``across`` = (lo, hi) split along ``span`` into ``n_strips`` strips. A sample's weight is spread evenly
    over its reach, so the pieces of facets that the window's and strips' sides cut count for their share. In
    each strip the covered length is its weight in the window over the weight per length in the window's
    outer ``cell`` on the wall side, over all strips (a mesh's: their width; points': their density), so the
    edge lies that far in from the window's wall side (``wall_below``: the wall is on the low side). Returns the
    median over the strips with wall in the window and its standard error (fewer than two such strips: the
    window's middle, half the window uncertain)."""
    lo, hi = across
    edges = np.linspace(span[0], span[1], n_strips + 1)
    near = (across_r[:, 1] >= lo) & (across_r[:, 0] <= hi) & (along_r[:, 1] >= span[0]) & (along_r[:, 0] <= span[1])
    strips = _spread(along_r[near], edges[:-1], edges[1:]) * w[near, None]  # [n, K]
    inside = _spread(across_r[near], np.array([lo]), np.array([hi]))[:, 0] @ strips
    side = (lo, lo + cell) if wall_below else (hi - cell, hi)
    density = _spread(across_r[near], np.array([side[0]]), np.array([side[1]]))[:, 0] @ strips / cell
    # a strip with no wall in the window (the wall beside the opening was not seen there) says nothing
    ok = density > 0.1 * np.median(density)
    if ok.any():  # pooled over the strips: a few points per strip are too few to weigh each on its own
        density = np.full(n_strips, density[ok].mean() * np.diff(edges) / np.diff(edges)[0])
    cover = np.clip(inside / np.maximum(density, 1e-300), 0, hi - lo)
    ok &= cover > 0.1 * (hi - lo)
    if ok.sum() < 2:
        return (lo + hi) / 2, (hi - lo) / 2
    at = (lo + cover if wall_below else hi - cover)[ok]
    se = 1.2533 * float(np.std(at)) / np.sqrt(len(at))  # the median's, for a normal spread
    return float(np.median(at)), se


def wall_openings(V: np.ndarray, F: np.ndarray, room, bin_size: float,
                  points: np.ndarray | None = None) -> list[Opening]:
    """The doors and windows in ``room``'s four walls that a mesh (vertices [N, 3], triangles [M, 3]) shows,
    by wall then along it; their edges are read from ``points`` [P, 3] when given (the dense points the mesh was
    made from: meshing carries a wall's surface a few centimetres on over the opening's edge, the points stop
    there).

    Per wall, the surface within four bins of its plane and facing into the room is rasterised in cells of four
    bins (a bin is the level histograms' resolution, a little under the mesh's voxel); holes in it are the cells
    it covers less than half of, after a box blur, leaving out a band of eight bins at the floor, ceiling and
    ends, where meshing rounds the room's corners off. The cells through which surface beyond the plane is seen
    (from the room's middle: what lies more than 6 % of the room's height behind it, projected through it) make
    the openings; each grows by up to three cells over the hole round it, to the wall, and must be at least an
    eighth of the room's height on each side and fill 40 % of its rectangle. One whose foot is in the floor's
    band is a door, one with wall under its foot a window.
    """
    cen, area, nrm = face_geometry(V, F)
    out = []
    for k, fr in enumerate(_frames(room)):
        u, s, h = fr.coords(cen)
        uv, _, hv = fr.coords(V)
        reach = (np.c_[uv[F].min(1), uv[F].max(1)], np.c_[hv[F].min(1), hv[F].max(1)])
        H = fr.height if np.isfinite(fr.height) else float(np.quantile(h[np.abs(s) <= 4 * bin_size], 0.99))
        facing = nrm[:, :2] @ fr.inward
        on = (np.abs(s) <= 4 * bin_size) & (facing > 0.5)
        samples = (reach[0][on], reach[1][on], area[on] * np.abs(facing[on]))  # area projected onto the wall
        if points is not None:
            pu, ps, ph = fr.coords(points)
            near = np.abs(ps) <= 4 * bin_size
            samples = (np.c_[pu[near], pu[near]], np.c_[ph[near], ph[near]], np.ones(int(near.sum())))
        out += _holes(k, fr, (u, s, h), area, facing, H, bin_size, samples)
    return out


def _holes(k: int, fr: _WallFrame, ush: tuple[np.ndarray, np.ndarray, np.ndarray], area: np.ndarray,
           facing: np.ndarray, H: float, bin_size: float,
           samples: tuple[np.ndarray, np.ndarray, np.ndarray]) -> list[Opening]:
    """The openings of wall ``k`` (:func:`wall_openings`) from its faces' wall coordinates ``ush`` (centroids
    along, in front of and above the floor, each [M]), areas [M] and normals' component into the room
    ``facing`` [M]; their edges from the wall's ``samples`` (:func:`_edge`: reach along and in height, weights)."""
    from scipy.ndimage import binary_closing, label

    u, s, h = ush
    cell, band, L = 4 * bin_size, 8 * bin_size, fr.length
    nu, nh = int(np.ceil(L / cell)), int(np.ceil(H / cell))
    on = (np.abs(s) <= 4 * bin_size) & (facing > 0.5) & (u >= 0) & (u < L) & (h >= 0) & (h < H)
    w = area * np.abs(facing)  # area projected onto the wall
    cov = np.zeros((nh, nu))
    np.add.at(cov, (np.minimum((h[on] / cell).astype(int), nh - 1), np.minimum((u[on] / cell).astype(int), nu - 1)),
              w[on])
    hole = _box_blur(cov / cell ** 2) < 0.5
    m = int(np.ceil(band / cell))
    hole[:m], hole[-m:], hole[:, :m], hole[:, -m:] = False, False, False, False
    seen = _seen_through(u, s, h, fr, H, cell, (nh, nu))
    # where the hole is seen through: a hole whose edge runs on into wall never seen is cut off there
    lab, n = label(binary_closing(hole & seen, iterations=2) & hole)
    found = []
    for i in range(1, n + 1):
        rows, cols = np.nonzero(lab == i)
        box, shut = _grow(hole, (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1), GROW)
        j0, j1, i0, i1 = box
        if min(j1 - j0, i1 - i0) * cell < H / 8 or len(rows) < FILL * (j1 - j0) * (i1 - i0):
            continue
        found.append(_rectangle(k, fr, samples[:2], samples[2], (i0 * cell, i1 * cell),
                                (j0 * cell, j1 * cell), shut, j0 <= m, j1 >= nh - m, cell,
                                float(seen[j0:j1, i0:i1].mean())))
    return sorted(found, key=lambda o: o.start)


FILL = 0.4  # least share of its rectangle an opening's cells fill (a corner may run into unseen wall)
GROW = 3  # cells a hole's rectangle may grow beyond the cells seen through to reach the wall round it


def _grow(hole: np.ndarray, box: tuple[int, int, int, int], limit: int) -> tuple[tuple[int, int, int, int],
                                                                                tuple[bool, bool, bool, bool]]:
    """``box`` (rows j0:j1, columns i0:i1 of the raster ``hole`` [nh, nu]) grown on each side while the row or
    column beside it is mostly hole, by ``limit`` cells at most; and whether each side (left, right, bottom,
    top) then meets wall (False: the hole runs on, into wall the model does not show)."""
    j0, j1, i0, i1 = (int(x) for x in box)
    nh, nu = hole.shape

    def more(side: str) -> bool:
        if side == "l":
            return i0 > 0 and hole[j0:j1, i0 - 1].mean() > 0.5
        if side == "r":
            return i1 < nu and hole[j0:j1, i1].mean() > 0.5
        if side == "b":
            return j0 > 0 and hole[j0 - 1, i0:i1].mean() > 0.5
        return j1 < nh and hole[j1, i0:i1].mean() > 0.5

    shut = []
    for side in "lrbt":
        for _ in range(limit):
            if not more(side):
                break
            if side == "l":
                i0 -= 1
            elif side == "r":
                i1 += 1
            elif side == "b":
                j0 -= 1
            else:
                j1 += 1
        shut.append(not more(side))
    return (j0, j1, i0, i1), tuple(shut)


def _seen_through(u: np.ndarray, s: np.ndarray, h: np.ndarray, fr: _WallFrame, H: float, cell: float,
                  shape: tuple[int, int]) -> np.ndarray:
    """Cells [nh, nu] bool of the wall's raster through which, from the room's middle at half its height, some
    surface well beyond the wall plane (``s`` below -6 % of the height ``H``) is seen; grown by a cell, as the
    cameras stood round the middle, not at it."""
    from scipy.ndimage import binary_dilation

    far = s < -0.06 * H
    lam = fr.middle[1] / (fr.middle[1] - s[far])  # where the line from the middle crosses the plane
    pu = fr.middle[0] + lam * (u[far] - fr.middle[0])
    ph = H / 2 + lam * (h[far] - H / 2)
    nh, nu = shape
    ok = (pu >= 0) & (pu < nu * cell) & (ph >= 0) & (ph < nh * cell)
    seen = np.zeros(shape, bool)
    seen[(ph[ok] / cell).astype(int), (pu[ok] / cell).astype(int)] = True
    return binary_dilation(seen)


def _rectangle(k: int, fr: _WallFrame, reach: tuple[np.ndarray, np.ndarray], w: np.ndarray,
               us: tuple[float, float], hs: tuple[float, float], shut: tuple[bool, bool, bool, bool], on_floor: bool,
               to_ceiling: bool, cell: float, through: float) -> Opening:
    """The opening of wall ``k`` whose hole spans ``us`` along the wall and ``hs`` in height on the raster, its
    edges read from the wall's samples (their ``reach`` along and in height [N, 2] each, weights ``w`` [N]) in
    windows two cells either side of each (:func:`_edge`); a door's foot is the floor (height 0).
    An edge in the ceiling's band, or not ``shut`` by wall (left, right, bottom, top), stays at the raster's, a
    few cells uncertain."""
    (ul, ur), (hb, ht) = us, hs
    ru, rh = reach
    inner_h, inner_u = (hb + cell, ht - cell), (ul + cell, ur - cell)
    n_h = max(3, int(round((inner_h[1] - inner_h[0]) / (4 * cell))))
    n_u = max(3, int(round((inner_u[1] - inner_u[0]) / (4 * cell))))
    rough = GROW * cell / 2

    def edge(at: float, shut_: bool, across_r, along_r, span, wall_below: bool, n: int) -> tuple[float, float]:
        if not shut_:
            return at, rough
        for _ in range(3):  # the raster's edge can be a cell or two off: centre the window on the last reading
            new, se = _edge(across_r, along_r, w, (at - 2 * cell, at + 2 * cell), span, wall_below, n, cell)
            if abs(new - at) < cell / 2:
                break
            at = new
        return new, se

    left, se_l = edge(ul, shut[0], ru, rh, inner_h, True, n_h)
    right, se_r = edge(ur, shut[1], ru, rh, inner_h, False, n_h)
    bottom, se_b = (0.0, 0.0) if on_floor else edge(hb, shut[2], rh, ru, inner_u, True, n_u)
    top, se_t = (ht, rough) if to_ceiling else edge(ht, shut[3], rh, ru, inner_u, False, n_u)
    um = (left + right) / 2
    xy = fr.origin + fr.along * um
    z = fr.z0 + (fr.z1 - fr.z0) * um / fr.length + (bottom + top) / 2
    return Opening(wall=k, start=left, width=right - left, sill=bottom, height=top - bottom,
                   kind="door" if on_floor else "window" if shut[2] else "opening", center=np.array([xy[0], xy[1], z]),
                   start_se=se_l, width_se=float(np.hypot(se_l, se_r)), sill_se=se_b,
                   height_se=float(np.hypot(se_b, se_t)),
                   seen_through=round(through, 3),
                   unseen_edges=tuple(n for n, ok in zip(("left", "right", "bottom", "top"), shut) if not ok
                                      and not (n == "bottom" and on_floor) and not (n == "top" and to_ceiling)))
