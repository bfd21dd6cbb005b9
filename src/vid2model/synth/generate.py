"""Synthetic captures with exact ground truth: hand-held-like camera paths rendered to MP4/PNG."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vid2model.synth.render import render, scene_mesh
from vid2model.synth.scene import Scene, make_marker, orbit_scene, walk_scene

log = logging.getLogger("vid2model")


@dataclass(frozen=True, kw_only=True)
class SynthConfig:
    """What to film. Sizes are of the upright (displayed) image."""

    path: str = "orbit"  # orbit | walk
    width: int = 320
    height: int = 240
    n_frames: int = 24
    fps: float = 10.0
    fov_deg: float = 60.0  # horizontal field of view
    arc_deg: float = 360.0  # orbit: how far around the object
    seed: int = 0
    blur_frames: tuple[tuple[int, int], ...] = ()  # [start, end) frame ranges with motion blur
    blur_strength: float = 1.0  # exposure time as a fraction of the frame interval (x3 path speed)
    exposure_gain: tuple[tuple[int, float], ...] = ()  # from frame k on, multiply brightness by gain
    rotation: int = 0  # display-matrix rotation (degrees counter-clockwise): 0, 90, 180, 270 / -90
    vfr: bool = False  # irregular frame timestamps
    marker_size: float | None = None  # metres; an ArUco DICT_4X4_50 id 0 marker on the ground
    write_video: bool = True
    write_images: bool = False
    jitter: float = 1.0  # hand-held shake, relative


@dataclass
class SynthResult:
    video_path: Path | None
    images_dir: Path | None
    gt_path: Path
    mesh_path: Path
    K: np.ndarray
    width: int
    height: int
    cam_to_world: np.ndarray
    timestamps: np.ndarray
    mesh_vertices: np.ndarray
    mesh_faces: np.ndarray
    marker_corners: np.ndarray | None
    scene_center: np.ndarray
    scene_radius: float
    config: SynthConfig


def make_scene(cfg: SynthConfig) -> Scene:
    scene = orbit_scene(cfg.seed) if cfg.path == "orbit" else walk_scene(cfg.seed)
    if cfg.marker_size:
        from dataclasses import replace

        pos = (-0.95, -0.95) if cfg.path == "orbit" else (-1.0, -1.5)
        scene = replace(scene, marker=make_marker(cfg.marker_size, pos), ground_half=max(scene.ground_half, 2.0))
    return scene


def intrinsics(cfg: SynthConfig) -> np.ndarray:
    f = 0.5 * cfg.width / np.tan(np.radians(cfg.fov_deg) / 2)
    return np.array([[f, 0, cfg.width / 2], [0, f, cfg.height / 2], [0, 0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """(4, 4) camera-to-world, OpenCV axes, world +Z up."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c, s = np.cos(roll), np.sin(roll)
    x, y = c * x + s * y, -s * x + c * y
    m = np.eye(4)
    m[:3, :3] = np.stack([x, y, z], 1)
    m[:3, 3] = eye
    return m


def _shake(u: np.ndarray, seed: int, dims: int) -> np.ndarray:
    """Smooth pseudo-random wobble (len(u), dims) in about [-1, 1]: a few sines of random phase."""
    rng = np.random.default_rng(seed + 1000)
    out = np.zeros((len(u), dims))
    for k in (1.7, 3.1, 5.3):
        out += np.sin(2 * np.pi * k * u[:, None] + rng.uniform(0, 2 * np.pi, dims)) / k
    return out / 1.5


def camera_path(cfg: SynthConfig, u: np.ndarray) -> np.ndarray:
    """Camera-to-world poses (N, 4, 4) at path parameters ``u`` in [0, 1)."""
    sh = _shake(u, cfg.seed, 6) * cfg.jitter
    poses = []
    for i, ui in enumerate(u):
        if cfg.path == "orbit":
            az = np.radians(cfg.arc_deg) * ui
            r, h = 1.5 + 0.04 * sh[i, 0], 0.75 + 0.04 * sh[i, 1]
            eye = np.array([r * np.cos(az), r * np.sin(az), h])
            target = np.array([0.05, 0.0, 0.25]) + 0.03 * sh[i, 2:5]
        else:
            y = -2.3 + 3.2 * ui
            eye = np.array([0.35 * np.sin(2 * np.pi * ui) + 0.03 * sh[i, 0], y, 1.5 + 0.03 * sh[i, 1]])
            yaw = np.radians(25) * np.sin(2 * np.pi * 1.3 * ui) + 0.05 * sh[i, 2]
            fwd = np.array([np.sin(yaw), np.cos(yaw), -0.25 + 0.03 * sh[i, 3]])
            target = eye + fwd
        poses.append(look_at(eye, target, roll=0.03 * sh[i, 5]))
    return np.stack(poses)


def _frame_params(cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """Path parameter and timestamp of each frame."""
    n = cfg.n_frames
    closed = cfg.path == "orbit" and abs(cfg.arc_deg) >= 360
    u = np.arange(n) / (n if closed else max(n - 1, 1))
    if cfg.vfr:
        rng = np.random.default_rng(cfg.seed + 7)
        dt = rng.uniform(0.5, 1.5, n) / cfg.fps
        ts = np.concatenate([[0.0], np.cumsum(dt[:-1])])
    else:
        ts = np.arange(n) / cfg.fps
    return u, np.round(ts, 3)


def render_frame(scene: Scene, cfg: SynthConfig, K: np.ndarray, i: int, u: np.ndarray) -> np.ndarray:
    """Frame ``i`` as uint8 (H, W, 3) with its motion blur and exposure gain applied."""
    blurred = any(a <= i < b for a, b in cfg.blur_frames)
    if blurred:
        du = (u[1] - u[0] if len(u) > 1 else 0.01) * cfg.blur_strength * 3
        subs = camera_path(cfg, u[i] + np.linspace(-du / 2, du / 2, 9))
        img = np.mean([render(scene, K, c, cfg.width, cfg.height) for c in subs], axis=0)
    else:
        img = render(scene, K, camera_path(cfg, u[i:i + 1])[0], cfg.width, cfg.height)
    gain = 1.0
    for start, g in cfg.exposure_gain:
        if i >= start:
            gain = g
    return (np.clip(img * gain, 0, 1) * 255 + 0.5).astype(np.uint8)


def generate(out_dir: str | Path, cfg: SynthConfig = SynthConfig()) -> SynthResult:
    """Render a capture and write ``video.mp4`` / ``images/``, ``gt.json`` and ``scene.ply``."""
    from vid2model.synth.video import write_video

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scene = make_scene(cfg)
    K = intrinsics(cfg)
    u, ts = _frame_params(cfg)
    c2w = camera_path(cfg, u)
    frames = [render_frame(scene, cfg, K, i, u) for i in range(cfg.n_frames)]
    names = [f"frame_{i:06d}" for i in range(cfg.n_frames)]
    video_path = images_dir = None
    if cfg.write_images:
        from PIL import Image

        images_dir = out / "images"
        images_dir.mkdir(exist_ok=True)
        for name, f in zip(names, frames):
            Image.fromarray(f).save(images_dir / f"{name}.png")
    if cfg.write_video:
        video_path = write_video(out / "video.mp4", frames, ts, cfg.fps, cfg.rotation)
    verts, faces = scene_mesh(scene)
    import trimesh

    mesh_path = out / "scene.ply"
    trimesh.Trimesh(verts, faces, process=False).export(mesh_path)
    marker = None
    if scene.marker:
        marker = {"size": scene.marker[3], "corners_world": scene.marker[4].tolist()}
    gt = {"width": cfg.width, "height": cfg.height, "K": K.tolist(), "rotation": cfg.rotation, "fps": cfg.fps,
          "path": cfg.path, "world_up": [0, 0, 1], "units": "metres",
          "scene_center": list(scene.center), "scene_radius": scene.radius, "marker": marker,
          "frames": [{"index": i, "name": names[i], "timestamp": float(ts[i]), "cam_to_world": c2w[i].tolist()}
                     for i in range(cfg.n_frames)]}
    (out / "gt.json").write_text(json.dumps(gt, indent=1))
    return SynthResult(video_path=video_path, images_dir=images_dir, gt_path=out / "gt.json", mesh_path=mesh_path,
                       K=K, width=cfg.width, height=cfg.height, cam_to_world=c2w, timestamps=ts,
                       mesh_vertices=verts, mesh_faces=faces,
                       marker_corners=scene.marker[4] if scene.marker else None,
                       scene_center=np.array(scene.center), scene_radius=scene.radius, config=cfg)


def _as_scene(cfg_or_scene) -> Scene:
    return cfg_or_scene if isinstance(cfg_or_scene, Scene) else make_scene(cfg_or_scene)


def render_views(cfg_or_scene, K: np.ndarray, width: int, height: int, cam_to_world: np.ndarray) -> np.ndarray:
    """Render the scene at arbitrary poses: (N, H, W, 3) uint8 (no blur, no exposure change)."""
    scene = _as_scene(cfg_or_scene)
    imgs = [render(scene, K, c, width, height) for c in np.asarray(cam_to_world).reshape(-1, 4, 4)]
    return (np.clip(np.stack(imgs), 0, 1) * 255 + 0.5).astype(np.uint8)


def render_depth(cfg_or_scene, K: np.ndarray, width: int, height: int, cam_to_world: np.ndarray) -> np.ndarray:
    """Z-depth in metres (N, H, W) float32, inf where no surface is hit."""
    scene = _as_scene(cfg_or_scene)
    return np.stack([render(scene, K, c, width, height, with_depth=True)[1]
                     for c in np.asarray(cam_to_world).reshape(-1, 4, 4)])
