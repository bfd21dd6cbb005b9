"""Export stage: files for other tools under ``export/``, with axes and units per format recorded.

The workspace frame is +Z up in workspace units (metres when the scale is metric). glTF, OBJ, FBX and
USD/USDZ get +Y up, the convention of their readers: (x, y, z) -> (x, z, -y), a rotation, so handedness
and winding are kept. PLY files stay +Z up (MeshLab, CloudCompare and Blender's PLY importer do not
convert axes). Every file is in metres: metric workspaces are scaled by ``metres_per_unit``; arbitrary-scale
ones are scaled so the scene is about a metre across (recorded as such). ``export/export.json`` records
the transform, the per-format conventions and the file sizes.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from vid2model.config import ExportConfig
from vid2model.errors import UserError
from vid2model.progress import track
from vid2model.workspace import Workspace, atomic_path

log = logging.getLogger("vid2model")
Z_UP_TO_Y_UP = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])
MESH_FORMATS = ("glb", "gltf", "obj", "usdz", "usd", "usda", "fbx", "ply")
SPLAT_FORMATS = ("splat_ply", "splat", "spz")
CONVENTIONS = {
    "glb": "glTF 2.0: +Y up, metres, UV origin top-left (V flipped)",
    "gltf": "glTF 2.0: +Y up, metres, UV origin top-left (V flipped); buffer in model.bin",
    "obj": "OBJ: +Y up by convention, metres; MTL map_Kd references the texture",
    "usdz": "USDZ (AR Quick Look): upAxis Y, metersPerUnit 1, defaultPrim /model, texture in the package",
    "usd": "USD (binary crate): upAxis Y, metersPerUnit 1, texture next to the file",
    "usda": "USD (text): upAxis Y, metersPerUnit 1, texture next to the file",
    "fbx": "FBX 7.4 binary: UpAxis Y, FrontAxis +Z, UnitScaleFactor 100 (1 unit = 1 m), texture embedded",
    "ply": "PLY mesh: workspace axes (+Z up), metres, vertex colours (+ s,t UVs when textured)",
}


class MeshData:
    """One mesh ready to write: arrays in the workspace frame plus its texture or colours."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray | None, texture: Path | None,
                 colors: np.ndarray | None, source: str = ""):
        self.vertices, self.faces, self.uvs, self.texture, self.colors = vertices, faces, uvs, texture, colors
        self.source = source  # the workspace file it came from


def load_mesh(ws: Workspace) -> MeshData:
    """The textured mesh (OBJ + atlas) or, failing that, the clean mesh with its vertex colours."""
    import trimesh

    from vid2model.io.obj import obj_texture

    if ws.textured_obj.exists():
        mesh = trimesh.load(ws.textured_obj, process=False, force="mesh")
        uv = getattr(mesh.visual, "uv", None)
        texture = obj_texture(ws.textured_obj) or ws.texture_png
        if uv is not None and len(uv) == len(mesh.vertices) and texture.exists():
            return MeshData(np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64),
                            np.asarray(uv, np.float64), texture, None, ws.relative(ws.textured_obj))
        log.warning("%s has no usable UVs/texture; exporting it untextured", ws.textured_obj)
        source = ws.relative(ws.textured_obj)
    elif ws.clean_mesh.exists():
        mesh = trimesh.load(ws.clean_mesh, process=False, force="mesh")
        source = ws.relative(ws.clean_mesh)
    else:
        raise UserError("nothing to export yet: run the mesh (and texture) stages first")
    colors = None
    if getattr(mesh.visual, "kind", None) == "vertex":
        colors = np.asarray(mesh.visual.vertex_colors)[:, :3].astype(np.uint8)
    return MeshData(np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64), None, None, colors,
                    source)


def units_scale(ws: Workspace, vertices: np.ndarray) -> tuple[float, str]:
    """(factor from workspace units to metres, description)."""
    scene = ws.read_json(ws.scene_json, default={}) or {}
    mpu = scene.get("metres_per_unit")
    if scene.get("scale") == "metric":
        return float(mpu or 1.0), "metres"
    radius = scene.get("radius")
    if not radius:
        centred = vertices - np.median(vertices, axis=0)
        radius = np.percentile(np.linalg.norm(centred, axis=1), 90) if len(vertices) else 1.0
    return 0.5 / max(float(radius), 1e-9), "arbitrary scale: scene scaled to about 1 m across"


def smooth_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals shared by coincident vertices, so UV seams do not show as shading seams.

    Args:
        vertices: (V, 3); faces: (F, 3).
    Returns:
        (V, 3) unit normals.
    """
    _, key = np.unique(np.round(vertices, 9), axis=0, return_inverse=True)
    key = key.ravel()
    tri = vertices[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 * area: area weighting
    acc = np.zeros((key.max() + 1 if len(key) else 0, 3))
    for k in range(3):
        np.add.at(acc, key[faces[:, k]], fn)
    n = acc[key]
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.where(norm > 0, n / np.maximum(norm, 1e-30), np.array([0.0, 0.0, 1.0]))


def run(ws: Workspace, cfg: ExportConfig) -> dict[str, Any]:
    """Write the requested formats; unknown names are a clear error."""
    fmts = [f.strip().lower() for f in cfg.formats if f.strip()]
    unknown = sorted(set(fmts) - set(MESH_FORMATS) - set(SPLAT_FORMATS))
    if unknown:
        raise UserError(f"unknown export format(s) {', '.join(unknown)}; choose from "
                        f"{', '.join(MESH_FORMATS + SPLAT_FORMATS)}")
    ws.export_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    notes: list[str] = []
    info: dict[str, Any] = {}
    mesh_fmts = [f for f in MESH_FORMATS if f in fmts]
    scale = 1.0
    if mesh_fmts:
        data = load_mesh(ws)
        if len(data.faces) == 0:
            raise UserError("the mesh is empty: nothing to export (check the mesh stage's report)")
        scale, units = units_scale(ws, data.vertices)
        normals = smooth_normals(data.vertices, data.faces)
        name = "model"
        y_up = MeshData((data.vertices @ Z_UP_TO_Y_UP.T) * scale, data.faces, data.uvs, data.texture, data.colors)
        info = {"source": data.source,
                "textured": data.texture is not None, "vertex_colours": data.colors is not None,
                "triangles": int(len(data.faces)), "vertices": int(len(data.vertices)),
                "units": units, "scale_to_metres": scale,
                "axes": {"source": "+Z up (workspace frame)", "y_up_formats": "(x, y, z) -> (x, z, -y)",
                         "matrix_z_up_to_y_up": Z_UP_TO_Y_UP.tolist()},
                "bounds_m_y_up": [y_up.vertices.min(0).round(6).tolist(), y_up.vertices.max(0).round(6).tolist()]}
        for fmt in track(mesh_fmts, desc="export"):
            path = ws.export_path(fmt)
            try:
                if fmt == "ply":
                    written = _write_ply(path, data, normals, scale)
                else:
                    written = _write_mesh(fmt, path, y_up, normals @ Z_UP_TO_Y_UP.T, name)
            except ValueError as exc:  # a format's own limit (e.g. FBX 7.4's 4 GiB): the others still go out
                log.warning("export: %s skipped: %s", fmt, exc)
                notes.append(f"{fmt} skipped: {exc}")
                continue
            files[fmt] = {"path": path.name, "bytes": path.stat().st_size, "convention": CONVENTIONS[fmt],
                          "companions": {p.name: p.stat().st_size for p in written if p != path}}
    if "ply" in fmts:
        if ws.fused_ply.exists():
            from vid2model.io.ply import write_scaled_points

            dst = ws.export_path("ply", "points")
            n = write_scaled_points(ws.fused_ply, dst, scale)
            files["points_ply"] = {"path": dst.name, "bytes": dst.stat().st_size, "points": n,
                                   "convention": "dense points: workspace axes (+Z up), metres"}
        else:
            notes.append(f"no dense points ({ws.relative(ws.fused_ply)}): "
                         f"{ws.export_path('ply', 'points').name} skipped")
    for fmt in [f for f in SPLAT_FORMATS if f in fmts]:
        path, note = _write_splat(ws, fmt)
        if path is not None:
            files[fmt] = {"path": path.name, "bytes": path.stat().st_size,
                          "convention": "Gaussian splats in the workspace frame (+Z up, workspace units)"}
        if note:
            notes.append(note)
    for note in notes:
        log.info("export: %s", note)
    sizes = {}
    for f in files.values():
        sizes[f["path"]] = f["bytes"]
        sizes.update(f.get("companions", {}))
    summary = {**info, "files": files, "notes": notes, "total_bytes": int(sum(sizes.values()))}
    ws.write_json(ws.export_json, summary)
    return summary


def _write_ply(path: Path, data: MeshData, normals: np.ndarray, scale: float) -> list[Path]:
    from vid2model.io.ply import write_mesh_ply

    colors = data.colors
    if data.texture is not None:  # sample the atlas so viewers without texture support still show colour
        from PIL import Image

        img = np.asarray(Image.open(data.texture).convert("RGB"))
        h, w = img.shape[:2]
        u = np.clip(np.round(data.uvs[:, 0] % 1.0 * (w - 1)), 0, w - 1).astype(int)
        v = np.clip(np.round((1.0 - data.uvs[:, 1] % 1.0) * (h - 1)), 0, h - 1).astype(int)
        colors = img[v, u]
    write_mesh_ply(path, data.vertices * scale, data.faces, normals, colors, data.uvs,
                   data.texture.name if data.texture is not None else None)
    return [path]


def _write_mesh(fmt: str, path: Path, m: MeshData, normals: np.ndarray, name: str) -> list[Path]:
    """Write one Y-up, metre-scaled mesh format; returns every file written."""
    if fmt in ("glb", "gltf"):
        from vid2model.io.gltf import write_gltf

        return write_gltf(path, m.vertices, m.faces, normals, m.uvs, m.texture, m.colors, name=name)
    if fmt == "obj":
        from vid2model.io.obj import write_obj

        return write_obj(path, m.vertices, m.faces, m.uvs, normals, m.colors, m.texture, name=name)
    if fmt in ("usd", "usda", "usdz"):
        from vid2model.io.usd import write_usd

        with atomic_path(path) as tmp:
            _, *companions = write_usd(tmp, m.vertices, m.faces, m.uvs, normals, m.texture, up_axis="Y",
                                       meters_per_unit=1.0, name=name, colors=m.colors)
        return [path, *companions]
    if fmt == "fbx":
        from vid2model.io.fbx import write_fbx

        with atomic_path(path) as tmp:
            write_fbx(tmp, m.vertices, m.faces, m.uvs, normals, m.texture, unit_scale_cm=100.0, colors=m.colors,
                      name=name)
        return [path]
    raise ValueError(fmt)


def _write_splat(ws: Workspace, fmt: str) -> tuple[Path | None, str | None]:
    if not ws.splat_ply.exists():
        return None, f"no splat ({ws.relative(ws.splat_ply)}): {fmt} skipped"
    if fmt == "splat_ply":
        dst = ws.export_path("ply", "splat")
        with atomic_path(dst) as tmp:
            shutil.copy(ws.splat_ply, tmp)
        return dst, None
    try:
        from vid2model.io import splat_formats
    except ImportError:
        return None, f"splat format writers are not available in this version: {fmt} skipped"
    dst = ws.export_path(fmt)
    with atomic_path(dst) as tmp:
        (splat_formats.write_splat if fmt == "splat" else splat_formats.write_spz)(ws.splat_ply, tmp)
    return dst, None
