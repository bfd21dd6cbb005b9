"""Frame scores and keyframe selection on controlled inputs (pure functions, fast)."""

from __future__ import annotations

import numpy as np
import pytest

from vid2model.ops.frame_scores import MotionTracker, chained_focus, gray, relative_sharpness, sharpness
from vid2model.ops.keyframes import TrackSurvival, exposure_jumps, segments_where, select_keyframes
from vid2model.report.coverage import azimuth_gaps, camera_angles

cv2 = pytest.importorskip("cv2")


def _texture(h=600, w=900, seed=0, detail=True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.random((h // 20, w // 20, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    if detail:
        img += 0.5 * cv2.resize(rng.random((h // 3, w // 3, 3)).astype(np.float32), (w, h))
    return (np.clip(img / img.max(), 0, 1) * 230).astype(np.uint8)


def _gaps(cum: np.ndarray, picks: list[int]) -> np.ndarray:
    return np.diff(cum[picks])


def _cum(motion: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(motion[1:])])


# ---- keyframe selection -------------------------------------------------------------------
def test_count_follows_parallax_and_keeps_overlap():
    rel = np.ones(300)
    slow, fast = np.full(300, 0.002), np.full(300, 0.01)
    p_slow = select_keyframes(slow, rel, step=0.05, min_count=2, max_count=1000)
    p_fast = select_keyframes(fast, rel, step=0.05, min_count=2, max_count=1000)
    # ~ total motion / step + 1 keyframes: 0.6/0.05 -> ~13, 3.0/0.05 -> ~61
    assert 10 <= len(p_slow) <= 16 and 50 <= len(p_fast) <= 70
    for m, p in ((slow, p_slow), (fast, p_fast)):
        g = _gaps(_cum(m), p)
        assert g.max() <= 1.5 * 0.05 + 1e-9 and g.min() >= 0.5 * 0.05 - 0.011
    # the end of the capture is covered
    assert _cum(fast)[-1] - _cum(fast)[p_fast[-1]] < 0.05


def test_variable_speed_puts_keyframes_where_the_camera_moves():
    motion = np.concatenate([np.full(100, 0.001), np.full(100, 0.02)])
    picks = np.array(select_keyframes(motion, np.ones(200), step=0.05, min_count=2, max_count=500))
    assert (picks >= 100).sum() > 5 * max(1, (picks < 100).sum())


def test_never_a_blurred_frame_when_a_sharp_neighbour_exists():
    rng = np.random.default_rng(0)
    n = 200
    motion = np.full(n, 0.01)
    rel = 1 + 0.05 * rng.standard_normal(n)
    blurred = [(40, 55), (90, 95), (150, 160)]  # motion 0.15, 0.05, 0.10 < max gap 0.2
    for a, b in blurred:
        rel[a:b] = 0.2 + 0.05 * rng.random(b - a)
    picks = select_keyframes(motion, rel, step=0.05, min_count=2, max_count=500)
    assert not any(a <= p < b for p in picks for a, b in blurred)
    assert _gaps(_cum(motion), picks).max() <= 4 * 0.05 + 1e-9


def test_sharpest_frame_of_each_neighbourhood_wins():
    n = 100
    motion = np.full(n, 0.01)
    rel = np.full(n, 0.9)
    best = [7, 13, 19, 26, 33]
    rel[best] = 1.2
    picks = select_keyframes(motion, rel, step=0.06, min_count=2, max_count=500)
    assert set(best[1:]) <= set(picks)


def test_long_blur_keeps_the_chain_connected():
    motion = np.full(100, 0.01)
    rel = np.ones(100)
    rel[20:80] = 0.3  # 0.6 of motion without a sharp frame: must still place keyframes through it
    rel[50] = 0.4
    picks = select_keyframes(motion, rel, step=0.05, min_count=2, max_count=500)
    gaps = _gaps(_cum(motion), picks)
    assert gaps.max() <= 4 * 0.05 + 1e-9  # at most max_gap_ratio steps, to reach a sharp frame again
    assert np.median(gaps) >= 0.04  # no piling up of blurred keyframes
    assert 50 in picks  # the least blurred frame of its neighbourhood


def test_track_survival_shares_and_reach():
    spans = np.array([[0, 9], [0, 4], [2, 20], [3, 3], [5, 30]])  # first and last frame of each track
    sv = TrackSurvival(spans, 0.5)
    assert sv.shares(3, np.array([3, 4, 5, 10, 21])).tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert sv.reach(3) == 9  # two of frame 3's four tracks live up to frame 9
    assert TrackSurvival(spans, 0.5).reach(40) > 10 ** 6  # no tracks: no limit


def _short_tracks(n: int, life: int) -> np.ndarray:
    """One track starting on every frame and living ``life`` frames: the share alive falls by 1/life a frame."""
    return np.array([[i, min(i + life - 1, n - 1)] for i in range(n)])


def test_keyframes_stay_linked_where_tracks_break():
    motion = np.full(100, 0.01)
    rel = np.ones(100)
    rel[20:80] = 0.3
    rel[50] = 0.4
    # image motion alone would skip blurred frames up to 4 steps (20 frames); tracks that live 10 frames keep
    # 30 % of a keyframe's tracks for 7 frames
    picks = select_keyframes(motion, rel, step=0.05, min_count=2, max_count=500, tracks=_short_tracks(100, 10),
                             min_survival=0.3)
    assert np.diff(picks).max() <= 7
    assert len([p for p in picks if 20 <= p < 80]) >= 60 // 7
    # where the tracks outlive a short blurred span, its frames are skipped as before
    rel = np.ones(100)
    rel[40:46] = 0.2
    picks = select_keyframes(motion, rel, step=0.05, min_count=2, max_count=500, tracks=_short_tracks(100, 30),
                             min_survival=0.3)
    assert not [p for p in picks if 40 <= p < 46]
    # the count asked for wins over track survival
    picks = select_keyframes(motion, np.ones(100), step=0.05, min_count=2, max_count=12,
                             tracks=_short_tracks(100, 3), min_survival=0.5)
    assert len(picks) <= 12


def test_target_min_and_max_counts():
    rng = np.random.default_rng(1)
    motion = rng.uniform(0.002, 0.02, 400)
    rel = rng.uniform(0.8, 1.2, 400)
    assert len(select_keyframes(motion, rel, target=25)) == 25
    assert len(select_keyframes(motion, rel, step=0.001, max_count=40)) <= 40
    assert len(select_keyframes(motion, rel, step=10.0, min_count=12)) >= 12
    picks = select_keyframes(motion, rel, target=25)
    assert picks == sorted(set(picks)) and 0 <= picks[0] and picks[-1] < 400


def test_no_motion_and_duplicates():
    picks = select_keyframes(np.zeros(50), np.ones(50), min_count=8)
    assert len(picks) == 8 and picks[0] == 0 and picks[-1] == 49
    motion = np.full(60, 0.01)
    cand = np.ones(60, bool)
    cand[::2] = False  # every other frame repeats the previous one
    picks = select_keyframes(motion, np.ones(60), step=0.05, candidates=cand, min_count=2)
    assert all(cand[p] for p in picks)


def test_segments_and_exposure_jumps():
    m = np.zeros(30, bool)
    m[3:6] = m[7:9] = m[20] = True
    assert segments_where(m) == [(3, 6), (7, 9), (20, 21)]
    assert segments_where(m, min_len=2, max_hole=1) == [(3, 9)]
    rng = np.random.default_rng(2)
    ev = -1 + 0.03 * rng.standard_normal(80)
    ev[50:] += 0.8
    ev[20] += 0.6  # a one-frame flash is not a lighting change
    jumps = exposure_jumps(ev, threshold=0.4)
    assert len(jumps) == 1 and jumps[0][0] == 50 and abs(jumps[0][1] - 0.8) < 0.1


# ---- frame scores -------------------------------------------------------------------------
@pytest.mark.parametrize("detail", [True, False])
def test_relative_sharpness_finds_blur_in_textured_and_plain_scenes(detail):
    tex = _texture(seed=3)
    if not detail:  # a plain, low-contrast scene: ten times less texture
        tex = (110 + 0.1 * tex).astype(np.uint8)
    frames = []
    for i in range(40):
        img = tex[i * 3:i * 3 + 240, i * 4:i * 4 + 320]
        if 15 <= i < 20:
            img = cv2.blur(img, (9, 1))  # horizontal motion blur
        frames.append(sharpness(gray(img)))
    rel = relative_sharpness(np.array(frames), window=15)
    assert rel[15:20].max() < 0.6
    assert np.delete(rel, range(15, 20)).min() > 0.75


def test_focus_steps_find_blur_on_the_same_patches():
    tex = _texture(seed=3)
    tex[:, 500:] = 70  # a plain wall: half the view at the end of the pan
    tex = (tex * 0.65).astype(np.uint8)
    blurred = list(range(8, 12)) + list(range(30, 34))  # before the wall and with the wall in view
    tracker, steps, whole = MotionTracker(), [], []
    for i in range(44):
        img = tex[100:340, 60 + 8 * i:380 + 8 * i]
        if i in blurred:
            img = cv2.blur(img, (9, 1))  # horizontal motion blur
        if i >= 20:
            img = (img * 1.5).astype(np.uint8)  # an exposure step is not a focus change
        g = gray(img)
        steps.append(tracker.update(g).focus_step)
        whole.append(sharpness(g))
    rel = relative_sharpness(np.exp(chained_focus(np.array(steps), np.array(whole))), window=15)
    assert rel[blurred].max() < 0.4
    assert np.delete(rel, blurred).min() > 0.75
    # a missing step (too few features) falls back on the whole-frame ratio
    log_focus = chained_focus(np.array([np.nan, 0.1, np.nan]), np.array([1.0, 1.0, 2.0]))
    assert np.allclose(log_focus, [0.0, 0.1, 0.1 + np.log(2.0)])


def test_steady_scale_change_is_not_blur():
    # walking towards a surface magnifies the tracked patches a little each frame (their focus falls
    # steadily); a blur burst comes and goes
    steps = np.full(120, -0.04)
    steps[60] -= 1.0
    steps[66] += 1.0
    drifting = relative_sharpness(np.exp(chained_focus(steps, np.ones(120))), window=30)
    rel = relative_sharpness(np.exp(chained_focus(steps, np.ones(120), window=30)), window=30)
    assert np.delete(drifting, range(60, 66)).min() < 0.6  # the drift alone would read as blur
    assert np.delete(rel, range(60, 66)).min() > 0.95 and rel[60:66].max() < 0.4


def test_sharpness_ignores_exposure_gain():
    g = gray(_texture()[:240, :320])
    assert abs(sharpness(np.clip(g * 1.6, 0, 1)) / sharpness(g) - 1) < 0.15
    assert sharpness(gray(cv2.GaussianBlur(_texture()[:240, :320], (0, 0), 2))) < 0.5 * sharpness(g)


def test_motion_tracker_measures_shift_and_detects_static():
    tex = _texture(seed=5)
    diag = np.hypot(240, 320)
    tr = MotionTracker()
    out = [tr.update(gray(tex[100:340, 100 + 4 * i:420 + 4 * i])) for i in range(20)]
    motions = np.array([o[0] for o in out[1:]])
    assert np.allclose(motions, 4 / diag, atol=0.5 / diag)
    assert out[-1][1] == pytest.approx(19 * 4 / diag, rel=0.15)
    rng = np.random.default_rng(0)
    tr = MotionTracker()
    nets = []
    for i in range(120):  # hand-held shake in place: +-3 px, never drifting
        dx, dy = rng.integers(-3, 4, 2)
        nets.append(tr.update(gray(tex[100 + dy:340 + dy, 100 + dx:420 + dx]))[1])
    assert max(nets) < 0.05
    tr = MotionTracker()  # walking forward: zoom, no mean shift, still net motion
    for i in range(30):
        s = 1 + 0.02 * i
        crop = tex[300 - int(120 / s):300 + int(120 / s), 450 - int(160 / s):450 + int(160 / s)]
        net = tr.update(gray(cv2.resize(crop, (320, 240))))[1]
    assert net > 0.05


# ---- coverage geometry ---------------------------------------------------------------------
def test_azimuth_gap_relative_to_first_camera():
    az_true = np.array([a for a in range(0, 360, 10) if not 125 <= a <= 195], float)
    base = 40.0  # the world X axis is not where filming started
    rad = np.radians(az_true + base)
    c = np.stack([np.cos(rad), np.sin(rad), np.full(len(az_true), 0.4)], 1)
    az, el = camera_angles(c, np.zeros(3), np.array([0, 0, 1.0]), ref=c[0])
    assert np.allclose((az - az_true + 180) % 360 - 180, 0, atol=1e-6)
    assert np.allclose(el, np.degrees(np.arctan2(0.4, 1)), atol=1e-6)
    assert azimuth_gaps(az) == [(120.0, 200.0)]


def test_probe_frames_sit_halfway_and_prefer_sharp_ones():
    from vid2model.ops.keyframes import probe_frames

    motion = np.full(21, 0.01)
    rel = np.ones(21)
    ok = np.ones(21, bool)
    # halfway in motion: the camera moves twice as fast over frames 1-5 as over 6-10
    motion[1:6] = 0.02
    assert probe_frames([0, 10, 11, 20], motion, rel, ok) == [(4, 0, 10), (15, 11, 20)]
    rel[4] = 0.3  # the halfway frame is blurred: its sharp neighbour nearest halfway instead
    assert probe_frames([0, 10], motion, rel, ok)[0][0] in (3, 5)
    rel[1:10] = 0.2  # only blurred frames between: the sharpest of them
    rel[8] = 0.4
    assert probe_frames([0, 10], motion, rel, ok) == [(8, 0, 10)]
    ok[1:10] = False  # duplicates are no candidates: no probe
    assert probe_frames([0, 10], motion, rel, ok) == []
