"""Camera solving on synthetic captures with exact ground truth (and real data, marked slow)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from vid2model.config import SfmConfig
from vid2model.errors import UserError
from vid2model.io.colmap import load_views
from vid2model.io.transforms import read_transforms
from vid2model.ops.similarity import pose_errors
from vid2model.workspace import Workspace


def _workspace(root, synth, video: bool = True) -> Workspace:
    """A workspace whose images/ are the synthetic frames (no dependency on the ingest stage)."""
    ws = Workspace(root).create()
    ws.images_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for p in sorted(synth.images_dir.iterdir()):
        shutil.copy(p, ws.images_dir / p.name)
        names.append(p.name)
    ws.write_json(ws.keyframes_json, {"video": video, "keyframes": [
        {"name": n, "width": synth.width, "height": synth.height} for n in names]})
    return ws


def _gt_index(name: str) -> int:
    return int(name.split("_")[1].split(".")[0])


def _solve(tmp_path_factory, name: str, cfg: SfmConfig, **synth_kw):
    from vid2model.stages import sfm
    from vid2model.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp(name)
    synth = generate(root / "gen", SynthConfig(**{"width": 320, "height": 240, "n_frames": 24, "write_video": False,
                                                  "write_images": True, **synth_kw}))
    ws = _workspace(root / "ws", synth)
    return synth, ws, sfm.run(ws, cfg)


@pytest.fixture(scope="module")
def orbit(tmp_path_factory):
    return _solve(tmp_path_factory, "orbit", SfmConfig(), path="orbit", seed=1)


@pytest.fixture(scope="module")
def marker(tmp_path_factory):
    """A 100-degree arc in view of a 15 cm ArUco marker on the floor, solved with marker scale.

    640x480: at 320x240 the marker spans ~20 px and its corners cannot give 1% (measured: 3%).
    """
    return _solve(tmp_path_factory, "marker", SfmConfig(marker_size=0.15, max_features=2048), path="orbit",
                  seed=1, marker_size=0.15, width=640, height=480, n_frames=10, arc_deg=100.0)


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    return _solve(tmp_path_factory, "walk", SfmConfig(), path="walk", seed=2)


def _errors(synth, ws):
    views = load_views(ws.sparse_dir)
    gt = synth.cam_to_world[[_gt_index(v.name) for v in views]]
    return views, gt, pose_errors(np.array([v.cam_to_world for v in views]), gt)


@pytest.mark.parametrize("case", ["orbit", "walk"])
def test_every_keyframe_registered_and_accurate(case, request):
    synth, ws, summary = request.getfixturevalue(case)
    assert summary["n_registered"] == summary["n_images"] == 24
    assert summary["registered_share"] == 1.0
    assert summary["unregistered"] == []
    assert summary["mean_reproj_error_px"] < 1.0
    views, gt, err = _errors(synth, ws)
    assert len(views) == 24
    assert err["rot_median_deg"] < 0.1, err
    assert err["center_median_rel"] < 0.005, err
    assert err["center_max_rel"] < 0.02, err


@pytest.mark.parametrize("case", ["orbit", "walk"])
def test_a_correct_model_has_no_false_links(case, request):
    """The missing-correspondence check stays quiet where every camera is right (no remapping)."""
    import pycolmap

    from vid2model.stages.sfm_mapping import find_false_links

    synth, ws, summary = request.getfixturevalue(case)
    assert summary["false_links_dropped"] == 0
    assert find_false_links(pycolmap.Reconstruction(str(ws.sparse_dir)), ws.database_path) == []


def test_marker_gives_metric_scale(marker):
    synth, ws, summary = marker
    assert summary["n_registered"] == 10
    scene = ws.read_json(ws.scene_json)
    assert scene["scale"] == "metric" and scene["metres_per_unit"] == 1.0 and summary["scale_source"] == "marker"
    views, gt, err = _errors(synth, ws)
    # similarity to GT metres needs no scaling. The marker is measured from the 3 of 10 views that see it: over
    # seeds 1-5 of this capture its corners triangulated one by one came out -1.2 to +0.6 % off (seed 1: -1.13 %);
    # the square fitted to all its detections at once puts seed 1 0.69 % off
    assert abs(err["scale"] - 1.0) < 0.015, err
    c, g = np.array([v.center for v in views]), gt[:, :3, 3]
    d, dg = (np.linalg.norm(x[:, None] - x[None], axis=-1) for x in (c, g))
    far = dg > 0.2 * dg.max()
    assert np.median(np.abs(d[far] / dg[far] - 1)) < 0.015  # camera distances in metres: the same scale


@pytest.mark.parametrize("case", ["orbit", "walk"])
def test_scene_frame_is_gravity_up_and_centred(case, request):
    synth, ws, _ = request.getfixturevalue(case)
    scene = ws.read_json(ws.scene_json)
    assert scene["up"] == [0, 0, 1] and scene["capture"] == case
    views, gt, _ = _errors(synth, ws)
    # Camera "down" axes (+y, OpenCV) agree with the world's -Z as in the GT, up to hand-held tilt.
    ours = np.array([v.cam_to_world[:3, 1] for v in views]).mean(0)
    truth = gt[:, :3, 1].mean(0)
    ang = np.degrees(np.arccos(np.clip(ours @ [0, 0, 1] / np.linalg.norm(ours), -1, 1)))
    ang_gt = np.degrees(np.arccos(np.clip(truth @ [0, 0, 1] / np.linalg.norm(truth), -1, 1)))
    assert abs(ang - ang_gt) < 3.0
    centres = np.array([v.center for v in views])
    radius = scene["radius"]
    if case == "orbit":  # the origin is the object the cameras circle: horizontally in the middle
        assert np.linalg.norm(centres[:, :2].mean(0)) < 0.1 * np.linalg.norm(centres[:, :2], axis=1).mean()
    assert 0 < radius < 10 * np.linalg.norm(centres, axis=1).max()


def test_outputs_follow_the_contract(orbit):
    synth, ws, summary = orbit
    views = load_views(ws.sparse_dir)
    dense = load_views(ws.dense_sparse_dir)
    assert {v.model for v in dense} == {"PINHOLE"} and len(dense) == 24
    assert all((ws.undistorted_dir / v.name).exists() for v in dense)
    for a, b in zip(views, dense):  # undistortion keeps the same world frame
        assert a.name == b.name and np.allclose(a.cam_to_world, b.cam_to_world, atol=1e-6)
    intr, paths, c2w = read_transforms(ws.transforms_json)
    assert intr["w"] == 320 and intr["h"] == 240 and abs(intr["fl_x"] - synth.K[0, 0]) < 0.02 * synth.K[0, 0]
    assert paths == [f"images/{v.name}" for v in views]
    assert np.allclose(c2w, np.array([v.cam_to_world for v in views]), atol=1e-6)
    assert summary["shared_camera"] and len({v.params.tobytes() for v in views}) == 1
    for key in ("features_s", "matching_s", "mapping_s", "mapper", "pieces_merged", "scale", "n_points"):
        assert key in summary
    scene = ws.read_json(ws.scene_json)
    assert scene["scale"] == "arbitrary" and scene["metres_per_unit"] is None and summary["scale_source"] == "none"


def test_pure_rotation_is_refused_with_advice(tmp_path):
    """A camera panning from one spot: a clear UserError, not a crash or a bogus model."""
    from vid2model.stages import sfm
    from vid2model.synth import SynthConfig, render_views
    from vid2model.synth.video import save_image

    cfg = SynthConfig(path="walk", width=320, height=240, seed=2)
    f = 0.5 * cfg.width / np.tan(np.radians(cfg.fov_deg) / 2)
    K = np.array([[f, 0, cfg.width / 2], [0, f, cfg.height / 2], [0, 0, 1]])
    c2w = []
    for yaw in np.radians(np.linspace(0, 50, 10)):
        fwd = np.array([np.cos(yaw), np.sin(yaw), 0.0])
        right = np.cross(fwd, [0, 0, 1.0])
        m = np.eye(4)
        m[:3, :3] = np.stack([right, np.cross(fwd, right), fwd], axis=1)
        m[:3, 3] = [0.0, 0.0, 1.5]
        c2w.append(m)
    imgs = render_views(cfg, K, cfg.width, cfg.height, np.array(c2w))
    ws = Workspace(tmp_path / "ws").create()
    ws.images_dir.mkdir()
    for i, im in enumerate(imgs):
        save_image(ws.images_dir / f"pan_{i:03d}.png", im)
    with pytest.raises(UserError, match="turned in place|overlap"):
        sfm.run(ws, SfmConfig())


def test_too_few_images_is_a_user_error(tmp_path):
    from vid2model.stages import sfm

    ws = Workspace(tmp_path / "ws").create()
    ws.images_dir.mkdir()
    with pytest.raises(UserError, match="at least 3"):
        sfm.run(ws, SfmConfig())


def test_split_model_pieces_are_merged_through_shared_frames(orbit, tmp_path):
    """Two overlapping pieces in different frames (as a mapper split leaves them) join into one model."""
    import pycolmap

    from vid2model.stages.sfm_models import merge_pieces

    synth, ws, _ = orbit
    full = pycolmap.Reconstruction(str(ws.sparse_dir))
    names = sorted(full.image(i).name for i in full.reg_image_ids())
    pieces = []
    for keep in (set(names[:15]), set(names[10:])):
        rec = pycolmap.Reconstruction(str(ws.sparse_dir))
        for i in list(rec.reg_image_ids()):
            if rec.image(i).name not in keep:
                rec.deregister_frame(rec.image(i).frame_id)
        pieces.append(rec)
    R = pycolmap.Rotation3d(np.array([0.3, -0.2, 0.9]))  # piece B lives in another similarity frame
    pieces[1].transform(pycolmap.Sim3d(2.7, R, np.array([1.0, -3.0, 0.5])))
    merged, n_merged, apart = merge_pieces(pieces, ws.database_path, ws.images_dir, tmp_path / "merge")
    assert n_merged == 1 and apart == [] and merged.num_reg_images() == 24
    assert merged.num_points3D() > 0.8 * full.num_points3D()
    assert merged.compute_mean_reprojection_error() < 1.0
    est = {merged.image(i).name: merged.image(i) for i in merged.reg_image_ids()}
    c2w = []
    for n in names:
        m = np.eye(4)
        m[:3, :] = np.asarray(est[n].cam_from_world().matrix())
        c2w.append(np.linalg.inv(m))
    err = pose_errors(np.array(c2w), synth.cam_to_world[[_gt_index(n) for n in names]])
    assert err["rot_median_deg"] < 0.15 and err["center_max_rel"] < 0.01, err  # unsplit: ~0.08 deg


# ---- real data (slow) ------------------------------------------------------------------------------


def _real_workspace(tmp_path, src, names, max_side: int) -> Workspace:
    import cv2

    ws = Workspace(tmp_path / "ws").create()
    ws.images_dir.mkdir()
    for n in names:
        img = cv2.imread(str(src / n))
        s = min(1.0, max_side / max(img.shape[:2]))
        if s < 1:
            img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(ws.images_dir / n), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return ws


def _real_errors(ws, gt):
    views = [v for v in load_views(ws.sparse_dir) if v.name in gt]
    return pose_errors(np.array([v.cam_to_world for v in views]), np.array([gt[v.name] for v in views]))


@pytest.mark.slow
def test_fox_phone_frames_all_registered(tmp_path):
    """instant-ngp fox: 67 hand-held phone frames; GT = COLMAP reference (a reference, not truth)."""
    import json

    from conftest import shared_path

    root = shared_path("data", "fox")
    meta = json.loads((root / "transforms.json").read_text())
    gl_to_cv = np.diag([1.0, -1.0, -1.0, 1.0])
    gt = {f["file_path"].split("/")[-1]: np.array(f["transform_matrix"]) @ gl_to_cv for f in meta["frames"]}
    from vid2model.stages import sfm

    ws = _real_workspace(tmp_path, root / "images", sorted(gt), 960)
    summary = sfm.run(ws, SfmConfig())
    assert summary["n_registered"] == 67, summary["unregistered"]
    err = _real_errors(ws, gt)
    assert err["rot_median_deg"] < 0.5 and err["center_median_rel"] < 0.01, err


@pytest.mark.slow
@pytest.mark.parametrize("name", ["middlebury_templeSparseRing", "middlebury_dinoSparseRing"])
def test_middlebury_rings_all_registered(tmp_path, name):
    from conftest import shared_path

    from vid2model.stages import sfm

    root = shared_path("data", name)
    prefix = "templeSR" if "temple" in name else "dinoSR"
    gt = {}
    for ln in (root / f"{prefix}_par.txt").read_text().split("\n")[1:]:
        p = ln.split()
        if len(p) == 22:
            v = np.array(p[1:], float)
            R, t = v[9:18].reshape(3, 3), v[18:21]
            m = np.eye(4)
            m[:3, :3], m[:3, 3] = R.T, -R.T @ t
            gt[p[0]] = m
    ws = _real_workspace(tmp_path, root, sorted(gt), 1280)
    summary = sfm.run(ws, SfmConfig())
    assert summary["n_registered"] == len(gt) == 16, summary["unregistered"]
    err = _real_errors(ws, gt)
    # The GT principal point is off-centre by ~19 px at f ~1520 px, which SIMPLE_RADIAL (centred
    # principal point) absorbs as a ~0.7 deg rotation; centres are unaffected. The dino (texture-poor,
    # placed by the fixed-focal rescue) measured centre medians 0.3-1.4 % of the ring over 8 runs.
    assert err["rot_median_deg"] < 1.5 and err["center_median_rel"] < (0.01 if "temple" in name else 0.02), err


def test_points_marked_in_keyframes_give_their_distance(marker, capsys):
    """``measure --point``: two floor spots, each marked at its exact pixel in the keyframes that see it."""
    from vid2model.cli import main
    from vid2model.synth.evaluate import load_gt
    from vid2model.synth.generate import render_depth, scene_of_gt

    synth, ws, _ = marker
    spots = np.array([[0.55, -0.45, 0.0], [0.6, 0.5, 0.0]])  # 0.951 m apart
    views = load_views(ws.sparse_dir)
    idx = [_gt_index(v.name) for v in views]
    depth = render_depth(scene_of_gt(load_gt(synth.gt_path)), synth.K, synth.width, synth.height,
                         synth.cam_to_world[idx])
    marks: list[list[str]] = [[], []]
    for v, i, D in zip(views, idx, depth):
        w2c = np.linalg.inv(synth.cam_to_world[i])
        Xc = spots @ w2c[:3, :3].T + w2c[:3, 3]
        uv = Xc @ synth.K.T
        uv = uv[:, :2] / uv[:, 2:]
        for k in range(2):
            col, row = uv[k] - 0.5  # the pixel's 0-based column and row
            if 0 <= col < synth.width - 1 and 0 <= row < synth.height - 1 and abs(D[int(row), int(col)] / Xc[k, 2] - 1) < 0.01:
                marks[k].append(f"{v.name}:{col:.2f},{row:.2f}")
    assert min(len(m) for m in marks) >= 2, marks
    args = ["measure", str(ws.root), "--json"] + [a for m in marks for a in ("--point", "/".join(m[:3]))]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    d = out["distances"][0]
    assert out["units"] == "m" and out["object"] is None and d["unit"] == "m"
    true = float(np.linalg.norm(spots[1] - spots[0]))
    # the marker's scale is most of this capture's error (see the test above)
    assert abs(d["value"] / true - 1) < 0.015, d
    assert abs(d["value"] - true) <= 2 * d["uncertainty"], d
    # pixels that do not mark one spot are refused
    bad = marks[0][0] + "/" + marks[1][1]
    assert main(["measure", str(ws.root), "--point", bad, "--point", "/".join(marks[1][:2])]) == 2
    assert "do not mark one spot" in capsys.readouterr().err


def test_a_missing_marker_is_named(orbit):
    """--marker-size on a capture without a marker: one line that says what was not found and what to do."""
    import pycolmap

    from vid2model.stages.sfm_scale import metric_scale

    _, ws, _ = orbit
    with pytest.raises(UserError, match=r"no ArUco marker \(DICT_4X4_50\) could be measured.*drop --marker-size"):
        metric_scale(ws, pycolmap.Reconstruction(str(ws.sparse_dir)), SfmConfig(marker_size=0.15))
