"""Texture baking: per-face view choice, per-view exposure levelling, UV-space sampling, atlas padding."""

from __future__ import annotations

import numpy as np


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


def smooth_labels(labels: np.ndarray, scores: np.ndarray, adjacency: list[np.ndarray], rounds: int = 2) -> np.ndarray:
    """Relabel each face to its neighbours' majority view when that view sees it nearly as well.

    Fewer label changes between neighbouring faces means fewer seams.
    """
    lab = labels.copy()
    for _ in range(rounds):
        new = lab.copy()
        for f, nb in enumerate(adjacency):
            if len(nb) == 0:
                continue
            vals, cnt = np.unique(lab[nb], return_counts=True)
            cand = vals[np.argmax(cnt)]
            if cand != lab[f] and scores[cand, f] >= 0.5 * scores[lab[f], f]:
                new[f] = cand
        lab = new
    return lab


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
    for c in range(3):
        rows, rhs = [], []
        faces = np.flatnonzero(multi)[:20000]
        mean_log = np.array([logs[valid[:, f], f, c].mean() for f in faces])
        for k, f in enumerate(faces):
            for v in np.flatnonzero(valid[:, f]):
                r = np.zeros(n_views)
                r[v] = 1
                rows.append(r)
                rhs.append(mean_log[k] - logs[v, f, c])
        A = np.array(rows)
        b = np.array(rhs)
        # gauge: mean log-gain 0, and a little regularisation towards no change
        A = np.vstack([A, np.ones(n_views) * 10, np.eye(n_views) * 0.1])
        b = np.concatenate([b, [0.0], np.zeros(n_views)])
        g = np.linalg.lstsq(A, b, rcond=None)[0]
        gains[:, c] = np.exp(g)
    return gains


def rasterize_uv(uv_faces: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Texels covered by UV triangles.

    Args:
        uv_faces: (F, 3, 2) UVs in [0, 1] (v up, glTF/OBJ convention flipped below).
        size: atlas size in texels.

    Returns:
        texel rows (T,), texel cols (T,), face index (T,), and barycentrics (T, 3) as a 4-tuple.
    """
    # texel (row, col) is centred at uv ((col + 0.5) / size, 1 - (row + 0.5) / size), as viewers sample it
    px = uv_faces * size - 0.5
    px[..., 1] = (size - 1) - px[..., 1]  # image rows grow downward: (1 - v) * size - 0.5
    lo = np.floor(px.min(1)).astype(int).clip(0, size - 1)
    hi = np.ceil(px.max(1)).astype(int).clip(0, size - 1)
    w = hi[:, 0] - lo[:, 0] + 1
    h = hi[:, 1] - lo[:, 1] + 1
    n = w * h
    face = np.repeat(np.arange(len(px)), n)
    offs = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    col = lo[face, 0] + offs % w[face]
    row = lo[face, 1] + offs // w[face]
    a, b, c = px[face, 0], px[face, 1], px[face, 2]
    p = np.stack([col, row], 1).astype(np.float64)
    v0, v1, v2 = b - a, c - a, p - a
    d00 = (v0 * v0).sum(1)
    d01 = (v0 * v1).sum(1)
    d11 = (v1 * v1).sum(1)
    d20 = (v2 * v0).sum(1)
    d21 = (v2 * v1).sum(1)
    den = d00 * d11 - d01 * d01
    den = np.where(np.abs(den) < 1e-12, 1e-12, den)
    l1 = (d11 * d20 - d01 * d21) / den
    l2 = (d00 * d21 - d01 * d20) / den
    l0 = 1 - l1 - l2
    eps = -0.02
    inside = (l0 >= eps) & (l1 >= eps) & (l2 >= eps)
    bary = np.stack([l0, l1, l2], 1)[inside]
    return row[inside], col[inside], face[inside], np.clip(bary, 0, 1)


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
