"""COLMAP dense-workspace arrays (depth/normal maps ``*.bin``) and point-cloud PLY files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vid2model.workspace import atomic_path


def write_array(path: Path, arr: np.ndarray) -> None:
    """Write (H, W) or (H, W, C) float32 in COLMAP's format: ``W&H&C&`` then column-major data."""
    a = np.asarray(arr, np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
    h, w, c = a.shape
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(f"{w}&{h}&{c}&".encode())
            a.transpose(1, 0, 2).reshape(-1, order="F").tofile(f)


def read_array(path: Path) -> np.ndarray:
    """Read a COLMAP ``.bin`` array as (H, W) or (H, W, C) float32."""
    with open(path, "rb") as f:
        header = b""
        while header.count(b"&") < 3:
            header += f.read(1)
        w, h, c = (int(x) for x in header.split(b"&")[:3])
        data = np.fromfile(f, np.float32)
    a = data.reshape((w, h, c), order="F").transpose(1, 0, 2)
    return a[:, :, 0] if c == 1 else a


def write_points_ply(path: Path, xyz: np.ndarray, normals: np.ndarray | None = None,
                     rgb: np.ndarray | None = None) -> None:
    """Binary little-endian PLY with x y z [nx ny nz] [red green blue] (COLMAP's fused.ply layout)."""
    n = len(xyz)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if normals is not None:
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    if rgb is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    rec = np.empty(n, dtype=fields)
    rec["x"], rec["y"], rec["z"] = xyz.T.astype(np.float32)
    if normals is not None:
        rec["nx"], rec["ny"], rec["nz"] = normals.T.astype(np.float32)
    if rgb is not None:
        rec["red"], rec["green"], rec["blue"] = np.asarray(rgb, np.uint8).T
    types = {"<f4": "float", "u1": "uchar"}
    header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {n}\n" + "".join(
        f"property {types[t]} {name}\n" for name, t in fields) + "end_header\n"
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(header.encode())
            rec.tofile(f)


def read_points_ply(path: Path) -> dict[str, np.ndarray]:
    """Read a point PLY: {'xyz': (N, 3), 'normals': (N, 3) or None, 'rgb': (N, 3) uint8 or None}."""
    from plyfile import PlyData

    v = PlyData.read(str(path))["vertex"].data
    names = v.dtype.names
    out = {"xyz": np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float64), "normals": None, "rgb": None}
    if "nx" in names:
        out["normals"] = np.stack([v["nx"], v["ny"], v["nz"]], 1).astype(np.float64)
    if "red" in names:
        out["rgb"] = np.stack([v["red"], v["green"], v["blue"]], 1).astype(np.uint8)
    return out
