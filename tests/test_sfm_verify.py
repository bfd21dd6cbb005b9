"""The solved model's self-check: cameras placed against their own image pairs are found, dropped with
their time span, and a model that keeps too little is refused with a one-line reason."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from helpers_colmap import look_at
from vid2model.config import SfmConfig
from vid2model.errors import UserError
from vid2model.ops.similarity import rotation_angle_deg
from vid2model.stages.sfm_verify import pair_agreement, rotation_disagreement, verify_model


def _project(P: np.ndarray, X: np.ndarray) -> np.ndarray:
    c = np.concatenate([X, np.ones((len(X), 1))], 1) @ P.T
    return c[:, :2] / c[:, 2:3]


def _rot_z(P: np.ndarray, deg: float) -> np.ndarray:
    a = np.radians(deg)
    Rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    return np.concatenate([P[:, :3] @ Rz.T, P[:, 3:]], 1)


def test_pair_agreement_tells_right_from_wrong_poses():
    rng = np.random.default_rng(0)
    X = rng.uniform(-0.5, 0.5, (300, 3))
    P1, P2 = look_at(np.array([2.0, 0, 0.5]), [0, 0, 0]), look_at(np.array([1.9, 0.6, 0.5]), [0, 0, 0])
    x1 = _project(P1, X) + rng.normal(0, 0.5 / 500, (300, 2))  # half-pixel noise at f = 500
    x2 = _project(P2, X) + rng.normal(0, 0.5 / 500, (300, 2))
    rel = P2[:, :3] @ P1[:, :3].T
    assert pair_agreement(x1, x2, P1, P2, 500, 500) > 0.97
    assert rotation_disagreement(x1, x2, rel, 500) < 2  # E from 300 matches of a narrow view: ~1 deg
    # the second camera placed 10 degrees further round the object: the pair's own rotation says otherwise
    wrong = _rot_z(P2, 10)
    assert rotation_disagreement(x1, x2, wrong[:, :3] @ P1[:, :3].T, 500) > 8
    # ... and turned the other way about its own axis: the correspondences end up behind a camera
    flipped = np.concatenate([np.diag([-1.0, -1.0, 1.0]) @ P2[:, :3], np.diag([-1.0, -1.0, 1.0]) @ P2[:, 3:]], 1)
    assert pair_agreement(x1, x2, P1, flipped, 500, 500) < 0.05
    # a pure rotation (no baseline): its homography gives the rotation, and the right model agrees
    P3 = np.concatenate([_rot_z(P1, 3)[:, :3], P1[:, 3:]], 1)
    P3[:, 3] = -P3[:, :3] @ (-P1[:, :3].T @ P1[:, 3])
    x3 = _project(P3, X) + rng.normal(0, 0.5 / 500, (300, 2))
    assert pair_agreement(x1, x3, P1, P3, 500, 500) > 0.97
    assert rotation_disagreement(x1, x3, P3[:, :3] @ P1[:, :3].T, 500) < 0.5
    assert rotation_disagreement(x1, x3, _rot_z(P3, 10)[:, :3] @ P1[:, :3].T, 500) > 9


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    """A 24-frame synthetic orbit solved by the SfM stage (times: 0.1 s a frame)."""
    import shutil

    from vid2model.stages import sfm
    from vid2model.synth import SynthConfig, generate
    from vid2model.workspace import Workspace

    root = tmp_path_factory.mktemp("verify")
    synth = generate(root / "gen", SynthConfig(path="orbit", width=320, height=240, n_frames=24, seed=3,
                                               write_video=False, write_images=True))
    ws = Workspace(root / "ws").create()
    ws.images_dir.mkdir(parents=True)
    names = sorted(p.name for p in synth.images_dir.iterdir())
    for n in names:
        shutil.copy(synth.images_dir / n, ws.images_dir / n)
    ws.write_json(ws.keyframes_json, {"video": True, "keyframes": [
        {"name": n, "width": 320, "height": 240, "timestamp": 0.1 * i} for i, n in enumerate(names)]})
    summary = sfm.run(ws, SfmConfig())
    return ws, names, summary


def _turn_block(rec, names: list[str], block: range, deg: float) -> None:
    """Turn the cameras of ``block`` (positions in ``names``) by ``deg`` about the model's vertical
    through their own centres: a block glued on with a wrong rotation, as a bad rescue does."""
    import pycolmap

    by_name = {rec.image(i).name: i for i in rec.reg_image_ids()}
    a = np.radians(deg)
    Rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    for k in block:
        img = rec.image(by_name[names[k]])
        m = np.asarray(img.cam_from_world().matrix())
        c = -m[:, :3].T @ m[:, 3]
        R = m[:, :3] @ Rz.T
        frame = rec.frame(img.frame_id)
        frame.rig_from_world = pycolmap.Rigid3d(pycolmap.Rotation3d(R), -R @ c)


def _frames_drawn_differently(ws, names: list[str]) -> list[str]:
    """The fixture's frames that differ from the same frame drawn again on one thread (CI once lost keyframe 9
    of this capture, which solves 24 of 24 elsewhere: a frame drawn wrong, or a solve that differs?)."""
    from PIL import Image

    from vid2model.synth import SynthConfig
    from vid2model.synth.generate import frame_params, intrinsics, make_scene, render_frame

    cfg = SynthConfig(path="orbit", width=320, height=240, n_frames=24, seed=3, write_video=False, write_images=True)
    scene, K, (u, _) = make_scene(cfg), intrinsics(cfg), frame_params(cfg)
    return [n for i, n in enumerate(names)
            if not np.array_equal(np.asarray(Image.open(ws.images_dir / n).convert("RGB")),
                                  render_frame(scene, cfg, K, i, u))]


def test_a_correct_model_passes_untouched(solved):
    ws, names, summary = solved
    assert summary["n_registered"] == len(names), f"frames drawn differently: {_frames_drawn_differently(ws, names)}"
    assert summary["camera_check"] == "ok" and summary["dropped_spans"] == []
    assert summary["pairs_disagreeing"] == 0 and summary["pairs_judged"] >= 3 * len(names)
    assert ws.read_json(ws.camera_check_json)["verdict"] == "ok"


def test_a_block_placed_wrong_is_dropped_and_named(solved):
    import pycolmap

    ws, names, _ = solved
    rec = pycolmap.Reconstruction(str(ws.sparse_dir))
    _turn_block(rec, names, range(8, 14), 120.0)
    times = {n: 0.1 * i for i, n in enumerate(names)}
    info = verify_model(ws.database_path, rec, names, times)
    assert info["dropped"] == names[8:14]
    assert info["dropped_spans"] == ["0.8-1.3 s (6 keyframes)"]
    assert rec.num_reg_images() == len(names) - 6
    # what is left is the correct part: relative rotations of the kept cameras are untouched
    ref = pycolmap.Reconstruction(str(ws.sparse_dir))
    ids = list(rec.reg_image_ids())
    r0 = np.asarray(rec.image(ids[0]).cam_from_world().rotation.matrix())
    q0 = np.asarray(ref.image(ids[0]).cam_from_world().rotation.matrix())
    for i in ids[1:]:
        r = np.asarray(rec.image(i).cam_from_world().rotation.matrix())
        q = np.asarray(ref.image(i).cam_from_world().rotation.matrix())
        assert rotation_angle_deg(r @ r0.T, q @ q0.T) < 1e-4  # arccos near 1: ~1e-6 from rounding


def test_a_model_mostly_wrong_is_refused_with_its_spans(solved):
    import pycolmap

    from vid2model.stages.sfm import _self_check

    ws, names, _ = solved
    kf = ws.read_json(ws.keyframes_json)
    rec = pycolmap.Reconstruction(str(ws.sparse_dir))
    for start in range(0, 24, 4):  # every block of 4 turned a different way: nothing links them
        _turn_block(rec, names, range(start, start + 4), 30.0 * (start // 4 + 1))
    with pytest.raises(UserError, match=r"cannot be trusted: only \d+ of 24 keyframes.*not confirmed: "
                                        r"0\.0-[\d.]+ s"):
        _self_check(ws, rec, names, kf, SfmConfig(min_verified_share=0.3))
    check = ws.read_json(ws.camera_check_json)
    assert check["verdict"] == "refused" and check["unplaced_spans"]
    # an explicit option carries on regardless, keeping every camera (and saying so)
    rec = pycolmap.Reconstruction(str(ws.sparse_dir))
    for start in range(0, 24, 4):
        _turn_block(rec, names, range(start, start + 4), 30.0 * (start // 4 + 1))
    out = _self_check(ws, rec, names, kf, dataclasses.replace(SfmConfig(), allow_unverified=True))
    assert out["camera_check"] == "refused" and rec.num_reg_images() == 24


def test_bundle_adjustment_prints_nothing_and_keeps_colmap_quiet(solved, capfd):
    import pycolmap

    from vid2model.io.colmap import bundle_adjust, quiet_colmap

    ws, _, _ = solved
    quiet_colmap()
    rec = pycolmap.Reconstruction(str(ws.sparse_dir))
    bundle_adjust(rec)
    assert pycolmap.logging.minloglevel == 3  # pycolmap's own call leaves it at 0
    pycolmap.undistort_images(ws.root / "und", ws.sparse_dir, ws.images_dir)  # a later COLMAP call stays quiet
    out = capfd.readouterr()
    assert "bundle_adjustment" not in out.err + out.out and "undistort" not in out.err + out.out


def test_loaded_views_keep_their_camera_parameters(solved):
    import gc

    from vid2model.io.colmap import load_views

    ws, _, _ = solved
    views = load_views(ws.sparse_dir)
    gc.collect()  # the reconstruction they were read from is gone: params must be a copy, not a view of it
    _ = [np.ones(10_000) for _ in range(50)]
    assert views[0].model == "SIMPLE_RADIAL" and views[0].params[0] == views[0].K[0, 0]
    assert np.isfinite(views[0].params).all() and abs(views[0].params[3]) < 0.5


def test_a_video_join_resting_on_one_far_pair_is_not_enough():
    from vid2model.stages.sfm_verify import verified_blocks

    # two runs of a video, 0-4 and 6-9 (5 left out), joined by one agreeing pair 9 positions apart
    order = {i: i for i in range(10)}
    ids = [0, 1, 2, 3, 4, 6, 7, 8, 9]
    local = [(i, i + 1, 300, True) for i in (0, 1, 2, 3, 6, 7, 8)]
    blocks, _ = verified_blocks(ids, local + [(0, 9, 90, True)], order=order)
    assert [sorted(b) for b in blocks] == [[0, 1, 2, 3, 4], [6, 7, 8, 9]]
    # a second far pair agrees: joined; photos (no order): one pair joins, as before
    blocks, _ = verified_blocks(ids, local + [(0, 9, 90, True), (1, 8, 60, True)], order=order)
    assert [sorted(b) for b in blocks] == [ids]
    assert [sorted(b) for b in verified_blocks(ids, local + [(0, 9, 90, True)])[0]] == [ids]
    # a pair across the gap but within three positions is a neighbour's link, not a far one
    blocks, _ = verified_blocks(ids, local + [(4, 6, 80, True)], order=order)
    assert [sorted(b) for b in blocks] == [ids]


def test_a_view_held_by_few_points_leaves_its_turn_uncertain(solved):
    import pycolmap

    from vid2model.stages.sfm_verify import rotation_uncertainty

    ws, names, summary = solved
    rec = pycolmap.Reconstruction(str(ws.sparse_dir))
    steps = rotation_uncertainty(rec, names)
    assert len(steps) == rec.num_reg_images() - 1
    assert max(d for *_, d in steps) < 0.2  # measured 0.11 at 320x240: hundreds of shared points per neighbour
    assert summary["camera_check"] == "ok"
    # keyframe 12 keeps 8 of its points: its turn from either neighbour is no longer fixed
    img = rec.find_image_with_name(names[12])
    held = [p.point3D_id for p in img.points2D if p.has_point3D()]
    for pid in held[8:]:
        rec.delete_point3D(pid)
    loose = {(a, b): d for a, b, d in rotation_uncertainty(rec, names)}
    assert loose[(names[11], names[12])] > 0.5 and loose[(names[12], names[13])] > 0.5
    assert loose[(names[3], names[4])] < 0.2


def test_robust_refinement_keeps_outliers_from_pulling_the_focal_length(solved):
    """One observation in ten pushed 4 px away from the image centre (points that are not one surface point,
    such as outlines against the backdrop, drift like this): a plain bundle adjustment follows them with the
    focal length, the robust refinement stays where the clean model was."""
    import pycolmap

    from vid2model.io.colmap import bundle_adjust
    from vid2model.stages.sfm_refine import refine_robust

    ws, _, _ = solved
    rec = pycolmap.Reconstruction(str(ws.sparse_dir))

    def focal(r) -> float:
        return float(next(iter(r.cameras.values())).params[0])

    clean = focal(rec)
    rng = np.random.default_rng(0)
    moved = 0
    for i in rec.reg_image_ids():
        pts = rec.image(i).points2D
        for j in range(len(pts)):
            if pts[j].has_point3D() and rng.random() < 0.1:
                d = pts[j].xy - np.array([160.0, 120.0])
                pts[j].xy = pts[j].xy + 4.0 * d / (np.linalg.norm(d) + 1e-9)
                moved += 1
    plain, robust = pycolmap.Reconstruction(rec), pycolmap.Reconstruction(rec)
    bundle_adjust(plain)
    info = refine_robust(robust)
    # measured at 9c6e947: plain 0.32 % off the clean model's focal length, robust 0.07 %
    assert abs(focal(plain) / clean - 1) > 0.0025
    assert abs(focal(robust) / clean - 1) < 0.0015
    assert info["observations_removed"] >= 0.8 * moved
    assert info["noise_px"] < info["noise_px_before"]
