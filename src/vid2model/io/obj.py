"""Wavefront OBJ + MTL writer for one mesh (textured, vertex-coloured or plain), and the texture an OBJ names."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from vid2model.workspace import atomic_path


def _rows(fmt: str, arr: np.ndarray, chunk: int = 200_000) -> str:
    """Format every row of (N, K) ``arr`` with ``fmt``: one %-operation per chunk, faster than np.savetxt."""
    arr = np.asarray(arr)
    flat = arr.tolist() if arr.dtype.kind in "iu" else arr.astype(np.float64).tolist()
    line = fmt + "\n"
    out = []
    for i in range(0, len(flat), chunk):
        rows = flat[i:i + chunk]
        out.append((line * len(rows)) % tuple(v for r in rows for v in r))
    return "".join(out)


def obj_texture(path: Path) -> Path | None:
    """The ``map_Kd`` image named by the OBJ's material library, if it exists (both named relative to it)."""
    path = Path(path)
    for line in path.read_text(errors="replace").splitlines()[:50]:
        if line.startswith("mtllib "):
            mtl = path.parent / line.split(None, 1)[1].strip()
            if mtl.exists():
                for m in mtl.read_text(errors="replace").splitlines():
                    if m.strip().startswith("map_Kd "):
                        tex = path.parent / m.strip().split()[-1]
                        return tex if tex.exists() else None
    return None


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray | None = None,
              normals: np.ndarray | None = None, colors: np.ndarray | None = None, texture: Path | None = None,
              name: str = "model") -> list[Path]:
    """Write ``<stem>.obj`` + ``<stem>.mtl`` (+ the texture copied next to them).

    Args:
        vertices: (V, 3) in the target axes and units.
        faces: (F, 3) triangles, 0-based.
        uvs: (V, 2) per-vertex UVs (origin bottom-left, the OBJ convention) or None.
        normals: (V, 3) per-vertex normals or None.
        colors: (V, 3) uint8 vertex colours (the common ``v x y z r g b`` extension) or None.
        texture: base-colour image, referenced from the MTL by file name.
        name: object and material name.

    Returns:
        Every file written (OBJ first).
    """
    path = Path(path)
    mtl = path.with_suffix(".mtl")
    written = [path, mtl]
    textured = texture is not None and uvs is not None
    mtl_lines = [f"newmtl {name}_material", "Ka 0 0 0",  # Blender reads Ka as metallic
                 "Kd 1 1 1" if textured else "Kd 0.8 0.8 0.8",
                 "Ks 0 0 0", "d 1", "illum 1"]
    if textured:
        tex_dst = path.parent / Path(texture).name
        if Path(texture).resolve() != tex_dst.resolve():
            shutil.copy(texture, tex_dst)
        written.append(tex_dst)
        mtl_lines.append(f"map_Kd {tex_dst.name}")
    with atomic_path(mtl) as tmp:
        tmp.write_text("\n".join(mtl_lines) + "\n")

    parts = [f"# vid2model export\nmtllib {mtl.name}\no {name}\n"]
    V = np.asarray(vertices, np.float64)
    if colors is not None:
        parts.append(_rows("v %.6f %.6f %.6f %.4f %.4f %.4f", np.hstack([V, np.asarray(colors)[:, :3] / 255.0])))
    else:
        parts.append(_rows("v %.6f %.6f %.6f", V))
    if textured:
        parts.append(_rows("vt %.6f %.6f", np.asarray(uvs, np.float64)))
    if normals is not None:
        parts.append(_rows("vn %.5f %.5f %.5f", np.asarray(normals, np.float64)))
    parts.append(f"usemtl {name}_material\ns 1\n")
    f1 = np.asarray(faces, np.int64) + 1
    if textured and normals is not None:
        parts.append(_rows("f %d/%d/%d %d/%d/%d %d/%d/%d", np.repeat(f1, 3, axis=1)))
    elif textured:
        parts.append(_rows("f %d/%d %d/%d %d/%d", np.repeat(f1, 2, axis=1)))
    elif normals is not None:
        parts.append(_rows("f %d//%d %d//%d %d//%d", np.repeat(f1, 2, axis=1)))
    else:
        parts.append(_rows("f %d %d %d", f1))
    with atomic_path(path) as tmp:
        tmp.write_text("".join(parts))
    return written
