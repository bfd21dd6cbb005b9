"""Texture baking: per-face view choice (visibility, photo-consistency, label smoothing), per-view exposure
levelling, UV-space rasterisation, atlas padding."""

from __future__ import annotations

import numpy as np
from numba import njit


def face_view_scores(prim_ids: list[np.ndarray], n_faces: int, face_normals: np.ndarray, face_centers: np.ndarray,
                     cam_centers: np.ndarray, sharpness: np.ndarray) -> np.ndarray:
    """Score (n_views, n_faces) of each view for each face; 0 where the face is not visible.

    Visibility comes from ray casting (occlusion-aware), so the score counts the face's visible
    pixels (resolution and closeness), times how frontal the view is, times the image's sharpness.
    """
    scores = np.zeros((len(prim_ids), n_faces), np.float32)
    for i, ids in enumerate(prim_ids):
        ids = ids[ids >= 0]
        counts = np.bincount(ids, minlength=n_faces)[:n_faces].astype(np.float32)
        to_cam = cam_centers[i] - face_centers
        cos = np.einsum("ij,ij->i", face_normals, to_cam) / np.maximum(np.linalg.norm(to_cam, axis=1), 1e-12)
        scores[i] = counts * np.clip(cos, 0, 1) ** 2 * sharpness[i]
    return scores


def neighbour_table(pairs: np.ndarray, n_faces: int) -> np.ndarray:
    """(n_faces, D) neighbouring face ids padded with -1, from (E, 2) pairs of faces sharing an edge."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    a = np.concatenate([pairs[:, 0], pairs[:, 1]])
    b = np.concatenate([pairs[:, 1], pairs[:, 0]])
    order = np.argsort(a, kind="stable")
    a, b = a[order], b[order]
    deg = np.bincount(a, minlength=n_faces)
    table = np.full((n_faces, max(1, int(deg.max(initial=0)))), -1, np.int64)
    table[a, np.arange(len(a)) - np.repeat(np.cumsum(deg) - deg, deg)] = b
    return table


def _majority(lab: np.ndarray, table: np.ndarray, use: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Most common label among each face's usable neighbours (ties: the smallest label; -1 where none),
    and how many of them carry it."""
    nl = np.where(use, lab[table], -1)
    ok = nl >= 0
    cnt = ((nl[:, :, None] == nl[:, None, :]) & ok[:, None, :]).sum(2)
    key = np.where(ok, cnt * (int(nl.max(initial=0)) + 2) - nl, np.iinfo(np.int64).min)
    pick = key.argmax(1)
    rows = np.arange(len(nl))
    has = ok.any(1)
    return np.where(has, nl[rows, pick], -1), np.where(has, cnt[rows, pick], 0)


def smooth_labels(labels: np.ndarray, scores: np.ndarray, table: np.ndarray, rounds: int = 2) -> np.ndarray:
    """Relabel each face to its neighbours' majority view (strictly more of them than have the face's own
    view) when that view sees it at least half as well.

    Fewer label changes between neighbouring faces means fewer seams.

    Args:
        labels: (F,) view per face; scores: (n_views, F); table: :func:`neighbour_table`.
    """
    lab = labels.copy()
    f = np.arange(len(lab))
    for _ in range(rounds):
        use = table >= 0
        cand, votes = _majority(lab, table, use)
        own = (use & (lab[table] == lab[:, None])).sum(1)
        c = np.maximum(cand, 0)
        change = (cand >= 0) & (votes > own) & (scores[c, f] >= 0.5 * scores[lab, f])
        lab = np.where(change, cand, lab)
    return lab


def fill_labels(labels: np.ndarray, seen: np.ndarray, table: np.ndarray, rounds: int = 50) -> np.ndarray:
    """Give faces no view saw (smaller than the visibility raster's pixels, or hidden) a neighbour's view.

    A sub-pixel face sits among seen faces, so their view sees it too; ``argmax`` of all-zero scores
    would instead pick view 0, which may not see it at all. Faces with no labelled face within
    ``rounds`` steps keep their label.
    """
    lab = labels.copy()
    known = seen.copy()
    for _ in range(rounds):
        if known.all():
            break
        cand, _ = _majority(lab, table, (table >= 0) & known[table])
        new = ~known & (cand >= 0)
        if not new.any():
            break
        lab[new] = cand[new]
        known |= new
    return lab


def harmonic_fill(n_vertices: int, faces: np.ndarray, known: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Values [V, C] for every vertex: ``values`` [V, C] where ``known`` [V] bool, and elsewhere the smoothest
    continuation over the surface (each unknown vertex the mean of its neighbours: a discrete harmonic
    function). Pieces with no known vertex take the mean of all known values."""
    from scipy.sparse import coo_matrix, diags
    from scipy.sparse.linalg import spsolve

    out = np.asarray(values, np.float64).copy()
    unknown = np.flatnonzero(~known)
    if len(unknown) == 0:
        return out
    fallback = out[known].mean(0) if known.any() else np.zeros(out.shape[1])
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    W = coo_matrix((np.ones(2 * len(e)), (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])),
                   shape=(n_vertices, n_vertices)).tocsr()
    L = diags(np.asarray(W.sum(1)).ravel()) - W
    Luu = L[unknown][:, unknown]
    rhs = -(L[unknown][:, np.flatnonzero(known)] @ out[known])
    # a piece of unknown vertices touching no known one makes Luu singular: anchor it weakly to the fallback
    Luu = Luu + diags(np.full(len(unknown), 1e-6))
    rhs = rhs + 1e-6 * fallback
    out[unknown] = np.asarray(spsolve(Luu.tocsc(), rhs)).reshape(len(unknown), -1)
    return out


def consistency_weights(samples: np.ndarray, valid: np.ndarray, sigma: float, min_views: int = 3,
                        block: int = 16384) -> np.ndarray:
    """Per (view, face) weight in [0, 1]: how well the view's colour of the face agrees with the other views.

    Where the geometry is a little off (near silhouettes, thin parts) some views sample the surface
    behind or in front; the per-face median over the views that see it is robust to those, so views far
    from it are down-weighted (Gaussian in the largest channel difference, ``sigma`` in [0, 1] units).
    Faces seen by fewer than ``min_views`` views keep weight 1.

    Args:
        samples: (n_views, n_faces, 3) levelled colours; valid: (n_views, n_faces) observed.
        block: faces per step (the median needs a NaN-masked copy: bounded memory on big captures).
    """
    w = np.ones(valid.shape, np.float32)
    many = np.flatnonzero(valid.sum(0) >= min_views)
    for k in range(0, len(many), block):
        f = many[k:k + block]
        s = np.where(valid[:, f, None], samples[:, f], np.nan)
        med = np.nanmedian(s, axis=0)
        dev = np.nan_to_num(np.abs(s - med[None]).max(-1), nan=0.0)
        w[:, f] = np.exp(-(dev / sigma) ** 2)
    return w


def exposure_gains(samples: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-view RGB gains (n_views, 3) making overlapping observations agree (least squares in log).

    Args:
        samples: (n_views, n_faces, 3) colour of each face centre seen in each view.
        valid: (n_views, n_faces) whether that observation exists.
    """
    n_views = samples.shape[0]
    gains = np.ones((n_views, 3))
    logs = np.log(np.clip(samples, 1e-3, None))
    multi = valid.sum(0) >= 2
    if not multi.any():
        return gains
    faces = np.flatnonzero(multi)[:20000]
    v_idx, f_idx = np.nonzero(valid[:, faces])  # one row per observation: view v of face f
    count = np.bincount(v_idx, minlength=n_views).astype(float)
    # the least-squares problem has one-hot rows, so its normal equations are a views x views system, built by
    # counting (a dense lstsq of every observation row ran multi-threaded BLAS for minutes on a busy machine);
    # gauge: mean log-gain 0 (weight 10), and a little regularisation towards no change (weight 0.1)
    AtA = np.diag(count) + 100.0 * np.ones((n_views, n_views)) + 0.01 * np.eye(n_views)
    for c in range(3):
        lg = logs[:, faces, c]
        mean_log = np.where(valid[:, faces], lg, 0.0).sum(0) / valid[:, faces].sum(0)
        rhs = mean_log[f_idx] - lg[v_idx, f_idx]
        gains[:, c] = np.exp(np.linalg.solve(AtA, np.bincount(v_idx, weights=rhs, minlength=n_views)))
    return gains


@njit(cache=True, nogil=True)
def _uv_kernel(px, lo, hi, eps, rows, cols, face, bary):  # pragma: no cover - compiled
    n = 0
    for f in range(px.shape[0]):
        ax, ay = px[f, 0, 0], px[f, 0, 1]
        e0x, e0y = px[f, 1, 0] - ax, px[f, 1, 1] - ay
        e1x, e1y = px[f, 2, 0] - ax, px[f, 2, 1] - ay
        d00 = e0x * e0x + e0y * e0y
        d01 = e0x * e1x + e0y * e1y
        d11 = e1x * e1x + e1y * e1y
        den = d00 * d11 - d01 * d01
        if abs(den) < 1e-12:
            den = 1e-12
        for r in range(lo[f, 1], hi[f, 1] + 1):
            for c in range(lo[f, 0], hi[f, 0] + 1):
                qx, qy = c - ax, r - ay
                d20 = qx * e0x + qy * e0y
                d21 = qx * e1x + qy * e1y
                l1 = (d11 * d20 - d01 * d21) / den
                l2 = (d00 * d21 - d01 * d20) / den
                l0 = 1.0 - l1 - l2
                if l0 >= eps and l1 >= eps and l2 >= eps:
                    rows[n], cols[n], face[n] = r, c, f
                    bary[n, 0] = min(max(l0, 0.0), 1.0)
                    bary[n, 1] = min(max(l1, 0.0), 1.0)
                    bary[n, 2] = min(max(l2, 0.0), 1.0)
                    n += 1
    return n


def rasterize_uv(uv_faces: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Texels covered by UV triangles (texels within a sliver of an edge count too, so charts have no gaps).

    Args:
        uv_faces: (F, 3, 2) UVs in [0, 1] (v up, glTF/OBJ convention flipped below).
        size: atlas size in texels.

    Returns:
        texel rows (T,), texel cols (T,), face index (T,), and barycentrics (T, 3) as a 4-tuple.
    """
    # texel (row, col) is centred at uv ((col + 0.5) / size, 1 - (row + 0.5) / size), as viewers sample it
    px = np.asarray(uv_faces, np.float64) * size - 0.5
    px[..., 1] = (size - 1) - px[..., 1]  # image rows grow downward: (1 - v) * size - 0.5
    lo = np.floor(px.min(1)).astype(np.int64).clip(0, size - 1)
    hi = np.ceil(px.max(1)).astype(np.int64).clip(0, size - 1)
    cap = int(((hi - lo + 1).prod(1)).sum())
    rows, cols, face = (np.empty(cap, np.int64) for _ in range(3))
    bary = np.empty((cap, 3), np.float64)
    n = _uv_kernel(np.ascontiguousarray(px), lo, hi, -0.02, rows, cols, face, bary)
    return rows[:n], cols[:n], face[:n], bary[:n]


def dilate(img: np.ndarray, mask: np.ndarray, iterations: int = 8) -> np.ndarray:
    """Grow texture colours into empty texels (padding) so mip-maps and filtering don't bleed background."""
    import cv2

    img = img.copy()
    m = mask.astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    for _ in range(iterations):
        grown = cv2.dilate(m, kernel)
        ring = (grown > 0) & (m == 0)
        if not ring.any():
            break
        blurred = cv2.blur(img.astype(np.float32) * m[..., None], (3, 3))
        weight = cv2.blur(m.astype(np.float32), (3, 3))
        img[ring] = (blurred[ring] / np.maximum(weight[ring, None], 1e-6)).astype(img.dtype)
        m = grown
    return img
