"""A closed surface for an object standing on a support: its seen surface, its foot carried straight down to the
support, and a flat bottom on the support where no camera looked.

The object's surface points, the foot's walls and the bottom (points on the support inside the object's
footprint, facing down) go through screened Poisson untrimmed, which returns the boundary of a solid: closed,
one consistent orientation, no self-intersections. Surface the cameras never saw between those (the bottom's
rim, a hole in a side) is what Poisson's smooth solution makes of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vid2model.ops.measure import face_geometry, fit_level, object_faces, support_level


@dataclass(frozen=True)
class Standing:
    """What stands at the vertical axis through the origin: the support's height there, the band above it
    set aside with the support, the object's triangles [M] bool, and the height of Poisson's flared join with
    the support (0 when it stands on nothing the mesh shows)."""

    base: float
    cut: float
    faces: np.ndarray
    skirt: float


def standing_object(V: np.ndarray, F: np.ndarray, radius: float) -> Standing | None:
    """The object an orbit of ``radius`` circles in a gravity-aligned mesh (vertices [N, 3], triangles [M, 3])
    with its origin where the cameras look; None when no surface stands near the axis."""
    # the mesh's voxel is about radius / 200: levels are binned finer, and three voxels of Poisson's rounded
    # join between object and support are left out of the object
    cut = 0.015 * radius
    bin_size = 0.004 * radius
    base = support_level(V, F, top=0.0, bin_size=bin_size, axis_xy=np.zeros(2), reach=radius)
    stands = base is not None
    if base is None:
        base, cut = float(V[:, 2].min()), 0.0
    else:  # the support as a plane, read under the object: a slightly tilted up splits its level in the bins
        cen, area, nrm = face_geometry(V, F)
        near = (nrm[:, 2] > 0.95) & (np.linalg.norm(cen[:, :2], axis=1) <= radius)
        base = float(fit_level(cen, area, near, base, 5 * bin_size)[2])
    obj = object_faces(V, F, np.zeros(2), base, cut, reach=0.5 * radius)
    if not obj.any():
        return None
    # Poisson's rounded join with the support flares the outline out up to about six mesh voxels above it
    return Standing(base=base, cut=cut, faces=obj, skirt=max(cut, 0.03 * radius) if stands else 0.0)


def footprint(xy: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """The region a ring of points [N, 2] (an object's walls just above its foot) encloses, on a grid of
    ``cell``: (mask [H, W] bool, the (x, y) of cell [0, 0]'s centre). Gaps in the ring (wall the mesh lacks)
    are closed by growing closings, up to a tenth of the region's size; past that, the ring's convex hull."""
    import cv2

    size = float(np.max(xy.max(0) - xy.min(0)))
    reach = max(3, int(np.ceil(0.1 * size / cell)))
    lo = xy.min(0) - (reach + 2) * cell
    ij = np.floor((xy - lo) / cell).astype(int)
    h, w = ij[:, 1].max() + reach + 3, ij[:, 0].max() + reach + 3
    ring = np.zeros((h, w), np.uint8)
    ring[ij[:, 1], ij[:, 0]] = 1
    for r in sorted({3, reach // 4, reach // 2, reach}):
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        closed = cv2.morphologyEx(ring, cv2.MORPH_CLOSE, k)
        contours, _ = cv2.findContours(closed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        filled = np.zeros_like(ring)
        cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
        if filled.sum() > 3 * closed.sum():  # a region, not the ring itself
            return filled.astype(bool), lo + 0.5 * cell
    hull = np.zeros_like(ring)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.c_[ij[:, 0], ij[:, 1]].astype(np.int32)), 1)
    return hull.astype(bool), lo + 0.5 * cell


def _samples(V: np.ndarray, F: np.ndarray, spacing: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points [K, 3] spread over triangles about ``spacing`` apart, with the triangles' normals [K, 3]."""
    cen, area, nrm = face_geometry(V, F)
    n = rng.poisson(area / spacing ** 2) + 1
    idx = np.repeat(np.arange(len(F)), n)
    r1, r2 = rng.random(len(idx)), rng.random(len(idx))
    s = np.sqrt(r1)
    a, b, c = V[F[idx, 0]], V[F[idx, 1]], V[F[idx, 2]]
    p = a * (1 - s)[:, None] + b * (s * (1 - r2))[:, None] + c * (s * r2)[:, None]
    return p, nrm[idx]


def close_on_support(V: np.ndarray, F: np.ndarray, st: Standing, voxel: float,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """A closed mesh (vertices [N, 3], triangles [M, 3]) of the object ``st`` picks out of the mesh, standing
    on its support with a flat bottom there; ``voxel``: the detail to keep. None when it has no foot on a
    support to close."""
    import cv2
    import open3d as o3d

    if st.skirt <= 0:
        return None
    rng = np.random.default_rng(seed)
    Fo = F[st.faces]
    P, N = _samples(V, Fo, 0.5 * voxel, rng)
    top_of_foot = st.base + st.cut
    above = top_of_foot + st.skirt  # the seen walls, clear of the flared join, carried straight down
    foot = P[(P[:, 2] >= above) & (P[:, 2] <= above + 2 * voxel)]
    if len(foot) < 8:
        return None
    cell = 0.5 * voxel
    mask, origin = footprint(foot[:, :2], cell)
    # the bottom: the footprint on the support, facing down
    yy, xx = np.nonzero(mask)
    bottom = np.c_[origin + np.c_[xx, yy] * cell, np.full(len(xx), st.base)]
    # the foot's walls from the support up to where the seen surface begins, facing out of the footprint
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    gy, gx = np.gradient(cv2.GaussianBlur(dist, (0, 0), 1.5))
    rim = mask & (dist <= 1.0)
    ry, rx = np.nonzero(rim)
    out = -np.c_[gx[ry, rx], gy[ry, rx]]
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    levels = np.arange(st.base, above, cell)
    walls = np.concatenate([np.c_[origin + np.c_[rx, ry] * cell, np.full(len(rx), z)] for z in levels])
    wall_n = np.tile(np.c_[out, np.zeros(len(out))], (len(levels), 1))
    keep = P[:, 2] > above
    pts = np.concatenate([P[keep], bottom, walls])
    nrm = np.concatenate([N[keep], np.tile([0.0, 0.0, -1.0], (len(bottom), 1)), wall_n])
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    pcd.normals = o3d.utility.Vector3dVector(nrm)
    extent = float(np.max(pts.max(0) - pts.min(0)))
    depth = int(np.clip(np.ceil(np.log2(extent * 1.2 / voxel)), 6, 10))
    from vid2model.ops.native import quiet_stderr

    with quiet_stderr():
        mesh, _ = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(pcd, depth=depth, scale=1.2)
    mesh.remove_duplicated_vertices()
    mesh.remove_degenerate_triangles()
    mesh.remove_unreferenced_vertices()
    tri = np.asarray(mesh.triangles)
    if len(tri) == 0:
        return None
    from vid2model.ops.mesh_cleanup import component_labels

    lab = component_labels(len(mesh.vertices), tri)
    size = np.bincount(lab)
    # solids resting on one another may touch at a point only; specks are Poisson's, not the object's
    Vc, Fc = np.asarray(mesh.vertices), tri[size[lab] >= 0.05 * size.max()]
    used = np.unique(Fc)
    remap = np.full(len(Vc), -1)
    remap[used] = np.arange(len(used))
    return Vc[used], remap[Fc]


def crossing_faces(V: np.ndarray, F: np.ndarray) -> np.ndarray:
    """Triangles [K] (indices into ``F`` [M, 3]) where the surface passes through itself: each edge [E] is cast
    as a segment against the mesh (a bounding-volume tree, unlike a pairwise test); a segment that meets a
    triangle strictly between its ends crosses it, and both that triangle and the edge's own are listed."""
    import open3d as o3d

    e = np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]])
    owner = np.tile(np.arange(len(F)), 3)
    a, b = V[e[:, 0]], V[e[:, 1]]
    d = b - a
    eps = 1e-4  # of the edge: its ends touch the triangles around them
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(V.astype(np.float32)), o3d.core.Tensor(F.astype(np.uint32)))
    rays = np.c_[a + eps * d, (1 - 2 * eps) * d].astype(np.float32)
    hit = scene.cast_rays(o3d.core.Tensor(rays))
    t, tri = hit["t_hit"].numpy(), hit["primitive_ids"].numpy().astype(np.int64)
    crossing = np.isfinite(t) & (t < 1.0)
    # a triangle sharing a corner with the edge is its neighbour, not a crossing
    ok = crossing.copy()
    idx = np.flatnonzero(crossing)
    shares = (F[tri[idx]] == e[idx, 0:1]).any(1) | (F[tri[idx]] == e[idx, 1:2]).any(1)
    ok[idx[shares]] = False
    return np.unique(np.r_[tri[ok], owner[ok]])


def is_closed(V: np.ndarray, F: np.ndarray) -> bool:
    """Whether a mesh bounds a solid: every edge shared by exactly two triangles running it in opposite
    directions (closed, consistently oriented) and no triangle crossing another."""
    if len(F) == 0:
        return False
    e = np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]]).astype(np.int64)
    key = e[:, 0] * (len(V) + 1) + e[:, 1]
    rev = e[:, 1] * (len(V) + 1) + e[:, 0]
    if len(np.unique(key)) != len(key) or not np.isin(rev, key).all():
        return False
    return len(crossing_faces(V, F)) == 0
