"""Mesh stage: TSDF fusion of the depth maps (open3d VoxelBlockGrid) or screened Poisson, then cleanup.

Writes ``mesh/mesh_raw.ply``, ``mesh/mesh.ply`` (clean) and ``mesh/mesh_lod_<faces>.ply``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from vid2model.config import MeshConfig
from vid2model.errors import UserError
from vid2model.io.colmap import load_views
from vid2model.io.colmap_dense import read_array
from vid2model.ops import mesh_cleanup as C
from vid2model.progress import bar
from vid2model.workspace import Workspace, atomic_path

log = logging.getLogger("vid2model")


def _scene(ws: Workspace) -> dict[str, Any]:
    return ws.read_json(ws.scene_json, default={}) or {}


def _tsdf(ws: Workspace, views, voxel: float, depth_max: float):
    import cv2
    import open3d as o3d
    import open3d.core as o3c

    dev = o3c.Device("CPU:0")
    grid = o3d.t.geometry.VoxelBlockGrid(attr_names=("tsdf", "weight", "color"),
                                         attr_dtypes=(o3c.float32, o3c.float32, o3c.float32),
                                         attr_channels=((1), (1), (3)), voxel_size=voxel,
                                         block_resolution=16, block_count=50000, device=dev)
    used = 0
    with bar("TSDF fusion", len(views)) as b:
        for v in views:
            path = ws.depth_maps_dir / f"{v.name}.geometric.bin"
            if not path.exists():
                b.advance()
                continue
            depth = read_array(path).astype(np.float32)
            h, w = depth.shape
            color = cv2.imread(str(ws.dense_dir / "images" / v.name))[:, :, ::-1]
            color = cv2.resize(color, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
            K = v.K.copy()
            K[0] *= w / v.width
            K[1] *= h / v.height
            intr = o3c.Tensor(K, o3c.float64)
            extr = o3c.Tensor(v.world_to_cam, o3c.float64)
            d = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(depth)))
            c = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(color)))
            blocks = grid.compute_unique_block_coordinates(d, intr, extr, 1.0, depth_max, trunc_voxel_multiplier=4.0)
            grid.integrate(blocks, d, c, intr, extr, 1.0, depth_max, trunc_voxel_multiplier=4.0)
            used += 1
            b.advance()
    if used == 0:
        raise UserError("no depth maps to fuse: run vid2model dense WORKSPACE first")
    mesh = grid.extract_triangle_mesh(weight_threshold=1.5).to_legacy()
    return mesh


def _poisson(ws: Workspace, depth: int = 9):
    import open3d as o3d

    pcd = o3d.io.read_point_cloud(str(ws.fused_ply))
    if len(pcd.points) < 100:
        raise UserError("the dense point cloud is almost empty: run vid2model dense WORKSPACE first")
    mesh, dens = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(pcd, depth=depth)
    dens = np.asarray(dens)
    mesh.remove_vertices_by_mask(dens < np.quantile(dens, 0.05))
    return mesh


def _write(mesh, path) -> None:
    import open3d as o3d

    with atomic_path(path) as tmp:
        if not o3d.io.write_triangle_mesh(str(tmp), mesh, write_ascii=False):
            raise OSError(f"could not write {path}")


def run(ws: Workspace, cfg: MeshConfig) -> dict[str, Any]:
    """Surface extraction and cleanup; see the module docstring."""
    views = load_views(ws.dense_dir / "sparse")
    scene = _scene(ws)
    radius = float(scene.get("radius") or 1.0)
    centers = np.array([v.center for v in views])
    depth_max = float(np.percentile(np.linalg.norm(centers, axis=1), 90) + 2.0 * radius)
    voxel = cfg.voxel_size or radius / cfg.voxel_divisions
    if cfg.method == "poisson":
        mesh = _poisson(ws)
    elif cfg.method == "tsdf":
        mesh = _tsdf(ws, views, voxel, depth_max)
    else:
        raise UserError(f"unknown mesh method {cfg.method!r}: use tsdf or poisson")
    mesh = C.tidy(mesh)
    if len(mesh.triangles) == 0:
        raise UserError("surface extraction produced no triangles: the depth maps are too sparse")
    _write(mesh, ws.raw_mesh)
    n_raw = len(mesh.triangles)
    mesh = C.remove_small_components(mesh, cfg.min_component_share)
    if cfg.isolate and scene.get("capture", "orbit") == "orbit":
        mesh = C.crop_sphere(mesh, np.zeros(3), cfg.isolate_radius * radius)
        if cfg.drop_floor:
            mesh = C.drop_floor(mesh, distance=2 * voxel)
        mesh = C.remove_small_components(mesh, 0.2)
    if cfg.fill_holes:
        mesh = C.fill_holes(mesh, cfg.max_hole_size * radius)
    mesh = C.smooth(mesh, cfg.smooth_iterations)
    mesh = C.decimate(mesh, cfg.target_faces)
    mesh = C.tidy(mesh)
    mesh.compute_vertex_normals()
    _write(mesh, ws.clean_mesh)
    lods = {}
    for faces in cfg.lods:
        if faces < len(mesh.triangles):
            lod = C.decimate(mesh, faces)
            _write(lod, ws.lod_mesh(faces))
            lods[faces] = len(lod.triangles)
    return {"method": cfg.method, "voxel_size": voxel, "raw_faces": n_raw, "faces": len(mesh.triangles),
            "vertices": len(mesh.vertices), "lods": lods, "watertight": bool(mesh.is_watertight())}
