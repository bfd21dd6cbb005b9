"""Image pairs to match: sequential neighbours, loop closures by retrieval, and fallbacks for weak graphs."""

from __future__ import annotations

import numpy as np


def sequential_pairs(n: int, overlap: int) -> set[tuple[int, int]]:
    """Each image with its next ``overlap`` images, plus a sparse quadratic reach (2, 4, 8, ... ahead)."""
    pairs = {(i, j) for i in range(n) for j in range(i + 1, min(n, i + overlap + 1))}
    for i in range(n):
        k = overlap * 2
        while i + k < n and k <= 4 * overlap:
            pairs.add((i, i + k))
            k *= 2
    return pairs


def bow_vectors(descriptors: list[np.ndarray], n_words: int = 256, sample: int = 200, seed: int = 0) -> np.ndarray:
    """tf-idf bag-of-words vectors (N, n_words), L2-normalised, from each image's own local descriptors.

    The vocabulary is learned from this capture's descriptors, so no pretrained vocabulary is needed.
    """
    import cv2

    rng = np.random.default_rng(seed)
    pool = [d[rng.choice(len(d), min(sample, len(d)), replace=False)] for d in descriptors if len(d)]
    data = np.concatenate(pool).astype(np.float32)
    k = int(min(n_words, max(8, len(data) // 20)))
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1e-3)
    cv2.setRNGSeed(seed)
    _, _, centres = cv2.kmeans(data, k, None, crit, 1, cv2.KMEANS_PP_CENTERS)
    c2 = (centres ** 2).sum(1)
    hist = np.zeros((len(descriptors), k), np.float32)
    for i, d in enumerate(descriptors):
        if not len(d):
            continue
        d = d[:2000].astype(np.float32)
        words = np.argmin(c2[None, :] - 2 * d @ centres.T, axis=1)
        hist[i] = np.bincount(words, minlength=k)
    df = (hist > 0).sum(0)
    idf = np.log(len(descriptors) / np.maximum(df, 1))
    v = hist * idf
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def retrieval_pairs(vectors: np.ndarray, k: int, min_index_gap: int = 0,
                    min_similarity: float = -1.0) -> set[tuple[int, int]]:
    """For each image its ``k`` most similar others at least ``min_index_gap`` apart (loop closures).

    Args:
        vectors: (N, D) L2-normalised global descriptors.
        k: candidates per image (pairs grow linearly: at most k * N).
        min_index_gap: skip images this close in capture order (sequential pairs cover them).
        min_similarity: cosine similarity a candidate needs.
    """
    n = len(vectors)
    sim = vectors @ vectors.T
    idx = np.arange(n)
    sim[np.abs(idx[:, None] - idx[None, :]) <= min_index_gap] = -np.inf
    sim[sim < min_similarity] = -np.inf
    pairs = set()
    for i in range(n):
        for j in np.argpartition(-sim[i], min(k, n - 1))[:k] if n > k else np.argsort(-sim[i])[:k]:
            if np.isfinite(sim[i, j]):
                pairs.add((min(i, j), max(i, j)))
    return pairs


def is_sequence(vectors: np.ndarray, top: int = 3, share: float = 0.6) -> bool:
    """Whether images in this order look like a path: each one's successor among its most similar.

    Rank-based, so captures where every view looks alike (one object, one wall) are judged by the
    order of similarities, not their level.

    Args:
        vectors: (N, D) L2-normalised global descriptors in capture (or file-name) order.
        top: the successor must be among this many most similar images ...
        share: ... for at least this share of the images.
    """
    n = len(vectors)
    if n < 6:
        return False
    sim = vectors @ vectors.T
    np.fill_diagonal(sim, -np.inf)
    # rank of i+1 in row i: how many images are more similar to i than its successor
    rank = (sim[:-1] > sim[np.arange(n - 1), np.arange(1, n)][:, None]).sum(1)
    return bool(np.mean(rank < top) >= share)


def components(n: int, edges: list[tuple[int, int]]) -> list[list[int]]:
    """Connected components of an undirected graph (union-find)."""
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in edges:
        parent[find(a)] = find(b)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=len, reverse=True)
