"""Measuring an object in a gravity-aligned model (+Z up): the level it stands on, which surface is the
object, its upright bounding box, area and volume.

Meshes are plain arrays: vertices ``V`` [N, 3] and triangles ``F`` [M, 3] int.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def face_geometry(V: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per triangle: centroid [M, 3], area [M] and unit normal [M, 3] (zero for degenerate triangles)."""
    a, b, c = V[F[:, 0]], V[F[:, 1]], V[F[:, 2]]
    cr = np.cross(b - a, c - a)
    norm = np.linalg.norm(cr, axis=1)
    return (a + b + c) / 3, 0.5 * norm, cr / np.maximum(norm, 1e-300)[:, None]


def horizontal_levels(V: np.ndarray, F: np.ndarray, bin_size: float, min_cos: float = 0.95,
                      axis_xy: np.ndarray | None = None, reach: float = np.inf) -> list[tuple[float, float]]:
    """Heights of the horizontal, upward-facing surfaces (floors, table tops, shelves) and their areas,
    largest first: [(z, area)]. Faces within ``acos(min_cos)`` of facing straight up (and within ``reach`` of
    the vertical axis through ``axis_xy``) are binned by height (``bin_size``); each peak's height is the
    area-weighted mean of it and its two neighbour bins."""
    cen, area, nrm = face_geometry(V, F)
    up = nrm[:, 2] >= min_cos
    if axis_xy is not None:
        up &= np.linalg.norm(cen[:, :2] - axis_xy, axis=1) <= reach
    if not up.any():
        return []
    z, w = cen[up, 2], area[up]
    lo = z.min()
    idx = np.floor((z - lo) / bin_size).astype(np.int64)
    hist = np.bincount(idx, weights=w)
    zsum = np.bincount(idx, weights=w * z)
    levels = []
    for i in np.argsort(-hist):
        if hist[i] <= 0:
            break
        if any(abs(i - j) <= 2 for j, _ in levels):  # a neighbour of a larger peak
            continue
        levels.append((int(i), float(hist[max(i - 1, 0):i + 2].sum())))
    out = []
    for i, a in levels:
        s = slice(max(i - 1, 0), i + 2)
        out.append((float(zsum[s].sum() / max(hist[s].sum(), 1e-300)), a))
    return sorted(out, key=lambda x: -x[1])


def fit_level(cen: np.ndarray, area: np.ndarray, sel: np.ndarray, z0: float, window: float) -> np.ndarray:
    """The plane z = a x + b y + c [3] through the faces ``sel`` [M] bool near height ``z0``: an area-weighted
    least-squares fit to the face centroids ``cen`` [M, 3] within ``window`` of it, refitted twice on those
    within three times its spread (furniture tops and the plane's other side drop out). A gravity estimate a
    fraction of a degree off tilts a floor by centimetres across a room: a level would split into bins."""
    take = sel & (np.abs(cen[:, 2] - z0) <= window)
    coef = np.array([0.0, 0.0, z0])
    for _ in range(3):
        if take.sum() < 3:
            break
        w = np.sqrt(area[take])
        A = np.c_[cen[take, :2], np.ones(take.sum())]
        coef = np.linalg.lstsq(A * w[:, None], cen[take, 2] * w, rcond=None)[0]
        resid = cen[:, 2] - (cen[:, :2] @ coef[:2] + coef[2])
        spread = float(np.sqrt(np.average(resid[take] ** 2, weights=area[take])))
        take = sel & (np.abs(resid) <= max(3 * spread, 1e-9))
    return coef


def support_level(V: np.ndarray, F: np.ndarray, top: float, bin_size: float, axis_xy: np.ndarray, reach: float,
                  min_share: float = 0.25) -> float | None:
    """Height of the surface the object on the vertical axis through ``axis_xy`` stands on: the highest
    horizontal level below ``top`` (a height inside the object) holding, within ``reach`` of the axis, at least
    ``min_share`` of the largest such level's area. A box's lid is a level too, but a small one: the floor or
    table around the object is far larger; and only the floor near the object counts against a table top.
    None when the model has no level below ``top`` (an object already cut from its support).
    """
    levels = [(z, a) for z, a in horizontal_levels(V, F, bin_size, axis_xy=axis_xy, reach=reach) if z < top]
    if not levels:
        return None
    big = max(a for _, a in levels)
    for z, a in sorted(levels, key=lambda x: -x[0]):
        if a >= min_share * big:
            return z
    return None  # pragma: no cover (the largest level always qualifies)


def object_faces(V: np.ndarray, F: np.ndarray, axis_xy: np.ndarray, base: float, cut: float,
                 reach: float) -> np.ndarray:
    """Triangles [M] bool of the object standing at ``axis_xy`` on the level ``base``.

    The surface up to ``cut`` above the level (the support itself and the join Poisson rounds into it) is set
    aside; of the connected pieces above, the one nearest the axis (within ``reach``) is the object, with the
    pieces standing within its footprint (a lid or a ball the mesh did not join to it) or around it.
    """
    from vid2model.ops.mesh_cleanup import component_labels

    keep = ~(V[F, 2] < base + cut).all(1)
    lab = np.full(len(F), -1, np.int64)
    lab[keep] = component_labels(len(V), F[keep])
    if not keep.any():
        return keep
    cen = V[F].mean(1)
    d = np.linalg.norm(cen[:, :2] - axis_xy, axis=1)
    d[~keep] = np.inf
    if d.min() > reach:
        return np.zeros(len(F), bool)
    main = lab[np.argmin(d)]
    out = lab == main
    # pieces the mesh did not join: one standing mostly within the object's footprint, or one whose footprint
    # holds the object's (a body's sections each a piece of their own), until no more join
    pieces = {int(k): cen[lab == k, :2] for k in np.unique(lab[keep]) if k != main}
    grew = True
    while grew:
        grew = False
        lo, hi = cen[out, :2].min(0), cen[out, :2].max(0)
        for k, c in list(pieces.items()):
            within = np.all((c >= lo) & (c <= hi), axis=1).mean()
            holds = np.all((cen[out, :2] >= c.min(0)) & (cen[out, :2] <= c.max(0)), axis=1).mean()
            if within >= 0.5 or holds >= 0.5:
                out |= lab == k
                del pieces[k]
                grew = True
    return out


@dataclass(frozen=True)
class ObjectBox:
    """An object's upright bounding box and sizes, in model units (metres when the model is metric)."""

    height: float  # from the level it stands on to its top
    width: float  # the box's longer horizontal side
    depth: float  # its shorter horizontal side
    yaw_deg: float  # direction of the width side from +X, counter-clockwise seen from above
    base: float  # height of the level it stands on
    center: np.ndarray  # [3] centre of the box
    corners: np.ndarray  # [8, 3] the box's corners, bottom four then top four
    footprint: float  # area of the outline seen from above (convex hull) within the box's sides
    surface: float  # area of its surface (what the cameras saw; not the bottom on the support)
    volume: float | None  # enclosed down to the level, when the surface is closed apart from its base
    n_faces: int


def peaks(x: np.ndarray, w: np.ndarray, bin_size: float, min_share: float) -> list[tuple[float, float]]:
    """Positions and weights of the histogram peaks of ``x`` [N] weighted by ``w`` [N] holding at least
    ``min_share`` of the largest peak's weight, in position order; each position is the weighted mean of
    the peak's bin and its two neighbours."""
    if len(x) == 0:
        return []
    lo = x.min()
    idx = np.floor((x - lo) / bin_size).astype(np.int64)
    hist = np.bincount(idx, weights=w)
    xs = np.bincount(idx, weights=w * x)
    near = np.convolve(hist, np.ones(3), mode="same")
    xsum = np.convolve(xs, np.ones(3), mode="same")
    taken: list[int] = []
    for i in np.argsort(-near):
        if near[i] <= 0 or near[i] < min_share * near[taken[0] if taken else i]:
            break
        if any(abs(i - j) <= 2 for j in taken):
            continue
        taken.append(int(i))
    return sorted((float(xsum[i] / near[i]), float(near[i])) for i in taken)


def outer_side(x_vert: np.ndarray, x_face: np.ndarray, facing: np.ndarray, area: np.ndarray, bin_size: float,
               min_share: float = 0.02) -> float:
    """How far an object reaches along one direction: the flat side facing that way, where it is the outermost
    surface (:func:`flat_side`), else its farthest vertex (``x_vert`` [N]: vertex positions along the direction).

    The farthest vertex lies outside a flat side by about three times the surface's noise (the largest of
    thousands of noisy samples), a bias of a few tenths of a percent per side; the side's own level, the
    area-weighted mean of its faces, has none.
    """
    level = flat_side(x_face, facing, area, bin_size, min_share)
    return float(x_vert.max()) if level is None else level


def flat_side(x_face: np.ndarray, facing: np.ndarray, area: np.ndarray, bin_size: float,
              min_share: float = 0.02) -> float | None:
    """The level of the flat side facing along a direction where it is the object's outermost surface, or None:
    ``x_face`` [M], ``facing`` [M] (normal . direction) and ``area`` [M] of the faces. A flat side must hold
    ``min_share`` of the surface, and no more than that share may lie beyond three times its faces' spread about
    it (a handle, a lid standing out; the lip a smooth surface leaves along an edge is far less)."""
    out = facing > 0.9
    if not out.any():
        return None
    found = peaks(x_face[out], area[out], bin_size, 0.3)
    if not found:
        return None
    level, weight = found[-1]
    if weight < min_share * area.sum():
        return None
    near = out & (np.abs(x_face - level) <= 1.5 * bin_size)
    spread = float(np.sqrt(np.average((x_face[near] - level) ** 2, weights=area[near])))
    beyond = x_face > level + 3 * spread + bin_size
    if area[beyond].sum() > min_share * area.sum():
        return None
    return level


def side_from_points(x: np.ndarray, level: float, reach: float, min_points: int = 100) -> float:
    """A flat side's level ``level`` moved to where the dense points' positions ``x`` [P] along its outward
    direction gather within ``reach`` of it (their median there, taken again about itself three times), or left
    where it is when fewer than ``min_points`` lie that near.

    Screened Poisson stands a little out of a flat side everywhere (about 0.2 mm on a 16 cm box) and bulges over a
    side the dense points cover thinly (1 mm over a box's side with an eighth of the others' points), so a side
    taken from the mesh's triangles is that much too far out; the points themselves scatter evenly about it."""
    start = level
    for _ in range(3):
        near = x[np.abs(x - level) <= reach]
        if len(near) < min_points:
            return start
        level = float(np.median(near))
    return level


def upright_box(V: np.ndarray, F: np.ndarray, base: float, cut: float, skirt: float = 0.0,
                bin_size: float | None = None, measured: np.ndarray | None = None,
                points: np.ndarray | None = None) -> ObjectBox:
    """The object's box: the smallest-area rectangle around its outline seen from above, from ``base`` to its
    top; each side and the top at the object's flat side there, if it has one (see :func:`outer_side`).
    ``F`` holds the object's triangles only; ``cut``: the band above ``base`` left out of it (its boundary
    there is where the support was cut away); ``skirt``: the band above ``base`` whose outline is not taken
    (the rounded join a watertight surface makes with the support flares out there); ``bin_size``: for
    finding flat sides (default: a 500th of the box's diagonal); ``measured`` [M] bool: the triangles the
    extents are taken from (the surface, area and volume are the whole object's; default: all); ``points``
    [P, 3]: dense points, each flat side's level taken from those beside it (:func:`side_from_points`)."""
    import cv2

    whole = F
    cen, area, nrm = face_geometry(V, whole)
    surface = float(area.sum())
    if measured is not None and measured.sum() >= 20:
        F, cen, area, nrm = F[measured], cen[measured], area[measured], nrm[measured]
    used = np.unique(F)
    P = V[used]
    above = P[P[:, 2] >= base + skirt]
    xy = (above if len(above) >= 20 else P)[:, :2]
    hull = cv2.convexHull((xy - xy[0]).astype(np.float32)).reshape(-1, 2).astype(np.float64) + xy[0]
    (_, _), (w, h), ang = cv2.minAreaRect((xy - xy[0]).astype(np.float32))
    if w < h:
        ang = ang + 90.0
    th = np.radians(ang)
    u, v = np.array([np.cos(th), np.sin(th)]), np.array([-np.sin(th), np.cos(th)])
    keep = cen[:, 2] >= base + skirt
    bin_size = bin_size or float(np.linalg.norm(np.ptp(P, axis=0))) / 500
    top = outer_side(P[:, 2], cen[:, 2], nrm[:, 2], area, bin_size)
    if points is not None:  # the dense points beside the sides, clear of the support, the top and the corners
        points = points[(points[:, 2] > base + skirt + bin_size) & (points[:, 2] < top - bin_size)]
    ext = {}
    for name, d, across in (("u", u, v), ("v", v, u)):
        xv, xf, fc = xy @ d, cen[keep, :2] @ d, nrm[keep, :2] @ d
        if points is not None:
            a, span = points[:, :2] @ across, xy @ across
            xp = (points[:, :2] @ d)[(a > span.min() + 2 * bin_size) & (a < span.max() - 2 * bin_size)]
        ends = []
        for sign in (1.0, -1.0):
            level = flat_side(sign * xf, sign * fc, area[keep], bin_size)
            if level is None:
                ends.append(float((sign * xv).max()))
            else:
                ends.append(level if points is None else side_from_points(sign * xp, level, bin_size))
        ext[name] = (-ends[1], ends[0])
    (u0, u1), (v0, v1) = ext["u"], ext["v"]
    w, h = u1 - u0, v1 - v0
    if w < h:  # width is the longer side
        u, v, w, h, (u0, u1), (v0, v1), th = v, -u, h, w, (v0, v1), (-u1, -u0), th + np.pi / 2
    c2 = u * (u0 + u1) / 2 + v * (v0 + v1) / 2
    corners2 = np.array([c2 + su * w / 2 * u + sv * h / 2 * v for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
    corners = np.vstack([np.c_[corners2, np.full(4, base)], np.c_[corners2, np.full(4, top)]])
    # the outline within the box's sides: a lip or bulge the sides were measured past is not footprint either
    footprint, _ = cv2.intersectConvexConvex(hull.astype(np.float32), corners2.astype(np.float32))
    footprint = float(footprint)
    return ObjectBox(height=top - base, width=float(w), depth=float(h), yaw_deg=float(np.degrees(th)) % 180.0,
                     base=base, center=np.array([*c2, (base + top) / 2]), corners=corners, footprint=footprint,
                     surface=surface, volume=closed_volume(V, whole, base, cut), n_faces=len(whole))


def boundary_vertices(F: np.ndarray) -> np.ndarray:
    """Vertex indices on the mesh's open boundary (edges used by one triangle)."""
    e = np.sort(np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]]), axis=1)
    uniq, count = np.unique(e, axis=0, return_counts=True)
    return np.unique(uniq[count == 1])


def closed_volume(V: np.ndarray, F: np.ndarray, base: float, cut: float) -> float | None:
    """Volume between an object's surface and the level ``base`` it stands on, or None when the surface is
    open anywhere but at its base (a hole in a side, a top no camera saw).

    By the divergence theorem with the field (0, 0, z - base): the open base contributes nothing where it lies
    on the level, so the volume is the sum over the triangles of (centroid height - base) x area x n_z.
    The band ``cut`` above the level, cut off with the support, is counted as the walls continued straight
    down (the same sum, as its cap at the cut height carries (cut) x (its area) back in).
    """
    rim = boundary_vertices(F)
    if len(rim) and (V[rim, 2] > base + 2.5 * cut).any():
        return None
    cen, area, nrm = face_geometry(V, F)
    vol = float(((cen[:, 2] - base) * area * nrm[:, 2]).sum())
    return vol if vol > 0 else None


def girth_profile(V: np.ndarray, F: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """Girth [K] of the object at each of ``heights`` [K]: the perimeter of the convex outline of its horizontal
    cross-section there, what a tape measure drawn around it reads (around everything the slice cuts; nan
    where it cuts nothing)."""
    import cv2
    import trimesh
    from trimesh.intersections import mesh_plane

    mesh = trimesh.Trimesh(V, F, process=False)
    out = np.full(len(heights), np.nan)
    for i, z in enumerate(heights):
        seg = mesh_plane(mesh, plane_normal=[0.0, 0.0, 1.0], plane_origin=[0.0, 0.0, float(z)])
        if len(seg) < 2:
            continue
        # relative to the first point: float32 (what OpenCV takes) keeps its digits
        xy = seg.reshape(-1, 3)[:, :2]
        out[i] = cv2.arcLength(cv2.convexHull((xy - xy[0]).astype(np.float32)), True)
    return out


def running_median(x: np.ndarray, k: int, skip_nan: bool = False, closed: bool = False) -> np.ndarray:
    """Running median [N] of ``x`` [N] over ``k`` (odd) entries, the ends padded with the end values (``closed``:
    with the other end's, round a closed outline); a window holding a nan gives nan, or with ``skip_nan`` the
    median of the rest (nan if all are)."""
    import warnings

    windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, k // 2, mode="wrap" if closed else "edge"), k)
    if not skip_nan:
        return np.median(windows, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-nan window is nan, as documented
        return np.nanmedian(windows, axis=1)
