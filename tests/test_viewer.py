"""``vid2model view``: the viser viewer serves its page and websocket, shows every layer, stops on request."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest

from vid2model.errors import MissingDependency, UserError
from vid2model.workspace import Workspace

from test_publish import write_splat_ply

N_CAMS, N_POINTS, N_DENSE = 5, 300, 2000


def write_colmap_model(ws: Workspace) -> np.ndarray:
    """A ring of 5 PINHOLE cameras looking at the origin (+Z up) with 300 coloured points; returns centres."""
    import pycolmap
    from PIL import Image

    rec = pycolmap.Reconstruction()
    cam = pycolmap.Camera(camera_id=1, model="PINHOLE", width=64, height=48, params=[60.0, 60.0, 32.0, 24.0])
    rec.add_camera_with_trivial_rig(cam)
    ws.images_dir.mkdir(parents=True, exist_ok=True)
    centers = []
    for i in range(N_CAMS):
        a = 2 * np.pi * i / N_CAMS
        c = np.array([3 * np.cos(a), 3 * np.sin(a), 1.0])
        z = -c / np.linalg.norm(c)  # looking at the origin
        x = np.cross(z, [0, 0, 1.0])
        x /= np.linalg.norm(x)
        R = np.stack([x, np.cross(z, x), z])  # rows: camera axes in world (world-to-camera rotation)
        name = f"frame_{i:03d}.jpg"
        Image.fromarray(np.full((48, 64, 3), (40 * i, 120, 200), np.uint8)).save(ws.images_dir / name)
        img = pycolmap.Image(name=name, camera_id=1, image_id=i + 1)
        rec.add_image_with_trivial_frame(img, pycolmap.Rigid3d(np.hstack([R, (-R @ c)[:, None]])))
        centers.append(c)
    rng = np.random.default_rng(0)
    for p in rng.uniform(-1, 1, (N_POINTS, 3)):
        rec.add_point3D(p, pycolmap.Track(), rng.integers(0, 255, 3).astype(np.uint8))
    ws.sparse_dir.mkdir(parents=True, exist_ok=True)
    rec.write(str(ws.sparse_dir))
    return np.array(centers)


def write_dense_and_mesh(ws: Workspace) -> int:
    import trimesh
    from plyfile import PlyData, PlyElement

    pts = np.random.default_rng(1).normal(size=(N_DENSE, 3)).astype(np.float32)
    arr = np.zeros(N_DENSE, dtype=[(k, "f4") for k in "xyz"] + [(k, "u1") for k in ("red", "green", "blue")])
    for i, k in enumerate("xyz"):
        arr[k] = pts[:, i]
    arr["red"] = 200
    ws.fused_ply.parent.mkdir(parents=True, exist_ok=True)
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(ws.fused_ply))
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.8)
    ws.clean_mesh.parent.mkdir(parents=True, exist_ok=True)
    mesh.export(ws.clean_mesh)
    return len(mesh.faces)


def first_hit(tri: np.ndarray, o: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Nearest point where the ray o + t d (t > 0) meets triangles [M, 3, 3] (Moller-Trumbore, every triangle)."""
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):  # rays parallel to a triangle: det 0, filtered below
        return _first_hit(tri, o, d, e1, e2)


def _first_hit(tri, o, d, e1, e2) -> np.ndarray:
    p = np.cross(d, e2)
    det = (e1 * p).sum(1)
    s = o - tri[:, 0]
    u = (s * p).sum(1) / det
    q = np.cross(s, e1)
    v = (q @ d) / det
    t = (e2 * q).sum(1) / det
    ok = (np.abs(det) > 1e-12) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
    return o + t[ok].min() * d


@pytest.fixture(scope="module")
def full_ws(tmp_path_factory):
    pytest.importorskip("viser", reason="the local viewer needs the 'viewer' extra (pip install 'vid2model[viewer]')")
    ws = Workspace(tmp_path_factory.mktemp("view") / "ws").create()
    centers = write_colmap_model(ws)
    n_faces = write_dense_and_mesh(ws)
    write_splat_ply(ws.splat_ply, n=1500)
    return ws, centers, n_faces


def test_view_shows_every_layer_and_serves_page_and_websocket(full_ws):
    import viser
    from websockets.sync.client import connect

    from vid2model.viewer.local import serve

    ws, centers, n_faces = full_ws
    res = serve(ws, port=0, block=False)
    viewer = res["viewer"]
    try:
        assert res["url"] == f"http://127.0.0.1:{res['port']}" and res["port"] > 0
        assert res["layers"] == {"cameras": N_CAMS, "sparse points": N_POINTS, "dense points": N_DENSE,
                                 "mesh": n_faces, "splat": 1500}
        # frustums sit at the camera centres of the COLMAP model
        pos = np.array(sorted((h.position for h in viewer.handles["cameras"]), key=lambda p: np.arctan2(p[1], p[0])))
        np.testing.assert_allclose(pos, sorted(centers, key=lambda p: np.arctan2(p[1], p[0])), atol=1e-4)
        with urllib.request.urlopen(res["url"] + "/", timeout=10) as r:
            assert r.status == 200 and b"<html" in r.read(4096).lower()
        with connect(f"ws://127.0.0.1:{res['port']}", subprotocols=[f"viser-v{viser.__version__}"],
                     open_timeout=10, max_size=None) as conn:
            assert conn.subprotocol == f"viser-v{viser.__version__}"
            first = conn.recv(timeout=10)  # the scene is pushed to a new client right away
            assert isinstance(first, bytes) and len(first) > 0
        viewer.handles["mesh"][0].visible = False  # the toggles' effect, reachable from Python too
        # the ruler: two clicks on the sphere, from above and from the side; a plain ray-triangle test agrees
        import trimesh

        mesh = trimesh.load(ws.clean_mesh, process=False)
        rays = [((0.1, 0.05, 5.0), (0, 0, -1.0)), ((5.0, -0.1, 0.2), (-1.0, 0, 0))]
        true = [first_hit(np.asarray(mesh.triangles), np.array(o), np.array(d)) for o, d in rays]
        assert viewer.ruler.click(*rays[0]) is None and viewer.ruler.click((0, 0, 5.0), (0, 1.0, 0)) is None  # a miss
        d = viewer.ruler.click(*rays[1])
        assert d == pytest.approx(np.linalg.norm(true[1] - true[0]), abs=1e-5) and 0.85 < d < 0.95
        assert viewer.ruler.unit == "relative units" and len(viewer.ruler.points) == 2
    finally:
        t0 = time.time()
        viewer.stop()
        assert time.time() - t0 < 10
    with pytest.raises(OSError):
        urllib.request.urlopen(res["url"] + "/", timeout=2)


def test_blocking_serve_stops_on_event(full_ws):
    from vid2model.viewer.local import serve

    ws = full_ws[0]
    port = _free_port()
    stop, out = threading.Event(), {}
    t = threading.Thread(target=lambda: out.update(serve(ws, port=port, stop_event=stop)), daemon=True)
    t.start()
    _wait_http(f"http://127.0.0.1:{port}/", 30)
    t0 = time.time()
    stop.set()
    t.join(15)
    assert not t.is_alive() and time.time() - t0 < 15
    assert out["port"] == port and "stopped" in out["_human"]


def test_cli_view_stops_on_ctrl_c(full_ws):
    """The real command: prints the URL, binds 127.0.0.1, exits cleanly (code 0) on SIGINT."""
    ws = full_ws[0]
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "vid2model.cli", "view", str(ws.root), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        t0 = time.time()
        while not any("vid2model viewer:" in ln for ln in lines):  # the URL is printed once the scene is ready
            assert proc.poll() is None and time.time() - t0 < 60, "".join(lines)
            time.sleep(0.1)
        assert f"http://127.0.0.1:{port}" in "".join(lines)
        _wait_http(f"http://127.0.0.1:{port}/", 10, proc)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)  # 15 s ran out once while a benchmark loaded both cores
        reader.join(5)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = "".join(lines)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_view_errors(tmp_path, monkeypatch):
    from vid2model.viewer.local import serve

    pytest.importorskip("viser")
    with pytest.raises(UserError, match="nothing to show"):
        serve(Workspace(tmp_path / "empty").create(), port=0, block=False)
    with pytest.raises(UserError, match="--port 99999 is not a port"):
        serve(Workspace(tmp_path / "empty"), port=99999, block=False)
    monkeypatch.setitem(sys.modules, "viser", None)  # as if not installed
    with pytest.raises(MissingDependency, match=r"vid2model\[viewer\]"):
        serve(Workspace(tmp_path / "empty"), port=0, block=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"viewer exited early: {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"no answer from {url} within {timeout} s")


def test_follow_draws_what_a_run_writes(tmp_path):
    """``view --follow`` on a workspace a run is filling: it opens empty, then each refresh draws the layers
    whose files appeared or changed, and only those; splats appear from training's checkpoints."""
    pytest.importorskip("viser", reason="the local viewer needs the 'viewer' extra (pip install 'vid2model[viewer]')")
    import trimesh

    from vid2model.viewer.local import serve

    ws = Workspace(tmp_path / "ws").create()
    with pytest.raises(UserError, match="--follow"):
        serve(ws, port=0, block=False)
    viewer = serve(ws, port=0, block=False, follow=True)["viewer"]
    try:
        assert viewer.layers == {} and viewer.refresh() == []
        write_colmap_model(ws)
        assert sorted(viewer.refresh()) == ["cameras", "sparse points"]
        n_faces = write_dense_and_mesh(ws)
        assert sorted(viewer.refresh()) == ["dense points", "mesh"] and viewer.layers["mesh"] == n_faces
        assert viewer.ruler is not None and viewer.refresh() == []
        bigger = trimesh.creation.icosphere(subdivisions=3, radius=0.8)
        bigger.export(ws.clean_mesh)  # the mesh stage wrote again
        assert viewer.refresh() == ["mesh"] and viewer.layers["mesh"] == len(bigger.faces)
        assert viewer._boxes["mesh"].label == f"mesh ({len(bigger.faces)})"
        # the follow thread does the same on its own: splats from training's checkpoint, then from the PLY
        import torch

        from vid2model.splat.model import GaussianModel

        n = 300
        params = {"means": torch.randn(n, 3), "log_scales": torch.full((n, 3), -3.0),
                  "quats": torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1), "opacity_logits": torch.zeros(n, 1),
                  "sh0": torch.rand(n, 1, 3), "shN": torch.zeros(n, 0, 3)}
        ws.splat_checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"iteration": 500, "model": GaussianModel(params, 0).state_dict()}, ws.splat_checkpoint)
        for expected, write in ((n, None), (700, lambda: write_splat_ply(ws.splat_ply, n=700))):
            if write:
                write()
            t0 = time.time()
            while viewer.layers.get("splat") != expected and time.time() - t0 < 20:
                time.sleep(0.2)
            assert viewer.layers.get("splat") == expected
    finally:
        viewer.stop()


@pytest.mark.slow
def test_run_with_view_serves_while_it_runs_and_stays_open(tmp_path, synth_orbit):
    pytest.importorskip("viser", reason="the local viewer needs the 'viewer' extra (pip install 'vid2model[viewer]')")
    ws = tmp_path / "ws"
    p = subprocess.Popen([sys.executable, "-m", "vid2model.cli", "run", str(synth_orbit.video_path), "-o", str(ws),
                          "--preset", "fast", "--skip", "splat", "-q", "--view"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stderr.readline()  # the viewer is up before the first stage
        assert line.startswith("vid2model viewer: http://"), line
        url = line.split()[2]
        with urllib.request.urlopen(url + "/", timeout=10) as r:
            assert r.status == 200
        assert not (ws / "mesh").exists()  # it served while the run had not got far
        t0 = time.time()
        out = p.stdout.readline()
        while "stays open" not in out and time.time() - t0 < 600:
            out = p.stdout.readline()
        assert "stays open" in out and (ws / "mesh" / "mesh.ply").exists()
        with urllib.request.urlopen(url + "/", timeout=10) as r:  # after the run: still there
            assert r.status == 200
        p.send_signal(signal.SIGINT)
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.kill()
