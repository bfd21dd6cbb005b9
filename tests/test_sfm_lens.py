"""The lens model is chosen by the frames the solve did not use: radial terms where the lens bends lines,
none where it does not (extra terms then only trade off against the focal length)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers_colmap import _quat_wxyz, look_at

W, H, F_TRUE = 480, 270, 400.0


def _project(P: np.ndarray, X: np.ndarray, k1: float) -> np.ndarray:
    """COLMAP's RADIAL model (k2 = 0) with focal F_TRUE, principal point at the centre: [N, 2]."""
    x = X @ P[:, :3].T + P[:, 3]
    n = x[:, :2] / x[:, 2:3]
    d = 1 + k1 * (n ** 2).sum(axis=1, keepdims=True)
    return F_TRUE * n * d + np.array([W / 2, H / 2])


def _orbit(k1: float, tmp_path, rng):
    """A solved-looking model of 20 keyframes on an arc (a SIMPLE_RADIAL camera started off the truth)
    and ``matched`` for 19 held-out frames between them, all seen through a lens with ``k1``."""
    import pycolmap

    X = rng.uniform(-0.6, 0.6, (1500, 3))
    angles = np.radians(np.linspace(0, 120, 39))
    poses = [look_at(np.array([2.2 * np.cos(a), 2.2 * np.sin(a), 0.8])) for a in angles]
    views = [(P, _project(P, X, k1) + rng.normal(0, 0.3, (len(X), 2))) for P in poses]
    inside = [((uv >= 0) & (uv < [W, H])).all(axis=1) for _, uv in views]
    keys, probes = views[::2], views[1::2]
    out = tmp_path / f"model_{k1}"
    out.mkdir()
    (out / "cameras.txt").write_text(f"1 SIMPLE_RADIAL {W} {H} {F_TRUE * 1.01} {W / 2} {H / 2} 0.0\n")
    obs = [[] for _ in keys]
    points = []
    for p in range(len(X)):
        seen = [i for i in range(len(keys)) if inside[2 * i][p]]
        if len(seen) < 2:
            continue
        elems = []
        for i in seen:
            elems.append(f"{i + 1} {len(obs[i])}")
            u, v = map(float, keys[i][1][p])
            obs[i].append(f"{u!r} {v!r} {p + 1}")
        points.append(f"{p + 1} {' '.join(repr(float(c)) for c in X[p])} 128 128 128 0.5 {' '.join(elems)}")
    lines = []
    for i, (P, _) in enumerate(keys):
        lines += [f"{i + 1} {' '.join(repr(float(c)) for c in (*_quat_wxyz(P[:, :3]), *P[:, 3]))} 1 k{i:02d}.png",
                  " ".join(obs[i])]
    (out / "images.txt").write_text("\n".join(lines) + "\n")
    (out / "points3D.txt").write_text("\n".join(points) + "\n")
    rec = pycolmap.Reconstruction(str(out))
    matched = {"probes": [], "found": {}}
    for j, (_, uv) in enumerate(probes):
        name = f"p{j:02d}.png"
        ok = inside[2 * j + 1] & np.isin(np.arange(len(X)) + 1, list(rec.point3D_ids()))
        matched["probes"].append({"name": name, "between": [f"k{j:02d}.png", f"k{j + 1:02d}.png"]})
        matched["found"][name] = (uv[ok], np.flatnonzero(ok) + 1, np.zeros(ok.sum(), int))
    return rec, matched


@pytest.mark.parametrize("k1, expect", [(-0.12, ("SIMPLE_RADIAL", "RADIAL")), (0.0, ("SIMPLE_PINHOLE",))])
def test_held_out_frames_choose_the_lens(k1, expect, tmp_path):
    from vid2model.stages.sfm_refine import choose_lens

    rec, matched = _orbit(k1, tmp_path, np.random.default_rng(1))
    chosen, info = choose_lens(rec, matched, adjusted=False)
    assert info["chosen_by"] == "held-out frames" and info["probes"] >= 15
    assert info["lens"] in expect, info
    cam = next(iter(chosen.cameras.values()))
    assert cam.model.name == info["lens"]
    assert abs(cam.params[0] / F_TRUE - 1) < 0.005  # focal length within 0.5 %
    if k1:  # no radial term: the bent lines cost every held-out frame
        e = info["held_out_error_px2"]
        assert e["SIMPLE_PINHOLE"] > 1.05 * e[info["lens"]]
