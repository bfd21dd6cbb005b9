"""Vectorised ray casting of :class:`Scene` primitives, and the GT mesh of the same surfaces."""

from __future__ import annotations

import numpy as np

from vid2model.synth.scene import Scene, albedo, marker_albedo

LIGHT = np.array([0.4, -0.3, 0.85]) / np.linalg.norm([0.4, -0.3, 0.85])
SKY = np.array([0.62, 0.66, 0.72], np.float32)


def _rays(K: np.ndarray, c2w: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Ray origins (3,) and unit directions (H*W, 3) through pixel centres, OpenCV camera axes."""
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    pix = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], 1)
    d_cam = pix @ np.linalg.inv(K).T
    d = d_cam @ c2w[:3, :3].T
    return c2w[:3, 3].copy(), d / np.linalg.norm(d, axis=1, keepdims=True), d_cam[:, 2] / np.linalg.norm(d_cam, axis=1)


def _hit_box(o, d, lo, hi, inside: bool):
    """Slab test. Returns (t (N,), normal (N, 3)); t=inf where missed."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t0 = (np.asarray(lo) - o) * inv
        t1 = (np.asarray(hi) - o) * inv
    tmin = np.minimum(t0, t1)
    tmax = np.maximum(t0, t1)
    tn = np.nanmax(tmin, axis=1)
    tf = np.nanmin(tmax, axis=1)
    if inside:
        t = np.where(tf > 1e-6, tf, np.inf)
        axis = np.nanargmin(tmax, axis=1)
        sign = -np.sign(d[np.arange(len(d)), axis])  # facing into the room
    else:
        hit = (tn <= tf) & (tn > 1e-6)
        t = np.where(hit, tn, np.inf)
        axis = np.nanargmax(tmin, axis=1)
        sign = -np.sign(d[np.arange(len(d)), axis])
    n = np.zeros_like(d)
    n[np.arange(len(d)), axis] = sign
    return t, n


def _hit_sphere(o, d, c, r):
    oc = o - np.asarray(c)
    b = d @ oc
    disc = b * b - (oc @ oc - r * r)
    sq = np.sqrt(np.maximum(disc, 0))
    t = -b - sq
    t = np.where((disc >= 0) & (t > 1e-6), t, np.inf)
    p = o + d * np.where(np.isfinite(t), t, 0)[:, None]
    return t, (p - np.asarray(c)) / r


def cast(scene: Scene, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit along rays: distance t (N,) (inf = miss) and surface normal (N, 3)."""
    best_t = np.full(len(d), np.inf)
    best_n = np.zeros_like(d)

    def take(t, n):
        better = t < best_t
        best_t[better] = t[better]
        best_n[better] = n[better]

    if scene.ground_half > 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -o[2] / d[:, 2]
        p = o + d * np.where(np.isfinite(t), t, 0)[:, None]
        ok = (t > 1e-6) & (np.abs(p[:, 0]) <= scene.ground_half) & (np.abs(p[:, 1]) <= scene.ground_half)
        take(np.where(ok, t, np.inf), np.tile([0.0, 0.0, 1.0], (len(d), 1)))
    for b in scene.boxes:
        take(*_hit_box(o, d, b.lo, b.hi, inside=False))
    for b in scene.inner_boxes:
        take(*_hit_box(o, d, b.lo, b.hi, inside=True))
    for s in scene.spheres:
        take(*_hit_sphere(o, d, s.center, s.radius))
    return best_t, best_n


def render(scene: Scene, K: np.ndarray, c2w: np.ndarray, width: int, height: int,
           with_depth: bool = False):
    """Render one view.

    Returns:
        (H, W, 3) float32 linear-ish colour in [0, 1]; with ``with_depth`` also (H, W) float32 z-depth
        (inf where nothing is hit).
    """
    o, d, cos_z = _rays(K, c2w, width, height)
    t, n = cast(scene, o, d)
    hit = np.isfinite(t)
    p = o + d[hit] * t[hit, None]
    col = np.tile(SKY, (len(d), 1))
    a = marker_albedo(scene, p, albedo(p, scene.seed))
    shade = 0.45 + 0.6 * np.clip(n[hit] @ LIGHT, 0, 1)
    col[hit] = a * shade[:, None].astype(np.float32)
    img = col.reshape(height, width, 3)
    if not with_depth:
        return img
    depth = np.where(hit, t * cos_z, np.inf).astype(np.float32).reshape(height, width)
    return img, depth


def scene_mesh(scene: Scene, resolution: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Triangle mesh of the scene's surfaces (the ground truth for reconstruction tests).

    Args:
        scene: the scene.
        resolution: edge length of planar facets in metres (planes are exact at any resolution).

    Returns:
        vertices (V, 3) float64 and faces (F, 3) int64, outward (visible side) winding.
    """
    import trimesh

    parts = []
    if scene.ground_half > 0:
        g = scene.ground_half
        parts.append(_grid_quad(np.array([-g, -g, 0.0]), np.array([2 * g, 0, 0]), np.array([0, 2 * g, 0]),
                                max(1, int(2 * g / resolution))))
    for b in scene.boxes:
        m = trimesh.creation.box(bounds=np.array([b.lo, b.hi]))
        m = m.subdivide_to_size(resolution)
        parts.append(trimesh.Trimesh(*m[:2]) if isinstance(m, tuple) else m)
    for b in scene.inner_boxes:
        m = trimesh.creation.box(bounds=np.array([b.lo, b.hi]))
        m = m.subdivide_to_size(resolution * 4)
        m = trimesh.Trimesh(*m[:2]) if isinstance(m, tuple) else m
        m.invert()
        parts.append(m)
    for s in scene.spheres:
        m = trimesh.creation.icosphere(subdivisions=5, radius=s.radius)
        m.apply_translation(s.center)
        parts.append(m)
    mesh = trimesh.util.concatenate(parts)
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)


def _grid_quad(origin, eu, ev, n):
    import trimesh

    s = np.linspace(0, 1, n + 1)
    uu, vv = np.meshgrid(s, s)
    verts = origin + uu.reshape(-1, 1) * eu + vv.reshape(-1, 1) * ev
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, 1:].ravel(), idx[1:, :-1].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return trimesh.Trimesh(verts, faces, process=False)
