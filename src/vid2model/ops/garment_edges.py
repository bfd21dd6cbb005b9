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

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from vid2model.camera import Camera, index_coords


@dataclass(frozen=True)
class EdgeFit:
    """How the outline was moved: the move [K] along each point's outward normal (nan: its profile said
    nothing), and how many views saw each point's whole profile [K]."""

    moved: np.ndarray
    views: np.ndarray

    @property
    def read_share(self) -> float:
        return float(np.isfinite(self.moved).mean()) if len(self.moved) else 0.0


def outward_normals(ring: np.ndarray, k: int = 3) -> np.ndarray:
    """Unit outward normals [K, 2] of a counter-clockwise closed outline ``ring`` [K, 2], from the chord
    between the points ``k`` before and after each (a pixel staircase has no normal of its own)."""
    t = np.roll(ring, -k, axis=0) - np.roll(ring, k, axis=0)
    n = np.c_[t[:, 1], -t[:, 0]]
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _wrapped_median(x: np.ndarray, k: int) -> np.ndarray:
    """Running median [K] of ``x`` [K] over ``k`` (odd) neighbours round a closed outline, nans left out."""
    import warnings

    windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, k // 2, mode="wrap"), k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a window of nans only stays nan
        return np.nanmedian(windows, axis=1)


def spread_moves(ring: np.ndarray, normals: np.ndarray, top_z: np.ndarray, views, search: float, reach: float,
                 step: float, min_views: int = 5, min_contrast: float = 0.06, min_ratio: float = 3.0,
                 chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Where the garment's top ends along each outline point's outward normal: its move [K] (nan where the
    profile says nothing). A point on the top is one surface point in every view, so its colours agree; a
    point of the top's plane beyond the edge is air, and each view sees what lies behind it (the table a
    thickness' parallax away, or the garment's side), so they disagree. The disagreement (the median over
    views of each colour's distance from the views' median colour) steps up at the edge; it is linear in the
    share of a pixel that crosses it, so the edge is where it is half way from the top's level to its peak
    just outside. Returns the moves [K] and how many views saw each whole profile [K]."""
    import warnings

    s = np.arange(-reach, reach + 0.5 * step, step)  # [S]
    P = ring[:, None, :] + s[None, :, None] * normals[:, None, :]  # [K, S, 2]
    P3 = np.concatenate([P, np.broadcast_to(top_z[:, None, None], P.shape[:2] + (1,))], -1).reshape(-1, 3)
    cols = []  # [V] of [K * S, 3] uint8
    seen = []
    for cam, img in views:
        uv, depth = cam.project(P3)
        ok = (depth > 0) & (uv[:, 0] >= 1) & (uv[:, 0] <= cam.width - 1) & (uv[:, 1] >= 1) & \
            (uv[:, 1] <= cam.height - 1)
        cols.append(_bilinear(img, index_coords(uv), ok))
        seen.append(ok)
    out = np.full(len(ring), np.nan)
    if len(cols) < min_views:
        return out, np.zeros(len(ring), int)
    C = np.stack(cols).reshape(len(cols), len(ring), len(s), 3)  # [V, K, S, 3]
    A = np.stack(seen).reshape(len(cols), len(ring), len(s))
    D = np.empty((len(ring), len(s)), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for k0 in range(0, len(ring), chunk):
            c = np.where(A[:, k0:k0 + chunk, :, None], C[:, k0:k0 + chunk].astype(np.float32) / 255.0, np.nan)
            m = np.nanmedian(c, 0)
            D[k0:k0 + chunk] = np.nanmedian(np.abs(c - m).sum(-1), 0)
        D[A.sum(0) < min_views] = np.nan
        inside = np.where(s <= -search, D, np.nan)
        a = np.nanmedian(inside, 1)  # [K] the top's own level
        a90 = np.nanpercentile(inside, 90, axis=1)
    win = np.abs(s) <= search
    Dw = np.where(win, D, -np.inf)
    Dw = np.where(np.isfinite(Dw) | ~win, Dw, -np.inf)
    jp = np.argmax(Dw, 1)  # the peak just outside the edge
    rows = np.arange(len(ring))
    peak = Dw[rows, jp]
    T = 0.5 * (a + peak)
    ok = np.isfinite(a) & np.isfinite(peak) & (peak - a >= min_contrast) & (peak >= min_ratio * a) & (a90 < T)
    for k in np.flatnonzero(ok):
        d = D[k, :jp[k] + 1]
        below = np.flatnonzero(~(d >= T[k]))  # nan counts as below: the walk stops there
        j = below[-1] if len(below) else -1
        if j < 0 or not win[j] or not np.isfinite(d[j]):
            ok[k] = False
            continue
        t = (T[k] - d[j]) / max(d[j + 1] - d[j], 1e-12)
        out[k] = s[j] + np.clip(t, 0.0, 1.0) * step
    return out, A.all(2).sum(0)


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


def fit_edges(ring: np.ndarray, top_z: np.ndarray, views: Iterable[tuple[Camera, np.ndarray]], search: float,
              reach: float, step: float) -> tuple[np.ndarray, EdgeFit]:
    """The counter-clockwise outline ``ring`` [K, 2] moved onto the edge of the garment's top (at ``top_z``
    [K]) that ``views`` ((camera, image [H, W, 3] uint8) pairs) show, with how it moved. Each point looks within
    ``search`` of where it is, along profiles sampled every ``step`` out to ``reach``; a stretch no profile
    read moves as its read neighbours do."""
    n = outward_normals(ring)
    med, count = spread_moves(ring, n, top_z, views, search, reach, step)
    # a running median along the outline over half a search: one point's bad reading does not make a notch
    k = max(3, int(round(0.5 * search / max(np.median(np.linalg.norm(np.diff(ring, axis=0), axis=1)), 1e-12)))) | 1
    smooth = _wrapped_median(med, k)
    ok = np.isfinite(smooth)
    if not ok.any():
        return ring, EdgeFit(moved=smooth, views=count)
    # a stretch no view read (a concave corner where the profile reaches the garment again) moves as its
    # read neighbours on either side do, in proportion along the outline
    at = np.arange(len(ring))
    filled = np.interp(at, at[ok], smooth[ok], period=len(ring))
    return ring + filled[:, None] * n, EdgeFit(moved=smooth, views=count)
