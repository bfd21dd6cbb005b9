"""A flat garment's outline moved onto the edge its photos show.

The mesh rounds a garment's outline to its voxel (a few mm: a short sleeve read 4 % short), while the photos
draw the edge between garment and table to a fraction of a pixel. A garment on a table it looks like (a print
on a patterned cloth) has no colour edge of its own to find in one photo; what marks its edge in every case is
that the top's plane stops being one surface there. Each outline point is looked at along its outward normal
in the plane of the garment's top, in every keyframe: inside, every view sees the same point of fabric; beyond
the edge that plane is air, and each view sees the table or the garment's side behind it, each a different
one. Where the views start to disagree is the edge.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from vid2model.camera import Camera, index_coords
from vid2model.ops.measure import running_median


@dataclass(frozen=True)
class EdgeFit:
    """How the outline was moved: the move [K] along each point's outward normal (nan: its profile said
    nothing)."""

    moved: np.ndarray

    @property
    def read_share(self) -> float:
        return float(np.isfinite(self.moved).mean()) if len(self.moved) else 0.0


def outward_normals(ring: np.ndarray, k: int = 3) -> np.ndarray:
    """Unit outward normals [K, 2] of a counter-clockwise closed outline ``ring`` [K, 2], from the chord
    between the points ``k`` before and after each (a pixel staircase has no normal of its own)."""
    t = np.roll(ring, -k, axis=0) - np.roll(ring, k, axis=0)
    n = np.c_[t[:, 1], -t[:, 0]]
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _disagreement(C: np.ndarray, A: np.ndarray, min_views: int, chunk: int = 256) -> np.ndarray:
    """How far the views' colours of each sample disagree [K, S]: the median over views of each colour's L1
    distance (0-1 a channel) from the views' median colour, from colours ``C`` [V, K, S, 3] uint8 where ``A``
    [V, K, S] saw them; nan where fewer than ``min_views`` did."""
    D = np.empty(C.shape[1:3], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for k0 in range(0, C.shape[1], chunk):
            c = np.where(A[:, k0:k0 + chunk, :, None], C[:, k0:k0 + chunk].astype(np.float32) / 255.0, np.nan)
            D[k0:k0 + chunk] = np.nanmedian(np.abs(c - np.nanmedian(c, 0)).sum(-1), 0)
    D[A.sum(0) < min_views] = np.nan
    return D


def _sample(views, layers: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each layer's points [N, 3] sampled in every view: per layer, colours [V, N, 3] uint8 and where seen [V, N]."""
    cols: list[list[np.ndarray]] = [[] for _ in layers]
    seen: list[list[np.ndarray]] = [[] for _ in layers]
    for cam, img in views:
        for i, X in enumerate(layers):
            uv, depth = cam.project(X)
            ok = (depth > 0) & (uv[:, 0] >= 1) & (uv[:, 0] <= cam.width - 1) & (uv[:, 1] >= 1) & \
                (uv[:, 1] <= cam.height - 1)
            cols[i].append(_bilinear(img, index_coords(uv), ok))
            seen[i].append(ok)
    return [np.array(c) for c in cols], [np.array(a) for a in seen]


def spread_moves(ring: np.ndarray, normals: np.ndarray, top_z: np.ndarray, floor_z: np.ndarray, views,
                 search: float, reach: float, step: float, min_views: int = 5, min_contrast: float = 0.06,
                 min_ratio: float = 3.0) -> np.ndarray:
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
    win = np.abs(s) <= search
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


def fit_edges(ring: np.ndarray, top_z: np.ndarray, floor_z: np.ndarray,
              views: Iterable[tuple[Camera, np.ndarray]], search: float, reach: float,
              step: float) -> tuple[np.ndarray, EdgeFit]:
    """The counter-clockwise outline ``ring`` [K, 2] moved onto the edge of the garment's top (at ``top_z``
    [K], on a table at ``floor_z`` [K]) that ``views`` ((camera, image [H, W, 3] uint8) pairs) show, with how
    it moved. Each point looks within ``search`` of where it is, along profiles sampled every ``step`` out to
    ``reach``; a stretch no profile read moves as its read neighbours do."""
    n = outward_normals(ring)
    med = spread_moves(ring, n, top_z, floor_z, views, search, reach, step)
    # a running median along the outline over half a search: one point's bad reading does not make a notch
    k = max(3, int(round(0.5 * search / max(np.median(np.linalg.norm(np.diff(ring, axis=0), axis=1)), 1e-12)))) | 1
    smooth = running_median(med, k, skip_nan=True, closed=True)
    ok = np.isfinite(smooth)
    if not ok.any():
        return ring, EdgeFit(moved=smooth)
    # a stretch no view read (a concave corner where the profile reaches the garment again) moves as its
    # read neighbours on either side do, in proportion along the outline
    at = np.arange(len(ring))
    filled = np.interp(at, at[ok], smooth[ok], period=len(ring))
    return ring + filled[:, None] * n, EdgeFit(moved=smooth)
