"""Learned local features (XFeat through onnxruntime) and their COLMAP-database path.

Tests needing the weights use ../shared/models/xfeat_onnx (skipped with the reason when absent).
"""

from __future__ import annotations

import numpy as np
import pytest

from vid2model.config import SfmConfig
from vid2model.errors import MissingDependency, UserError


def _model_dir():
    from conftest import shared_path

    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install 'vid2model[learned]')")
    return shared_path("models", "xfeat_onnx")


@pytest.fixture(scope="module")
def xfeat():
    from vid2model.features.xfeat import XFeat

    return XFeat(_model_dir() / "xfeat.onnx", top_k=2048)


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """Three 320x240 views 10 degrees apart on an orbit (SynthResult)."""
    from vid2model.synth import SynthConfig, generate

    return generate(tmp_path_factory.mktemp("xf_frames"), SynthConfig(
        path="orbit", width=320, height=240, n_frames=3, arc_deg=20.0, seed=1, write_video=False, write_images=True))


def _rgb(path):
    import cv2

    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _isolated_models(monkeypatch, tmp_path):
    monkeypatch.delenv("VID2MODEL_MODELS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_missing_weights_is_one_line_user_error(monkeypatch, tmp_path):
    pytest.importorskip("onnxruntime")
    _isolated_models(monkeypatch, tmp_path)
    from vid2model.features import check_learned_features

    with pytest.raises(UserError) as e:
        check_learned_features(SfmConfig(features="xfeat", models_dir=str(tmp_path / "none")))
    msg = str(e.value)
    assert "xfeat.onnx" in msg and str(tmp_path / "none") in msg and "sfm.models_dir" in msg and "\n" not in msg


def test_weights_found_by_env_and_subfolder(monkeypatch, tmp_path):
    pytest.importorskip("onnxruntime")
    _isolated_models(monkeypatch, tmp_path)
    (tmp_path / "m" / "xfeat_onnx").mkdir(parents=True)
    (tmp_path / "m" / "xfeat_onnx" / "xfeat.onnx").write_bytes(b"x")
    monkeypatch.setenv("VID2MODEL_MODELS", str(tmp_path / "m"))
    from vid2model.features import check_learned_features

    assert check_learned_features(SfmConfig(features="xfeat")) == tmp_path / "m" / "xfeat_onnx" / "xfeat.onnx"


def test_missing_onnxruntime_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    from vid2model.features import check_learned_features

    with pytest.raises(MissingDependency, match=r"onnxruntime.*vid2model\[learned\]"):
        check_learned_features(SfmConfig(features="xfeat"))


def test_aliked_and_unknown_are_refused_with_advice():
    from vid2model.features import check_learned_features

    with pytest.raises(UserError, match="sfm.features=xfeat"):
        check_learned_features(SfmConfig(features="aliked"))
    with pytest.raises(UserError, match="sfm.features cannot be 'orb'; choose one of sift, xfeat"):
        check_learned_features(SfmConfig(features="orb"))


def test_mutual_nn_matches_brute_force():
    from vid2model.features.matching import mutual_nn

    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 64)).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    perm = rng.permutation(300)
    b = a[perm] + 0.05 * rng.normal(size=(300, 64)).astype(np.float32)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    m = mutual_nn(a, b, min_sim=0.5, max_ratio=0.9)
    assert len(m) == 300 and np.all(perm[m[:, 1]] == m[:, 0])
    # brute force: mutual, similarity floor, ratio both ways
    s = a @ b[:200].T
    d = np.sqrt(np.maximum(2 - 2 * s, 0))
    ref = [(i, j) for i in range(300) for j in [s[i].argmax()]
           if s[:, j].argmax() == i and s[i, j] >= 0.5 and d[i, j] <= 0.9 * min(np.sort(d[i])[1], np.sort(d[:, j])[1])]
    assert np.array_equal(mutual_nn(a, b[:200], 0.5, 0.9), np.array(ref, np.uint32).reshape(-1, 2))
    assert mutual_nn(a[:0], b).shape == (0, 2)


def test_keypoints_repeatable_under_homography(xfeat, frames):
    import cv2

    img = _rgb(sorted(frames.images_dir.iterdir())[0])
    h, w = img.shape[:2]
    H = np.array([[0.95, 0.08, 12.0], [-0.06, 1.0, 6.0], [1e-4, 0.0, 1.0]])
    f = xfeat(img)
    g = xfeat(cv2.warpPerspective(img, H, (w, h), flags=cv2.INTER_CUBIC))
    assert len(f.keypoints) > 500 and f.descriptors.shape == (len(f.keypoints), 64)
    assert np.allclose(np.linalg.norm(f.descriptors, axis=1), 1, atol=1e-4)
    assert f.keypoints.min() >= 0 and np.all(f.keypoints.max(0) <= [w, h])
    # COLMAP convention (+0.5 centres) -> OpenCV pixel coordinates for the warp, and back
    p = cv2.perspectiveTransform((f.keypoints - 0.5)[None].astype(np.float64), H)[0] + 0.5
    inside = (p[:, 0] > 4) & (p[:, 0] < w - 4) & (p[:, 1] > 4) & (p[:, 1] < h - 4)
    dist = np.linalg.norm(p[inside][:, None] - g.keypoints[None], axis=2)
    near = dist.min(1)
    assert (near < 3).mean() > 0.5, (near < 3).mean()  # measured ~0.9
    # and the descriptors find them: nearest descriptor is the re-detected point for most
    nn = (f.descriptors[inside] @ g.descriptors.T).argmax(1)
    assert (dist[np.arange(len(nn)), nn] < 3).mean() > 0.6  # measured ~0.85


def test_database_path_verifies_neighbouring_views(xfeat, frames, tmp_path):
    import pycolmap

    from vid2model.features import colmap_db
    from vid2model.ops.pairs import bow_vectors

    names = sorted(p.name for p in frames.images_dir.iterdir())
    db_path = tmp_path / "database.db"
    n_kp = colmap_db.extract_to_database(db_path, frames.images_dir, names, xfeat, pycolmap.CameraMode.SINGLE,
                                         pycolmap.ImageReaderOptions())
    assert n_kp > 500
    pairs = [(names[0], names[1]), (names[1], names[2]), (names[0], names[2])]
    assert colmap_db.match_pairs(db_path, pairs, tmp_path / "pairs.txt") == 3
    assert colmap_db.match_pairs(db_path, pairs, tmp_path / "pairs.txt") == 0  # already matched
    db = pycolmap.Database.open(db_path)
    try:
        ids = {img.name: img.image_id for img in db.read_all_images()}
        assert db.num_cameras() == 1
        for a, b in pairs:
            g = db.read_two_view_geometry(ids[a], ids[b])
            assert len(g.inlier_matches) >= 50, (a, b, len(g.inlier_matches))
        # the uint8 descriptors feed the bag-of-words retrieval like SIFT's
        desc = [np.asarray(db.read_descriptors(ids[n]).data) for n in names]
        assert all(d.dtype == np.uint8 and d.shape[1] == 64 for d in desc)
        assert bow_vectors(desc).shape[0] == 3
    finally:
        db.close()


@pytest.mark.slow
def test_orbit_solves_with_xfeat(tmp_path):
    """24-frame synthetic orbit through sfm.run with sfm.features=xfeat (~20 s on 2 cores).

    Measured (fast-preset features, 2048): 23/23 registered, rotation median ~1.2-1.4 deg, centres
    ~0.5% of the extent; SIFT on the same frames: 0.1 deg, 0.09%.
    """
    import shutil

    from vid2model.io.colmap import load_views
    from vid2model.ops.similarity import pose_errors
    from vid2model.stages import sfm
    from vid2model.synth import SynthConfig, generate
    from vid2model.workspace import Workspace

    model_dir = _model_dir()
    synth = generate(tmp_path / "gen", SynthConfig(path="orbit", width=320, height=240, n_frames=24, seed=1,
                                                  write_video=False, write_images=True))
    ws = Workspace(tmp_path / "ws").create()
    ws.images_dir.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in synth.images_dir.iterdir())
    for n in names:
        shutil.copy(synth.images_dir / n, ws.images_dir / n)
    ws.write_json(ws.keyframes_json, {"video": True, "keyframes": [
        {"name": n, "width": 320, "height": 240} for n in names]})
    summary = sfm.run(ws, SfmConfig(features="xfeat", models_dir=str(model_dir), max_features=2048))
    assert summary["features"] == "xfeat" and summary["n_registered"] == 24
    views = load_views(ws.sparse_dir)
    gt = synth.cam_to_world[[int(v.name.split("_")[1].split(".")[0]) for v in views]]
    err = pose_errors(np.array([v.cam_to_world for v in views]), gt)
    assert err["rot_median_deg"] < 3.0 and err["center_median_rel"] < 0.02, err
