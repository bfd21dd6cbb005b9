"""Synthetic captures with exact ground truth: hand-held-like camera paths rendered to MP4/images."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from vid2model.camera import scale_intrinsics
from vid2model.ops.threads import ordered_map
from vid2model.synth.camera import camera_path, frame_params, intrinsics
from vid2model.synth.config import SynthConfig
from vid2model.synth.mesh import scene_mesh, surface_colors, write_ply
from vid2model.synth.render import render
from vid2model.synth.scene import Scene, make_marker, orbit_scene, product_scene, walk_scene, with_openings

log = logging.getLogger("vid2model")


@dataclass
class SynthResult:
    """What :func:`generate` wrote and the exact ground truth (world: metres, +Z up)."""

    video_path: Path | None
    images_dir: Path | None
    gt_path: Path
    mesh_path: Path
    K: np.ndarray  # (3, 3) of the upright image
    width: int  # upright (displayed) size
    height: int
    cam_to_world: np.ndarray  # (N, 4, 4) OpenCV axes (x right, y down, z forward)
    timestamps: np.ndarray  # (N,) seconds
    mesh_vertices: np.ndarray  # (V, 3)
    mesh_faces: np.ndarray  # (F, 3)
    marker_corners: np.ndarray | None  # (4, 3) ArUco order: top-left, top-right, bottom-right, bottom-left
    scene_center: np.ndarray  # (3,)
    scene_radius: float  # the object (orbit) or room (walk) fits in this sphere
    config: SynthConfig
    mesh_normals: np.ndarray  # (V, 3) exact unit normals
    mesh_colors: np.ndarray  # (V, 3) uint8: the lit colour every view sees at each vertex


def make_scene(cfg: SynthConfig) -> Scene:
    """The analytic scene a config films (deterministic in ``path``, ``seed`` and ``marker_size``)."""
    if cfg.layout_seed >= 0:
        from vid2model.synth.layouts import random_orbit_scene, random_walk_scene

        make = random_orbit_scene if cfg.path == "orbit" else random_walk_scene
        scene = make(cfg.layout_seed, seed=cfg.seed, contrast=cfg.contrast, backdrop=cfg.backdrop,
                     orbit_radius=cfg.orbit_radius)
    elif cfg.subject and cfg.path == "orbit":
        from vid2model.synth.subjects import body_scene, garment_scene

        scene = (body_scene if cfg.subject == "body" else garment_scene)(cfg.seed)
    elif cfg.product and cfg.path == "orbit":
        scene = product_scene(tuple(cfg.product), cfg.seed, cfg.product_plain, cfg.product_shape)
    else:
        scene = orbit_scene(cfg.seed) if cfg.path == "orbit" else walk_scene(cfg.seed)
    if cfg.room_openings and cfg.path == "walk":
        scene = with_openings(scene)
    if cfg.marker_size:
        # a room tour looks out at the walls: its marker lies by one, where the view tilting down reaches
        pos = (-0.95, -0.95) if cfg.path == "orbit" else (-1.85, -0.7) if cfg.walk_tour else (-1.0, -1.5)
        scene = replace(scene, marker=make_marker(cfg.marker_size, pos))
    return scene


SCENE_FIELDS = ("path", "seed", "marker_size", "layout_seed", "contrast", "backdrop", "orbit_radius", "product",
                "product_plain", "product_shape", "walk_tour", "subject", "room_openings")


def scene_fields(cfg: SynthConfig) -> dict:
    """The config fields :func:`make_scene` reads: enough, in ``gt.json``, to rebuild the filmed scene."""
    return {k: getattr(cfg, k) for k in SCENE_FIELDS}


def scene_of_gt(gt: dict) -> Scene:
    """The analytic scene a ``gt.json`` was filmed in (older files without ``scene_config``: the fixed
    scene of their path)."""
    fields = gt.get("scene_config") or {"path": gt["path"], "seed": gt.get("seed", 0),
                                        "marker_size": (gt.get("marker") or {}).get("size")}
    return make_scene(SynthConfig(write_video=False, **fields))


def _as_scene(cfg_or_scene: SynthConfig | Scene) -> Scene:
    return cfg_or_scene if isinstance(cfg_or_scene, Scene) else make_scene(cfg_or_scene)


def _gain(cfg: SynthConfig, i: int) -> float:
    gain = 1.0
    for start, g in sorted(cfg.exposure_gain):
        if i >= start:
            gain = g
    return gain


def render_area(scene: Scene, K: np.ndarray, c2w: np.ndarray, width: int, height: int, s: int = 1) -> np.ndarray:
    """:func:`render` with ``s`` x ``s`` rays per pixel averaged (a box filter over the pixel's area) [H, W, 3]."""
    if s <= 1:
        return render(scene, K, c2w, width, height)
    img = render(scene, scale_intrinsics(K, s), c2w, width * s, height * s)
    return img.reshape(height, s, width, s, 3).mean(axis=(1, 3))


def render_frame(scene: Scene, cfg: SynthConfig, K: np.ndarray, i: int, u: np.ndarray) -> np.ndarray:
    """Frame ``i`` as uint8 (H, W, 3) with its motion blur and exposure gain applied."""
    if any(a <= i < b for a, b in cfg.blur_frames):
        # Average sub-frame renders along the path around the frame's pose (a box-filter shutter).
        step = float(np.mean(np.diff(u))) if len(u) > 1 else 0.01
        du = step * cfg.blur_strength * 3
        n_sub = int(np.clip(round(10 * cfg.blur_strength), 5, 25))
        subs = camera_path(cfg, u[i] + np.linspace(-du / 2, du / 2, n_sub))
        img = np.mean([render_area(scene, K, c, cfg.width, cfg.height, cfg.supersample) for c in subs], axis=0)
    else:
        img = render_area(scene, K, camera_path(cfg, u[i:i + 1])[0], cfg.width, cfg.height, cfg.supersample)
    return (np.clip(img * _gain(cfg, i), 0, 1) * 255 + 0.5).astype(np.uint8)


def _workers() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def generate(out_dir: str | Path, cfg: SynthConfig = SynthConfig()) -> SynthResult:
    """Render a capture and write ``video.mp4`` / ``images/``, ``gt.json`` and ``scene.ply``.

    Args:
        out_dir: folder to write into (created).
        cfg: what to film.

    Returns:
        The paths and the exact ground truth.
    """
    from vid2model.synth.video import VideoWriter, save_image

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scene = make_scene(cfg)
    K = intrinsics(cfg)
    u, ts = frame_params(cfg)
    c2w = camera_path(cfg, u)
    names = [f"frame_{i:06d}" for i in range(cfg.n_frames)]
    video_path = out / "video.mp4" if cfg.write_video else None
    images_dir = out / "images" if cfg.write_images else None
    if images_dir:
        images_dir.mkdir(exist_ok=True)
    writer = VideoWriter(video_path, cfg.width, cfg.height, cfg.fps, cfg.rotation) if video_path else None
    try:
        # numpy releases the GIL in its kernels, so threads render frames in parallel; map keeps order
        # so frames stream into the encoder without all being held in memory.
        frames = ordered_map(lambda i: render_frame(scene, cfg, K, i, u), cfg.n_frames, _workers())
        for i, img in enumerate(frames):
            if writer:
                writer.write(img, float(ts[i]))
            if images_dir:
                save_image(images_dir / f"{names[i]}.{cfg.image_ext}", img)
    finally:
        if writer:
            writer.close()
    verts, faces, normals = scene_mesh(scene)
    colors = surface_colors(scene, verts, normals)
    mesh_path = out / "scene.ply"
    write_ply(mesh_path, verts, faces, normals, colors)
    marker = None
    if scene.marker:
        marker = {"size": scene.marker[3], "corners_world": scene.marker[4].tolist(), "dictionary": "DICT_4X4_50",
                  "id": 0}
    gt = {"width": cfg.width, "height": cfg.height, "K": K.tolist(), "rotation": cfg.rotation % 360,
          "fps": cfg.fps, "path": cfg.path, "seed": cfg.seed, "world_up": [0, 0, 1], "units": "metres",
          "camera_convention": "opencv cam_to_world (x right, y down, z forward); pixel centres at +0.5",
          "scene_center": list(scene.center), "scene_radius": scene.radius, "marker": marker,
          "scene_config": scene_fields(cfg),
          "frames": [{"index": i, "name": names[i], "timestamp": float(ts[i]), "cam_to_world": c2w[i].tolist()}
                     for i in range(cfg.n_frames)]}
    (out / "gt.json").write_text(json.dumps(gt, indent=1))
    log.debug("synth: %d frames %dx%d (%s) in %.2fs", cfg.n_frames, cfg.width, cfg.height, cfg.path,
              time.perf_counter() - t0)
    return SynthResult(video_path=video_path, images_dir=images_dir, gt_path=out / "gt.json", mesh_path=mesh_path,
                       K=K, width=cfg.width, height=cfg.height, cam_to_world=c2w, timestamps=ts,
                       mesh_vertices=verts, mesh_faces=faces,
                       marker_corners=scene.marker[4].copy() if scene.marker else None,
                       scene_center=np.array(scene.center), scene_radius=scene.radius, config=cfg,
                       mesh_normals=normals, mesh_colors=colors)


def render_views(cfg_or_scene: SynthConfig | Scene, K: np.ndarray, width: int, height: int,
                 cam_to_world: np.ndarray) -> np.ndarray:
    """Render the scene at arbitrary poses (no blur, no exposure change, no codec).

    Args:
        cfg_or_scene: a config (its scene) or a :class:`Scene`.
        K: (3, 3) intrinsics.
        width, height: image size.
        cam_to_world: (N, 4, 4) or (4, 4) OpenCV camera-to-world.

    Returns:
        (N, H, W, 3) uint8.
    """
    scene = _as_scene(cfg_or_scene)
    c2w = np.asarray(cam_to_world, float).reshape(-1, 4, 4)
    imgs = list(ordered_map(lambda i: render(scene, K, c2w[i], width, height), len(c2w), _workers()))
    return (np.clip(np.stack(imgs), 0, 1) * 255 + 0.5).astype(np.uint8)


def render_depth(cfg_or_scene: SynthConfig | Scene, K: np.ndarray, width: int, height: int,
                 cam_to_world: np.ndarray) -> np.ndarray:
    """Z-depth in metres along each camera's axis (N, H, W) float32, inf where no surface is hit."""
    scene = _as_scene(cfg_or_scene)
    c2w = np.asarray(cam_to_world, float).reshape(-1, 4, 4)
    depths = list(ordered_map(lambda i: render(scene, K, c2w[i], width, height, with_depth=True)[1], len(c2w),
                              _workers()))
    return np.stack(depths)


def mesh_colors(cfg_or_scene: SynthConfig | Scene, points: np.ndarray, normals: np.ndarray | None = None,
                shaded: bool = True) -> np.ndarray:
    """Colours (N, 3) uint8 of surface points (N, 3) from the renderer's texture function.

    With ``shaded`` (default) the lit colour every view sees; otherwise the albedo. Pass the mesh's
    ``normals`` (N, 3) for points on box edges; elsewhere the analytic normal is used.
    """
    return surface_colors(_as_scene(cfg_or_scene), points, normals, shaded)
