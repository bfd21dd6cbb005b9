"""The randomised capture suite: what the draw covers, and a small subset solved as a user would.

The whole suite (30+ captures at 480x270, up to 160 frames) is ``bench/bench_random.py``; here a few
shorter captures go through ``vid2model ingest`` and ``vid2model sfm`` and each must end correct or
refused with its cause, never wrong.
"""

from __future__ import annotations

import numpy as np
import pytest

from vid2model.synth.captures import random_capture


def test_the_draw_covers_what_users_vary_and_is_reproducible():
    caps = [random_capture(s) for s in range(30)]
    orbits = [c for c in caps if c.config.path == "orbit"]
    speeds = np.array([c.deg_per_frame for c in orbits])
    assert 0.3 <= speeds.min() < 0.8 and 3.0 < speeds.max() <= 5.0
    traits = " | ".join(", ".join(c.traits) for c in caps)
    for what in ("cm/frame", "texture-poor", "plain backdrop", "deg arc", "blur bursts",
                 "exposure drift", "rotated", "tabletop", "near", "far"):
        assert what in traits, what
    assert sum(c.config.path == "walk" for c in caps) >= 3  # the benchmark adds forced walks (w-seeds)
    assert random_capture(5, kind="walk").config.path == "walk"
    assert random_capture(7) == random_capture(7) and random_capture(7) != random_capture(8)
    # a portrait capture keeps a phone lens: 50-70 degrees across the long side
    for c in caps:
        cfg = c.config
        f = 0.5 * cfg.width / np.tan(np.radians(cfg.fov_deg) / 2)
        long_fov = np.degrees(2 * np.arctan(0.5 * max(cfg.width, cfg.height) / f))
        assert 50 - 1e-6 <= long_fov <= 70 + 1e-6


def _solve(tmp_path, seed: int, *ingest_args: str, max_frames: int = 60):
    from vid2model.cli import main
    from vid2model.synth import generate
    from vid2model.synth.evaluate import judge_cameras, load_gt
    from vid2model.workspace import Workspace

    cap = random_capture(seed, max_frames=max_frames)
    gen = generate(tmp_path / "gen", cap.config)
    ws = tmp_path / "ws"
    rc = main(["ingest", str(gen.video_path), "-o", str(ws), "-q", *ingest_args]) or main(["sfm", str(ws), "-q"])
    check = Workspace(ws).read_json(Workspace(ws).camera_check_json, default=None)
    if rc:
        return cap, rc, None, check
    return cap, rc, judge_cameras(Workspace(ws), load_gt(gen.gt_path)), check


# Drawn with max_frames=60 (the benchmark's s-seeds): a near tabletop orbit at 3.5 deg/frame with a plain
# backdrop and blur bursts (measured: rotation median 0.11 deg, focal 1.3 % off before this check existed), and
# a walk past a plain wall at 5.3 cm/frame with exposure drift (0.03 deg).
@pytest.mark.parametrize("seed", [102, 104])
def test_drawn_captures_are_solved_correctly(tmp_path, seed):
    cap, rc, err, check = _solve(tmp_path, seed)
    assert rc == 0, cap.label
    assert err["correct"], (cap.label, err)
    assert err["registered"] == err["keyframes"]
    assert err["focal_err_rel"] < 0.02 and err["aspect"] == pytest.approx(1.0, abs=1e-9)
    assert check["verdict"] == "ok" and "focal_warning" not in check


def test_a_video_whose_focal_length_is_looser_than_half_the_bound_is_delivered_with_a_warning(tmp_path, capsys):
    # the benchmark's seed 422 (texture-poor, plain backdrop, 159 degrees, far): placed with the focal length 4.3 %
    # off while the check states 0.69 % (the codec's error common to every frame): delivered, but it says so
    cap, rc, err, check = _solve(tmp_path, 422, max_frames=160)
    assert rc == 0, cap.label
    assert 0.005 < check["focal_std_rel"] < 0.01 and check["verdict"] == "ok"
    assert "focal length is known to" in check["focal_warning"]
    assert "focal length is known to" in capsys.readouterr().err
    html = (tmp_path / "ws" / "report" / "index.html").read_text()
    assert "Warning: the lens&#x27;s focal length is known to" in html or "Warning: the lens's focal length" in html


def test_a_capture_that_leaves_the_focal_length_loose_is_refused(tmp_path, capsys):
    # texture-poor portrait tabletop orbit, 157 degrees at 2.6 deg/frame, keyframes spaced by image motion alone (as
    # before the view's turn counted: 10 of them): before this check it was delivered with its focal length 6.5 %
    # off and a rotation median of 0.62 deg (wrong); refused at +-2.1 %. (With the turn counted it gets 39 keyframes
    # and is solved: rotation median 0.27 deg, focal 1.8 % off.) After the robust refinement the model is 6.6 % off
    # (1.58 deg): judged at the noise of the fit it would pass at +-0.65 %; at the noise as solved it is refused.
    cap, rc, _, check = _solve(tmp_path, 100, "--set", "ingest.keyframe_max_deg=0")
    assert rc == 2, cap.label
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "focal length uncertain" in err and " s (" in err and "Traceback" not in err
    # what the views lack; which depends on the solve (runs differ: 5 views over 67 deg, 10 over 120+; with the
    # frames bridging weak links 15 views or more over 120+ deg: texture, rightly for this texture-poor scene)
    assert "Film a wider arc around the object (these views turn through only" in err or \
        "Film longer and more slowly (only" in err or "Keep more texture in view" in err
    assert check["verdict"] == "refused" and check["focal_std_rel"] > 0.01
    # the capture report says so too, with the same reason, and nothing downstream was written
    html = (tmp_path / "ws" / "report" / "index.html").read_text()
    assert "Camera check: refused: the cameras cannot be trusted" in html and "focal length uncertain" in html
    assert not (tmp_path / "ws" / "sparse").exists() and not (tmp_path / "ws" / "dense").exists()
