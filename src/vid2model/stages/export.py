"""Export stage: files for other tools under ``export/``, with axes and units per format recorded.

The workspace frame is +Z up (metres when the scale is metric). glTF, OBJ, FBX and USDZ get +Y up
(x, y, z) -> (x, z, -y); arbitrary-scale models are scaled so the scene is about a metre across, and
``export/export.json`` records the transform and the sizes.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from vid2model.config import ExportConfig
from vid2model.errors import UserError
from vid2model.workspace import Workspace, atomic_path

log = logging.getLogger("vid2model")
Z_UP_TO_Y_UP = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])
MESH_FORMATS = {"glb", "gltf", "obj", "usdz", "usd", "usda", "fbx", "ply"}
SPLAT_FORMATS = {"splat_ply", "splat", "spz"}


def _load(ws: Workspace):
    """The textured mesh (trimesh with UVs + image) or the clean mesh with vertex colours."""
    import trimesh

    if ws.textured_obj.exists():
        mesh = trimesh.load(ws.textured_obj, process=False, force="mesh")
        return mesh, True
    if ws.clean_mesh.exists():
        return trimesh.load(ws.clean_mesh, process=False, force="mesh"), False
    raise UserError("nothing to export yet: run the mesh (and texture) stages first")


def _units(ws: Workspace, vertices: np.ndarray) -> tuple[float, str]:
    scene = ws.read_json(ws.scene_json, default={}) or {}
    if scene.get("scale") == "metric":
        return 1.0, "metres"
    radius = float(scene.get("radius") or np.percentile(np.linalg.norm(vertices, axis=1), 90))
    return 0.5 / max(radius, 1e-9), "arbitrary (scene scaled to about 1 m across)"


def run(ws: Workspace, cfg: ExportConfig) -> dict[str, Any]:
    """Write the requested formats; unknown names are a clear error."""
    import trimesh

    unknown = set(cfg.formats) - MESH_FORMATS - SPLAT_FORMATS
    if unknown:
        raise UserError(f"unknown export format(s) {', '.join(sorted(unknown))}; choose from "
                        f"{', '.join(sorted(MESH_FORMATS | SPLAT_FORMATS))}")
    ws.export_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    mesh_fmts = [f for f in cfg.formats if f in MESH_FORMATS]
    info: dict[str, Any] = {}
    if mesh_fmts:
        mesh, textured = _load(ws)
        scale, units = _units(ws, np.asarray(mesh.vertices))
        y_up = mesh.copy()
        y_up.vertices = (np.asarray(mesh.vertices) @ Z_UP_TO_Y_UP.T) * scale
        texture = ws.texture_dir / "texture.png" if textured else None
        if texture is not None:  # OBJ/FBX/USD reference it by relative name
            shutil.copy(texture, ws.export_dir / "texture.png")
            texture = ws.export_dir / "texture.png"
        info = {"up_axis": "+Y (from the workspace's +Z)", "scale_applied": scale, "units": units,
                "textured": textured, "triangles": int(len(mesh.faces))}
        for fmt in mesh_fmts:
            path = ws.export_path("usd" if fmt == "usda" else fmt)
            _write_mesh(fmt, path, y_up, texture, scale)
            files[fmt] = {"path": path.name, "bytes": path.stat().st_size}
    for fmt in [f for f in cfg.formats if f in SPLAT_FORMATS]:
        if not ws.splat_ply.exists():
            log.info("no splat to export (%s skipped)", fmt)
            continue
        path = _write_splat(ws, fmt)
        if path is not None:
            files[fmt] = {"path": path.name, "bytes": path.stat().st_size}
    if ws.fused_ply.exists() and "ply" in cfg.formats:
        dst = ws.export_dir / "points.ply"
        with atomic_path(dst) as tmp:
            shutil.copy(ws.fused_ply, tmp)
        files["points_ply"] = {"path": dst.name, "bytes": dst.stat().st_size,
                               "note": "dense points in the workspace frame (+Z up, workspace units)"}
    summary = {**info, "files": files}
    ws.write_json(ws.export_dir / "export.json", summary)
    try:
        from vid2model.report import build_report

        build_report(ws)
    except ImportError:  # pragma: no cover
        pass
    return summary


def _write_mesh(fmt: str, path: Path, mesh, texture: Path | None, scale: float) -> None:
    import trimesh

    if fmt in ("glb", "gltf"):
        from vid2model.io.gltf import write_gltf

        write_gltf(path, mesh, texture)
    elif fmt == "obj":
        with atomic_path(path) as tmp:
            text, extra = trimesh.exchange.obj.export_obj(mesh, include_texture=True, mtl_name="model.mtl",
                                                          return_texture=True)
            for name, data in extra.items():
                (path.parent / name).write_bytes(data)
            tmp.write_text(text)
    elif fmt == "ply":
        with atomic_path(path) as tmp:
            m = mesh.copy()
            if hasattr(m.visual, "to_color"):
                m.visual = m.visual.to_color()
            m.export(tmp, file_type="ply")
    elif fmt in ("usd", "usda", "usdz"):
        from vid2model.io.usd import write_usd

        uv = np.asarray(mesh.visual.uv) if texture is not None else None
        with atomic_path(path) as tmp:
            write_usd(tmp, np.asarray(mesh.vertices), np.asarray(mesh.faces), uv,
                      np.asarray(mesh.vertex_normals), texture, up_axis="Y", meters_per_unit=1.0)
    elif fmt == "fbx":
        from vid2model.io.fbx import write_fbx

        with atomic_path(path) as tmp:
            uv = np.asarray(mesh.visual.uv) if texture is not None else None
            write_fbx(tmp, np.asarray(mesh.vertices), np.asarray(mesh.faces), uv, np.asarray(mesh.vertex_normals),
                      texture)


def _write_splat(ws: Workspace, fmt: str) -> Path | None:
    try:
        from vid2model.io import splat_formats as S
    except ImportError:
        log.info("splat formats are not available in this version")
        return None
    if fmt == "splat_ply":
        dst = ws.export_dir / "splat.ply"
        with atomic_path(dst) as tmp:
            shutil.copy(ws.splat_ply, tmp)
        return dst
    dst = ws.export_dir / f"model.{fmt}"
    with atomic_path(dst) as tmp:
        (S.write_splat if fmt == "splat" else S.write_spz)(ws.splat_ply, tmp)
    return dst
