"""``vid2model view``: a local interactive viewer (viser) of everything a workspace holds.

Shows the solved cameras as frustums with their keyframe as thumbnail, the sparse and dense points, the
textured (or cleaned) mesh and the Gaussian splat, each with a checkbox to hide it. Binds 127.0.0.1 by
default, prints the URL and blocks until Ctrl-C / SIGTERM (or ``stop_event``), then stops the server.
"""

from __future__ import annotations

import contextlib
import io
import logging
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from vid2model.errors import UserError, require
from vid2model.signals import acknowledge_stop
from vid2model.workspace import Workspace

log = logging.getLogger("vid2model")

MAX_POINTS = 1_500_000  # browsers stay responsive below this
MAX_SPLATS = 1_000_000
NERF_PREVIEW = (320, 240)  # the radiance field's picture in the panel: a CPU renders it in a second or two
THUMB_SIDE = 160
SH_C0 = 0.28209479177387814


@dataclass
class Viewer:
    """A running viewer: the viser server, its URL and the layers it shows."""

    server: Any
    url: str
    layers: dict[str, int] = field(default_factory=dict)  # layer name -> number of items drawn
    handles: dict[str, list] = field(default_factory=dict)
    ruler: Any = None  # :class:`vid2model.viewer.ruler.Ruler` on the mesh, when there is one
    ws: Workspace | None = None
    _drawn: dict[str, tuple] = field(default_factory=dict)  # layer name -> signature of the files it was drawn from
    _boxes: dict[str, Any] = field(default_factory=dict)
    _status: Any = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        self._stop.set()
        with _viser_chatter():
            self.server.stop()

    def refresh(self) -> list[str]:
        """Show what the workspace holds now: layers whose files appeared or changed since they were drawn are
        drawn again (a run's cameras, then its dense points, mesh and splats). Returns their names."""
        sources = _layer_sources(self.ws)
        todo = [n for n, sig in sources.items() if self._drawn.get(n) != sig]
        if todo:
            layers = _load_layers(self.ws)
            for name in todo:
                if name not in layers:
                    continue
                for h in self.handles.get(name, []):
                    h.remove()
                self.handles[name], self.layers[name] = layers[name](self.server)
                self._drawn[name] = sources[name]
                self._toggle(name)
            if "mesh" in todo and "mesh" in layers:
                if self.ruler is not None:
                    self.ruler.clear()
                self.ruler = _add_ruler(self.server, self.ws, _mesh_path(self.ws))
        self._show_run()
        return [n for n in todo if n in self._drawn]

    def follow(self, every_s: float = 2.0) -> threading.Thread:
        """Refresh every ``every_s`` seconds until the viewer stops (``vid2model view --follow``)."""
        def loop() -> None:
            while not self._stop.wait(every_s):
                try:
                    self.refresh()
                except Exception:  # a file read between a stage's writes: the next pass draws it
                    log.debug("viewer refresh", exc_info=True)

        t = threading.Thread(target=loop, name="vid2model-viewer-follow", daemon=True)
        t.start()
        return t

    def _toggle(self, name: str) -> None:
        label = f"{name} ({self.layers[name]})"
        if name in self._boxes:
            self._boxes[name].label = label
            return
        with self.server.gui.add_folder("Layers"):
            box = self.server.gui.add_checkbox(label, initial_value=True)

        @box.on_update
        def _(event, n=name, b=box) -> None:
            for h in self.handles.get(n, []):
                h.visible = b.value

        self._boxes[name] = box

    def _show_run(self) -> None:
        """One line on where the workspace's run stands (stage: status), for a viewer following it."""
        if not self.ws.manifest_path.exists():
            return
        try:
            stages = self.ws.read_manifest().get("stages", {})
        except UserError:
            return
        text = ", ".join(f"{k}: {v.get('status', '?')}" for k, v in stages.items()) or "starting"
        if self._status is None:
            self._status = self.server.gui.add_markdown(f"**run** {text}")
        else:
            self._status.content = f"**run** {text}"


def start(ws: Workspace, host: str = "127.0.0.1", port: int = 8080, follow: bool = False) -> Viewer:
    """Start the viser server on ``host:port`` (the next free port if taken) and add every layer present;
    with ``follow``, keep adding what a run writes (an empty workspace is then fine).

    Raises:
        MissingDependency: viser is not installed.
        UserError: the workspace has nothing to show yet (and is not followed).
    """
    viser = require("viser", "the local viewer", package="viser", extra="viewer")
    if not follow and not _layer_sources(ws):
        raise UserError(f"nothing to show in {ws.root} yet: run at least the camera step (vid2model sfm WORKSPACE), "
                        f"or follow a run with: vid2model view {ws.root} --follow")
    with _viser_chatter():
        server = viser.ViserServer(host=host, port=port, label=f"vid2model: {ws.root.name}", verbose=False)
    try:
        server.scene.set_up_direction("+z")  # vid2model's world frame is +Z up
        viewer = Viewer(server=server, url=f"http://{_url_host(host)}:{server.get_port()}", ws=ws)
        viewer.refresh()
        _initial_camera(server, ws)
        if follow:
            viewer.follow()
    except BaseException:
        server.stop()
        raise
    return viewer


def serve(ws: Workspace, host: str = "127.0.0.1", port: int = 8080, *, block: bool = True,
          stop_event: threading.Event | None = None, follow: bool = False) -> dict:
    """Run the viewer until Ctrl-C / SIGTERM (or until ``stop_event`` is set).

    Args:
        ws: the workspace to show.
        host: interface to bind; 127.0.0.1 keeps it local (0.0.0.0 shares it on the network).
        port: preferred port; the next free one is used when taken.
        block: False returns right after starting, with the running :class:`Viewer` under ``"viewer"``.
        stop_event: set it (from another thread) to stop a blocking call.
        follow: keep drawing what a run writes into the workspace (cameras, dense points, mesh, splats).

    Returns:
        Summary: url, port and the layers shown (name -> items).
    """
    if not 0 <= port <= 65535:
        raise UserError(f"--port {port} is not a port; use a number from 1024 to 65535 (0 picks a free one)")
    viewer = start(ws, host, port, follow=follow)
    log.info("viewer running at %s (Ctrl-C to stop)", viewer.url)
    print(f"vid2model viewer: {viewer.url}  (Ctrl-C to stop)", file=sys.stderr, flush=True)
    summary = {"url": viewer.url, "port": int(viewer.server.get_port()), "layers": dict(viewer.layers)}
    if not block:
        return {**summary, "viewer": viewer}
    keep_open(viewer, stop_event)
    return {**summary, "_human": f"viewer stopped ({viewer.url})"}


def keep_open(viewer: Viewer, stop_event: threading.Event | None = None) -> None:
    """Serve until Ctrl-C / SIGTERM (or ``stop_event``), then stop the viewer."""
    stop = stop_event or threading.Event()
    restore = _on_sigterm(stop)
    try:
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        acknowledge_stop()  # Ctrl-C is how a viewer is meant to end: not an interrupted job
    finally:
        restore()
        viewer.stop()
        log.info("viewer stopped")


@contextlib.contextmanager
def _viser_chatter() -> Iterator[None]:
    """viser prints a banner and 'Server stopped' on stdout; keep stdout clean (``--json``), log it instead."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            yield
    finally:
        if buf.getvalue().strip():
            log.debug("viser: %s", buf.getvalue().strip())


def _on_sigterm(stop: threading.Event):
    """Make SIGTERM stop the loop like Ctrl-C (signal handlers only exist in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return lambda: signal.signal(signal.SIGTERM, previous)


def _url_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else (f"[{host}]" if ":" in host else host)


# ---- layers -------------------------------------------------------------------------------------------
def _layer_sources(ws: Workspace) -> dict[str, tuple]:
    """Layer name -> (path, size, mtime) of the file it is drawn from, for the layers present."""
    def sig(p: Path) -> tuple:
        st = p.stat()
        return (str(p), st.st_size, st.st_mtime_ns)

    out: dict[str, tuple] = {}
    if ws.has_cameras:
        model = next((ws.sparse_dir / n for n in ("images.bin", "images.txt") if (ws.sparse_dir / n).exists()))
        out["cameras"] = out["sparse points"] = sig(model)
    if ws.fused_ply.exists():
        out["dense points"] = sig(ws.fused_ply)
    mesh_path = _mesh_path(ws)
    if mesh_path is not None:
        out["mesh"] = sig(mesh_path)
    if ws.splat_ply.exists():
        out["splat"] = sig(ws.splat_ply)
    elif ws.splat_checkpoint.exists():  # training: its last checkpoint (every splat.checkpoint_every iterations)
        out["splat"] = sig(ws.splat_checkpoint)
    if ws.nerf_field.exists():
        out["radiance field"] = sig(ws.nerf_field)
    return out


def _load_layers(ws: Workspace) -> dict[str, Any]:
    """Layer name -> function(server) -> (handles, count), for every artifact present (read now, drawn later)."""
    layers: dict[str, Any] = {}
    if ws.has_cameras:
        from vid2model.io.colmap import load_points, load_views

        views = load_views(ws.sparse_dir)
        if views:
            layers["cameras"] = lambda s, v=views: _add_cameras(s, ws, v)
        xyz, rgb = load_points(ws.sparse_dir)
        if len(xyz):
            layers["sparse points"] = lambda s, p=(xyz, rgb): _add_points(s, "/sparse", *p, _extent(views, xyz))
    if ws.fused_ply.exists():
        xyz, rgb = _read_point_ply(ws.fused_ply)
        if len(xyz):
            layers["dense points"] = lambda s, p=(xyz, rgb): _add_points(s, "/dense", *p, _extent([], xyz))
    mesh_path = _mesh_path(ws)
    if mesh_path is not None:
        layers["mesh"] = lambda s, p=mesh_path: _add_mesh(s, p)
    splat = ws.splat_ply if ws.splat_ply.exists() else ws.splat_checkpoint
    if splat.exists():
        layers["splat"] = lambda s, p=splat: _add_splat(s, p)
    if ws.nerf_field.exists():
        layers["radiance field"] = lambda s: _add_nerf(s, ws)
    return layers


def _extent(views: list, xyz: np.ndarray) -> float:
    """Robust size of the scene (world units): sets point and frustum sizes."""
    pts = np.concatenate([xyz.reshape(-1, 3), np.array([v.center for v in views]).reshape(-1, 3)])
    if len(pts) < 2:
        return 1.0
    lo, hi = np.percentile(pts, [5, 95], axis=0)
    return float(max(np.linalg.norm(hi - lo), 1e-6))


def _subsample(n: int, limit: int) -> np.ndarray:
    return np.arange(n) if n <= limit else np.random.default_rng(0).choice(n, limit, replace=False)


def _add_cameras(server, ws: Workspace, views: list) -> tuple[list, int]:
    centers = np.array([v.center for v in views])
    spacing = np.median(np.linalg.norm(np.diff(centers, axis=0), axis=1)) if len(views) > 1 else 1.0
    scale = float(np.clip(spacing * 1.5, 1e-3, None))
    handles = []
    for v in views:
        fov = 2 * np.arctan2(v.height / 2, v.fy)
        handles.append(server.scene.add_camera_frustum(
            f"/cameras/{_safe(v.name)}", fov=float(fov), aspect=v.width / v.height, scale=scale,
            thickness=scale * 0.02, color=(40, 110, 220), image=_thumbnail(ws.keyframe_image(v.name)),
            format="jpeg", jpeg_quality=80, wxyz=_wxyz(v.R.T), position=v.center))
    return handles, len(views)


def _thumbnail(path: Path) -> np.ndarray | None:
    """(h, w, 3) uint8 image shrunk to THUMB_SIDE on its long side, or None when unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((THUMB_SIDE, THUMB_SIDE))
            return np.asarray(im)
    except (OSError, ValueError):
        return None


def _wxyz(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> (4,) quaternion w, x, y, z."""
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(R).as_quat()
    return np.array([w, x, y, z])


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _add_points(server, node: str, xyz: np.ndarray, rgb: np.ndarray, extent: float) -> tuple[list, int]:
    idx = _subsample(len(xyz), MAX_POINTS)
    h = server.scene.add_point_cloud(node, points=xyz[idx].astype(np.float32), colors=rgb[idx],
                                     point_size=extent * 0.003, point_shape="rounded")
    return [h], len(idx)


def _read_point_ply(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from plyfile import PlyData

    v = PlyData.read(str(path))["vertex"]
    xyz = np.stack([np.asarray(v[k], np.float32) for k in "xyz"], axis=1)
    names = v.data.dtype.names
    if all(c in names for c in ("red", "green", "blue")):
        rgb = np.stack([np.asarray(v[c]) for c in ("red", "green", "blue")], axis=1).astype(np.uint8)
    else:
        rgb = np.full_like(xyz, 180, dtype=np.uint8)
    return xyz, rgb


def _mesh_path(ws: Workspace) -> Path | None:
    return next((p for p in (ws.textured_obj, ws.clean_mesh, ws.raw_mesh) if p.exists()), None)


def _add_ruler(server, ws: Workspace, path: Path):
    import trimesh

    from vid2model.viewer.ruler import Ruler

    mesh = trimesh.load(str(path), force="mesh", process=False)
    metric = (ws.read_json(ws.scene_json, default=None) or {}).get("scale") == "metric"
    return Ruler(np.asarray(mesh.vertices), np.asarray(mesh.faces), "m" if metric else "relative units", server)


def _add_mesh(server, path: Path) -> tuple[list, int]:
    import trimesh

    mesh = trimesh.load(str(path), force="mesh", process=False)
    h = server.scene.add_mesh_trimesh("/mesh", mesh)
    return [h], int(len(mesh.faces))


def _add_splat(server, path: Path) -> tuple[list, int]:
    """3DGS PLY (or, while training runs, its last checkpoint) -> viser gaussians."""
    if path.suffix == ".pt":  # the trainer's checkpoint: parameters as the model holds them
        import torch

        p = {k: v.float().numpy() for k, v in torch.load(path, map_location="cpu", weights_only=False)["model"]
             ["params"].items()}
        return _draw_splats(server, p["means"], p["log_scales"], p["quats"], p["opacity_logits"].reshape(-1),
                            p["sh0"].reshape(len(p["means"]), 3))
    from plyfile import PlyData

    v = PlyData.read(str(path))["vertex"]
    col = lambda k: np.asarray(v[k], np.float64)  # noqa: E731
    return _draw_splats(server, np.stack([col(k) for k in "xyz"], 1), np.stack([col(f"scale_{i}") for i in range(3)], 1),
                        np.stack([col(f"rot_{i}") for i in range(4)], 1), col("opacity"),
                        np.stack([col(f"f_dc_{i}") for i in range(3)], 1))


def _draw_splats(server, means, log_scales, quats_wxyz, opacity_logits, dc) -> tuple[list, int]:
    """Gaussians [N] (centres [N, 3], log scales [N, 3], rotations [N, 4] w first, opacity logits [N], SH DC
    terms [N, 3]) as viser splats: covariances, colours from the DC term, opacities."""
    from scipy.spatial.transform import Rotation

    idx = _subsample(len(means), MAX_SPLATS)
    scales = np.exp(np.asarray(log_scales, np.float64)[idx])
    quat = np.asarray(quats_wxyz, np.float64)[idx][:, [1, 2, 3, 0]]
    quat /= np.clip(np.linalg.norm(quat, axis=1, keepdims=True), 1e-12, None)
    R = Rotation.from_quat(quat).as_matrix()
    cov = np.einsum("nij,nj,nkj->nik", R, scales ** 2, R)
    rgb = np.clip(0.5 + SH_C0 * np.asarray(dc, np.float64)[idx], 0, 1)
    opacity = 1 / (1 + np.exp(-np.asarray(opacity_logits, np.float64)[idx]))[:, None]
    h = server.scene.add_gaussian_splats("/splat", centers=np.asarray(means, np.float32)[idx],
                                         covariances=cov.astype(np.float32), rgbs=rgb.astype(np.float32),
                                         opacities=opacity.astype(np.float32))
    return [h], len(idx)


def _add_nerf(server, ws: Workspace) -> tuple[list, int]:
    """The radiance field (``vid2model nerf``), which the browser cannot draw itself: a picture of it in the
    panel, rendered on this machine from the viewer's starting view, and a button that renders it from where
    a browser's camera looks now (a second or two on the CPU)."""
    from vid2model.nerf.field import Field
    from vid2model.nerf.train import render_view

    field = Field.load(ws.nerf_field)
    w, h = NERF_PREVIEW
    with server.gui.add_folder("Radiance field") as folder:
        image = server.gui.add_image(np.zeros((h, w, 3), np.uint8), label="radiance field")
        button = server.gui.add_button("Render it from this view")

    def draw(c2w: np.ndarray, fov_y: float) -> np.ndarray:
        from vid2model.camera import Camera

        f = h / 2 / np.tan(fov_y / 2)
        K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
        rgb = render_view(field, Camera.from_cam_to_world(K, c2w, w, h))["image"]
        image.image = (rgb * 255 + 0.5).astype(np.uint8)
        return image.image

    @button.on_click
    def _(event) -> None:
        cam = event.client.camera
        draw(_cam_to_world(cam.wxyz, cam.position), float(cam.fov))

    image.draw = draw  # for a caller without a browser (tests, scripts)
    start = _start_view(ws)
    if start is not None:
        draw(*start)
    return [folder, image, button], 1


def _cam_to_world(wxyz, position) -> np.ndarray:
    """[4, 4] OpenCV camera-to-world of a viser camera (which looks along its +Z with +Y down, as OpenCV)."""
    from scipy.spatial.transform import Rotation

    m = np.eye(4)
    w, x, y, z = np.asarray(wxyz, float)
    m[:3, :3] = Rotation.from_quat([x, y, z, w]).as_matrix()
    m[:3, 3] = np.asarray(position, float)
    return m


def _start_eye(ws: Workspace) -> tuple[np.ndarray, np.ndarray] | None:
    """Where the viewer starts looking from and at [3]: the scene centre from above and outside the cameras'
    ring."""
    scene = ws.read_json(ws.scene_json, default=None) or {}
    if scene.get("center") is None or not scene.get("radius"):
        return None
    c, r = np.asarray(scene["center"], float), float(scene["radius"])
    return c + r * np.array([2.2, -2.2, 1.6]), c


def _start_view(ws: Workspace) -> tuple[np.ndarray, float] | None:
    """The viewer's starting camera (:func:`_start_eye`) as (OpenCV camera-to-world [4, 4], vertical field of
    view)."""
    start = _start_eye(ws)
    if start is None:
        return None
    eye, c = start
    f = (c - eye) / np.linalg.norm(c - eye)
    right = np.cross(f, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, np.cross(f, right), f, eye
    return m, np.radians(50.0)


def _initial_camera(server, ws: Workspace) -> None:
    """Start looking at the scene centre from above and outside the cameras' ring."""
    start = _start_eye(ws)
    if start is not None:
        server.initial_camera.position, server.initial_camera.look_at = start
