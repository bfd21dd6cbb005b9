"""Ingest on synthetic videos with known defects, other containers/codecs, photo folders, bad input."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from vid2model.cli import main
from vid2model.config import IngestConfig
from vid2model.workspace import Workspace

cv2 = pytest.importorskip("cv2")
av = pytest.importorskip("av")

BLUR = (16, 22)
JUMP = 30


def _texture(h=700, w=1000, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.random((h // 20, w // 20, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    img += 0.5 * cv2.resize(rng.random((h // 4, w // 4, 3)).astype(np.float32), (w, h))
    return (np.clip(img / img.max(), 0, 1) * 230).astype(np.uint8)


def _encode(path: Path, frames: list[np.ndarray], codec="libx264", pix_fmt="yuv420p", fps=30, options=None) -> Path:
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=Fraction(fps))
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
        s.options = options or {}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def _pan(n: int, h=128, w=192, step=3, seed=0) -> list[np.ndarray]:
    tex = _texture(seed=seed)
    return [np.ascontiguousarray(tex[100 + i:100 + i + h, 50 + step * i:50 + step * i + w]) for i in range(n)]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / max(np.mean((a.astype(float) - b) ** 2), 1e-9)))


def _ingest(tmp_path: Path, src: Path, *extra: str) -> tuple[int, Workspace]:
    ws = tmp_path / "ws"
    return main(["ingest", str(src), "-o", str(ws), "-q", *extra]), Workspace(ws)


# ---- the synthetic capture with defects ---------------------------------------------------
@pytest.fixture(scope="module")
def defect(tmp_path_factory):
    """Portrait phone-style orbit (display rotation 90), VFR, a blurred range and an exposure jump."""
    from vid2model.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("defect")
    cfg = SynthConfig(path="orbit", width=144, height=192, n_frames=44, fps=10, blur_frames=(BLUR,),
                      exposure_gain=((JUMP, 1.7),), rotation=90, vfr=True, seed=4)
    res = generate(out, cfg)
    rc, ws = _ingest(out, res.video_path)
    assert rc == 0
    return res, ws


def test_no_keyframe_from_the_blurred_range(defect):
    res, ws = defect
    kf = ws.read_json(ws.keyframes_json)
    idx = [k["index"] for k in kf["keyframes"]]
    assert not [i for i in idx if BLUR[0] <= i < BLUR[1]]
    assert any(i < BLUR[0] for i in idx) and any(i >= BLUR[1] for i in idx)
    assert len(idx) >= IngestConfig().min_keyframes
    cfg = IngestConfig()
    parallax = [k["parallax"] for k in kf["keyframes"][1:]]  # overlap kept between keyframes
    assert max(parallax) <= cfg.max_gap_steps * cfg.keyframe_step + 0.05  # + one frame of motion
    assert sorted(p.name for p in ws.images_dir.iterdir()) == sorted(f"frame_{i:06d}.jpg" for i in idx)
    assert sorted(p.name for p in ws.images_full_dir.iterdir()) == sorted(f"frame_{i:06d}.jpg" for i in idx)
    assert not list(ws.root.rglob(".tmp-*")) and not list(ws.root.rglob(".old-*"))


def test_findings_at_the_right_time_stamps(defect):
    res, ws = defect
    ts = res.timestamps
    found = ws.read_json(ws.frames_json)["findings"]
    blur = [f for f in found if f["kind"] == "blur"]
    assert len(blur) == 1
    assert blur[0]["frames"][0] in (BLUR[0], BLUR[0] + 1) and blur[0]["frames"][1] in (BLUR[1] - 2, BLUR[1] - 1)
    assert abs(blur[0]["start"] - ts[BLUR[0]]) < 0.2 and abs(blur[0]["end"] - ts[BLUR[1] - 1]) < 0.2
    jump = [f for f in found if f["kind"] == "exposure_jump"]
    assert len(jump) == 1
    assert jump[0]["frames"][0] == JUMP and abs(jump[0]["start"] - ts[JUMP]) < 1e-3
    assert 0.45 < jump[0]["ev"] < 0.85  # log2(1.7) = 0.77, less where highlights clip
    assert f"{ts[JUMP]:.1f} s" in jump[0]["message"]
    report = ws.read_json(ws.report_json)
    assert {f["kind"] for f in report["findings"]} >= {"blur", "exposure_jump"}
    assert "static" not in {f["kind"] for f in found}


def test_portrait_video_comes_out_upright(defect):
    from PIL import Image

    from vid2model.synth import render_views

    res, ws = defect
    kf = ws.read_json(ws.keyframes_json)
    assert kf["rotation"] == 90 and kf["source_size"] == [144, 192] and kf["working_size"] == [144, 192]
    k = next(k for k in kf["keyframes"] if k["index"] < BLUR[0])
    img = np.asarray(Image.open(ws.images_dir / k["name"]).convert("L"), float)
    assert img.shape == (192, 144)
    gt = render_views(res.config, res.K, 144, 192, res.cam_to_world[k["index"]])[0].mean(-1)
    corr = lambda a, b: float(np.corrcoef(a.ravel(), b.ravel())[0, 1])  # noqa: E731
    assert corr(img, gt) > 0.9 and corr(img, gt[::-1, ::-1]) < 0.6


def test_variable_frame_rate_timestamps(defect):
    res, ws = defect
    frames = ws.read_json(ws.frames_json)["frames"]
    t = np.array([f["timestamp"] for f in frames])
    assert len(t) == len(res.timestamps)
    assert np.abs(t - res.timestamps).max() < 2e-3
    assert np.diff(t).std() > 0.01  # really irregular
    for k in ws.read_json(ws.keyframes_json)["keyframes"]:
        assert abs(k["timestamp"] - res.timestamps[k["index"]]) < 2e-3


# ---- a plain backdrop is not blur ---------------------------------------------------------
BURSTS = ((30, 36), (100, 106))  # the second with the wall in view


def _backdrop_orbit(out: Path, blur: tuple[tuple[int, int], ...] = (),
                    size: tuple[int, int] = (320, 180)) -> tuple[Path, np.ndarray, np.ndarray]:
    """A full orbit at 2.5 degrees per frame, low around the fixed object, with a plain grey wall outside the
    circle that fills the top half of the view over a third of it (from about frame 75 on).

    Returns:
        The video, each frame's camera azimuth (N,) in degrees, unwrapped, and its camera-to-world (N, 4, 4).
    """
    from concurrent.futures import ThreadPoolExecutor
    from dataclasses import replace

    from vid2model.synth import SynthConfig
    from vid2model.synth.camera import camera_path, frame_params, intrinsics
    from vid2model.synth.generate import render_frame
    from vid2model.synth.scene import Box, orbit_scene
    from vid2model.synth.video import VideoWriter

    # 25 fps: timestamps on whole milliseconds, so every frame is analysed
    cfg = SynthConfig(path="orbit", width=size[0], height=size[1], n_frames=144, fps=25, orbit_height=0.45,
                      orbit_radius=1.0, orbit_target=(0.05, 0.0, 0.45), seed=1, blur_frames=blur)
    scene = replace(orbit_scene(cfg.seed), plain_boxes=(Box((-2.0, 1.5, 0.0), (2.0, 1.54, 2.5)),),
                    plain_color=(0.5, 0.5, 0.5))
    K, (u, ts) = intrinsics(cfg), frame_params(cfg)
    writer = VideoWriter(out / "video.mp4", cfg.width, cfg.height, cfg.fps)
    with ThreadPoolExecutor(2) as pool:
        for t, img in zip(ts, pool.map(lambda i: render_frame(scene, cfg, K, i, u), range(cfg.n_frames))):
            writer.write(img, float(t))
    writer.close()
    c2w = camera_path(cfg, u)
    return out / "video.mp4", np.degrees(np.unwrap(np.arctan2(c2w[:, 1, 3], c2w[:, 0, 3]))), c2w


@pytest.fixture(scope="module", params=[(), BURSTS], ids=["sharp", "bursts"])
def backdrop(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("backdrop")
    video, azimuth, _ = _backdrop_orbit(out, request.param)
    rc, ws = _ingest(out, video)
    assert rc == 0
    frames = ws.read_json(ws.frames_json)
    return request.param, azimuth, frames, [k["index"] for k in ws.read_json(ws.keyframes_json)["keyframes"]]


def _whole_frame_blur(frames: dict) -> np.ndarray:
    """Frames the whole-frame measure calls blurred (the judgement before tracked patches)."""
    from vid2model.ops.frame_scores import relative_sharpness

    cfg = IngestConfig()
    window = max(15, round(cfg.sharpness_window_s * frames["source"]["analysis_rate"]))
    whole = relative_sharpness(np.array([r["sharpness"] for r in frames["frames"]]), window=window)
    return whole < cfg.blur_threshold


def test_plain_backdrop_is_not_blur(backdrop):
    bursts, azimuth, frames, keyframes = backdrop
    rows = frames["frames"]
    assert [r["index"] for r in rows] == list(range(144))
    burst = np.zeros(len(rows), bool)
    for a, b in bursts:
        burst[a:b] = True
    # the trap is there: where the wall's edge crosses the view the whole frame looks blurred
    assert (_whole_frame_blur(frames)[75:] & ~burst[75:]).sum() >= 3
    # measured 0.83 (0.67 after the burst with the wall in view: blur steps do not quite cancel)
    assert min(r["rel_sharpness"] for r, b in zip(rows, burst) if not b) > IngestConfig().blur_threshold
    blur = [f["frames"] for f in frames["findings"] if f["kind"] == "blur"]
    assert len(blur) == len(bursts)  # each burst, and nothing else
    for (a, b), (first, last) in zip(bursts, blur):
        assert a - 1 <= first <= a + 1 and b - 2 <= last <= b


def test_keyframes_keep_the_orbit_linked(backdrop):
    bursts, azimuth, frames, keyframes = backdrop
    assert not [k for k in keyframes for a, b in bursts if a <= k < b]
    assert keyframes[0] <= 2 and keyframes[-1] >= 141
    # the whole-frame judgement skipped 57.5 degrees at the wall, image motion alone 20 degrees (it barely moves
    # where the view turns to a plain backdrop). With the view's turn counted: measured 7.5 degrees, and 17.5 over
    # the 15-degree burst at the backdrop (the first sharp frame past it); bounds two frames (5 degrees) above
    assert np.diff(azimuth[keyframes]).max() <= (22.5 if bursts else 12.5)
    survival = {r["index"]: r["track_survival"] for r in frames["frames"]}
    assert min(survival[k] for k in keyframes[1:]) >= IngestConfig().min_track_survival  # measured 0.53


def test_the_turn_of_the_view_is_estimated_from_the_tracks(backdrop):
    """An orbit keeps the object mid-view: the image barely moves while the view turns 2.5 degrees a frame."""
    bursts, azimuth, frames, _ = backdrop
    turn = np.array([r["turn_deg"] for r in frames["frames"]])
    true = azimuth - azimuth[0]
    step = np.diff(turn)
    assert np.all(step >= 0)
    assert abs(np.median(step[step > 0]) / 2.5 - 1) < 0.2  # measured 2.08 a frame in the capture with bursts
    # measured: 351 of 357.5 degrees; with bursts 292 (the blurred frames break the tracks, and a span no track
    # crosses adds nothing: an estimate too low only leaves keyframes to the image motion, as before)
    assert turn[-1] >= (0.75 if bursts else 0.95) * true[-1] and turn[-1] <= 1.05 * true[-1]


def test_backdrop_orbit_solves_correctly(tmp_path):
    """The orbit whose keyframes skipped the wall's side (and whose cameras then came out wrong), filmed at
    640x360, is solved at the default preset: every keyframe placed, square pixels, the true focal length
    and GT poses; no frame reported blurred."""
    from vid2model.io.colmap import load_views
    from vid2model.ops.similarity import pose_errors
    from vid2model.synth import SynthConfig
    from vid2model.synth.camera import intrinsics

    video, _, c2w = _backdrop_orbit(tmp_path, size=(640, 360))
    rc, ws = _ingest(tmp_path, video)
    assert rc == 0 and main(["sfm", str(ws.root), "-q"]) == 0
    assert not [f for f in ws.read_json(ws.frames_json)["findings"] if f["kind"] == "blur"]
    keyframes = [k["index"] for k in ws.read_json(ws.keyframes_json)["keyframes"]]
    views = load_views(ws.sparse_dir)
    index = [int(v.name[6:12]) for v in views]
    assert sorted(index) == keyframes
    err = pose_errors(np.array([v.cam_to_world for v in views]), c2w[index])
    # measured: 34 keyframes, rotation median 0.17 / max 0.60 deg, centres 0.13 %, focal 0.9 % short; bounds:
    # the suite's "correct" (0.5 deg, 1 %), and the 2 % on the focal length
    assert err["rot_median_deg"] < 0.5 and err["rot_max_deg"] < 1.5 and err["center_median_rel"] < 0.01
    K = views[0].K
    assert K[0, 0] == K[1, 1] and abs(K[0, 0] / intrinsics(SynthConfig(width=640, height=360))[0, 0] - 1) < 0.02
    assert ws.read_json(ws.camera_check_json)["verdict"] == "ok"


# ---- containers, codecs, bit depth, resolution --------------------------------------------
@pytest.mark.parametrize("suffix,codec,pix_fmt", [
    (".mov", "libx265", "yuv420p10le"),  # HEVC 10-bit
    (".webm", "libvpx-vp9", "yuv420p"),
    (".mkv", "libsvtav1", "yuv420p10le"),  # AV1 10-bit
    (".mp4", "libx264", "yuv420p"),
])
def test_containers_and_codecs_decode(tmp_path, suffix, codec, pix_fmt):
    from vid2model.io.video import iter_frames, probe

    if codec not in av.codecs_available:
        pytest.skip(f"encoder {codec} not in this FFmpeg build")
    frames = _pan(8)
    opts = {"x265-params": "log-level=error"} if codec == "libx265" else {}
    path = _encode(tmp_path / f"clip{suffix}", frames, codec, pix_fmt, options=opts)
    info = probe(path)
    assert (info.width, info.height) == (192, 128)
    assert ("10" in info.pix_fmt) == ("10" in pix_fmt)
    out = list(iter_frames(path))
    assert [i for i, _, _ in out] == list(range(8))
    assert np.allclose([t for _, t, _ in out], np.arange(8) / 30, atol=2e-3)
    assert min(_psnr(img, ref) for (_, _, img), ref in zip(out, frames)) > 28


def test_large_video_downscaled_once_on_decode(tmp_path):
    from vid2model.io.video import iter_frames, probe

    tex = cv2.resize(_texture(), (3840, 2160))
    path = _encode(tmp_path / "uhd.mp4", [tex, np.roll(tex, 8, 1)], options={"preset": "ultrafast"})
    assert (probe(path).width, probe(path).height) == (3840, 2160)
    small = [img for _, _, img in iter_frames(path, 640)]
    assert small[0].shape == (360, 640, 3)
    assert _psnr(small[0], cv2.resize(tex, (640, 360), interpolation=cv2.INTER_AREA)) > 25
    full = next(iter_frames(path, None, indices={1}))
    assert full[0] == 1 and full[2].shape == (2160, 3840, 3)


def test_analysis_rate_cap_keeps_source_indices(tmp_path):
    from vid2model.io.video import iter_frames

    path = _encode(tmp_path / "hfr.mp4", _pan(12), fps=60)
    got = [(i, round(t, 4)) for i, t, _ in iter_frames(path, 96, min_dt=1 / 30)]
    assert [i for i, _ in got] == [0, 2, 4, 6, 8, 10]
    assert np.allclose([t for _, t in got], np.arange(0, 12, 2) / 60, atol=1e-3)


def test_analysis_rate_cap_keeps_every_frame_of_30fps_with_rounded_timestamps(tmp_path):
    from vid2model.io.video import iter_frames
    from vid2model.synth import SynthConfig, generate

    # timestamps in milliseconds (0, 33, 67, 100 ...): gaps of 33 ms fell just short of 1/30 s
    gen = generate(tmp_path, SynthConfig(width=64, height=48, n_frames=30, fps=30.0))
    assert [i for i, _, _ in iter_frames(gen.video_path, 48, min_dt=1 / 30, gray=True)] == list(range(30))


# ---- photo folders ------------------------------------------------------------------------
def test_photo_folder_exif_orientation_and_focal(tmp_path):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    upright = _pan(10, h=240, w=160, step=12, seed=7)  # portrait photos
    for i, img in enumerate(upright):
        exif = Image.Exif()
        exif[0x0112] = 6  # stored turned; the viewer rotates 90° clockwise to show it upright
        exif.get_ifd(0x8769)[0xA405] = 26  # 35 mm-equivalent focal length
        stored = np.ascontiguousarray(np.rot90(img, 1))  # 90° counter-clockwise on disk
        Image.fromarray(stored).save(folder / f"IMG_{i:04d}.JPG", quality=95, exif=exif)
    rc, ws = _ingest(tmp_path, folder)
    assert rc == 0
    kf = ws.read_json(ws.keyframes_json)
    assert [k["name"] for k in kf["keyframes"]] == [f"IMG_{i:04d}.JPG" for i in range(10)]
    assert kf["working_size"] == [160, 240]
    assert kf["focal_prior_px"] == pytest.approx(26 / 43.267 * np.hypot(160, 240), rel=1e-3)
    got = np.asarray(Image.open(ws.images_dir / "IMG_0003.JPG"))
    assert got.shape == (240, 160, 3) and _psnr(got, upright[3]) > 28


# ---- bad input: one clear line, exit code 2, nothing that looks finished -------------------
def _bad_inputs(tmp: Path) -> dict[str, Path]:
    good = _encode(tmp / "good.mp4", _pan(30))
    data = good.read_bytes()
    (tmp / "empty.mp4").write_bytes(b"")
    (tmp / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(20000))
    (tmp / "truncated.mp4").write_bytes(data[:len(data) // 3])  # moov atom at the end: lost
    with av.open(str(tmp / "audio.m4a"), "w") as out:
        s = out.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for p in list(s.encode(frame)) + list(s.encode()):
            out.mux(p)
    _encode(tmp / "single.mp4", _pan(1))
    (tmp / "empty_folder").mkdir()
    (tmp / "notes.txt").write_text("not a video")
    return {k: tmp / v for k, v in {"empty": "empty.mp4", "corrupt": "corrupt.mp4", "truncated": "truncated.mp4",
                                    "audio": "audio.m4a", "single": "single.mp4", "folder": "empty_folder",
                                    "text": "notes.txt", "missing": "missing.mp4"}.items()}


def test_bad_inputs_fail_cleanly(tmp_path, capsys):
    inputs = _bad_inputs(tmp_path)
    for name, path in inputs.items():
        ws = tmp_path / f"ws_{name}"
        rc = main(["ingest", str(path), "-o", str(ws), "-q"])
        err = capsys.readouterr().err.strip()
        assert rc == 2, name
        assert len(err.splitlines()) == 1 and err.startswith("vid2model: error:") and "Traceback" not in err, name
        w = Workspace(ws)
        assert not w.keyframes_json.exists() and not w.images_dir.exists(), name
        assert not list(ws.rglob(".tmp-*")) if ws.exists() else True


def test_truncated_tail_keeps_the_frames_before(tmp_path):
    from vid2model.io.video import iter_frames

    # mkv writes frames as it goes, so a cut file still holds its first frames
    path = _encode(tmp_path / "clip.mkv", _pan(40), options={"g": "5"})
    data = path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[:int(len(data) * 0.6)])
    n = sum(1 for _ in iter_frames(cut, 96))
    assert 10 <= n < 40


def test_static_camera_detected_and_reported(tmp_path, capsys):
    tex = _texture(seed=9)
    rng = np.random.default_rng(1)
    frames = []
    for _ in range(40):  # tripod-like: a pixel or two of shake, nothing else
        dx, dy = rng.integers(-2, 3, 2)
        frames.append(np.ascontiguousarray(tex[200 + dy:328 + dy, 300 + dx:492 + dx]))
    rc, ws = _ingest(tmp_path, _encode(tmp_path / "static.mp4", frames))
    assert rc == 2 and "does not move" in capsys.readouterr().err
    assert not ws.keyframes_json.exists()
    report = ws.read_json(ws.report_json)
    assert [f["kind"] for f in report["findings"]].count("static") == 1
    assert ws.report_html.exists()
