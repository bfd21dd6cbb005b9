"""Binary PLY writers: a triangle mesh with normals/colours/UVs, and a point cloud rescaled to metres."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vid2model.workspace import atomic_path


def write_mesh_ply(path: Path, vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray | None = None,
                   colors: np.ndarray | None = None, uvs: np.ndarray | None = None,
                   texture_name: str | None = None) -> None:
    """Binary little-endian PLY mesh.

    Args:
        vertices: (V, 3).
        faces: (F, 3).
        normals: (V, 3) or None.
        colors: (V, 3|4) uint8 or None.
        uvs: (V, 2) written as ``s, t`` (MeshLab reads them with ``comment TextureFile``) or None.
        texture_name: file name recorded as ``comment TextureFile``.
    """
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    cols = [np.asarray(vertices, np.float32)]
    if normals is not None:
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
        cols.append(np.asarray(normals, np.float32))
    if colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
        cols.append(np.asarray(colors)[:, :3].astype(np.uint8))
    if uvs is not None:
        fields += [("s", "<f4"), ("t", "<f4")]
        cols.append(np.asarray(uvs, np.float32))
    vert = np.empty(len(vertices), dtype=fields)
    names = iter(vert.dtype.names)
    for block in cols:
        for k in range(block.shape[1]):
            vert[next(names)] = block[:, k]
    # Faces as one packed record each (count byte + 3 indices) so the write is a single buffer copy;
    # plyfile writes list properties row by row, far slower on big meshes.
    face = np.empty(len(faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
    face["n"] = 3
    face["v"] = np.asarray(faces, np.int32)
    ply_type = {"<f4": "float", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0", "comment vid2model export"]
    if texture_name:
        header.append(f"comment TextureFile {texture_name}")
    header.append(f"element vertex {len(vert)}")
    header += [f"property {ply_type[t]} {n}" for n, t in fields]
    header += [f"element face {len(face)}", "property list uchar int vertex_indices", "end_header"]
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(("\n".join(header) + "\n").encode("ascii"))
            f.write(vert.tobytes())
            f.write(face.tobytes())


def write_scaled_points(src: Path, dst: Path, scale: float) -> int:
    """Copy a point-cloud PLY with ``x, y, z`` multiplied by ``scale`` (other properties kept); returns N."""
    from plyfile import PlyData

    ply = PlyData.read(str(src))
    vert = ply["vertex"].data
    if scale != 1.0:
        for k in ("x", "y", "z"):
            vert[k] = vert[k] * scale
    ply.comments = list(ply.comments) + [f"vid2model export: positions scaled by {scale:.9g}"]
    ply.text = False
    with atomic_path(dst) as tmp:
        ply.write(str(tmp))
    return len(vert)
