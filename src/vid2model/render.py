"""``vid2model render``: images at given camera poses, or a turntable MP4, from the splat, the textured mesh
or the radiance field (NeRF; with ``depth``, also z-depth maps: ``<name>_depth.npy``, float32, world units,
0 where the field is empty).

POSES.json: ``{"width": W, "height": H, "K": [[fx,0,cx],[0,fy,cy],[0,0,1]],
"frames": [{"name": "...", "cam_to_world": 4x4}]}``, OpenCV camera axes (x right, y down, z
forward), in the workspace world frame (that of ``sparse/0``), pixel centres at +0.5.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np

from vid2model.errors import UserError
from vid2model.workspace import Workspace, atomic_path

log = logging.getLogger("vid2model")

Renderer = Callable[[np.ndarray, np.ndarray, int, int], np.ndarray]


_MAKES = {"splat": "vid2model splat WORKSPACE", "mesh": "vid2model texture WORKSPACE",
          "nerf": "vid2model nerf WORKSPACE"}


def pick_source(ws: Workspace, source: str | None) -> str:
    """'splat', 'mesh' or 'nerf': the requested one if it exists, else the splat when present, else the mesh
    (the radiance field is an optional stage: only when asked for)."""
    has = {"splat": ws.splat_ply.exists(), "mesh": ws.textured_obj.exists(), "nerf": ws.nerf_field.exists()}
    if source is not None:
        if source not in has:
            raise UserError(f"--source must be splat, mesh or nerf, not {source!r}")
        if not has[source]:
            raise UserError(f"no {source} in {ws.root}; run `{_MAKES[source]}` first")
        _warn_if_untrusted(ws, source)
        return source
    if has["splat"]:
        _warn_if_untrusted(ws, "splat")
        return "splat"
    if has["mesh"]:
        return "mesh"
    raise UserError(f"nothing to render in {ws.root}: run `vid2model splat` or `vid2model texture` first")


def _warn_if_untrusted(ws: Workspace, source: str) -> None:
    """Say so when the stage that trained ``source`` found it does not hold between the filmed views."""
    if not ws.manifest_path.exists():
        return
    stage = ws.read_manifest().get("stages", {}).get(source) or {}
    check = (stage.get("summary") or {}).get("held_out_check") or {}
    if check.get("verdict") == "poor":
        log.warning("rendering anyway, but %s", check.get("reason"))


def _nerf_field(ws: Workspace):
    from vid2model.nerf.field import Field

    return Field.load(ws.nerf_field)


def nerf_view(field, K: np.ndarray, c2w: np.ndarray, W: int, H: int) -> dict[str, np.ndarray]:
    """The radiance field seen by one camera: image (H, W, 3) uint8, depth (H, W) float32 z-depth."""
    from vid2model.camera import Camera
    from vid2model.nerf.train import render_view

    out = render_view(field, Camera.from_cam_to_world(K, c2w, W, H))
    return {"image": (out["image"] * 255 + 0.5).astype(np.uint8), "depth": out["depth"]}


def make_renderer(ws: Workspace, source: str, background=(0.0, 0.0, 0.0)) -> Renderer:
    """A function (K, cam_to_world, W, H) -> (H, W, 3) uint8 for the chosen source."""
    if source == "nerf":
        field = _nerf_field(ws)
        return lambda K, c2w, W, H: nerf_view(field, K, c2w, W, H)["image"]
    if source == "splat":
        import torch

        from vid2model.io.splat_formats import read_ply
        from vid2model.splat.model import model_from_data

        model = model_from_data(read_ply(ws.splat_ply), "cpu")

        def render_splat(K, c2w, W, H):
            with torch.no_grad():
                out = model.render(np.linalg.inv(c2w), K, W, H, bg=background)["image"]
            return (out.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)

        return render_splat
    try:
        from vid2model.ops.raster import render_textured_mesh
    except ImportError as exc:
        raise UserError("mesh rendering is not available in this install (vid2model.ops.raster missing)") from exc
    mesh = str(ws.textured_obj)
    return lambda K, c2w, W, H: np.asarray(render_textured_mesh(mesh, K, c2w, W, H), np.uint8)


# Names come from the poses file (and, through the service, from web requests): never a path.
_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")


def load_poses(path: Path) -> tuple[int, int, np.ndarray, list[tuple[str, np.ndarray]]]:
    """Parse POSES.json -> (W, H, K (3, 3), [(name, cam_to_world (4, 4))])."""
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        W, H = int(d["width"]), int(d["height"])
        K = np.asarray(d["K"], np.float64).reshape(3, 3)
        frames = [(str(f.get("name", f"{i:04d}")), np.asarray(f["cam_to_world"], np.float64).reshape(4, 4))
                  for i, f in enumerate(d["frames"])]
    except FileNotFoundError as exc:
        raise UserError(f"poses file not found: {path}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"bad poses file {path}: {exc}; expected width, height, K and frames[].cam_to_world") from exc
    if W < 1 or H < 1 or not frames:
        raise UserError(f"poses file {path} needs a positive width/height and at least one frame")
    if W > 16384 or H > 16384:
        raise UserError(f"poses file {path}: {W}x{H} is larger than 16384 pixels a side")
    if not (np.isfinite(K).all() and K[0, 0] > 0 and K[1, 1] > 0):
        raise UserError(f"poses file {path}: K must hold finite numbers with positive focal lengths")
    seen: set[str] = set()
    for name, c2w in frames:
        if not _SAFE_NAME.fullmatch(name) or name in (".", ".."):
            raise UserError(f"poses file {path}: frame name {name!r} is not a plain file name "
                            "(letters, digits, '.', '_', '-'; no folders)")
        if name in seen:
            raise UserError(f"poses file {path}: frame name {name!r} appears twice")
        seen.add(name)
        R = c2w[:3, :3]
        if not np.isfinite(c2w).all() or not np.allclose(c2w[3], [0, 0, 0, 1], atol=1e-6) \
                or not np.allclose(R.T @ R, np.eye(3), atol=1e-4) or np.linalg.det(R) < 0:
            raise UserError(f"poses file {path}: frame {name!r} is not a rigid camera-to-world matrix "
                            "(finite numbers, a rotation, last row 0 0 0 1)")
    return W, H, K, frames


def normal_map(depth: np.ndarray, K: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    """World-frame unit normals [H, W, 3] of the z-depth map [H, W] a camera (``K``, ``c2w`` [4, 4], OpenCV)
    sees, facing it; zeros where the depth has no neighbours to tell (its rim, missing depth)."""
    from vid2model.camera import Camera
    from vid2model.ops.mvs.filtering import depth_normals

    H, W = depth.shape
    n = depth_normals(np.where(np.isfinite(depth), depth, 0.0), Camera.from_cam_to_world(K, c2w, W, H))
    return (n @ np.asarray(c2w, float)[:3, :3].T).astype(np.float32)


def render_poses(ws: Workspace, poses_json: Path, out_dir: Path, source: str | None = None,
                 depth: bool = False, normals: bool = False) -> dict:
    """Render every frame of POSES.json to ``out_dir/<name>.png`` (and ``<name>_depth.npy`` with ``depth``;
    ``<name>_normals.npy`` and a picture of them, ``<name>_normals.png``, with ``normals``)."""
    from PIL import Image

    from vid2model.progress import track

    W, H, K, frames = load_poses(poses_json)  # checked before anything else is looked at
    src = pick_source(ws, source)
    if (depth or normals) and src != "nerf":
        what = "depth maps" if depth else "normal maps"
        raise UserError(f"{what} come from the radiance field: add --source nerf (after `vid2model nerf`)")
    if depth or normals:
        field = _nerf_field(ws)
        views: dict = {}

        def render(K, c2w, W, H):
            views["last"] = out = nerf_view(field, K, c2w, W, H)
            return out["image"]
    else:
        render = make_renderer(ws, src)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    written = []
    for name, c2w in track(frames, "rendering"):
        img = render(K, c2w, W, H)
        stem = Path(name).stem if Path(name).suffix.lower() in (".png", ".jpg", ".jpeg") else name
        path = out_dir / f"{stem}.png"
        with atomic_path(path) as tmp:
            Image.fromarray(img).save(tmp)
        written.append(str(path))
        if depth:
            dpath = out_dir / f"{stem}_depth.npy"
            with atomic_path(dpath) as tmp, open(tmp, "wb") as fh:
                np.save(fh, views["last"]["depth"])
            written.append(str(dpath))
        if normals:
            n = normal_map(views["last"]["depth"], K, c2w)
            npath, ppath = out_dir / f"{stem}_normals.npy", out_dir / f"{stem}_normals.png"
            with atomic_path(npath) as tmp, open(tmp, "wb") as fh:
                np.save(fh, n)
            picture = np.where(np.any(n != 0, axis=-1, keepdims=True), (n + 1) * 127.5 + 0.5, 0).astype(np.uint8)
            with atomic_path(ppath) as tmp:
                Image.fromarray(picture).save(tmp)
            written += [str(npath), str(ppath)]
    return {"source": src, "frames": len(frames), "files": len(written), "out_dir": str(out_dir),
            "seconds": time.perf_counter() - t0}


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """(4, 4) OpenCV camera-to-world looking from eye at target with the given world up."""
    f = np.asarray(target, float) - eye
    f /= np.linalg.norm(f)
    r = np.cross(f, up)
    if np.linalg.norm(r) < 1e-8:
        r = np.cross(f, [0.0, 1.0, 0.0])
    r /= np.linalg.norm(r)
    d = np.cross(f, r)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = r, d, f, eye
    return m


def orbit_path(ws: Workspace, n_frames: int, elevation_deg: float = 25.0) -> tuple[np.ndarray, np.ndarray, float]:
    """Turntable poses (n, 4, 4) around the scene centre, the centre, and the orbit distance.

    Centre/up from ``sfm/scene.json``; distance and elevation are the training cameras' medians (so the
    framing matches the capture), else 2.5 scene radii and ``elevation_deg``. When the cameras leave a gap
    of more than 60 degrees around the centre, the path sweeps the filmed arc back and forth instead of
    circling into views nobody filmed.
    """
    info = ws.read_json(ws.scene_json, {}) or {}
    up = np.asarray(info.get("up", [0, 0, 1]), float)
    center = np.asarray(info["center"], float) if "center" in info else None
    radius = float(info.get("radius") or 0.0)
    cams = None
    for sp, ok in ((ws.dense_sparse_dir, ws.has_dense_cameras), (ws.sparse_dir, ws.has_cameras)):
        if ok:
            from vid2model.io.colmap import load_views

            cams = np.array([v.center for v in load_views(sp)])
            break
    if center is None:
        if ws.splat_ply.exists():
            from vid2model.io.splat_formats import read_ply

            center = np.median(read_ply(ws.splat_ply).means, 0)
        elif cams is not None:
            center = cams.mean(0)
        else:
            center = np.zeros(3)
    dist = float(np.median(np.linalg.norm(cams - center, axis=1))) if cams is not None and len(cams) else 2.5 * max(
        radius, 1.0)
    # an orthonormal frame around `up`
    a = np.cross(up, [1.0, 0, 0]) if abs(up[0]) < 0.9 else np.cross(up, [0, 1.0, 0])
    a /= np.linalg.norm(a)
    b = np.cross(up, a)
    el = math.radians(elevation_deg)
    start, span = 0.0, 2 * math.pi
    if cams is not None and len(cams) >= 3:
        rel = cams - center
        az = np.sort(np.arctan2(rel @ b, rel @ a))
        el = float(np.median(np.arcsin(np.clip((rel @ up) / np.linalg.norm(rel, axis=1), -1, 1))))
        gaps = np.diff(np.concatenate([az, az[:1] + 2 * math.pi]))
        k = int(np.argmax(gaps))
        if gaps[k] > math.radians(60):
            # a partial orbit: sweep the filmed arc back and forth, never the side nobody filmed
            start, span = float(az[(k + 1) % len(az)]), float(2 * math.pi - gaps[k])
    poses = []
    for i in range(n_frames):
        if span < 2 * math.pi:
            th = start + span * 0.5 * (1 - math.cos(2 * math.pi * i / n_frames))
        else:
            th = 2 * math.pi * i / n_frames
        eye = center + dist * (math.cos(el) * (math.cos(th) * a + math.sin(th) * b) + math.sin(el) * up)
        poses.append(look_at(eye, center, up))
    return np.stack(poses), center, dist


def render_orbit(ws: Workspace, out_mp4: Path, source: str | None = None, n_frames: int = 120,
                 width: int = 640, height: int = 480, fov_deg: float = 50.0, fps: int = 30) -> dict:
    """Render a turntable MP4 (H.264 when available) around the scene's up axis."""
    import av

    from vid2model.progress import track

    src = pick_source(ws, source)
    width, height = width - width % 2, height - height % 2
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
    poses, center, dist = orbit_path(ws, n_frames)
    render = make_renderer(ws, src)
    out_mp4 = Path(out_mp4)
    t0 = time.perf_counter()
    with atomic_path(out_mp4) as tmp:
        with av.open(str(tmp), "w", format="mp4") as c:
            codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
            st = c.add_stream(codec, rate=fps)
            st.width, st.height, st.pix_fmt = width, height, "yuv420p"
            if codec == "libx264":
                st.options = {"crf": "20", "preset": "medium"}
            for c2w in track(poses, "rendering orbit"):
                frame = av.VideoFrame.from_ndarray(render(K, c2w, width, height), format="rgb24")
                for pkt in st.encode(frame):
                    c.mux(pkt)
            for pkt in st.encode():
                c.mux(pkt)
    return {"source": src, "frames": n_frames, "out": str(out_mp4), "center": center.tolist(), "distance": dist,
            "seconds": time.perf_counter() - t0}
