"""Build a complete COLMAP workspace from a synthetic capture's ground truth (no SfM needed).

Used by the dense, mesh, texture and splat tests: ``make_dense_workspace(ws, synth_result)`` writes

- ``dense/images/frame_XXXXXX.png`` (the rendered frames, lossless) and the same files in ``images/``,
- ``dense/sparse`` and ``sparse/0``: a PINHOLE COLMAP binary model with the exact GT poses and a few
  thousand GT surface points whose tracks list the views that really see them (depth ranges and
  co-visibility for dense stereo),
- ``sfm/scene.json`` (metric, +Z up, centre and radius from the GT).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from vid2model.workspace import Workspace


def _quat_wxyz(R: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(R).as_quat()
    return np.array([w, x, y, z])


def _visible_tracks(synth, points: np.ndarray, w2c: np.ndarray,
                    tol: float = 0.01) -> list[list[tuple[int, float, float]]]:
    """Per point, the (view, u, v) observations where it is inside the image and not occluded."""
    from vid2model.synth import render_depth

    # Occlusion test on quarter-resolution GT depth: cheap and plenty for choosing tracks.
    f = 0.25
    w, h = max(8, int(synth.width * f)), max(8, int(synth.height * f))
    Ks = synth.K.copy()
    Ks[0] *= w / synth.width
    Ks[1] *= h / synth.height
    depths = render_depth(synth.config, Ks, w, h, synth.cam_to_world)
    tracks: list[list[tuple[int, float, float]]] = [[] for _ in range(len(points))]
    for i, (m, depth) in enumerate(zip(w2c, depths)):
        x = points @ m[:3, :3].T + m[:3, 3]
        z = x[:, 2]
        front = z > 1e-6
        zs = np.where(front, z, 1.0)
        u = synth.K[0, 0] * x[:, 0] / zs + synth.K[0, 2]
        v = synth.K[1, 1] * x[:, 1] / zs + synth.K[1, 2]
        inside = front & (u >= 0) & (u < synth.width) & (v >= 0) & (v < synth.height)
        ui = np.clip((u * w / synth.width).astype(int), 0, w - 1)
        vi = np.clip((v * h / synth.height).astype(int), 0, h - 1)
        d = depth[vi, ui]
        ok = inside & np.isfinite(d) & (np.abs(z - d) <= tol * 3 * np.maximum(d, 1e-9) + 0.01)
        for p in np.flatnonzero(ok):
            tracks[p].append((i, float(u[p]), float(v[p])))
    return tracks


def _write_text_model(out: Path, synth, names: list[str], w2c: np.ndarray, points: np.ndarray,
                      colors: np.ndarray, tracks) -> None:
    out.mkdir(parents=True, exist_ok=True)
    K = synth.K
    params = " ".join(repr(float(x)) for x in (K[0, 0], K[1, 1], K[0, 2], K[1, 2]))
    (out / "cameras.txt").write_text(f"1 PINHOLE {synth.width} {synth.height} {params}\n")
    obs: list[list[str]] = [[] for _ in names]
    point_lines = []
    for pid, (X, c, tr) in enumerate(zip(points, colors, tracks), start=1):
        if len(tr) < 2:
            continue
        elems = []
        for i, u, v in tr:
            elems.append(f"{i + 1} {len(obs[i])}")
            obs[i].append(f"{u!r} {v!r} {pid}")
        xyz = " ".join(repr(float(x)) for x in X)
        point_lines.append(f"{pid} {xyz} {int(c[0])} {int(c[1])} {int(c[2])} 0.5 " + " ".join(elems))
    lines = []
    for i, (name, m) in enumerate(zip(names, w2c)):
        pose = " ".join(repr(float(x)) for x in (*_quat_wxyz(m[:3, :3]), *m[:3, 3]))
        lines.append(f"{i + 1} {pose} 1 {name}")
        lines.append(" ".join(obs[i]))
    (out / "images.txt").write_text("\n".join(lines) + "\n")
    (out / "points3D.txt").write_text("\n".join(point_lines) + "\n")


def make_dense_workspace(ws: Workspace, synth_result, *, n_points: int = 4000, seed: int = 0) -> Workspace:
    """Turn a synthetic capture into a workspace whose SfM stage is "done" with exact ground truth.

    Args:
        ws: target workspace (created if needed).
        synth_result: a :class:`vid2model.synth.SynthResult` (frames are taken from its ``images_dir``
            when it wrote images, otherwise rendered here with ``render_views``).
        n_points: GT surface points sampled for the sparse model (those seen by >= 2 views are kept).
        seed: sampling seed.

    Returns:
        ``ws``, with ``dense/images``, ``dense/sparse``, ``images/``, ``sparse/0`` and ``sfm/scene.json``.
    """
    import pycolmap
    from PIL import Image

    from vid2model.ops.metrics import sample_surface
    from vid2model.synth import mesh_colors, render_views

    s = synth_result
    c2w = np.asarray(s.cam_to_world, float)
    w2c = np.linalg.inv(c2w)
    n = len(c2w)
    names = [f"frame_{i:06d}.png" for i in range(n)]
    img_dir = ws.undistorted_dir
    img_dir.mkdir(parents=True, exist_ok=True)
    ws.images_dir.mkdir(parents=True, exist_ok=True)
    src = sorted(Path(s.images_dir).iterdir()) if s.images_dir and Path(s.images_dir).exists() else []
    if len(src) == n:
        frames = (np.asarray(Image.open(p).convert("RGB")) for p in src)
    else:
        frames = iter(render_views(s.config, s.K, s.width, s.height, c2w))
    for name, img in zip(names, frames):
        Image.fromarray(img).save(img_dir / name)
        shutil.copyfile(img_dir / name, ws.images_dir / name)

    pts = sample_surface(np.asarray(s.mesh_vertices, float), np.asarray(s.mesh_faces), n_points, seed=seed)
    cols = mesh_colors(s.config, pts)
    tracks = _visible_tracks(s, pts, w2c)
    txt = ws.dense_dir / "sparse_txt_tmp"
    _write_text_model(txt, s, names, w2c, pts, cols, tracks)
    rec = pycolmap.Reconstruction(str(txt))
    for d in (ws.dense_sparse_dir, ws.sparse_dir):
        d.mkdir(parents=True, exist_ok=True)
        rec.write(str(d))
    shutil.rmtree(txt)
    ws.write_json(ws.scene_json, {"up": [0, 0, 1], "scale": "metric", "metres_per_unit": 1.0,
                                  "center": [float(x) for x in s.scene_center], "radius": float(s.scene_radius),
                                  "capture": "orbit" if s.config.path == "orbit" else "walk"})
    return ws


def look_at(eye, target=(0.0, 0.0, 0.0)) -> np.ndarray:
    """[3, 4] cam_from_world of a camera at ``eye`` looking at ``target`` (world +Z up)."""
    eye = np.asarray(eye, float)
    z = np.asarray(target, float) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, [0, 0, 1.0])
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z])
    return np.concatenate([R, (-R @ eye)[:, None]], 1)
