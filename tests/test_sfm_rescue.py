"""SfM rescue helpers (stages/sfm_rescue.py) on small hand-built models: alignment through shared poses,
frames that disagree with a piece, the focal-length seed."""

from __future__ import annotations

import numpy as np
import pytest

pycolmap = pytest.importorskip("pycolmap")

from vid2model.ops.similarity import rotation_angle_deg  # noqa: E402
from vid2model.stages.sfm_models import align_by_poses, centres, rotations  # noqa: E402
from vid2model.stages.sfm_rescue import _weighted_median, centre_disagreement, model_focals, piece_disagreement  # noqa: E402


def _look_at(centre: np.ndarray, target: np.ndarray) -> np.ndarray:
    """World-to-camera rotation of a camera at ``centre`` looking at ``target`` (OpenCV axes)."""
    z = target - centre
    z /= np.linalg.norm(z)
    x = np.cross(np.array([0.0, 0.0, 1.0]), z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


def _ring(n: int = 8, names: list[int] | None = None, focal: float = 500.0) -> pycolmap.Reconstruction:
    rec = pycolmap.Reconstruction()
    rec.add_camera_with_trivial_rig(pycolmap.Camera(camera_id=1, model="SIMPLE_PINHOLE", width=640, height=480,
                                                    params=[focal, 320, 240]))
    for k in names if names is not None else range(n):
        a = 2 * np.pi * k / n
        c = np.array([np.cos(a), np.sin(a), 0.3])
        R = _look_at(c, np.zeros(3))
        img = pycolmap.Image(name=f"v{k:02d}.png", keypoints=np.zeros((0, 2)), camera_id=1, image_id=k + 1)
        rec.add_image_with_trivial_frame(img, pycolmap.Rigid3d(pycolmap.Rotation3d(R), -R @ c))
    return rec


def _centres(rec) -> dict[str, np.ndarray]:
    return {rec.image(i).name: np.asarray(rec.image(i).projection_center()) for i in rec.reg_image_ids()}


def test_two_shared_poses_align_pieces_without_shared_points():
    full = _ring()
    piece = _ring(names=[3, 4, 5, 6])
    sim = pycolmap.Sim3d(2.5, pycolmap.Rotation3d(np.array([0.2, -0.4, 1.1])), np.array([3.0, -1.0, 0.5]))
    piece.transform(sim)
    base = _ring(names=[0, 1, 2, 3, 4])  # shares v03 and v04 with the piece
    est = align_by_poses(piece, base)
    assert est is not None
    piece.transform(est)
    want, got = _centres(full), _centres(piece)
    assert max(np.linalg.norm(got[n] - want[n]) for n in got) < 1e-8
    R_full, R_got = rotations(full), rotations(piece)
    assert max(rotation_angle_deg(R_full[n], R_got[n]) for n in R_got) < 1e-4  # degrees (arccos rounding)


def test_alignment_refused_when_shared_poses_disagree():
    base = _ring(names=[0, 1, 2, 3, 4])
    piece = _ring(names=[3, 4, 5])
    i = next(i for i in piece.reg_image_ids() if piece.image(i).name == "v04.png")
    frame = piece.frame(piece.image(i).frame_id)
    pose = piece.image(i).cam_from_world()
    turn = pycolmap.Rigid3d(pycolmap.Rotation3d(np.array([0.0, 0.5, 0.0])), np.zeros(3))  # 29 degrees off
    frame.set_cam_from_world(piece.image(i).camera_id, turn * pose)
    assert align_by_poses(piece, base) is None
    assert align_by_poses(_ring(names=[4, 5, 6]), base) is None  # one shared frame: not enough


def test_a_block_glued_on_with_a_wrong_rotation_disagrees_with_a_piece():
    model = _ring(names=list(range(8)))
    piece = rotations(_ring(names=[1, 2, 3, 4]))  # a correct local piece straddling the glue at 2|3
    assert piece_disagreement(model, [piece]) == set()
    # turn frames 3..7 of the model as one block about the ring axis by 40 degrees
    turn = pycolmap.Rotation3d(np.array([0.0, 0.0, np.radians(40)]))
    for i in model.reg_image_ids():
        if int(model.image(i).name[1:3]) >= 3:
            frame = model.frame(model.image(i).frame_id)
            pose = model.image(i).cam_from_world()
            frame.set_cam_from_world(model.image(i).camera_id,
                                     pose * pycolmap.Rigid3d(turn, np.zeros(3)).inverse())
    # a piece across the glue: its majority (0, 1, 2) agrees with the model, frame 3 does not
    bad = piece_disagreement(model, [rotations(_ring(names=[0, 1, 2, 3]))])
    assert bad == {"v03.png"}


def test_focal_seed_is_the_registration_weighted_median():
    models = [_ring(names=[0, 1, 2], focal=640.0), _ring(names=list(range(8)), focal=3200.0),
              _ring(names=[0, 1], focal=100.0)]  # under 3 frames: no estimate
    f = model_focals(models)
    assert sorted(r for r, _ in f) == [1.0, 5.0]
    assert _weighted_median(f) == 5.0


def test_a_model_with_right_rotations_and_wrong_centres_disagrees_with_a_piece():
    model = _ring(names=list(range(8)))
    piece = centres(_ring(names=[0, 1, 2, 3, 4, 5]))
    assert centre_disagreement(model, [piece]) == set()
    # frame 5 pulled towards the ring's centre, its rotation kept: the rest still fits the piece
    i = next(i for i in model.reg_image_ids() if model.image(i).name == "v05.png")
    frame = model.frame(model.image(i).frame_id)
    pose = model.image(i).cam_from_world()
    c = centres(model)["v05.png"]
    moved = pycolmap.Rigid3d(pose.rotation, pose.translation + pose.rotation.matrix() @ (0.5 * c))
    frame.set_cam_from_world(model.image(i).camera_id, moved)
    assert centre_disagreement(model, [piece]) == {"v05.png"}
    assert centre_disagreement(model, [centres(_ring(names=[0, 1, 2]))]) == set()  # too few shared to judge


@pytest.mark.parametrize("n,tried", [(64, ["incremental"]), (24, ["incremental", "global", "relaxed"])])
def test_a_long_capture_missing_a_stray_frame_runs_no_further_mapper(tmp_path, monkeypatch, n, tried):
    """A long video's first mapper places all frames but one: each further mapper would take minutes (a
    101-keyframe room tour spent 20 more of them) and place no more. A short capture still retries."""
    from vid2model.config import SfmConfig
    from vid2model.stages import sfm_mapping
    from vid2model.workspace import Workspace

    ran: list[str] = []

    def mapper(kind, database, images, ws):
        ran.append(kind)
        return [_ring(n, names=list(range(1, n)))], 0, 0.0  # frame 0 left out, as a weakly held one is

    monkeypatch.setattr(sfm_mapping, "_map", mapper)
    monkeypatch.setattr(sfm_mapping, "_without_false_links", lambda kind, models, merged, *a, **k:
                        (models, merged, {"false_links_dropped": 0, "s": 0.0}))
    ws = Workspace(tmp_path / "ws").create()
    names = [f"v{k:02d}.png" for k in range(n)]
    rec, info = sfm_mapping.solve(tmp_path / "db", tmp_path / "images", names, ws, SfmConfig(), lambda m: 0)
    assert ran == tried and [a["mapper"] for a in info["mapper_attempts"]] == tried
    assert rec.num_reg_images() == n - 1 and info["unregistered"] == ["v00.png"]
