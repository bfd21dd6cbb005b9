"""Pair selection: sequential neighbours, retrieval loop closures, graph components, linear scaling."""

from __future__ import annotations

import numpy as np

from vid2model.ops import pairs as P


def test_sequential_pairs_cover_neighbours_and_scale_linearly():
    pairs = P.sequential_pairs(50, overlap=5)
    for i in range(49):
        for j in range(i + 1, min(50, i + 6)):
            assert (i, j) in pairs
    assert all(0 <= a < b < 50 for a, b in pairs)
    n1, n2 = len(P.sequential_pairs(1000, 8)), len(P.sequential_pairs(4000, 8))
    assert 3.9 < n2 / n1 < 4.1  # linear in the frame count, never quadratic


def _place_vectors(n: int, laps: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Global vectors of frames along an orbit: frames seeing the same place look alike."""
    place = (np.arange(n) / n * laps) % 1.0
    bins = np.arange(64) / 64
    d = np.abs(place[:, None] - bins[None])
    d = np.minimum(d, 1 - d)
    v = np.exp(-(d / 0.03) ** 2)
    return v / np.linalg.norm(v, axis=1, keepdims=True), place


def test_retrieval_finds_loop_closures_only_between_same_places():
    vec, place = _place_vectors(120, laps=1.5)  # the second half-lap revisits the start
    pairs = P.retrieval_pairs(vec, k=3, min_index_gap=8, min_similarity=0.2)
    assert pairs and all(b - a > 8 for a, b in pairs)
    gaps = [min(abs(place[a] - place[b]), 1 - abs(place[a] - place[b])) for a, b in pairs]
    assert np.max(gaps) < 0.08  # no pair between places that do not overlap (bumps are 0.03 wide)
    assert any(a < 30 and b > 80 for a, b in pairs)  # the revisit is closed to the start
    assert len(pairs) <= 3 * 120  # k per image: linear


def test_bow_vectors_recognise_revisited_places():
    rng = np.random.default_rng(0)
    words = rng.integers(0, 256, size=(10, 300, 128)).astype(np.float32)  # 10 places, own features
    seq = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 5]  # frames 10 and 11 revisit places 0 and 5
    desc = [np.clip(words[p][rng.choice(300, 200, replace=False)] + rng.normal(0, 8, (200, 128)), 0, 255)
            for p in seq]
    vec = P.bow_vectors(desc, n_words=64)
    assert vec.shape == (12, 64) and np.allclose(np.linalg.norm(vec, axis=1), 1, atol=1e-5)
    pairs = P.retrieval_pairs(vec, k=1, min_index_gap=2)
    assert (0, 10) in pairs and (5, 11) in pairs


def test_components_of_a_split_graph():
    comps = P.components(7, [(0, 1), (1, 2), (4, 5)])
    assert comps[0] == [0, 1, 2] and sorted(map(tuple, comps[1:])) == [(3,), (4, 5), (6,)]
    assert P.components(3, [(0, 1), (1, 2)]) == [[0, 1, 2]]


def test_sequence_detection_by_rank():
    vec, _ = _place_vectors(60, laps=1.0)
    assert P.is_sequence(vec)
    assert not P.is_sequence(vec[np.random.default_rng(0).permutation(60)])
