"""Mesh cleanup on open3d legacy meshes: floaters, object isolation, holes, smoothing, decimation."""

from __future__ import annotations

import numpy as np


def remove_small_components(mesh, min_share: float = 0.02):
    """Drop connected pieces with fewer than ``min_share`` of the largest piece's triangles (floaters)."""
    clusters, counts, _ = mesh.cluster_connected_triangles()
    clusters = np.asarray(clusters)
    counts = np.asarray(counts)
    if len(counts) <= 1:
        return mesh
    small = counts < min_share * counts.max()
    mesh.remove_triangles_by_mask(small[clusters])
    mesh.remove_unreferenced_vertices()
    return mesh


def crop_sphere(mesh, center: np.ndarray, radius: float):
    """Keep triangles whose vertices all lie within ``radius`` of ``center`` (object isolation)."""
    v = np.asarray(mesh.vertices)
    inside = np.linalg.norm(v - center, axis=1) <= radius
    tri = np.asarray(mesh.triangles)
    mesh.remove_triangles_by_mask(~inside[tri].all(1))
    mesh.remove_unreferenced_vertices()
    return mesh


def drop_floor(mesh, up: np.ndarray = np.array([0.0, 0.0, 1.0]), distance: float = 0.01):
    """Remove the dominant plane facing ``up`` (a table or floor under the object)."""
    import open3d as o3d

    v = np.asarray(mesh.vertices)
    if len(v) < 100:
        return mesh
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(v))
    plane, inliers = pcd.segment_plane(distance_threshold=distance, ransac_n=3, num_iterations=500)
    n = np.asarray(plane[:3]) / np.linalg.norm(plane[:3])
    if abs(n @ up) < 0.9:
        return mesh
    below = (v @ n + plane[3]) * np.sign(n @ up) < distance
    tri = np.asarray(mesh.triangles)
    mesh.remove_triangles_by_mask(below[tri].any(1))
    mesh.remove_unreferenced_vertices()
    return mesh


def fill_holes(mesh, max_hole_size: float):
    """Close boundary loops shorter than ``max_hole_size`` (open3d tensor implementation)."""
    import open3d as o3d

    t = o3d.t.geometry.TriangleMesh.from_legacy(mesh)
    filled = t.fill_holes(hole_size=max_hole_size).to_legacy()
    if mesh.has_vertex_colors() and not filled.has_vertex_colors():
        filled.vertex_colors = mesh.vertex_colors
    return filled


def smooth(mesh, iterations: int):
    """Taubin smoothing: removes noise without the shrinking of plain Laplacian smoothing."""
    if iterations <= 0:
        return mesh
    out = mesh.filter_smooth_taubin(number_of_iterations=iterations)
    out.compute_vertex_normals()
    return out


def decimate(mesh, target_faces: int):
    """Quadric decimation to at most ``target_faces`` triangles (colours kept)."""
    if len(mesh.triangles) <= target_faces:
        return mesh
    out = mesh.simplify_quadric_decimation(target_number_of_triangles=int(target_faces))
    out.remove_unreferenced_vertices()
    out.compute_vertex_normals()
    return out


def tidy(mesh):
    mesh.remove_duplicated_vertices()
    mesh.remove_duplicated_triangles()
    mesh.remove_degenerate_triangles()
    mesh.remove_unreferenced_vertices()
    return mesh
