"""A garment laid flat, from the gravity-aligned mesh (+Z up) of a capture filmed from above: its outline on
the table and the usual flat measurements.

The garment is what stands above the table by more than half its own thickness, seen straight down. Its
centre line is the outline's mirror axis (the direction, and the sideways place, its mirror image overlaps it
best); the neck end is the end the sleeves are at. Along the centre line: length from the shoulders' highest
point to the hem; hem width just above the hem; chest width a little below the armpits, where the body's sides
turn out into the sleeves; waist width the narrowest in between; sleeve length from the shoulder point (where
the body's side, continued up, meets the sleeve's fitted top edge) along that edge to the cuff.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vid2model.ops.measure import running_median


@dataclass(frozen=True)
class FlatGarment:
    """Flat measurements in model units (metres when the model is metric)."""

    length: float
    chest_width: float
    waist_width: float
    hem_width: float
    sleeve_length: float
    sleeves: tuple[float, float]  # left and right, as seen with the neck up
    outline: np.ndarray  # [K, 2] world (x, y) on the table, counter-clockwise
    axis_deg: float  # the centre line's direction (hem to neck) from +X
    thickness: float  # how far the garment stands above the table
    symmetry: float  # intersection over union of the shape and its mirror image
    edge_noise: float  # how far the outline stands from its own mirror image, on average (model units)
    outline_read_share: float = 0.0  # share of the outline the photos' edges placed (the rest: the mesh's)


def height_map(V: np.ndarray, F: np.ndarray, table: np.ndarray, lo: np.ndarray, pixel: float,
               size: tuple[int, int]) -> np.ndarray:
    """Height [H, W] above the plane ``table`` (z = a x + b y + c) of the mesh's top surface seen straight
    down, on a grid of ``pixel`` from ``lo`` (x, y) (row = y); nan where no surface lies below."""
    import open3d as o3d

    h, w = size
    xs = lo[0] + (np.arange(w) + 0.5) * pixel
    ys = lo[1] + (np.arange(h) + 0.5) * pixel
    gx, gy = np.meshgrid(xs, ys)
    top = float(V[:, 2].max()) + 1.0
    rays = np.c_[gx.ravel(), gy.ravel(), np.full(gx.size, top), np.zeros((gx.size, 2)), -np.ones(gx.size)]
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(V.astype(np.float32)), o3d.core.Tensor(F.astype(np.uint32)))
    t = scene.cast_rays(o3d.core.Tensor(rays.astype(np.float32)))["t_hit"].numpy().reshape(h, w)
    z = top - t
    return np.where(np.isfinite(t), z - (table[0] * gx + table[1] * gy + table[2]), np.nan)


def two_levels(x: np.ndarray, bins: int = 256) -> float | None:
    """The value [scalar] splitting ``x`` [N] into two groups of least spread within (Otsu's rule on a histogram
    of its middle 99.8 %); the middle of the best bins' run where several split equally well. None if ``x``
    has a single value."""
    lo, hi = np.percentile(x, [0.1, 99.9])
    if hi <= lo:
        return None
    count, edges = np.histogram(np.clip(x, lo, hi), bins=bins, range=(lo, hi))
    centre = 0.5 * (edges[1:] + edges[:-1])
    w0 = np.cumsum(count)[:-1].astype(float)
    w1 = count.sum() - w0
    s0 = np.cumsum(count * centre)[:-1]
    m0 = s0 / np.maximum(w0, 1)
    m1 = ((count * centre).sum() - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))
    return float(edges[1:-1][best].mean())


def _largest_near(mask: np.ndarray, at: tuple[int, int]) -> np.ndarray:
    """The connected part of ``mask`` [H, W] nearest the pixel ``at`` (row, col), holes filled."""
    import cv2

    n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if n < 2:
        return np.zeros_like(mask)
    rr, cc = np.nonzero(lab)
    k = lab[rr, cc][np.argmin((rr - at[0]) ** 2 + (cc - at[1]) ** 2)]
    part = (lab == k).astype(np.uint8)
    contours, _ = cv2.findContours(part, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(part)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


def _mirror_iou(mask: np.ndarray, centre: np.ndarray, direction: np.ndarray) -> float:
    """IoU [0, 1] of ``mask`` and its mirror image about the line through ``centre`` (col, row) along
    ``direction``."""
    import cv2

    d = direction / np.linalg.norm(direction)
    M = 2 * np.outer(d, d) - np.eye(2)  # reflection about the line's direction
    A = np.c_[M, centre - M @ centre]
    flipped = cv2.warpAffine(mask.astype(np.uint8), A, mask.shape[::-1], flags=cv2.INTER_NEAREST) > 0
    return float((mask & flipped).sum() / max((mask | flipped).sum(), 1))


def _upright(h: np.ndarray, part: np.ndarray, mean: np.ndarray, axis: np.ndarray) -> tuple[np.ndarray, int]:
    """The heights ``h`` [H, W] of the garment ``part`` [H, W] bool resampled (bilinear) on a grid of the same
    pixel turned so that rows run along the centre line ``axis`` (pixel units, rows up it) through ``mean``
    (col, row) and the middle column lies on it; nothing outside the part. Returns [R, C] and the middle
    column."""
    import cv2

    rr, cc = np.nonzero(part)
    rel = np.c_[cc, rr] - mean
    across = np.array([axis[1], -axis[0]])
    half = int(np.ceil(np.abs(rel @ across).max())) + 3
    s = rel @ axis
    s_lo, s_hi = int(np.floor(s.min())) - 3, int(np.ceil(s.max())) + 3
    mid = half
    src = np.where(cv2.dilate(part.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0, np.nan_to_num(h), 0.0)
    M = np.c_[across, axis, mean - mid * across + s_lo * axis]  # upright (col, row, 1) -> source (col, row)
    up = cv2.warpAffine(src.astype(np.float32), M, (2 * half + 1, s_hi - s_lo + 1),
                        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=0.0)
    return up, mid


def _sleeve(mask: np.ndarray, side: int, shoulder_col: int, pixel: float) -> float:
    """Length [model units] of one sleeve: from the shoulder point (the line fitted to the sleeve's top edge
    at the body's side, column ``shoulder_col``) along that line to where the edge ends at the cuff. ``side`` is
    +1 (columns right of the middle) or -1."""
    mid = mask.shape[1] // 2
    cols = np.arange(mask.shape[1])
    out = (cols - mid) * side > (shoulder_col - mid) * side
    has = mask.any(0) & out
    if has.sum() < 5:
        return float("nan")
    top = np.where(mask.any(0), mask.shape[0] - 1 - np.argmax(mask[::-1], axis=0), -1)
    sc = np.flatnonzero(has)
    span = np.abs(sc - shoulder_col).max()
    fit = has & (np.abs(cols - shoulder_col) >= 0.1 * span) & (np.abs(cols - shoulder_col) <= 0.8 * span)
    if fit.sum() < 3:
        return float("nan")
    x, y = (cols[fit] - shoulder_col) * side, top[fit].astype(float)
    # the line most of the edge's columns lie on (within 2 pixels), fitted to them: a lump of the outline at the
    # shoulder's corner, a quarter of the edge's columns, tilts a least-squares line by degrees
    pick = np.unique(np.linspace(0, len(x) - 1, min(len(x), 60)).astype(int))  # candidates' ends
    i, j = (pick[k] for k in np.triu_indices(len(pick), 1))
    apart = np.abs(x[j] - x[i]) >= 0.25 * np.ptp(x)
    i, j = i[apart], j[apart]
    slopes = (y[j] - y[i]) / (x[j] - x[i])
    offsets = y[i] - slopes * x[i]
    votes = (np.abs(y[None, :] - (slopes[:, None] * x[None, :] + offsets[:, None])) <= 2.0).sum(1)
    best = int(np.argmax(votes))
    on = np.abs(y - (slopes[best] * x + offsets[best])) <= 2.0
    coef = np.polyfit(x[on], y[on], 1)
    u = np.array([1.0, coef[0]]) / np.hypot(1.0, coef[0])
    rr, cc = np.nonzero(mask[:, out])
    cc = np.flatnonzero(out)[cc]
    along = (cc - shoulder_col) * side
    # where the top edge ends: the sleeve's pixels along that edge (a line across a cuff that is not square
    # to the fitted edge would otherwise add its width's share)
    below = (np.polyval(coef, along) - rr) * u[0]
    edge = (below >= -1) & (below <= max(3.0, 0.03 * span))
    # the shoulder point on the fitted edge, where it meets the body's side: a bump of the rounded corner
    # there does not move it
    proj = along[edge] * u[0] + (rr[edge] - np.polyval(coef, 0.0)) * u[1]
    if len(proj) < 2:
        return float("nan")
    # a speck standing off the cuff is fewer pixels than the edge's width
    k = min(len(proj) - 1, max(1, int(0.01 * span)))
    end = float(np.partition(proj, len(proj) - 1 - k)[len(proj) - 1 - k])
    # where the cuff is, taken square to the top edge: the median over the cuff's middle half of how far its
    # pixels reach along the edge. The edge's last pixels stop short of it where a read outline rounds the convex
    # corner (the views' pixels there mix garment and table from two sides), and reach past it where a lump of the
    # outline sits on the corner; a line fitted across the cuff tilts with either
    s_all = along * u[0] + (rr - np.polyval(coef, 0.0)) * u[1]
    t_all = (np.polyval(coef, along) - rr) * u[0]
    far = s_all >= end - 0.15 * span
    if far.sum() >= 20:
        width = float(np.percentile(t_all[far], 98))
        bins = np.arange(np.floor(0.25 * width), np.ceil(0.75 * width))
        ends = np.array([np.max(s_all[far & (t_all >= b) & (t_all < b + 1)], initial=-np.inf) for b in bins])
        ends = ends[np.isfinite(ends)]
        if len(ends) >= 5 and abs(float(np.median(ends)) - end) <= 0.05 * span:
            end = float(np.median(ends))
    return end * pixel


def _outline(mask: np.ndarray, lo: np.ndarray, pixel: float) -> np.ndarray:
    """The world (x, y) [K, 2] of the outer outline of ``mask`` [H, W] (rows along y, pixels of ``pixel`` from
    ``lo``), counter-clockwise."""
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    ring = lo + (max(contours, key=len)[:, 0, :].astype(float) + 0.5) * pixel
    area2 = np.sum(ring[:, 0] * np.roll(ring[:, 1], -1) - np.roll(ring[:, 0], -1) * ring[:, 1])
    return ring if area2 > 0 else ring[::-1]


def _coverage(ring: np.ndarray, lo: np.ndarray, pixel: float, size: tuple[int, int], sub: int = 4) -> np.ndarray:
    """Share [H, W] of each pixel (of ``pixel`` from ``lo``) the polygon ``ring`` [K, 2] (world x, y) covers,
    drawn at ``sub`` x ``sub`` samples a pixel within the polygon's box."""
    import cv2

    h, w = size
    px = (ring - lo) / pixel  # continuous pixel coordinates, corners at integers
    c0 = np.clip(np.floor(px.min(0)).astype(int) - 1, 0, [w, h])
    c1 = np.clip(np.ceil(px.max(0)).astype(int) + 1, 0, [w, h])
    out = np.zeros(size, np.float32)
    if (c1 <= c0).any():
        return out
    bw, bh = c1 - c0
    fine = np.zeros((bh * sub, bw * sub), np.uint8)
    shift = 4  # fillPoly's sub-sample bits
    pts = np.round(((px - c0) * sub - 0.5) * (1 << shift)).astype(np.int32)
    cv2.fillPoly(fine, [pts], 255, lineType=cv2.LINE_8, shift=shift)
    out[c0[1]:c1[1], c0[0]:c1[0]] = cv2.resize(fine, (bw, bh), interpolation=cv2.INTER_AREA) / 255.0
    return out


def flat_garment(V: np.ndarray, F: np.ndarray, table: np.ndarray, centre: np.ndarray, reach: float,
                 pixel: float, edges=None) -> FlatGarment | None:
    """The garment lying on the plane ``table`` (z = a x + b y + c) within ``reach`` of ``centre`` (x, y), from
    a height map of ``pixel``; None when nothing stands clearly above the table there. ``edges``, when given,
    moves the mesh's outline onto the photos' edges: ``edges(ring [K, 2], top_z [K], floor_z [K])`` (the
    outline, counter-clockwise world x, y, and the garment's top's and the table's heights under it) returns
    the moved outline or None to keep the mesh's."""
    import cv2

    n = int(np.ceil(2 * reach / pixel))
    lo = np.asarray(centre, float) - reach
    h = height_map(V, F, table, lo, pixel, (n, n))
    near = np.isfinite(h)
    if near.sum() < 100:
        return None
    # the table and the garment are the two heights the view down shows most of: split them where they are
    # told apart best, and take the garment's thickness from the table's level to its own
    hs = h[near]
    cut = two_levels(hs)
    if cut is None:
        return None
    # the table as a plane through what lies below the cut (the plane given may lean on the garment's top)
    gy, gx = np.nonzero(near)
    low = hs <= cut
    A = np.c_[gx[low], gy[low], np.ones(low.sum())]
    coef = np.linalg.lstsq(A, hs[low], rcond=None)[0]
    yy, xx = np.mgrid[0:n, 0:n]
    h = h - (coef[0] * xx + coef[1] * yy + coef[2])
    hs = h[near]
    cut = two_levels(hs)
    if cut is None:
        return None
    table_level, top_level = float(np.median(hs[hs <= cut])), float(np.median(hs[hs > cut]))
    table_noise = float(1.4826 * np.median(np.abs(hs[hs <= cut] - table_level)))
    thickness = top_level - table_level
    if thickness <= 4 * table_noise:
        return None
    mask = np.nan_to_num(h, nan=table_level) > table_level + 0.5 * thickness
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
    mask = _largest_near(mask, (n // 2, n // 2))
    if mask.sum() < 100:
        return None
    if edges is not None:
        ring = _outline(mask, lo, pixel)
        col, row = (ring - lo).T / pixel - 0.5
        floor_z = (table[0] * ring[:, 0] + table[1] * ring[:, 1] + table[2] + coef[0] * col + coef[1] * row + coef[2]
                   + table_level)
        moved = edges(ring, floor_z + thickness, floor_z)
        if moved is not None:
            cover = _coverage(moved, lo, pixel, (n, n))
            h = table_level + thickness * cover
            mask = _largest_near(cover > 0.5, (n // 2, n // 2))
            if mask.sum() < 100:
                return None
    rr, cc = np.nonzero(mask)
    # the mirror tests run on the garment's box (with room to turn), not the whole view
    pad = int(0.1 * max(np.ptp(rr), np.ptp(cc))) + 4
    r0, c0 = max(rr.min() - pad, 0), max(cc.min() - pad, 0)
    box = mask[r0:rr.max() + pad + 1, c0:cc.max() + pad + 1]
    pts = np.c_[cc, rr].astype(float)
    mean = pts.mean(0)
    # the mirror axis: the best of every direction 2 degrees apart, then to a quarter degree (a short-sleeved
    # shirt is about as wide as it is long, so its principal axes are no guide)
    def turned(deg: float) -> np.ndarray:
        return np.array([np.cos(np.radians(deg)), np.sin(np.radians(deg))])

    off = np.array([c0, r0], float)
    coarse = {a: _mirror_iou(box, mean - off, turned(a)) for a in np.arange(0.0, 180.0, 2.0)}
    a0 = max(coarse, key=coarse.get)
    fine = {a: _mirror_iou(box, mean - off, turned(a)) for a in a0 + np.arange(-2.0, 2.01, 0.25)}
    best_angle = max(fine, key=fine.get)
    best, axis = fine[best_angle], turned(best_angle)
    # ... and sideways: surface noise along one side moves the centroid off the centre line
    across = np.array([axis[1], -axis[0]])
    reach_px = max(2, int(0.02 * np.sqrt(mask.sum())))
    shift = 0.0
    for d in range(-reach_px, reach_px + 1):
        score = _mirror_iou(box, mean - off + d * across, axis)
        if score > best:
            best, shift = score, float(d)
    mean = mean + shift * across
    ring = _outline(mask, lo, pixel)
    up, mid = _upright(h, mask, mean, axis)
    level = table_level + 0.5 * thickness
    inside = up > level
    if int(np.argmax(inside.sum(1))) < len(up) / 2:  # the sleeves are at the neck end: the widest row
        axis = -axis
        up, mid = _upright(h, mask, mean, axis)
    # a shirt is symmetric: where its outline and its mirror image part, one of them is off; their mismatch
    # area over the outline's length is how far an edge is off on average
    perimeter = np.linalg.norm(ring - np.roll(ring, 1, axis=0), axis=1).sum()
    edge_noise = (1 - best) * mask.sum() * pixel * pixel / max(perimeter, pixel)
    return _measure_upright(up, mid, level, pixel, ring, axis, thickness, best, edge_noise)


def _edges(inside: np.ndarray, heights: np.ndarray, mid: int, level: float) -> tuple[float, float] | None:
    """Where the run of ``inside`` [C] through column ``mid`` ends on either side, to a fraction of a pixel
    (``heights`` [C] crossing ``level``, linearly between the last pixel out and the first in): (left, right)
    in columns; None if ``mid`` is not in it."""
    if not inside[mid]:
        return None
    gaps_l = np.flatnonzero(~inside[:mid])
    gaps_r = np.flatnonzero(~inside[mid:])
    i = gaps_l.max() if len(gaps_l) else 0  # last pixel out, left of the run
    j = mid + gaps_r.min() if len(gaps_r) else len(inside) - 1

    def frac(out: float, inn: float) -> float:
        return float(np.clip((level - out) / (inn - out), 0.0, 1.0)) if inn > out else 0.5

    return i + frac(heights[i], heights[i + 1]), j - frac(heights[j], heights[j - 1])


def _armpit_row(edge: np.ndarray, start: int, step: int) -> int | None:
    """The row where one side's edge (its distance from the centre line per row [R], pixels; nan where none)
    turns out into the sleeve: the first row from ``start`` up from which the edge runs outwards by more than
    it rises over ``step`` rows, and twice that over four steps (a sleeve reaches far out; a lump of a ragged
    side a couple of steps tall comes back)."""
    for r in range(start, len(edge) - 4 * step):
        if (edge[r + step] - edge[r] > step and edge[r + 2 * step] - edge[r] > step
                and edge[r + 4 * step] - edge[r] > 2 * step):
            return r
    return None


def _solid(mask: np.ndarray) -> np.ndarray:
    """``mask`` [R, C] with specks opened away, its largest piece kept and holes filled (a dip of the
    surface inside the garment is not its edge)."""
    import cv2

    m = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.zeros_like(m)
    if contours:
        cv2.drawContours(out, [max(contours, key=cv2.contourArea)], -1, 1, thickness=cv2.FILLED)
    return out.astype(bool)


def _measure_upright(up: np.ndarray, mid: int, level: float, pixel: float, ring: np.ndarray, axis: np.ndarray,
                     thickness: float, symmetry: float, edge_noise: float) -> FlatGarment | None:
    """The flat measurements of a garment's heights ``up`` [R, C] drawn upright (rows along its centre line,
    neck at the top, the line on column ``mid``); it is where they exceed ``level``."""
    import cv2

    inside = _solid(up > level)
    count = inside.sum(1)
    rows = np.flatnonzero(count)
    first, last = int(rows.min()), int(rows.max())
    span = last - first
    body = float(np.median(count[first + span // 20:first + span // 7 + 1]))
    # the hem is the first row across most of the body, the top the last with more than a sliver: a speck
    # of surface noise standing off the outline is not where the garment ends
    bottom = first + int(np.argmax(count[first:] >= 0.9 * body))

    def highest(counts: np.ndarray, share: float) -> int:
        return last - int(np.argmax(counts[::-1][len(counts) - 1 - last:] >= share * body))

    top = highest(count, 0.02)
    # a shirt's shoulders stand equally high: where one half's top stands above the other's by more than 2 % of
    # the length, a lump of the outline sits on it (the lower one can be rounded in by a few pixels, no more)
    halves = highest(inside[:, :mid].sum(1), 0.01), highest(inside[:, mid:].sum(1), 0.01)
    if abs(halves[0] - halves[1]) > 0.02 * (top - bottom):
        top = min(top, *halves)
    length = (top - bottom + 1) * pixel
    # notches of a ragged outline do not cut a row's run: close gaps up to 2 % of the length along the rows
    gap = max(3, int(round(0.02 * length / pixel))) | 1
    joined = cv2.morphologyEx(inside.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((1, gap), np.uint8)).astype(bool)
    edges = [_edges(m, h, mid, level) for m, h in zip(joined, up)]
    left = np.array([e[0] if e else np.nan for e in edges])
    right = np.array([e[1] if e else np.nan for e in edges])
    step = max(2, int(round(0.02 * length / pixel)))
    start = bottom + int(0.3 * (top - bottom))
    smooth = max(3, step // 2) | 1  # rows: a running median, so that a notch of the outline is not a turn
    arm = [_armpit_row(running_median(right - mid, smooth, skip_nan=True), start, step),
           _armpit_row(running_median(mid - left, smooth, skip_nan=True), start, step)]
    if any(a is None for a in arm):
        return None
    armpit = int(round(np.mean(arm)))

    # widths as a running median over 2 % of the length (1.5 cm): a notch or a lump of a ragged outline is
    # not the garment's width
    widths = running_median(right - left, max(5, int(round(0.02 * length / pixel))) | 1, skip_nan=True) * pixel
    chest_row = armpit - int(round(0.035 * length / pixel))
    band = np.arange(bottom + int(round(0.1 * length / pixel)), armpit - int(round(0.07 * length / pixel)))
    chest = float(widths[chest_row])
    # the hem width just above the hem: each side's median distance from the centre line 2-6 % of the length
    # above it (a read outline rounds the hem's corners below that), twice the narrower side's when the two differ
    # by more than 3 pixels (a side read to a pixel each, the centre line to half of one): a shirt's sides match,
    # and beside a plain stretch of table a read outline stands out (table taken for garment) far more often than
    # it cuts in
    stretch = slice(bottom + int(round(0.02 * length / pixel)), bottom + int(round(0.06 * length / pixel)) + 1)
    near_l, near_r = (float(np.median(d[np.isfinite(d)])) if np.isfinite(d).any() else np.nan
                      for d in (mid - left[stretch], right[stretch] - mid))
    hem = (2 * min(near_l, near_r) if abs(near_l - near_r) > 3 else near_l + near_r) * pixel
    waist = float(np.nanmin(widths[band])) if len(band) else np.nan
    sleeves = []
    for side, edge in ((-1, left[chest_row]), (1, right[chest_row])):
        sleeves.append(_sleeve(inside, side, int(round(edge)), pixel))
    if not np.isfinite([chest, waist, hem, *sleeves]).all():
        return None
    return FlatGarment(length=length, chest_width=chest, waist_width=waist, hem_width=hem,
                       sleeve_length=float(np.mean(sleeves)), sleeves=(sleeves[0], sleeves[1]),
                       outline=ring,
                       axis_deg=float(np.degrees(np.arctan2(axis[1], axis[0]))), thickness=thickness,
                       symmetry=symmetry, edge_noise=edge_noise)
