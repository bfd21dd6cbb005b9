"""Faults: a user's folder is never touched, one process per workspace, clean stops, damaged artifacts rerun."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vid2model.cli import main
from vid2model.workspace import Workspace

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _tree(root: Path) -> dict[str, str]:
    """Every file under root with its content hash: 'left byte-for-byte unchanged' is equality of this."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _one_line(capsys, needle: str) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("vid2model: error:") and needle in lines[0], err
    return lines[0]


@pytest.fixture()
def users_folder(tmp_path):
    """A folder of someone's own files, including names our temp cleaner would once have removed."""
    root = tmp_path / "my_project"
    (root / "images").mkdir(parents=True)
    (root / "images" / "my_photo.jpg").write_bytes(b"\xff\xd8 my photo")
    (root / ".tmp-notes.txt").write_text("mine")
    (root / "sub").mkdir()
    (root / "sub" / ".old-draft").write_text("mine too")
    return root


@pytest.mark.parametrize("command", ["run", "ingest"])
def test_users_folder_as_output_is_refused_and_untouched(users_folder, synth_orbit, capsys, command):
    before = _tree(users_folder)
    assert main([command, str(synth_orbit.video_path), "-o", str(users_folder), "-q"]) == 2
    _one_line(capsys, "not a vid2model workspace")
    assert _tree(users_folder) == before and not (users_folder / "manifest.json").exists()


def test_users_manifest_is_refused_and_untouched(tmp_path, synth_orbit, capsys):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "manifest.json").write_text('{"name": "my web app"}')
    before = _tree(root)
    assert main(["run", str(synth_orbit.video_path), "-o", str(root), "-q"]) == 2
    _one_line(capsys, "was not written by vid2model")
    assert main(["status", str(root)]) == 2
    _one_line(capsys, "was not written by vid2model")
    assert _tree(root) == before


@pytest.mark.parametrize("damage", ["corrupt", "folder"])
def test_damaged_manifest_is_one_line(tmp_path, capsys, damage):
    root = tmp_path / "ws"
    Workspace(root).create()
    (root / "manifest.json").unlink()
    if damage == "corrupt":
        (root / "manifest.json").write_text('{"vid2model": "0.1", "stag')
    else:
        (root / "manifest.json").mkdir()
    for argv in (["status", str(root)], ["sfm", str(root)], ["report", str(root)]):
        assert main(argv) == 2
        _one_line(capsys, "manifest.json is")


def test_output_that_is_a_file(tmp_path, synth_orbit, capsys):
    f = tmp_path / "out.txt"
    f.write_text("keep")
    assert main(["run", str(synth_orbit.video_path), "-o", str(f), "-q"]) == 2
    _one_line(capsys, "is a file, not a folder")
    assert f.read_text() == "keep"


def test_input_inside_the_workspace_is_refused(tmp_path, capsys):
    ws = Workspace(tmp_path / "ws").create()
    photos = ws.images_dir
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"x")
    before = _tree(photos)
    assert main(["ingest", str(photos), "-o", str(ws.root), "-q"]) == 2
    _one_line(capsys, "lies inside the workspace")
    assert _tree(photos) == before


def test_bad_setting_leaves_nothing_and_is_not_remembered(tmp_path, synth_orbit, capsys):
    out = tmp_path / "ws"
    assert main(["run", str(synth_orbit.video_path), "-o", str(out), "--formats", "nope", "-q"]) == 2
    _one_line(capsys, "unknown export format(s) nope")
    assert not out.exists()


def _hold_lock(root: Path) -> subprocess.Popen:
    code = ("import sys, time\nfrom vid2model.workspace import Workspace\n"
            "ctx = Workspace(sys.argv[1]).locked(); ctx.__enter__(); print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(root)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": SRC})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_process_is_refused_and_a_killed_holder_frees_the_lock(tmp_path, capsys):
    ws = Workspace(tmp_path / "ws").create()
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    ws.write_json(ws.input_path, {"path": str(video), "kind": "video"})
    m = ws.read_manifest()
    m["stages"]["ingest"] = {"status": "running", "pid": 1}
    ws.write_json(ws.manifest_path, m)
    holder = _hold_lock(ws.root)
    try:
        assert ws.is_busy()
        assert main(["sfm", str(ws.root), "-q"]) == 2
        line = _one_line(capsys, f"another vid2model process (pid {holder.pid}) is working in")
        assert "wait for it" in line
        assert main(["status", str(ws.root), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["stages"]["ingest"]["status"] == "running"
    finally:
        holder.kill()
        holder.wait()
    # kill -9 leaves the lock file, but not the lock; the stage it was running shows as stopped
    assert ws.lock_path.exists() and not ws.is_busy()
    assert main(["status", str(ws.root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stages"]["ingest"]["status"] == "stopped"


def test_status_into_a_closed_pipe(orbit_workspace):
    proc = subprocess.Popen(f"{sys.executable} -m vid2model.cli status {orbit_workspace.root} | head -1",
                            shell=True, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": SRC})
    out, err = proc.communicate(timeout=60)
    assert out.startswith("ingest") and "Traceback" not in err and "BrokenPipe" not in err, err


def _copy_ws(src: Workspace, dst: Path) -> Workspace:
    shutil.copytree(src.root, dst, symlinks=True)  # copy2 keeps mtimes, so the copy is as finished as the original
    return Workspace(dst)


def _statuses(res: dict) -> dict[str, str]:
    return {k: v["status"] for k, v in res["stages"].items()}


def test_deleted_artifact_reruns_exactly_the_affected_stages(orbit_workspace, tmp_path, capsys):
    ws = _copy_ws(orbit_workspace, tmp_path / "ws")
    video = json.loads(ws.input_path.read_text())["path"]
    ws.fused_ply.unlink()
    assert main(["mesh", str(ws.root), "-q"]) == 2  # mesh alone would read garbage: refused with the fix
    _one_line(capsys, "needs 'dense' again")
    assert main(["run", video, "-o", str(ws.root), "--skip", "splat", "-q", "--json"]) == 0
    # dense is deterministic: it writes the same bytes again, so nothing after it has to rerun
    assert _statuses(json.loads(capsys.readouterr().out)) == {
        "ingest": "skipped", "sfm": "skipped", "dense": "done", "mesh": "skipped", "texture": "skipped",
        "export": "skipped"}
    assert ws.fused_ply.read_bytes() == orbit_workspace.fused_ply.read_bytes()


def test_truncated_model_reruns_the_solve(orbit_workspace, tmp_path, capsys):
    ws = _copy_ws(orbit_workspace, tmp_path / "ws")
    images_bin = ws.sparse_dir / "images.bin"
    size = images_bin.stat().st_size
    with open(images_bin, "r+b") as f:
        f.truncate(size // 2)
    assert main(["dense", str(ws.root), "-q"]) == 2
    _one_line(capsys, "needs 'sfm' again")
    assert main(["sfm", str(ws.root), "-q", "--json"]) == 0
    assert _statuses(json.loads(capsys.readouterr().out)) == {"sfm": "done"}
    assert images_bin.stat().st_size >= size * 0.9


def _wait_for(pred, timeout: float) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return True
        time.sleep(0.2)
    return False


def _stage_status(root: Path, stage: str) -> str | None:
    try:
        return json.loads((root / "manifest.json").read_text())["stages"].get(stage, {}).get("status")
    except (OSError, ValueError):
        return None


@pytest.mark.parametrize("sig,stage", [(signal.SIGTERM, "sfm"), (signal.SIGINT, "dense"),
                                       (signal.SIGTERM, "dense"), (signal.SIGTERM, "mesh"),
                                       (signal.SIGINT, "texture"), (signal.SIGTERM, "splat")])
def test_stop_signal_is_clean_and_resumable(orbit_workspace, tmp_path, sig, stage):
    ws = _copy_ws(orbit_workspace, tmp_path / "ws")
    # splat: a short training (remembered by the workspace, so the resumed run uses it too)
    extra = ["--set", "splat.iterations=150", "--set", "splat.max_side=160"] if stage == "splat" else []
    proc = subprocess.Popen([sys.executable, "-m", "vid2model.cli", stage, str(ws.root), "--force", "-q", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": SRC})
    # the stop lands inside the stage's native/compiled work: at 40 % of the time this machine took for the
    # stage when the fixture was built (sfm takes ~3 s, so a fixed delay raced its end on a fast machine)
    took = json.loads((orbit_workspace.root / "manifest.json").read_text())["stages"].get(stage, {}).get("wall_s")
    assert _wait_for(lambda: _stage_status(ws.root, stage) == "running", 60)
    time.sleep(min(3.0, 0.4 * took) if took else 3.0)
    assert proc.poll() is None, "the stage ended before it could be stopped"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert err.strip() == "vid2model: interrupted; run the same command again to resume", err
    assert _stage_status(ws.root, stage) == "interrupted"
    assert main([stage, str(ws.root), "-q"]) == 0
    assert _stage_status(ws.root, stage) == "done" and not list(ws.root.rglob(".tmp-*"))
    if stage == "sfm":  # the resumed solve gives the cameras of an uninterrupted one, solved just after it
        from vid2model.io.colmap import load_views

        got = {v.name: v.cam_to_world for v in load_views(ws.sparse_dir)}
        fresh = _copy_ws(orbit_workspace, tmp_path / "fresh")
        assert main(["sfm", str(fresh.root), "--force", "-q"]) == 0
        want = {v.name: v.cam_to_world for v in load_views(fresh.sparse_dir)}
        assert sorted(got) == sorted(want)
        rot, shift, turns = _camera_difference(want, got)
        assert rot < 1e-4 and shift < 1e-9, (rot, shift, turns)  # bounds: test_same_capture_same_cameras


STOP_IN_CALLBACK = """
import ctypes, os, signal
from vid2model.signals import install_stop_handlers, stop_requested
install_stop_handlers()
def inside(_):
    os.kill(os.getpid(), signal.{sig})
    for _ in range(1000):  # Python runs here, inside the native frame: the handler's exception lands here
        sum(range(100))
    return 0
callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(inside)
try:
    callback(0)  # ctypes calls it as native code would
    for _ in range(10 ** 7):  # the first Python after the native frame
        pass
    print("not stopped")
except KeyboardInterrupt:
    print("stopped", stop_requested())
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_stop_inside_a_native_callback_still_stops_without_a_traceback(sig):
    """numba's compiler calls back into Python through ctypes; a stop landing there used to print "Exception
    ignored ... KeyboardInterrupt" with a traceback and let the stage run on."""
    r = subprocess.run([sys.executable, "-c", STOP_IN_CALLBACK.format(sig=sig)], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": SRC}, timeout=60)
    assert r.stdout.strip() == f"stopped {int(getattr(signal, sig))}", (r.stdout, r.stderr)
    assert r.stderr == "", r.stderr


LONG_NATIVE_CALL = """
import ctypes, sys, time
from vid2model.signals import install_stop_handlers, interruptible, stop_requested
install_stop_handlers()
t0 = time.monotonic()
print("started", flush=True)
try:
    interruptible(ctypes.CDLL(None).sleep, 60)  # one native call that holds no GIL, as a mapper run
    print("not stopped")
except KeyboardInterrupt:
    print("stopped", stop_requested(), round(time.monotonic() - t0))
"""


def test_a_stop_during_a_long_native_call_is_acted_on_at_once():
    """A mapper run takes minutes on a long video; a stop used to wait for it to end."""
    proc = subprocess.Popen([sys.executable, "-c", LONG_NATIVE_CALL], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": SRC})
    assert proc.stdout.readline().strip() == "started"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert out.split()[:2] == ["stopped", str(int(signal.SIGTERM))] and int(out.split()[2]) < 5, (out, err)
    assert err == "", err


def test_one_bad_photo_is_skipped_and_reported(tmp_path, capsys):
    from vid2model.synth import SynthConfig, generate
    from vid2model.synth.evaluate import judge_cameras, load_gt

    res = generate(tmp_path / "synth", SynthConfig(path="orbit", width=320, height=240, n_frames=50, seed=3,
                                                   write_images=True, image_ext="jpg", write_video=False))
    photos = res.images_dir
    good = sorted(p.name for p in photos.iterdir())
    (photos / "frame_zz_corrupt.jpg").write_bytes((photos / good[3]).read_bytes()[:300])  # truncated JPEG
    (photos / "notes.jpg").write_text("not an image at all")
    ws = tmp_path / "ws"
    assert main(["ingest", str(photos), "-o", str(ws), "-q"]) == 0
    assert "notes.jpg" in capsys.readouterr().err  # a warning line per skipped file
    kf = json.loads((ws / "ingest" / "keyframes.json").read_text())
    assert sorted(k["name"] for k in kf["keyframes"]) == good
    (finding,) = [f for f in kf["findings"] if f["kind"] == "unreadable"]
    assert {s["name"] for s in finding["files"]} == {"frame_zz_corrupt.jpg", "notes.jpg"}
    html = (ws / "report" / "index.html").read_text()
    assert "frame_zz_corrupt.jpg" in html and "notes.jpg" in html
    assert main(["sfm", str(ws), "-q"]) == 0
    verdict = judge_cameras(Workspace(ws), load_gt(res.gt_path))
    assert verdict["registered"] == len(good) and verdict["correct"], verdict
    assert abs(verdict["aspect"] - 1) < 1e-9  # 50 views of one camera: RADIAL, square pixels by construction
    # OPENCV lets fx and fy drift apart (here fy/fx came out 1.034, every rotation 0.6 deg off): said aloud
    capsys.readouterr()
    assert main(["sfm", str(ws), "-q", "--set", "sfm.camera_model=OPENCV"]) == 0
    check = json.loads(Workspace(ws).camera_check_json.read_text())
    assert abs(check["pixel_aspect"] - 1) > 0.01 and "non-square pixels" in capsys.readouterr().err


def test_sixteen_bit_photos_are_not_white(tmp_path):
    import numpy as np
    from PIL import Image

    from vid2model.io.images import read_image

    ramp = np.linspace(0, 40000, 64 * 48).reshape(48, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.tif")
    img = read_image(tmp_path / "g16.tif")
    assert img.dtype == np.uint8 and img.shape == (48, 64, 3)
    assert abs(float(img.mean()) - ramp.mean() / 257) < 1.0 and img.max() < 160


def test_a_diverged_solve_is_never_done(orbit_workspace):
    import numpy as np
    import pycolmap

    from vid2model.errors import UserError
    from vid2model.stages.sfm_checks import check_solution

    rec = pycolmap.Reconstruction(str(orbit_workspace.sparse_dir))
    check_solution(rec)  # the real solve passes
    cam = next(iter(rec.cameras.values()))
    params = np.asarray(cam.params, float).copy()
    params[0] = np.nan
    cam.params = params
    rec.cameras[cam.camera_id].params = params
    with pytest.raises(UserError, match="camera solve broke down"):
        check_solution(rec)
    rec2 = pycolmap.Reconstruction(str(orbit_workspace.sparse_dir))
    for pid in list(rec2.points3D):  # points thrown far off: the reprojection error explodes
        rec2.points3D[pid].xyz = rec2.points3D[pid].xyz * 50 + 3.0
    with pytest.raises(UserError, match=r"mean reprojection error \d"):
        check_solution(rec2)



def test_same_capture_same_cameras(orbit_workspace, tmp_path):
    """Three solves of one capture in one process: the same cameras, to rounding.

    They used to differ now and then inside the test suite's process (0.013-0.059 deg, and once the frame's
    origin by 1 % of the camera path's extent): COLMAP's matcher threads gave a few different matches in about
    one solve of ten (found by hashing the database's tables over repeated solves). Matching runs on one
    thread since; 82 repeated solves of this capture then came out identical."""
    from vid2model.io.colmap import load_views

    ws = _copy_ws(orbit_workspace, tmp_path / "ws")
    runs = []
    for _ in range(3):
        assert main(["sfm", str(ws.root), "--force", "-q"]) == 0
        runs.append({v.name: v.cam_to_world for v in load_views(ws.sparse_dir)})
    for other in runs[1:]:
        assert sorted(other) == sorted(runs[0])
        rot, shift, turns = _camera_difference(runs[0], other)
        # 1e-4 deg: the floor of an angle read through arccos from two equal rotations (2e-6 deg seen)
        assert rot < 1e-4 and shift < 1e-9, (rot, shift, turns)


def _camera_difference(a: dict, b: dict) -> tuple[float, float, float]:
    """(largest rotation difference in degrees, largest centre shift over the camera path's extent, largest
    difference in degrees of the turn between consecutive views). The last tells a frame turned as a whole
    (the first two large, it small) from cameras solved differently."""
    import numpy as np

    from vid2model.ops.similarity import rotation_angle_deg

    centres = np.array([m[:3, 3] for m in a.values()])
    extent = float(np.linalg.norm(centres.max(0) - centres.min(0)))
    rot = max(rotation_angle_deg(a[n][:3, :3], b[n][:3, :3]) for n in a)
    names = sorted(a)
    turns = max(rotation_angle_deg(a[p][:3, :3].T @ a[q][:3, :3], b[p][:3, :3].T @ b[q][:3, :3])
                for p, q in zip(names, names[1:]))
    return rot, max(float(np.linalg.norm(a[n][:3, 3] - b[n][:3, 3])) for n in a) / extent, turns


def test_images_are_numbered_in_capture_order(tmp_path):
    import sqlite3

    from vid2model.features.colmap_db import renumber_images

    db = tmp_path / "d.db"
    con = sqlite3.connect(db)
    con.executescript("""
        CREATE TABLE images (image_id INTEGER PRIMARY KEY, name TEXT UNIQUE, camera_id INTEGER);
        CREATE TABLE keypoints (image_id INTEGER PRIMARY KEY, rows INTEGER);
        CREATE TABLE descriptors (image_id INTEGER PRIMARY KEY, rows INTEGER);
        CREATE TABLE frames (frame_id INTEGER PRIMARY KEY, rig_id INTEGER);
        CREATE TABLE frame_data (frame_id INTEGER, data_id INTEGER, sensor_id INTEGER, sensor_type INTEGER);
        CREATE TABLE pose_priors (pose_prior_id INTEGER PRIMARY KEY, corr_data_id INTEGER, corr_sensor_type INTEGER);
        CREATE TABLE matches (pair_id INTEGER PRIMARY KEY);
        INSERT INTO images VALUES (1, 'f0', 1), (2, 'f2', 1), (3, 'f1', 1);
        INSERT INTO keypoints VALUES (1, 10), (2, 12), (3, 11);
        INSERT INTO descriptors VALUES (1, 10), (2, 12), (3, 11);
        INSERT INTO frames VALUES (1, 1), (2, 1), (3, 1);
        INSERT INTO frame_data VALUES (1, 1, 1, 0), (2, 2, 1, 0), (3, 3, 1, 0);
    """)
    con.commit()
    con.close()
    assert renumber_images(db, ["f0", "f1", "f2"])
    con = sqlite3.connect(db)
    assert con.execute("SELECT name, image_id FROM images ORDER BY image_id").fetchall() == [
        ("f0", 1), ("f1", 2), ("f2", 3)]
    assert con.execute("SELECT image_id, rows FROM keypoints ORDER BY image_id").fetchall() == [(1, 10), (2, 11), (3, 12)]
    assert con.execute("SELECT frame_id, data_id FROM frame_data ORDER BY frame_id").fetchall() == [(1, 1), (2, 2), (3, 3)]
    con.close()
    assert not renumber_images(db, ["f0", "f1", "f2"])


def test_damaged_stretch_of_video_is_skipped_and_reported(tmp_path):
    import numpy as np

    from vid2model.io.colmap import load_views
    from vid2model.ops.similarity import pose_errors
    from vid2model.synth import SynthConfig, generate

    res = generate(tmp_path / "synth", SynthConfig(path="orbit", width=320, height=240, n_frames=90, seed=7))
    data = bytearray(res.video_path.read_bytes())
    a, n = int(len(data) * 0.45), int(len(data) * 0.1)
    data[a:a + n] = np.random.default_rng(0).integers(0, 255, n, dtype=np.uint8).tobytes()
    bad = tmp_path / "damaged.mp4"
    bad.write_bytes(bytes(data))
    ws = Workspace(tmp_path / "ws")
    assert main(["ingest", str(bad), "-o", str(ws.root), "-q"]) == 0
    kf = json.loads(ws.keyframes_json.read_text())
    (finding,) = [f for f in kf["findings"] if f["kind"] == "damaged"]
    assert finding["count"] >= 1 and finding["end"] >= finding["start"] > 0
    times = [k["timestamp"] for k in kf["keyframes"]]
    assert max(times) > finding["end"] + 1.0, "decoding must go on after the damaged stretch"
    assert "damaged.mp4 is damaged" in (ws.report_dir / "index.html").read_text()
    assert main(["sfm", str(ws.root), "-q"]) == 0
    by_time = {round(float(t), 3): i for i, t in enumerate(res.timestamps)}
    t_of = {k["name"]: round(float(k["timestamp"]), 3) for k in kf["keyframes"]}
    views = load_views(ws.sparse_dir)
    # every keyframe away from the damage is placed; one next to it may not be (the decoder conceals the frames
    # around a damaged stretch differently from run to run), and then the check names it
    placed = {v.name for v in views}
    near = {k["name"] for k in kf["keyframes"] if finding["start"] - 0.5 <= k["timestamp"] <= finding["end"] + 0.5}
    assert {k["name"] for k in kf["keyframes"]} - near <= placed
    check = json.loads(ws.camera_check_json.read_text())
    assert len(views) == len(times) or check["verdict"] == "partial" and check["unplaced_spans"]
    err = pose_errors(np.array([v.cam_to_world for v in views]),
                      np.array([res.cam_to_world[by_time[t_of[v.name]]] for v in views]))
    assert err["rot_median_deg"] < 0.5 and err["center_median_rel"] < 0.01, err


@pytest.mark.parametrize("err,needle", [(28, "the disk is full"), (30, "the location is read-only")])
def test_file_system_trouble_is_one_line(orbit_workspace, tmp_path, capsys, monkeypatch, err, needle):
    """A full disk or a read-only location while a stage writes: one line naming the path, no traceback."""
    import os as _os

    from vid2model import workspace as wsmod

    ws = _copy_ws(orbit_workspace, tmp_path / "ws")

    def failing(path, *a, **k):
        raise OSError(err, _os.strerror(err), str(path))

    monkeypatch.setattr(wsmod.Workspace, "write_json", lambda self, path, data: failing(path))
    assert main(["report", str(ws.root)]) == 1
    line = capsys.readouterr().err.strip()
    assert line.startswith("vid2model: error: cannot write or read") and needle in line, line
    assert "Traceback" not in line and str(ws.root) in line


def test_nearly_full_disk_is_refused_before_a_stage_starts(orbit_workspace, tmp_path, capsys, monkeypatch):
    import shutil as _shutil
    from collections import namedtuple

    ws = _copy_ws(orbit_workspace, tmp_path / "ws")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(_shutil, "disk_usage", lambda p: usage(10 * 2**30, 10 * 2**30 - 50 * 2**20, 50 * 2**20))
    assert main(["dense", str(ws.root), "--force", "-q"]) == 2
    _one_line(capsys, "only 50 MB free on the disk holding")
    assert _stage_status(ws.root, "dense") == "done"  # the finished stage is untouched


def test_settings_that_only_change_how_rerun_nothing(orbit_workspace, tmp_path, capsys):
    ws = _copy_ws(orbit_workspace, tmp_path / "ws")
    video = json.loads(ws.input_path.read_text())["path"]
    argv = ["run", video, "-o", str(ws.root), "--skip", "splat", "-q", "--json"]
    assert main([*argv, "--set", "dense.threads=1", "--set", "sfm.models_dir=/elsewhere"]) == 0
    assert set(_statuses(json.loads(capsys.readouterr().out)).values()) == {"skipped"}
    assert main([*argv, "--set", "dense.max_side=200"]) == 0  # a setting that changes the result does rerun
    st = _statuses(json.loads(capsys.readouterr().out))
    assert st["sfm"] == "skipped" and st["dense"] == "done"
