"""COLMAP dense-workspace arrays and point PLYs: byte layout that COLMAP's own readers expect."""

from __future__ import annotations

import numpy as np

from vid2model.io.colmap_dense import read_array, read_points_ply, write_array, write_points_ply


def _colmap_read_array(path):
    """COLMAP's scripts/python/read_write_dense.py read_array, verbatim logic."""
    with open(path, "rb") as fid:
        width, height, channels = np.genfromtxt(fid, delimiter="&", max_rows=1, usecols=(0, 1, 2), dtype=int)
        fid.seek(0)
        num_delimiter = 0
        byte = fid.read(1)
        while True:
            if byte == b"&":
                num_delimiter += 1
                if num_delimiter >= 3:
                    break
            byte = fid.read(1)
        array = np.fromfile(fid, np.float32)
    array = array.reshape((width, height, channels), order="F")
    return np.transpose(array, (1, 0, 2)).squeeze()


def test_depth_array_matches_colmap_reader(tmp_path):
    rng = np.random.default_rng(0)
    depth = rng.random((7, 11)).astype(np.float32)
    p = tmp_path / "a.geometric.bin"
    write_array(p, depth)
    assert p.read_bytes().startswith(b"11&7&1&")
    np.testing.assert_array_equal(_colmap_read_array(p), depth)
    np.testing.assert_array_equal(read_array(p), depth)


def test_normal_array_roundtrip(tmp_path):
    rng = np.random.default_rng(1)
    n = rng.normal(size=(5, 9, 3)).astype(np.float32)
    p = tmp_path / "n.bin"
    write_array(p, n)
    assert p.stat().st_size == len(b"9&5&3&") + n.size * 4
    np.testing.assert_array_equal(_colmap_read_array(p), n)
    np.testing.assert_array_equal(read_array(p), n)


def test_points_ply_readable_by_open3d_and_plyfile(tmp_path):
    import open3d as o3d

    rng = np.random.default_rng(2)
    xyz = rng.normal(size=(50, 3))
    nrm = rng.normal(size=(50, 3))
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    rgb = rng.integers(0, 256, (50, 3)).astype(np.uint8)
    p = tmp_path / "fused.ply"
    write_points_ply(p, xyz, nrm, rgb)
    back = read_points_ply(p)
    np.testing.assert_allclose(back["xyz"], xyz, atol=1e-6)
    np.testing.assert_allclose(back["normals"], nrm, atol=1e-6)
    np.testing.assert_array_equal(back["rgb"], rgb)
    pcd = o3d.io.read_point_cloud(str(p))
    assert len(pcd.points) == 50 and pcd.has_normals() and pcd.has_colors()
    np.testing.assert_allclose(np.asarray(pcd.colors), rgb / 255.0, atol=1e-6)
