"""Per-view depth ranges and source-view choice from the sparse model (co-visibility and baseline)."""

from __future__ import annotations

import numpy as np


def covisibility(tracks: list[np.ndarray], n_views: int, vis=None) -> np.ndarray:
    """(N, N) number of sparse points shared by each pair of views, from per-point view-index tracks
    (or their :func:`visibility` matrix when already built)."""
    V = (visibility(tracks, n_views) if vis is None else vis).astype(np.float64)
    covis = (V @ V.T).toarray()
    np.fill_diagonal(covis, 0)
    return covis


def depth_ranges(points: np.ndarray, tracks: list[np.ndarray], cams: list,
                 margin: tuple[float, float] = (0.6, 1.5), spread: float = 1.0,
                 fallback: tuple[float, float] | None = None) -> list[tuple[float, float] | None]:
    """Depth search range of every view from the sparse points it sees (all points when it sees few).

    Args:
        points: (P, 3) sparse points.
        tracks: per point, the indices of the views observing it.
        cams: the N views' cameras.
        margin: factors on the 1st / 99th depth percentiles (stereo must reach a little past the sparse points).
        spread: ... but no farther than this many times the percentiles' spread: an object seen from afar
            (depths 3.3-3.8) gets 2.8-4.3 rather than 2.0-5.7, and fewer wrong depths fit its thin parts.
        fallback: range used when a view has too few points in front of it.

    Returns:
        per view (dmin, dmax), or None when nothing bounds it.
    """
    n = len(cams)
    seen: list[list[int]] = [[] for _ in range(n)]
    for p, tr in enumerate(tracks):
        for i in np.unique(tr):
            seen[i].append(p)
    out: list[tuple[float, float] | None] = []
    for i in range(n):
        P = points[seen[i]] if len(seen[i]) >= 10 else points
        z = cams[i].to_cam(P)[:, 2] if len(P) else np.zeros(0)
        z = z[z > 0]
        if len(z) < 5:
            out.append(fallback)
            continue
        lo, hi = np.percentile(z, 1), np.percentile(z, 99)
        gap = spread * (hi - lo)
        out.append((max(lo * margin[0], lo - gap, 1e-3 * hi), min(hi * margin[1], hi + gap)))
    return out


def visibility(tracks: list[np.ndarray], n_views: int):
    """(N, P) sparse boolean matrix: view i observes sparse point p."""
    from scipy.sparse import csr_matrix

    uniq = [np.unique(tr) for tr in tracks]
    rows = np.concatenate(uniq) if uniq else np.zeros(0, np.int64)
    cols = np.repeat(np.arange(len(uniq)), [len(u) for u in uniq])
    return csr_matrix((np.ones(len(rows), bool), (rows, cols)), shape=(n_views, len(tracks)))


def select_sources(ref: int, centers: np.ndarray, axes: np.ndarray, covis: np.ndarray, depth: float, k: int,
                   min_angle: float = 4.0, max_angle: float = 40.0, vis=None, cover: int = 2) -> list[int]:
    """Pick ``k`` source views for ``ref``: many shared sparse points, a useful baseline, and coverage.

    Args:
        ref: reference view index.
        centers: (N, 3) camera centres.
        axes: (N, 3) unit viewing directions.
        covis: (N, N) number of shared sparse points.
        depth: typical scene depth of the reference view.
        k: number of sources.
        min_angle, max_angle: preferred triangulation angle (degrees) at the scene point ahead of ``ref``.
        vis: optional (N, P) sparse view/point visibility (see :func:`visibility`). With it, each further
            source is scored by the reference's points that fewer than ``cover`` chosen sources see yet.
            Walking forward, the views with the most shared points all lie ahead and miss the near floor
            at the bottom of the frame; scoring the not-yet-covered points brings in the view behind that
            sees it.
        cover: sources each reference point should be seen by (the matching score averages the best 2).
    """
    p = centers[ref] + axes[ref] * depth
    a = p - centers[ref]
    b = p - centers
    cos = (b @ a) / (np.linalg.norm(a) * np.linalg.norm(b, axis=1) + 1e-12)
    ang = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    # prefer angles inside the band; penalise tiny baselines (poor depth) and wide ones (poor matching)
    w = np.where(ang < min_angle, np.maximum(0.05, ang / min_angle), np.where(ang <= max_angle, 1.0, 0.2))
    banned = (axes @ axes[ref] < np.cos(np.radians(75))) | (np.arange(len(centers)) == ref)
    M = None
    if vis is not None:
        cols = vis[ref].indices
        if len(cols):
            M = vis[:, cols].toarray().astype(np.float32)
            seen_by = np.zeros(len(cols), np.float32)
    penalty = np.ones(len(centers))
    chosen: list[int] = []
    for _ in range(min(k, len(centers) - 1)):
        gain = covis[ref] if M is None else M @ np.clip(1 - seen_by / cover, 0, 1)
        score = (gain + 1.0) * w * penalty
        score[banned] = -np.inf
        j = int(np.argmax(score))
        if not np.isfinite(score[j]):
            break
        chosen.append(j)
        banned[j] = True
        if M is not None:
            seen_by += M[j]
        # spread the choice: a source nearly coincident with an already chosen one adds little
        near = np.linalg.norm(centers - centers[j], axis=1) < 0.25 * np.linalg.norm(centers[j] - centers[ref])
        penalty[near] *= 0.5
    return chosen


def sweep_planes(ref, srcs: list, dmin: float, dmax: float, size: tuple[int, int], n_min: int, n_max: int,
                 step_px: float) -> int:
    """Planes a sweep over [dmin, dmax] needs so that consecutive planes move a pixel at most ``step_px``
    (pixels of the half-resolution level the global sweep runs at) in every source, within [n_min, n_max].

    A sweep whose planes jump farther than the matching window lands between the true depths and the
    refinement around it never reaches them (wide baselines, deep ranges).

    Args:
        ref, srcs: cameras at the working resolution ``size`` = (W, H).
    """
    W, H = size
    span = 0.0
    for u, v in ((W / 2, H / 2), (W / 4, H / 4), (3 * W / 4, H / 4), (W / 4, 3 * H / 4), (3 * W / 4, 3 * H / 4)):
        X = ref.unproject(np.array([[u, v], [u, v]]), np.array([dmin, dmax]))  # world points at both ends
        for s in srcs:
            uv, z = s.project(X)
            if (z <= 0).any():  # the near end is behind this source: it bounds nothing here
                continue
            span = max(span, 0.5 * float(np.linalg.norm(uv[0] - uv[1])))
    return int(np.clip(np.ceil(span / max(step_px, 1e-6)), n_min, n_max))
