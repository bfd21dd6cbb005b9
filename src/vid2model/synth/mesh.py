"""The ground-truth triangle mesh of a :class:`Scene`, and its colours from the same texture function."""

from __future__ import annotations

import numpy as np

from vid2model.synth.render import primitives, shade, surface_normals
from vid2model.synth.scene import Scene, surface_albedo


def _grid(origin, eu, ev, nu: int, nv: int) -> tuple[np.ndarray, np.ndarray]:
    """A planar quad ``origin + s eu + t ev`` (s, t in [0, 1]) as (nu x nv) cells, 2 triangles each.

    Winding is counter-clockwise seen from the side ``eu x ev`` points to.
    """
    s, t = np.meshgrid(np.linspace(0, 1, nu + 1), np.linspace(0, 1, nv + 1))
    verts = np.asarray(origin, float) + s.reshape(-1, 1) * np.asarray(eu, float) + t.reshape(-1, 1) * np.asarray(ev, float)
    idx = np.arange((nu + 1) * (nv + 1)).reshape(nv + 1, nu + 1)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, 1:].ravel(), idx[1:, :-1].ravel()
    return verts, np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])


def _box_faces(lo, hi, res: float, inward: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 6 sides of a box as separate grids (vertices not shared, so each has an exact normal)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    size = hi - lo
    out = []
    for k in range(3):
        i, j = (k + 1) % 3, (k + 2) % 3  # e_i x e_j = +e_k
        eu, ev = np.eye(3)[i] * size[i], np.eye(3)[j] * size[j]
        nu, nv = max(1, int(np.ceil(size[i] / res))), max(1, int(np.ceil(size[j] / res)))
        for sign, base in ((1, hi), (-1, lo)):
            origin = lo.copy()
            origin[k] = base[k]
            v, f = _grid(origin, eu, ev, nu, nv)
            if (sign < 0) != inward:  # flip to face -k (or inward for a room's +k wall)
                f = f[:, ::-1]
            out.append((v, f))
    return out


def _icosphere(center, radius: float, subdivisions: int) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return np.asarray(m.vertices) + np.asarray(center, float), np.asarray(m.faces)


def scene_mesh(scene: Scene, resolution: float = 0.05,
               sphere_error: float = 1e-4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triangle mesh of the scene's surfaces (the ground truth for reconstruction tests).

    Args:
        scene: the scene.
        resolution: edge length of planar facets in metres (planes are exact at any resolution; this
            only sets how densely per-vertex colours sample the texture).
        sphere_error: largest allowed distance (fraction of scene size 2 * radius) between a sphere
            and its tessellation.

    Returns:
        vertices (V, 3) float64, faces (F, 3) int64 (counter-clockwise seen from the visible side)
        and exact unit vertex normals (V, 3) float64.
    """
    parts = []
    tol = sphere_error * 2 * scene.radius
    for kind, prim in primitives(scene):
        if kind == "ground":
            g = float(prim)
            n = max(1, int(np.ceil(2 * g / resolution)))
            v, f = _grid((-g, -g, 0.0), (2 * g, 0, 0), (0, 2 * g, 0), n, n)
            parts.append((v, f, np.tile([0.0, 0.0, 1.0], (len(v), 1))))
        elif kind in ("box", "room"):
            # Room walls are large and flat: coarser facets keep the mesh small.
            for v, f in _box_faces(prim.lo, prim.hi, resolution * (4 if kind == "room" else 1), kind == "room"):
                fn = np.cross(v[f[0, 1]] - v[f[0, 0]], v[f[0, 2]] - v[f[0, 0]])
                parts.append((v, f, np.tile(fn / np.linalg.norm(fn), (len(v), 1))))
        else:
            # Icosphere edge ~ 1.1 r / 2^s; the sagitta of an edge of angle a is r a^2 / 8.
            sub = 2
            while sub < 7 and prim.radius * (1.1 / 2 ** sub) ** 2 / 8 > tol:
                sub += 1
            v, f = _icosphere(prim.center, prim.radius, sub)
            parts.append((v, f, (v - np.asarray(prim.center)) / prim.radius))
    verts, faces, normals, base = [], [], [], 0
    for v, f, n in parts:
        verts.append(v)
        faces.append(f + base)
        normals.append(n)
        base += len(v)
    return np.concatenate(verts), np.concatenate(faces).astype(np.int64), np.concatenate(normals)


def nearest_surface(scene: Scene, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Primitive id (N,) whose surface is nearest to each point (N, 3), and that distance (N,)."""
    p = np.asarray(points, float)
    dist = []
    for kind, prim in primitives(scene):
        if kind == "ground":
            out = np.maximum(np.abs(p[:, :2]).max(1) - prim, 0)
            dist.append(np.hypot(np.abs(p[:, 2]), out))
        elif kind == "sphere":
            dist.append(np.abs(np.linalg.norm(p - np.asarray(prim.center), axis=1) - prim.radius))
        else:
            lo, hi = np.asarray(prim.lo), np.asarray(prim.hi)
            q = np.maximum(lo - p, p - hi)  # box SDF: outside part + inside part, then |.| for the surface
            sdf = np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(1), 0)
            dist.append(np.abs(sdf))
    dist = np.stack(dist, 1)
    pid = np.argmin(dist, axis=1)
    return pid.astype(np.int16), dist[np.arange(len(p)), pid]


def surface_colors(scene: Scene, points: np.ndarray, normals: np.ndarray | None = None,
                   shaded: bool = True) -> np.ndarray:
    """Colour (N, 3) uint8 of surface points (N, 3), exactly as the renderer computes it.

    Args:
        scene: the scene.
        points: points on (or within a few mm of) the scene's surfaces.
        normals: (N, 3) unit normals; ``None`` uses the nearest primitive's analytic normal (on box
            edges either face's; pass the mesh's normals there).
        shaded: True gives the lit colour every view sees (before exposure gain and codec loss), the
            right reference for baked textures; False gives the unlit albedo.
    """
    p = np.asarray(points, float)
    col = surface_albedo(scene, p)
    if shaded:
        if normals is None:
            normals = surface_normals(scene, p, nearest_surface(scene, p)[0])
        col = shade(col, np.asarray(normals, float))
    return (np.clip(col, 0, 1) * 255 + 0.5).astype(np.uint8)
