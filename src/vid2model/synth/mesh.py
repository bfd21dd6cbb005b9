"""The ground-truth triangle mesh of a :class:`Scene`, and its colours from the same texture function."""

from __future__ import annotations

import numpy as np

from vid2model.synth.render import primitives, shade, surface_normals
from vid2model.synth.scene import Scene, inside_polygon, polygon_distance, surface_albedo


def _grid(origin, eu, ev, nu: int, nv: int) -> tuple[np.ndarray, np.ndarray]:
    """A planar quad ``origin + s eu + t ev`` (s, t in [0, 1]) as (nu x nv) cells, 2 triangles each.

    Winding is counter-clockwise seen from the side ``eu x ev`` points to.
    """
    s, t = np.meshgrid(np.linspace(0, 1, nu + 1), np.linspace(0, 1, nv + 1))
    eu, ev = np.asarray(eu, float), np.asarray(ev, float)
    verts = np.asarray(origin, float) + s.reshape(-1, 1) * eu + t.reshape(-1, 1) * ev
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


def _cut_grid(origin, eu, ev, s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_grid` with cell lines at the parameters ``s`` [nu + 1] and ``t`` [nv + 1] (increasing, 0 to 1);
    also each cell's centre [nu * nv, 3], in the faces' order (two triangles per cell: a's then b's)."""
    S, T = np.meshgrid(s, t)
    eu, ev, origin = np.asarray(eu, float), np.asarray(ev, float), np.asarray(origin, float)
    verts = origin + S.reshape(-1, 1) * eu + T.reshape(-1, 1) * ev
    idx = np.arange(len(s) * len(t)).reshape(len(t), len(s))
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, 1:].ravel(), idx[1:, :-1].ravel()
    mid = (verts[a] + verts[c]) / 2
    return verts, np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)]), mid


def _lines(n: int, cuts: list[float]) -> np.ndarray:
    """``n`` equal cells on [0, 1] with cell lines added at ``cuts`` (those strictly inside)."""
    x = np.unique(np.r_[np.linspace(0, 1, n + 1), [c for c in cuts if 0 < c < 1]])
    return x[np.r_[True, np.diff(x) > 1e-9]]


def _room_faces(scene: Scene, room, res: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A room's six sides (inward) without the cells inside its openings, nor those hidden behind a room it
    encloses (shared floor and ceiling); cell lines run along every such edge, so the holes are exact."""
    from vid2model.synth.scene import in_opening

    lo, hi = np.asarray(room.lo, float), np.asarray(room.hi, float)
    inner = [b for b in scene.inner_boxes if b != room and np.all(np.asarray(b.lo) >= lo - 1e-9)
             and np.all(np.asarray(b.hi) <= hi + 1e-9)]
    rects = [(np.asarray(b.lo, float), np.asarray(b.hi, float)) for b in scene.openings + tuple(inner)]
    size = hi - lo
    out = []
    for k in range(3):
        i, j = (k + 1) % 3, (k + 2) % 3
        eu, ev = np.eye(3)[i] * size[i], np.eye(3)[j] * size[j]
        s = _lines(max(1, int(np.ceil(size[i] / res))), [(x[i] - lo[i]) / size[i] for r in rects for x in r])
        t = _lines(max(1, int(np.ceil(size[j] / res))), [(x[j] - lo[j]) / size[j] for r in rects for x in r])
        for sign, base in ((1, hi), (-1, lo)):
            origin = lo.copy()
            origin[k] = base[k]
            v, f, mid = _cut_grid(origin, eu, ev, s, t)
            gone = in_opening(scene, mid)
            for b in inner:  # closed box: the enclosed room's own sides hide these cells
                gone |= np.all((mid >= np.asarray(b.lo) - 1e-9) & (mid <= np.asarray(b.hi) + 1e-9), axis=1)
            f = f[~np.r_[gone, gone]]
            if sign > 0:  # inward: the +k side faces -k
                f = f[:, ::-1]
            used, f = np.unique(f, return_inverse=True)
            out.append((v[used], f.reshape(-1, 3), np.tile(-sign * np.eye(3)[k], (len(used), 1))))
    return out


_ICO_V = np.array([[-1, 1.618033988749895, 0], [1, 1.618033988749895, 0], [-1, -1.618033988749895, 0],
                   [1, -1.618033988749895, 0], [0, -1, 1.618033988749895], [0, 1, 1.618033988749895],
                   [0, -1, -1.618033988749895], [0, 1, -1.618033988749895], [1.618033988749895, 0, -1],
                   [1.618033988749895, 0, 1], [-1.618033988749895, 0, -1], [-1.618033988749895, 0, 1]])
_ICO_F = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
                   [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5],
                   [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]])


def _icosphere(center, radius: float, subdivisions: int) -> tuple[np.ndarray, np.ndarray]:
    """Sphere tessellation (outward winding), all vertices exactly on the sphere (no trimesh import)."""
    v = _ICO_V / np.linalg.norm(_ICO_V, axis=1, keepdims=True)
    f = _ICO_F
    for _ in range(subdivisions):
        edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        uniq, inv = np.unique(np.sort(edges, 1), axis=0, return_inverse=True)
        mid = v[uniq].sum(1)
        m = inv.reshape(3, -1) + len(v)  # midpoints of edges ab, bc, ca of each face
        v = np.concatenate([v, mid / np.linalg.norm(mid, axis=1, keepdims=True)])
        a, b, c = f.T
        f = np.concatenate([np.stack(t, 1) for t in ((a, m[0], m[2]), (b, m[1], m[0]), (c, m[2], m[1]),
                                                       (m[0], m[1], m[2]))])
    return v * radius + np.asarray(center, float), f


def ear_clip(poly: np.ndarray) -> np.ndarray:
    """Triangles [K - 2, 3] (indices, counter-clockwise) of a simple counter-clockwise polygon [K, 2]."""
    idx = list(range(len(poly)))
    tris = []

    def cross(a, b, c):
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    while len(idx) > 3:
        for k in range(len(idx)):
            i0, i1, i2 = idx[k - 1], idx[k], idx[(k + 1) % len(idx)]
            a, b, c = poly[i0], poly[i1], poly[i2]
            if cross(a, b, c) <= 1e-15:
                continue  # reflex corner
            others = [poly[j] for j in idx if j not in (i0, i1, i2)]
            if any(cross(a, b, q) >= 0 and cross(b, c, q) >= 0 and cross(c, a, q) >= 0 for q in others):
                continue
            tris.append((i0, i1, i2))
            idx.pop(k)
            break
        else:
            raise ValueError("the polygon is not simple or not counter-clockwise")
    tris.append(tuple(idx))
    return np.asarray(tris, np.int64)


def _cylinder_mesh(c, tol: float, resolution: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Side and caps of an elliptic cylinder; the side's vertices lie exactly on it, within ``tol`` between."""
    r = max(c.a, c.b)
    n = max(16, int(np.ceil(2 * np.pi / (2 * np.arccos(max(1 - tol / r, -1.0))))))
    phi = 2 * np.pi * np.arange(n) / n
    ring = np.c_[c.a * np.cos(phi), c.b * np.sin(phi)] + np.asarray(c.center)
    rows = max(1, int(np.ceil((c.z1 - c.z0) / resolution)))
    z = np.linspace(c.z0, c.z1, rows + 1)
    v = np.c_[np.tile(ring, (rows + 1, 1)), np.repeat(z, n)]
    i = np.arange(n)
    j = (i + 1) % n
    f = np.concatenate([np.concatenate([np.c_[r * n + i, r * n + j, (r + 1) * n + j],
                                        np.c_[r * n + i, (r + 1) * n + j, (r + 1) * n + i]]) for r in range(rows)])
    nrm = np.c_[np.cos(phi) / c.a, np.sin(phi) / c.b, np.zeros(n)]
    parts = [(v, f, np.tile(nrm / np.linalg.norm(nrm, axis=1, keepdims=True), (rows + 1, 1)))]
    for level, up in ((c.z1, True), (c.z0, False)):
        cv = np.r_[[[*c.center, level]], np.c_[ring, np.full(n, level)]]
        cf = np.c_[np.zeros(n, np.int64), i + 1, j + 1]
        parts.append((cv, cf if up else cf[:, ::-1], np.tile([0.0, 0.0, 1.0 if up else -1.0], (n + 1, 1))))
    return parts


def _prism_mesh(p, resolution: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Caps and side walls of a level prism."""
    poly = np.asarray(p.outline, float)
    tris = ear_clip(poly)
    parts = []
    for level, up in ((p.z1, True), (p.z0, False)):
        parts.append((np.c_[poly, np.full(len(poly), level)], tris if up else tris[:, ::-1],
                      np.tile([0.0, 0.0, 1.0 if up else -1.0], (len(poly), 1))))
    for a, b in zip(poly, np.roll(poly, -1, axis=0)):
        e = b - a
        nu = max(1, int(np.ceil(np.linalg.norm(e) / resolution)))
        v, f = _grid((a[0], a[1], p.z0), (e[0], e[1], 0.0), (0.0, 0.0, p.z1 - p.z0), nu, 1)
        n = np.array([e[1], -e[0], 0.0]) / np.linalg.norm(e)
        parts.append((v, f, np.tile(n, (len(v), 1))))
    return parts


def write_ply(path, verts: np.ndarray, faces: np.ndarray, normals: np.ndarray | None = None,
              colors: np.ndarray | None = None) -> None:
    """Binary little-endian PLY: double x y z, float normals, uchar colours, int32 triangles."""
    fields = [("x", "<f8"), ("y", "<f8"), ("z", "<f8")]
    if normals is not None:
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    if colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vert = np.empty(len(verts), dtype=fields)
    for k, name in enumerate("xyz"):
        vert[name] = verts[:, k]
        if normals is not None:
            vert["n" + name] = normals[:, k]
    if colors is not None:
        for k, name in enumerate(("red", "green", "blue")):
            vert[name] = colors[:, k]
    face = np.empty(len(faces), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
    face["n"], face["idx"] = 3, faces
    kinds = {"<f8": "double", "<f4": "float", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(verts)}"]
    header += [f"property {kinds[t]} {n}" for n, t in fields]
    header += [f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
    with open(path, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(vert.tobytes())
        fh.write(face.tobytes())


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
        elif kind == "room" and (scene.openings or len(scene.inner_boxes) > 1):
            parts += _room_faces(scene, prim, resolution * 4)
        elif kind in ("box", "room"):
            # Room walls are large and flat: coarser facets keep the mesh small.
            for v, f in _box_faces(prim.lo, prim.hi, resolution * (4 if kind == "room" else 1), kind == "room"):
                fn = np.cross(v[f[0, 1]] - v[f[0, 0]], v[f[0, 2]] - v[f[0, 0]])
                parts.append((v, f, np.tile(fn / np.linalg.norm(fn), (len(v), 1))))
        elif kind == "cylinder":
            parts += _cylinder_mesh(prim, tol, resolution)
        elif kind == "prism":
            parts += _prism_mesh(prim, resolution)
        else:
            for sub in range(2, 8):  # refine until every facet's centroid is within tolerance
                v, f = _icosphere(prim.center, prim.radius, sub)
                if prim.radius - np.linalg.norm(v[f].mean(1) - np.asarray(prim.center), axis=1).min() <= tol:
                    break
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
        elif kind in ("cylinder", "prism"):
            dist.append(np.abs(_level_sdf(prim, p) if kind == "prism" else _cylinder_sdf(prim, p)))
        else:
            lo, hi = np.asarray(prim.lo), np.asarray(prim.hi)
            q = np.maximum(lo - p, p - hi)  # box SDF: outside part + inside part, then |.| for the surface
            sdf = np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(1), 0)
            dist.append(np.abs(sdf))
    dist = np.stack(dist, 1)
    pid = np.argmin(dist, axis=1)
    return pid.astype(np.int16), dist[np.arange(len(p)), pid]


def _cylinder_sdf(c, p: np.ndarray) -> np.ndarray:
    """Signed distance [N] of points [N, 3] to an elliptic cylinder (the side's to first order)."""
    rel = p[:, :2] - np.asarray(c.center)
    s2 = np.array([1.0 / c.a ** 2, 1.0 / c.b ** 2])
    qr = ((rel * rel * s2).sum(1) - 1) / (2 * np.linalg.norm(rel * s2, axis=1) + 1e-12)
    return _extrude_sdf(qr, p[:, 2], c.z0, c.z1)


def _level_sdf(prism, p: np.ndarray) -> np.ndarray:
    """Signed distance [N] of points [N, 3] to a level prism."""
    poly = np.asarray(prism.outline, float)
    d = polygon_distance(p[:, :2], poly)
    return _extrude_sdf(np.where(inside_polygon(p[:, :2], poly), -d, d), p[:, 2], prism.z0, prism.z1)


def _extrude_sdf(q_xy: np.ndarray, z: np.ndarray, z0: float, z1: float) -> np.ndarray:
    """A 2D signed distance [N] extruded between two levels (exact where the 2D one is)."""
    q = np.c_[q_xy, np.maximum(z0 - z, z - z1)]
    return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(1), 0)


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
