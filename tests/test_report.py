"""The capture report: rebuilt from any workspace state, coverage after SfM, real browser rendering."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_path
from vid2model.cli import main
from vid2model.report import build_report
from vid2model.workspace import Workspace

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def _screenshot(html: Path, out: Path, size=(1200, 2600)) -> np.ndarray:
    """Render a page in headless Chromium; (H, W, 3) uint8 screenshot."""
    from PIL import Image

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium) so the report cannot be rendered")
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                 "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={out}",
                                 f"--window-size={size[0]},{size[1]}", html.resolve().as_uri()],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=120)
        finally:  # its renderers too, also when it timed out
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        assert proc.returncode == 0, err[-2000:]
    return np.asarray(Image.open(out).convert("RGB"))


def _count(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 40) -> int:
    return int((np.abs(img.astype(int) - rgb).max(-1) < tol).sum())


def _check_rendered_report(shot: np.ndarray, n_thumbs: int) -> None:
    # The timeline plot: blue score curves and red keyframe dots drawn by the browser.
    assert _count(shot, (48, 96, 192)) > 1500
    assert _count(shot, (224, 64, 64)) > 100
    # The thumbnail strip: photo-like (coloured or dark) pixels well beyond what text and plots give
    # (about 40-50k on these pages without the strip; a 90 px high thumbnail adds over 4k).
    busy = (shot.std(-1) > 12) | (shot.mean(-1) < 200)
    assert n_thumbs > 0 and busy.sum() > 60_000 + 2_000 * n_thumbs


@pytest.fixture(scope="module")
def apple_ws(tmp_path_factory):
    video = shared_path("data", "cotracker_apple_video", "apple.mp4")
    ws = tmp_path_factory.mktemp("apple") / "ws"
    assert main(["ingest", str(video), "-o", str(ws), "-q", "--set", "ingest.keep_full_res=false"]) == 0
    return Workspace(ws)


def test_real_video_report_renders_in_a_browser(apple_ws, tmp_path):
    ws = apple_ws
    kf = ws.read_json(ws.keyframes_json)
    assert kf["source_size"] == [1296, 720] and kf["fps"] == pytest.approx(10.0)
    assert len(kf["keyframes"]) >= 8
    assert all(k["sharpness"] >= 0.6 for k in kf["keyframes"])
    frames = ws.read_json(ws.frames_json)["frames"]
    assert len(frames) == 50 and np.allclose(np.diff([f["timestamp"] for f in frames]), 0.1, atol=2e-3)
    report = ws.read_json(ws.report_json)
    assert report["timeline_plot"] == "timeline.png" and (ws.report_dir / "timeline.png").exists()
    assert len(report["thumbnails"]) == len(kf["keyframes"])
    assert all((ws.report_dir / "thumbs" / t).exists() for t in report["thumbnails"])
    html = ws.report_html.read_text()
    assert "timeline.png" in html and html.count("<figure>") == len(kf["keyframes"])
    _check_rendered_report(_screenshot(ws.report_html, tmp_path / "apple.png"), len(report["thumbnails"]))


def test_photo_folder_report_renders(tmp_path):
    folder = shared_path("data", "fox", "images")
    ws = tmp_path / "ws"
    assert main(["ingest", str(folder), "-o", str(ws), "-q", "--set", "ingest.max_side=480",
                 "--set", "ingest.keep_full_res=false"]) == 0
    ws = Workspace(ws)
    kf = ws.read_json(ws.keyframes_json)
    names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() == ".jpg")
    assert [k["name"] for k in kf["keyframes"]] == names  # original names, all photos kept
    assert kf["working_size"] == [270, 480] and kf["source_size"] == [1080, 1920]
    assert not ws.images_full_dir.exists()
    report = ws.read_json(ws.report_json)
    assert report["n_frames"] == 67 and len(report["thumbnails"]) >= 30
    _check_rendered_report(_screenshot(ws.report_html, tmp_path / "fox.png"), len(report["thumbnails"]))


def test_report_safe_on_an_empty_workspace(tmp_path):
    ws = Workspace(tmp_path / "ws").create()
    res = build_report(ws)
    assert Path(res["report"]).exists()
    data = ws.read_json(ws.report_json)
    assert data["coverage"] is None and data["findings"] == [] and data["thumbnails"] == []
    assert "No frames analysed yet" in ws.report_html.read_text()


def _write_text_model(folder: Path, c2w: np.ndarray, K: np.ndarray, w: int, h: int, pts: np.ndarray) -> None:
    """A COLMAP text model of pinhole cameras (OpenCV cam-to-world poses) seeing ``pts`` exactly."""
    from scipy.spatial.transform import Rotation

    folder.mkdir(parents=True)
    (folder / "cameras.txt").write_text(f"1 PINHOLE {w} {h} {K[0, 0]} {K[1, 1]} {K[0, 2]} {K[1, 2]}\n")
    lines, tracks = [], {j: [] for j in range(len(pts))}
    for i, m in enumerate(c2w):
        R, t = m[:3, :3].T, -m[:3, :3].T @ m[:3, 3]
        x, y, z, qw = Rotation.from_matrix(R).as_quat()
        uv = (K @ (R @ pts.T + t[:, None])).T
        uv = uv[:, :2] / uv[:, 2:]
        lines.append(f"{i + 1} {qw} {x} {y} {z} {t[0]} {t[1]} {t[2]} 1 img_{i:03d}.jpg")
        lines.append(" ".join(f"{u} {v} {j + 1}" for j, (u, v) in enumerate(uv)))
        for j in range(len(pts)):
            tracks[j].append(f"{i + 1} {j}")
    (folder / "images.txt").write_text("\n".join(lines) + "\n")
    (folder / "points3D.txt").write_text("".join(
        f"{j + 1} {p[0]} {p[1]} {p[2]} 128 128 128 0.0 {' '.join(tracks[j])}\n" for j, p in enumerate(pts)))


def _look_at(eye: np.ndarray) -> np.ndarray:
    """(4, 4) OpenCV camera-to-world looking from ``eye`` at the origin, +Z up."""
    z = -eye / np.linalg.norm(eye)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    m = np.eye(4)
    m[:3, :3] = np.stack([x, np.cross(z, x), z], 1)
    m[:3, 3] = eye
    return m


def test_coverage_names_the_side_never_filmed(tmp_path):
    ws = Workspace(tmp_path / "ws").create()
    start = 70.0  # world azimuth of the first camera: gaps are named relative to it
    az = np.array([a for a in range(0, 360, 12) if not 125 <= a <= 195], float)
    c2w = np.stack([_look_at(np.array([2 * np.cos(np.radians(a + start)), 2 * np.sin(np.radians(a + start)), 0.8]))
                    for a in az])
    K = np.array([[300.0, 0, 160], [0, 300, 120], [0, 0, 1]])
    pts = np.random.default_rng(0).uniform(-0.3, 0.3, (30, 3))
    _write_text_model(ws.sparse_dir, c2w, K, 320, 240, pts)
    ws.write_json(ws.scene_json, {"up": [0, 0, 1], "center": [0, 0, 0], "radius": 0.5, "scale": "metric",
                                  "metres_per_unit": 1.0, "capture": "orbit"})
    ws.write_json(ws.keyframes_json, {"keyframes": [{"name": f"img_{i:03d}.jpg"} for i in range(len(az) + 4)]})
    build_report(ws)
    cov = ws.read_json(ws.report_json)["coverage"]
    assert cov["registered"] == len(az) and cov["registered_share"] == pytest.approx(len(az) / (len(az) + 4), abs=1e-3)
    assert cov["mean_reprojection_error_px"] < 1e-3
    assert len(cov["azimuth_gaps_deg"]) == 1
    a, b = cov["azimuth_gaps_deg"][0]
    assert abs(a - 120) < 0.5 and abs(b - 204) < 0.5
    assert any("back of the object" in m and "120°–204°" in m for m in cov["findings"])
    assert np.allclose(cov["elevation_range_deg"], np.degrees(np.arctan2(0.8, 2)), atol=1e-3)
    assert (ws.report_dir / "coverage.png").exists() and "coverage.png" in ws.report_html.read_text()


def test_coverage_says_when_the_object_was_completed_from_its_outline(tmp_path):
    ws = Workspace(tmp_path / "ws").create()
    c2w = np.stack([_look_at(np.array([2 * np.cos(a), 2 * np.sin(a), 0.8])) for a in np.radians(range(0, 360, 12))])
    K = np.array([[300.0, 0, 160], [0, 300, 120], [0, 0, 1]])
    _write_text_model(ws.sparse_dir, c2w, K, 320, 240, np.random.default_rng(0).uniform(-0.3, 0.3, (30, 3)))
    ws.write_json(ws.scene_json, {"up": [0, 0, 1], "center": [0, 0, 0], "radius": 0.5, "capture": "orbit"})
    build_report(ws)
    assert not any("outline" in m for m in ws.read_json(ws.report_json)["coverage"]["findings"])
    manifest = ws.read_manifest()
    manifest["stages"]["mesh"] = {"status": "done", "summary": {"hull": {"added": 5792, "dropped": 310,
                                                                         "sides_missed": 0.83}}}
    ws.write_json(ws.manifest_path, manifest)
    build_report(ws)
    found = [m for m in ws.read_json(ws.report_json)["coverage"]["findings"] if "outline" in m]
    assert len(found) == 1 and "plain" in found[0] and "hollows" in found[0]
