"""Vectorised analytic ray casting of :class:`Scene` primitives with Lambertian shading.

Rays go through pixel centres: pixel (u, v) (column, row, 0-based) looks along
``K^-1 [u + 0.5, v + 0.5, 1]``, OpenCV camera axes (x right, y down, z forward). The same convention
is what ``K`` means in the ground truth, so projecting a GT point with ``K`` lands where it renders.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from vid2model.camera import Camera, pixel_grid
from vid2model.synth.scene import Box, Scene, in_opening, inside_polygon, surface_albedo

LIGHT = np.array([0.4, -0.3, 0.85]) / np.linalg.norm([0.4, -0.3, 0.85])
SKY = np.array([0.62, 0.66, 0.72], np.float32)
AMBIENT, DIFFUSE = 0.45, 0.6
EPS = 1e-6
CHUNK = 1 << 17  # rays per batch: bounds memory at 1080p and keeps temporaries cache-friendly


def shade(albedo: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Lit colour (N, 3) float32 of surfaces with ``albedo`` (N, 3) and unit ``normals`` (N, 3).

    View-independent (fixed directional light + ambient), so every camera sees the same colour.
    """
    lit = AMBIENT + DIFFUSE * np.clip(normals @ LIGHT, 0, 1)
    return (albedo * lit[:, None]).astype(np.float32)


@lru_cache(maxsize=8)
def _camera_rays(k: tuple[float, ...], width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit ray directions in the camera frame (H*W, 3) and their z components (H*W,)."""
    cam = Camera(np.array(k).reshape(3, 3), np.eye(3), np.zeros(3), width, height)
    d = cam.rays(pixel_grid(height, width)[..., :2].reshape(-1, 2))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    d.flags.writeable = False
    return d, d[:, 2].copy()


def primitives(scene: Scene) -> list[tuple[str, object]]:
    """The scene's surfaces in id order: ("ground", half) | ("box", Box) | ("room", Box) | ("sphere", Sphere) |
    ("cylinder", EllipticCylinder) | ("prism", Prism)."""
    out: list[tuple[str, object]] = []
    if scene.ground_half > 0:
        out.append(("ground", scene.ground_half))
    out += [("box", b) for b in scene.boxes + scene.plain_boxes]
    out += [("room", b) for b in scene.inner_boxes]
    out += [("sphere", s) for s in scene.spheres + scene.plain_spheres]
    out += [("cylinder", c) for c in scene.cylinders + scene.plain_cylinders]
    out += [("prism", p) for p in scene.prisms]
    return out


def _level_t(o: np.ndarray, inv: np.ndarray, d: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Distance along rays (N,) to the level z (inf behind or parallel) and the (x, y) [N, 2] met there."""
    t = (z - o[2]) * inv[:, 2]
    t = np.where(np.isfinite(t) & (t > EPS), t, np.inf)
    xy = o[:2] + d[:, :2] * np.where(np.isfinite(t), t, 0.0)[:, None]
    return t, xy


def _cylinder_t(o: np.ndarray, d: np.ndarray, inv: np.ndarray, c) -> np.ndarray:
    """Entry distance (N,) of rays from outside into an elliptic cylinder: its side or a cap; inf = miss."""
    s = np.array([1.0 / c.a, 1.0 / c.b])
    q0 = (o[:2] - np.asarray(c.center)) * s  # in units where the section is the unit circle
    dq = d[:, :2] * s
    A = (dq * dq).sum(1)
    B = 2 * dq @ q0
    disc = B * B - 4 * A * (q0 @ q0 - 1)
    t = (-B - np.sqrt(np.maximum(disc, 0))) / np.maximum(2 * A, 1e-300)
    z = o[2] + d[:, 2] * t
    best = np.where((disc > 0) & (A > 1e-12) & (t > EPS) & (z >= c.z0) & (z <= c.z1), t, np.inf)
    for level in (c.z0, c.z1):
        tc, xy = _level_t(o, inv, d, level)
        inside = ((((xy - np.asarray(c.center)) * s) ** 2).sum(1) <= 1)
        best = np.where(inside & (tc < best), tc, best)
    return best


def _prism_t(o: np.ndarray, d: np.ndarray, inv: np.ndarray, p) -> np.ndarray:
    """Entry distance (N,) of rays from outside into a level prism: a cap or a side wall; inf = miss."""
    poly = np.asarray(p.outline, float)
    best = np.full(len(d), np.inf)
    for level in (p.z0, p.z1):
        tc, xy = _level_t(o, inv, d, level)
        best = np.where(inside_polygon(xy, poly) & (tc < best), tc, best)
    for a, b in zip(poly, np.roll(poly, -1, axis=0)):
        e = b - a
        n = np.array([e[1], -e[0]])  # outward for a counter-clockwise outline
        den = d[:, :2] @ n
        with np.errstate(divide="ignore", invalid="ignore"):
            t = ((a - o[:2]) @ n) / den
        hit = o[:2] + d[:, :2] * np.where(np.isfinite(t), t, 0.0)[:, None]
        along = (hit - a) @ e / (e @ e)
        z = o[2] + d[:, 2] * t
        ok = (den < 0) & (t > EPS) & (along >= 0) & (along <= 1) & (z >= p.z0) & (z <= p.z1)
        best = np.where(ok & (t < best), t, best)
    return best


def _sphere_t(o: np.ndarray, d: np.ndarray, c, r: float, far: bool = False) -> np.ndarray:
    """Distance along unit rays to a sphere (N,): the near hit (or the far one), inf where missed."""
    oc = o - np.asarray(c, float)
    b = d @ oc
    disc = b * b - (oc @ oc - r * r)
    sq = np.sqrt(np.maximum(disc, 0))
    t = -b + sq if far else -b - sq
    return np.where((disc >= 0) & (t > EPS), t, np.inf)


def _box_t(o: np.ndarray, inv: np.ndarray, box: Box, inside: bool) -> np.ndarray:
    """Slab test (N,): entry distance of rays outside the box, or exit distance from inside; inf = miss."""
    tn = np.full(len(inv), -np.inf)
    tf = np.full(len(inv), np.inf)
    for k in range(3):
        a = (box.lo[k] - o[k]) * inv[:, k]
        b = (box.hi[k] - o[k]) * inv[:, k]
        np.fmax(tn, np.minimum(a, b), out=tn)  # fmax/fmin skip NaN from 0 * inf on grazing axes
        np.fmin(tf, np.maximum(a, b), out=tf)
    if inside:
        return np.where(tf > EPS, tf, np.inf)
    return np.where((tn <= tf) & (tn > EPS), tn, np.inf)


def cast(scene: Scene, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit along rays from ``o`` (3,) with unit directions ``d`` (N, 3).

    Returns:
        t (N,) float64 distance (inf = miss) and primitive id (N,) int16 (index into
        :func:`primitives`, -1 = miss).
    """
    best = np.full(len(d), np.inf)
    pid = np.full(len(d), -1, np.int16)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inv = 1.0 / d
        for i, (kind, prim) in enumerate(primitives(scene)):
            idx = None
            if kind == "ground":
                t = -o[2] * inv[:, 2]
                px, py = o[0] + d[:, 0] * t, o[1] + d[:, 1] * t
                t = np.where((t > EPS) & (np.abs(px) <= prim) & (np.abs(py) <= prim), t, np.inf)
            elif kind == "sphere":
                t = _sphere_t(o, d, prim.center, prim.radius)
            elif kind == "room":
                t = _box_t(o, inv, prim, inside=True)
                if scene.openings:  # through a door or window the ray goes on, to the room beyond
                    hit = np.flatnonzero(np.isfinite(t))
                    t[hit[in_opening(scene, o + d[hit] * t[hit, None])]] = np.inf
            elif kind in ("cylinder", "prism"):
                lo, hi = _extent(kind, prim)
                idx = np.flatnonzero(np.isfinite(_sphere_t(o, d, (lo + hi) / 2, np.linalg.norm(hi - lo) / 2,
                                                           far=True)))
                t = (_cylinder_t if kind == "cylinder" else _prism_t)(o, d[idx], inv[idx], prim)
            else:
                # Objects cover a small part of the view: cull with the bounding sphere, slab-test the rest.
                lo, hi = np.asarray(prim.lo), np.asarray(prim.hi)
                idx = np.flatnonzero(np.isfinite(_sphere_t(o, d, (lo + hi) / 2, np.linalg.norm(hi - lo) / 2,
                                                           far=True)))
                t = _box_t(o, inv[idx], prim, inside=False)
            if idx is None:
                better = t < best
                best[better], pid[better] = t[better], i
            else:
                better = t < best[idx]
                best[idx[better]], pid[idx[better]] = t[better], i
    return best, pid


def _extent(kind: str, prim) -> tuple[np.ndarray, np.ndarray]:
    """Corners lo, hi (3,) of a cylinder's or a prism's axis-aligned bounds."""
    if kind == "cylinder":
        r = np.array([prim.a, prim.b])
        return np.r_[np.asarray(prim.center) - r, prim.z0], np.r_[np.asarray(prim.center) + r, prim.z1]
    poly = np.asarray(prim.outline, float)
    return np.r_[poly.min(0), prim.z0], np.r_[poly.max(0), prim.z1]


def _side_or_cap_normals(kind: str, prim, q: np.ndarray) -> np.ndarray:
    """Outward unit normals [N, 3] at points [N, 3] on a cylinder or prism: a cap's where the point is nearer
    a cap's level than the side."""
    out = np.zeros_like(q)
    if kind == "cylinder":
        rel = q[:, :2] - np.asarray(prim.center)
        s2 = np.array([1.0 / prim.a ** 2, 1.0 / prim.b ** 2])
        side = rel * s2
        # distance to the side, to first order: (|q|_ellipse - 1) / |grad|
        gap = np.abs((rel * rel * s2).sum(1) - 1) / (2 * np.linalg.norm(side, axis=1) + 1e-12)
    else:
        poly = np.asarray(prim.outline, float)
        gap = np.full(len(q), np.inf)
        side = np.zeros((len(q), 2))
        for a, b in zip(poly, np.roll(poly, -1, axis=0)):
            e = b - a
            s = np.clip((q[:, :2] - a) @ e / (e @ e), 0, 1)
            dist = np.linalg.norm(q[:, :2] - (a + s[:, None] * e), axis=1)
            better = dist < gap
            gap[better], side[better] = dist[better], (e[1], -e[0])
    cap = np.minimum(np.abs(q[:, 2] - prim.z0), np.abs(q[:, 2] - prim.z1)) < gap
    out[:, :2] = side / (np.linalg.norm(side, axis=1, keepdims=True) + 1e-300)
    out[cap] = 0.0
    out[cap, 2] = np.where(np.abs(q[cap, 2] - prim.z1) <= np.abs(q[cap, 2] - prim.z0), 1.0, -1.0)
    return out


def surface_normals(scene: Scene, p: np.ndarray, pid: np.ndarray) -> np.ndarray:
    """Unit normals (N, 3) facing the visible side, at points ``p`` (N, 3) on primitives ``pid`` (N,).

    On a box edge the face whose plane is nearest wins (ties go to the lower axis).
    """
    n = np.zeros_like(p)
    for i, (kind, prim) in enumerate(primitives(scene)):
        m = pid == i
        if not m.any():
            continue
        q = p[m]
        if kind == "ground":
            n[m] = (0.0, 0.0, 1.0)
        elif kind in ("cylinder", "prism"):
            n[m] = _side_or_cap_normals(kind, prim, q)
        elif kind == "sphere":
            n[m] = (q - np.asarray(prim.center)) / prim.radius
        else:
            gap = np.concatenate([np.abs(q - np.asarray(prim.lo)), np.abs(q - np.asarray(prim.hi))], 1)
            face = np.argmin(gap, axis=1)  # 0-2: lo faces (-axis outward), 3-5: hi faces (+axis outward)
            nn = np.zeros_like(q)
            nn[np.arange(len(q)), face % 3] = np.where(face < 3, -1.0, 1.0)
            n[m] = -nn if kind == "room" else nn  # rooms are seen from inside
    return n


def render(scene: Scene, K: np.ndarray, c2w: np.ndarray, width: int, height: int,
           with_depth: bool = False):
    """Render one view.

    Args:
        scene: what to render.
        K: (3, 3) pinhole intrinsics (pixel centres at +0.5).
        c2w: (4, 4) camera-to-world, OpenCV axes.
        width, height: image size in pixels.
        with_depth: also return depth.

    Returns:
        (H, W, 3) float32 colour in [0, 1]; with ``with_depth`` also (H, W) float32 z-depth in metres
        along the camera axis (inf where nothing is hit).
    """
    d_cam, cos_z = _camera_rays(tuple(np.asarray(K, float).ravel()), int(width), int(height))
    R, o = np.asarray(c2w, float)[:3, :3], np.asarray(c2w, float)[:3, 3]
    n_px = width * height
    img = np.empty((n_px, 3), np.float32)
    depth = np.empty(n_px, np.float32) if with_depth else None
    for s in range(0, n_px, CHUNK):
        e = min(s + CHUNK, n_px)
        d = d_cam[s:e] @ R.T
        t, pid = cast(scene, o, d)
        hit = pid >= 0
        p = o + d[hit] * t[hit, None]
        out = img[s:e]
        out[:] = SKY
        out[hit] = shade(surface_albedo(scene, p), surface_normals(scene, p, pid[hit]))
        if with_depth:
            depth[s:e] = np.where(hit, t * cos_z[s:e], np.inf)
    img = img.reshape(height, width, 3)
    return (img, depth.reshape(height, width)) if with_depth else img
