"""A flat garment's outline moved onto the edge its photos show.

The mesh rounds a garment's outline to its voxel (a few mm: a short sleeve read 4 % short), while the photos
draw the edge between garment and table to a fraction of a pixel. A garment on a table it looks like (a print
on a patterned cloth) has no colour edge of its own to find in one photo; what marks its edge in every case is
that the top's plane stops being one surface there. Each outline point is looked at along its outward normal
in the plane of the garment's top, in every keyframe: inside, every view sees the same point of fabric; beyond
the edge that plane is air, and each view sees the table or the garment's side behind it, each a different
one. Where the views start to disagree is the edge.

Before those profiles, the outline is redrawn where the photos tell the two planes apart at each spot round it
(the views agree on the top's plane over the garment and on the table's plane off it, :func:`layer_outline`):
the mesh's outline stands out of the garment by several mm in places (stereo fattens it beside a plain stretch
of table), and from there a profile's window can reach a line of the table's print; from the redrawn outline the
profiles look half as far.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from vid2model.camera import Camera, index_coords
from vid2model.ops.garment import _outline, _solid
from vid2model.ops.measure import running_median


@dataclass(frozen=True)
class EdgeFit:
    """How the outline was moved: the move [K] along each point's outward normal (nan: its profile said
    nothing), and where the two planes' agreement had placed the point before [K] bool (None: nowhere)."""

    moved: np.ndarray
    decided: np.ndarray | None = None

    @property
    def read_share(self) -> float:
        """The share of the outline the photos placed, by either reading."""
        if not len(self.moved):
            return 0.0
        read = np.isfinite(self.moved)
        return float((read if self.decided is None else read | self.decided).mean())


def outward_normals(ring: np.ndarray, k: int = 3) -> np.ndarray:
    """Unit outward normals [K, 2] of a counter-clockwise closed outline ``ring`` [K, 2], from the chord
    between the points ``k`` before and after each (a pixel staircase has no normal of its own)."""
    t = np.roll(ring, -k, axis=0) - np.roll(ring, k, axis=0)
    n = np.c_[t[:, 1], -t[:, 0]]
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _disagreement(C: np.ndarray, A: np.ndarray, min_views: int, chunk: int = 256,
                  colours: np.ndarray | None = None) -> np.ndarray:
    """How far the views' colours of each sample disagree [K, S]: the median over views of each colour's L1
    distance (0-1 a channel) from the views' median colour, from colours ``C`` [V, K, S, 3] uint8 where ``A``
    [V, K, S] saw them; nan where fewer than ``min_views`` did. ``colours`` [K, S, 3] float32, when given,
    receives the median colours (0-1)."""
    D = np.empty(C.shape[1:3], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for k0 in range(0, C.shape[1], chunk):
            c = np.where(A[:, k0:k0 + chunk, :, None], C[:, k0:k0 + chunk].astype(np.float32) / 255.0, np.nan)
            med = np.nanmedian(c, 0)
            D[k0:k0 + chunk] = np.nanmedian(np.abs(c - med).sum(-1), 0)
            if colours is not None:
                colours[k0:k0 + chunk] = med
    D[A.sum(0) < min_views] = np.nan
    return D


def _colours(cam: Camera, img: np.ndarray, X: np.ndarray, hidden=None) -> tuple[np.ndarray, np.ndarray]:
    """Points ``X`` [N, 3] sampled in one view: colours [N, 3] uint8 and where seen [N] (in front, inside the
    frame, and not ``hidden(cam, X)`` [N] bool when given)."""
    uv, depth = cam.project(X)
    ok = (depth > 0) & (uv[:, 0] >= 1) & (uv[:, 0] <= cam.width - 1) & (uv[:, 1] >= 1) & (uv[:, 1] <= cam.height - 1)
    if hidden is not None:
        ok &= ~hidden(cam, X)
    return _bilinear(img, index_coords(uv), ok), ok


def _sample(views, layers: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each layer's points [N, 3] sampled in every view: per layer, colours [V, N, 3] uint8 and where seen [V, N]."""
    cols: list[list[np.ndarray]] = [[] for _ in layers]
    seen: list[list[np.ndarray]] = [[] for _ in layers]
    for cam, img in views:
        for i, X in enumerate(layers):
            c, ok = _colours(cam, img, X)
            cols[i].append(c)
            seen[i].append(ok)
    return [np.array(c) for c in cols], [np.array(a) for a in seen]


def spread_moves(ring: np.ndarray, normals: np.ndarray, top_z: np.ndarray, floor_z: np.ndarray, views,
                 search: float, reach: float, step: float, min_views: int = 5, min_contrast: float = 0.06,
                 min_ratio: float = 3.0, window: float | None = None) -> np.ndarray:
    """Where the garment's top ends along each outline point's outward normal: its move [K] (nan where the
    profile says nothing).

    A point on the top is one surface point in every view, so its colours agree; a point of the top's plane
    beyond the edge is air, and each view sees what lies behind it (the table a thickness' parallax away, or
    the garment's side), so they disagree. The disagreement (the median over views of each colour's distance
    from the views' median colour) steps up at the edge; it is linear in the share of a pixel that crosses it,
    so the edge is where it is half way from the top's level to its peak just outside. A line of the table's
    print running beside the edge disagrees the same way at the top's height, often more; on the table's own
    plane (``floor_z``) it is one point for every view, while just inside a printed garment's edge the table is
    hidden under the top: a peak with open table just inside it is the print's, not the edge's."""
    s = np.arange(-reach, reach + 0.5 * step, step)  # [S]
    K, S = len(ring), len(s)
    P = ring[:, None, :] + s[None, :, None] * normals[:, None, :]  # [K, S, 2]
    layers = [np.concatenate([P, np.broadcast_to(z[:, None, None], (K, S, 1))], -1).reshape(-1, 3)
              for z in (top_z, floor_z)]
    (Ct, Cf), (At, Af) = _sample(views, layers)
    out = np.full(K, np.nan)
    if len(Ct) < min_views:
        return out
    V = len(Ct)
    At, Af = At.reshape(V, K, S), Af.reshape(V, K, S)
    D = _disagreement(Ct.reshape(V, K, S, 3), At, min_views)
    Df = _disagreement(Cf.reshape(V, K, S, 3), Af, min_views)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        inside = np.where(s <= -search, D, np.nan)
        a = np.nanmedian(inside, 1)  # [K] the top's own level
        a90 = np.nanpercentile(inside, 90, axis=1)
        f_in = np.nanmedian(np.where(s <= -search, Df, np.nan), 1)  # the table under the garment
        f_out = np.nanmedian(np.where(s >= search, Df, np.nan), 1)  # and open
    win = np.abs(s) <= (search if window is None else window)
    Dw = np.where(win & np.isfinite(D), D, -np.inf)
    rows = np.arange(K)
    # peaks: local maxima a third of the way up to the highest or more
    left = np.concatenate([np.full((K, 1), -np.inf), Dw[:, :-1]], 1)
    right = np.concatenate([Dw[:, 1:], np.full((K, 1), -np.inf)], 1)
    peaks = (Dw >= left) & (Dw >= right) & (Dw >= (a + (Dw.max(1) - a) / 3)[:, None])
    # where the table disagrees under the garment and agrees in the open (a printed garment), a peak needs the
    # table hidden just inside it; a plain garment hides nothing the views disagree on, and its highest peak is
    # the edge
    printed = (f_in >= 2 * f_out) & (f_in - f_out >= min_contrast)
    L = max(3, int(round(search / 3 / step)))
    j = np.arange(S)
    csum = np.concatenate([np.zeros((K, 1)), np.cumsum(np.nan_to_num(Df), 1)], 1)
    lo, hi = np.clip(j - L, 0, S), np.clip(j - 1, 0, S)
    under = (csum[:, hi] - csum[:, lo]) / np.maximum(hi - lo, 1)  # [K, S] the table just inside each sample
    peaks &= ~(printed[:, None] & (under < (0.5 * (f_in + f_out))[:, None]))
    jp = np.where(printed & peaks.any(1), np.argmax(np.where(peaks, Dw, -np.inf), 1), np.argmax(Dw, 1))
    peak = Dw[rows, jp]
    T = 0.5 * (a + peak)
    ok = np.isfinite(a) & np.isfinite(peak) & (peak - a >= min_contrast) & (peak >= min_ratio * a) & (a90 < T)
    for k in np.flatnonzero(ok):
        d = D[k, :jp[k] + 1]
        below = np.flatnonzero(~(d >= T[k]))  # nan counts as below: the walk stops there
        i = below[-1] if len(below) else -1
        if i < 0 or not win[i] or not np.isfinite(d[i]):
            ok[k] = False
            continue
        t = (T[k] - d[i]) / max(d[i + 1] - d[i], 1e-12)
        out[k] = s[i] + np.clip(t, 0.0, 1.0) * step
    return out


def _bilinear(img: np.ndarray, xy: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """``img`` [H, W, 3] sampled at index coordinates ``xy`` [N, 2] where ``ok`` [N], as uint8 [N, 3] (0 elsewhere)."""
    import cv2

    out = np.zeros((len(xy), 3), np.uint8)
    p = xy[ok].astype(np.float32)
    m = len(p)
    if not m:
        return out
    w = 4096  # remap's maps stay under its 32767-row limit
    p = np.pad(p, ((0, (-m) % w), (0, 0))).reshape(-1, w, 2)
    col = cv2.remap(img, p[..., 0], p[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out[ok] = col.reshape(-1, 3)[:m]
    return out


def layer_outline(ring: np.ndarray, top_z: np.ndarray, floor_z: np.ndarray, views: list, pixel: float,
                  band: float, min_views: int = 5, undecided: float = 0.02) -> tuple[np.ndarray, np.ndarray] | None:
    """The garment's outline from which of two planes each spot within ``band`` of the mesh's outline ``ring``
    [K, 2] (counter-clockwise; top at ``top_z`` [K], table at ``floor_z`` [K]) the photos agree on, on a grid of
    ``pixel``: the new outline [K2, 2] (counter-clockwise) and, per point, whether the photos decided there [K2]
    bool; None when they decided too little.

    On the garment every view sees one point of its top; off it, every view that can see the table past the
    garment sees one point of the table. So each spot is garment where the views agree better at the top's
    height than at the table's (the table's colours taken only from the views whose ray to it clears the
    mesh's garment), table where the reverse holds, by ``undecided`` or more; elsewhere (a plain stretch of both)
    the mesh decides. Unlike a profile along each point's normal this needs no normal (a rounded corner fans
    them) and no peak (a line of the table's print beside the edge makes one)."""
    import cv2

    if len(views) < min_views:
        return None
    cf, thick = _table_plane(ring, top_z, floor_z)
    lo = ring.min(0) - band
    w, h = np.ceil((ring.max(0) + band - lo) / pixel).astype(int)
    mesh = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mesh, [np.round((ring - lo) / pixel - 0.5).astype(np.int32)], 1)
    inside, outside = cv2.distanceTransform(mesh, cv2.DIST_L2, 5), cv2.distanceTransform(1 - mesh, cv2.DIST_L2, 5)
    off = np.where(mesh > 0, inside, outside)  # pixels from the mesh's outline
    rr, cc = np.nonzero(off <= band / pixel)
    xy = lo + (np.c_[cc, rr] + 0.5) * pixel  # [N, 2]
    zf = xy @ cf[:2] + cf[2]
    Dt, Mt = _agreement(views, np.c_[xy, zf + thick], min_views)
    out = off[rr, cc] * np.where(mesh[rr, cc] > 0, -1.0, 1.0)  # signed pixels from the mesh's outline, out +

    def hidden(cam, P):  # where the ray to the camera crosses the top's height over the mesh's garment
        c = cam.center
        X = P[:, :2] + (thick / np.maximum(c[2] - P[:, 2], 1e-6))[:, None] * (c[:2] - P[:, :2])
        ij = np.floor((X - lo) / pixel).astype(int)
        inb = (ij >= 0).all(1) & (ij[:, 0] < w) & (ij[:, 1] < h)
        hid = np.zeros(len(P), bool)
        hid[inb] = mesh[ij[inb, 1], ij[inb, 0]] > 0
        return hid

    Df, Mf = _agreement(views, np.c_[xy, zf], min_views, hidden)
    diff = Dt - Df
    label = np.where(np.isfinite(diff) & (np.abs(diff) >= undecided), diff < 0, -1).astype(np.int8)
    # the table hidden from every view (under the garment's middle) while its top is seen: garment, though not
    # a sign that the photos tell the two apart
    under = (label < 0) & ~np.isfinite(Df) & np.isfinite(Dt)
    label[under] = 1
    # where the two planes agree alike (plain stretches of both), a colour far nearer the garment's than the
    # table's (or the reverse) decides: a plain shirt on a table of another colour
    label = _by_colour(label, Mt, Mf, np.isfinite(Dt), np.isfinite(Df), out, 0.5 * band / pixel)
    decided = (label >= 0) & ~under
    if decided.mean() < 0.2:
        return None
    garment = mesh.copy()
    garment[rr, cc] = np.where(label >= 0, label == 1, mesh[rr, cc] > 0)
    garment = _solid(cv2.medianBlur(garment * 255, 5) > 127).astype(np.uint8)
    new = _outline(garment, lo, pixel)
    said = np.zeros((h, w), np.float32)
    said[rr, cc] = decided
    # a point counts as decided when most spots within 2 pixels of it were
    near = cv2.blur(said, (5, 5))
    ij = np.clip(np.floor((new - lo) / pixel).astype(int), 0, [w - 1, h - 1])
    return new, near[ij[:, 1], ij[:, 0]] >= 0.5


def _table_plane(ring: np.ndarray, top_z: np.ndarray, floor_z: np.ndarray) -> tuple[np.ndarray, float]:
    """The table under the outline ``ring`` [K, 2] as a plane fitted to ``floor_z`` [K] (z = a x + b y + c:
    [3]) and the garment's thickness above it (the median of ``top_z`` [K] less ``floor_z``)."""
    cf = np.linalg.lstsq(np.c_[ring, np.ones(len(ring))], floor_z, rcond=None)[0]
    return cf, float(np.median(top_z - floor_z))


def _agreement(views: list, P: np.ndarray, min_views: int, hidden=None) -> tuple[np.ndarray, np.ndarray]:
    """How far the views' colours of points ``P`` [N, 3] disagree [N] (nan where fewer than ``min_views`` see
    it) and their median colour [N, 3] (0-1); ``hidden(cam, P)`` [N] bool leaves a view out where true."""
    C, A = zip(*(_colours(cam, img, P, hidden) for cam, img in views))
    M = np.zeros((len(P), 1, 3), np.float32)
    D = _disagreement(np.array(C)[:, :, None], np.array(A)[:, :, None], min_views, 8192, M)[:, 0]
    return D, M[:, 0]


def _by_colour(label: np.ndarray, top: np.ndarray, floor: np.ndarray, seen_top: np.ndarray, seen_floor: np.ndarray,
               out: np.ndarray, far: float, ratio: float = 2.0, min_gap: float = 0.1, k: int = 5) -> np.ndarray:
    """``label`` [N] (1 garment, 0 table, -1 undecided) with undecided spots decided by colour where it is
    clear: a spot's median colour on the top's plane ``top`` [N, 3] (0-1) against the garment's colours (``top``
    of the spots labelled garment) and the table's (``floor``, the table seen past the garment, of the spots
    labelled table), or, with under 50 of either, of the spots more than ``far`` inside and outside the mesh's
    outline (``out`` [N]: signed distance from it, out positive); by the mean L1 distance to the ``k`` nearest
    of each: garment when the table's is ``ratio`` times the garment's and ``min_gap`` more, table the other way
    round."""
    from scipy.spatial import cKDTree

    # the colours the photos already decided on, or (too few of those) the spots well inside and outside
    refs = [top[seen_top & (label == 1)], floor[seen_floor & (label == 0)]]
    if min(len(r) for r in refs) < 50:
        refs = [top[seen_top & (out < -far)], floor[seen_floor & (out > far)]]
    todo = np.flatnonzero((label < 0) & seen_top)
    if min(len(r) for r in refs) < 50 or not len(todo):
        return label
    rng = np.random.default_rng(0)
    dist = []
    for r in refs:
        r = r[rng.choice(len(r), min(len(r), 4000), replace=False)]
        dist.append(cKDTree(r).query(top[todo], k=k, p=1)[0].mean(1))
    dg, dt = dist
    out_label = label.copy()
    out_label[todo[(dt >= ratio * dg) & (dt - dg >= min_gap)]] = 1
    out_label[todo[(dg >= ratio * dt) & (dg - dt >= min_gap)]] = 0
    return out_label


def fit_edges(ring: np.ndarray, top_z: np.ndarray, floor_z: np.ndarray,
              views: Iterable[tuple[Camera, np.ndarray]], search: float, reach: float,
              step: float) -> tuple[np.ndarray, EdgeFit]:
    """The counter-clockwise outline ``ring`` [K, 2] moved onto the edge of the garment's top (at ``top_z``
    [K], on a table at ``floor_z`` [K]) that ``views`` ((camera, image [H, W, 3] uint8) pairs) show, with how
    it moved. The outline is first redrawn where the photos tell the garment's top from the table
    (:func:`layer_outline`, within ``reach`` on a grid of two ``step``); then each point looks along its normal
    within ``search`` of where it is (half that from a redrawn outline), along profiles sampled every ``step``
    out to ``reach``; a stretch no profile read moves as its read neighbours do."""
    views = list(views)
    window = decided = None
    layers = layer_outline(ring, top_z, floor_z, views, 2 * step, reach)
    if layers is not None:
        cf, thick = _table_plane(ring, top_z, floor_z)
        ring, decided = layers
        floor_z = ring @ cf[:2] + cf[2]
        top_z = floor_z + thick
        window = 0.5 * search
    n = outward_normals(ring)
    med = spread_moves(ring, n, top_z, floor_z, views, search, reach, step, window=window)
    # a running median along the outline over half a search: one point's bad reading does not make a notch
    k = max(3, int(round(0.5 * search / max(np.median(np.linalg.norm(np.diff(ring, axis=0), axis=1)), 1e-12)))) | 1
    smooth = running_median(med, k, skip_nan=True, closed=True)
    ok = np.isfinite(smooth)
    if not ok.any():
        return ring, EdgeFit(moved=smooth, decided=decided)
    # a stretch no view read (a concave corner where the profile reaches the garment again) moves as its
    # read neighbours on either side do, in proportion along the outline
    at = np.arange(len(ring))
    filled = np.interp(at, at[ok], smooth[ok], period=len(ring))
    return ring + filled[:, None] * n, EdgeFit(moved=smooth, decided=decided)
