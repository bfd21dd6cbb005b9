"""A small textured mesh laid out as the texture stage writes it, for the export tests and bench."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vid2model.workspace import Workspace


def checker_png(path: Path, size: int = 256, cells: int = 8) -> None:
    """A colourful checkerboard (size, size, 3) so a wrong UV convention is visible, not only countable."""
    from PIL import Image

    y, x = np.mgrid[0:size, 0:size]
    on = ((x * cells // size + y * cells // size) % 2).astype(np.uint8)
    img = np.stack([x * 255 // size, y * 255 // size, 80 + 150 * on], -1).astype(np.uint8)
    Image.fromarray(img).save(path)


def textured_mesh(subdivisions: int = 3, radius: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An ellipsoid in the workspace frame (+Z up), UV-unwrapped with xatlas.

    Returns:
        vertices (V, 3), faces (F, 3), uvs (V, 2) with seams split (one UV per vertex).
    """
    import trimesh
    import xatlas

    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    V = np.asarray(sphere.vertices) * np.array([1.0, 0.8, 1.5])  # taller than wide: the up axis shows
    V[:, 2] += 1.5 * radius  # resting above the ground plane z = 0
    vmap, F, uv = xatlas.parametrize(V.astype(np.float32), np.asarray(sphere.faces, np.uint32))
    return V[vmap], F.astype(np.int64), uv.astype(np.float64)


def write_textured_workspace(root: Path, subdivisions: int = 3, scale: str = "metric") -> tuple[Workspace, int]:
    """``texture/model.obj`` + ``model.mtl`` + ``texture.png`` and ``sfm/scene.json``; returns (ws, triangles)."""
    ws = Workspace(root)
    ws.texture_dir.mkdir(parents=True, exist_ok=True)
    V, F, uv = textured_mesh(subdivisions)
    checker_png(ws.texture_dir / "texture.png")
    (ws.texture_dir / "model.mtl").write_text("newmtl material_0\nKd 1 1 1\nmap_Kd texture.png\n")
    lines = ["mtllib model.mtl", "o model"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in V]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in uv]
    lines.append("usemtl material_0")
    lines += [f"f {a}/{a} {b}/{b} {c}/{c}" for a, b, c in F + 1]
    ws.textured_obj.write_text("\n".join(lines) + "\n")
    ws.sfm_dir.mkdir(parents=True, exist_ok=True)
    ws.write_json(ws.scene_json, {"up": [0, 0, 1], "scale": scale,
                                  "metres_per_unit": 1.0 if scale == "metric" else None,
                                  "center": [0, 0, 0.45], "radius": 0.45, "capture": "orbit"})
    return ws, len(F)
