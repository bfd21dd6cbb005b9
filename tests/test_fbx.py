"""Our binary FBX 7.4 writer: byte layout, a structural round trip, and the ufbx loader in strict mode.

Blender's importer (the other real reader) is exercised in test_export.py, in the one Blender process.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from export_mesh import checker_png, textured_mesh
from ufbx_probe import read_with_ufbx

from vid2model.io.fbx import FOOTER_MAGIC, HEADER, VERSION, read_fbx_nodes, write_fbx
from vid2model.stages.export import Z_UP_TO_Y_UP, smooth_normals


@pytest.fixture(scope="module")
def textured_fbx(tmp_path_factory):
    """(path, vertices (V,3) Y-up, faces, uvs, normals, png bytes) of a written FBX."""
    d = tmp_path_factory.mktemp("fbx")
    V, F, uv = textured_mesh(2)
    V = V @ Z_UP_TO_Y_UP.T
    N = smooth_normals(V, F)
    checker_png(d / "texture.png", size=64)
    path = d / "model.fbx"
    write_fbx(path, V, F, uv, N, d / "texture.png")
    return path, V, F, uv, N, (d / "texture.png").read_bytes()


def _children(node) -> dict:
    return {c[0]: c for c in node[2]}


def test_header_and_footer_bytes(textured_fbx):
    data = textured_fbx[0].read_bytes()
    assert data[:23] == HEADER and struct.unpack_from("<I", data, 23)[0] == VERSION == 7400
    assert data.endswith(FOOTER_MAGIC)
    assert struct.unpack_from("<I", data, len(data) - 16 - 120 - 4)[0] == VERSION
    assert (len(data) - 16 - 120 - 4) % 16 == 0  # the version sits on a 16-byte boundary


def test_structure_round_trip(textured_fbx):
    path, V, F, uv, N, png = textured_fbx
    nodes = {n[0]: n for n in read_fbx_nodes(path)}
    assert set(nodes) >= {"FBXHeaderExtension", "FileId", "CreationTime", "GlobalSettings", "Documents",
                          "Definitions", "Objects", "Connections"}
    props = {p[1][0]: p[1][4:] for p in _children(nodes["GlobalSettings"])["Properties70"][2]}
    assert props[b"UpAxis"] == [1] and props[b"FrontAxis"] == [2] and props[b"UnitScaleFactor"] == [100.0]
    objects = _children(nodes["Objects"])
    geom = _children(objects["Geometry"])
    assert np.allclose(geom["Vertices"][1][0].reshape(-1, 3), V)
    pvi = geom["PolygonVertexIndex"][1][0].reshape(-1, 3)
    assert np.array_equal(pvi[:, :2], F[:, :2]) and np.array_equal(~pvi[:, 2], F[:, 2])  # ~i closes a polygon
    uv_el = _children(geom["LayerElementUV"])
    assert uv_el["MappingInformationType"][1][0] == b"ByPolygonVertex"
    assert np.allclose(uv_el["UV"][1][0].reshape(-1, 2)[uv_el["UVIndex"][1][0]], uv[F.ravel()])
    normals = _children(geom["LayerElementNormal"])["Normals"][1][0].reshape(-1, 3)
    assert np.allclose(normals, N[F.ravel()])
    assert _children(objects["Video"])["Content"][1][0] == png
    ids = {objects[k][1][0] for k in ("Geometry", "Model", "Material", "Texture", "Video")}
    assert all(i >= 2**31 for i in ids) and len(ids) == 5  # 64-bit ids, all distinct
    links = [(c[1][0], c[1][1], c[1][2]) for c in nodes["Connections"][2]]
    assert (b"OO", objects["Model"][1][0], 0) in links
    assert (b"OP", objects["Texture"][1][0], objects["Material"][1][0]) in links


def test_large_arrays_are_zlib_compressed(textured_fbx):
    """Array properties over 128 bytes use encoding 1 (zlib), whose stream must inflate to the data."""
    data = textured_fbx[0].read_bytes()
    pos = data.index(b"Vertices") + len(b"Vertices")
    assert data[pos:pos + 1] == b"d"
    n, enc, clen = struct.unpack_from("<III", data, pos + 1)
    assert enc == 1 and n == 3 * len(textured_fbx[1])
    raw = zlib.decompress(data[pos + 13:pos + 13 + clen])
    assert np.allclose(np.frombuffer(raw, np.float64).reshape(-1, 3), textured_fbx[1])


def test_ufbx_strict_reads_mesh_uvs_texture_and_units(textured_fbx, tmp_path):
    pytest.importorskip("ufbx", reason="ufbx not installed (pip install ufbx==0.0.5)")
    path, V, F, uv, N, png = textured_fbx
    meta, arrays = read_with_ufbx(path, tmp_path)
    assert meta["warnings"] == [] and meta["version"] == 7400
    assert meta["up_is_positive_y"] and meta["unit_meters"] == 1.0
    (mesh,) = meta["meshes"]
    assert mesh["num_triangles"] == len(F) and mesh["max_face_triangles"] == 1
    assert np.allclose(arrays["0_vertex_position"].reshape(-1, 3, 3), V[F], atol=1e-6)
    assert np.allclose(arrays["0_vertex_uv"], uv[F.ravel()], atol=1e-6)
    assert np.allclose(arrays["0_vertex_normal"], N[F.ravel()], atol=1e-6)
    assert mesh["materials"] == ["model_material"]
    assert mesh["texture_content"] == [png.hex()]
    assert meta["mesh_nodes"] == ["model"]


def test_ufbx_reads_vertex_colours_untextured(tmp_path):
    pytest.importorskip("ufbx", reason="ufbx not installed (pip install ufbx==0.0.5)")
    V = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    F = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    C = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]], np.uint8)
    path = tmp_path / "c.fbx"
    write_fbx(path, V, F, None, smooth_normals(V, F), None, colors=C, name="box")
    meta, arrays = read_with_ufbx(path, tmp_path)
    (mesh,) = meta["meshes"]
    assert mesh["num_triangles"] == 4 and not mesh["vertex_uv"] and meta["n_textures"] == 0
    assert np.allclose(arrays["0_vertex_color"][:, :3], C[F.ravel()] / 255.0, atol=1e-6)
