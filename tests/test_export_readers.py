"""Exported files open in real readers: Khronos glTF validator, pxr.UsdValidation, Blender, trimesh."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vid2model.io.fbx import read_fbx_nodes, write_fbx
from vid2model.io.usd import validate_usd, write_usd

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def _validator() -> list[str]:
    node = shutil.which("node")
    if node is None or not (TOOLS / "node_modules" / "gltf-validator").exists():
        pytest.skip("gltf-validator not installed (cd tools && npm ci)")
    return [node, str(TOOLS / "validate_gltf.js")]


@pytest.mark.parametrize("fmt", ["glb", "gltf"])
def test_gltf_validator_reports_no_errors(orbit_workspace, fmt):
    out = subprocess.run(_validator() + [str(orbit_workspace.export_path(fmt))], capture_output=True, text=True,
                         timeout=120, check=True)
    report = json.loads(out.stdout)
    assert report["issues"]["numErrors"] == 0, report["issues"]["messages"][:5]
    assert report["info"]["totalTriangleCount"] > 1000
    assert report["info"]["hasTextures"] is True


def test_gltf_validator_catches_a_broken_file(tmp_path, orbit_workspace):
    data = bytearray(orbit_workspace.export_path("glb").read_bytes())
    data[40:60] = b"x" * 20  # corrupt the JSON chunk
    bad = tmp_path / "bad.glb"
    bad.write_bytes(bytes(data))
    out = subprocess.run(_validator() + [str(bad)], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 or json.loads(out.stdout)["issues"]["numErrors"] > 0


@pytest.mark.parametrize("fmt", ["usdz", "usd"])
def test_usd_validation_no_errors(orbit_workspace, fmt):
    from pxr import Usd, UsdGeom

    path = orbit_workspace.export_path(fmt)
    assert validate_usd(path) == []
    stage = Usd.Stage.Open(str(path))
    assert UsdGeom.GetStageUpAxis(stage) == "Y" and UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    mesh = UsdGeom.Mesh(stage.GetPrimAtPath("/model/mesh"))
    assert len(mesh.GetFaceVertexCountsAttr().Get()) > 1000


def test_usd_validation_is_not_vacuous(tmp_path):
    """A USDZ holding an unsupported file type must be flagged: the validators really run."""
    from pxr import Sdf, Usd, UsdUtils

    stage_path = tmp_path / "m.usda"
    stage = Usd.Stage.CreateNew(str(stage_path))
    stage.DefinePrim("/a", "Xform")
    stage.GetRootLayer().Save()
    (tmp_path / "notes.txt").write_text("not allowed in a usdz")
    stage.GetPrimAtPath("/a").CreateAttribute("doc", Sdf.ValueTypeNames.Asset).Set("./notes.txt")
    stage.GetRootLayer().Save()
    out = tmp_path / "bad.usdz"
    UsdUtils.CreateNewUsdzPackage(Sdf.AssetPath(str(stage_path)), str(out))
    assert validate_usd(out), "expected errors for a package with a .txt file and no default prim"


def test_trimesh_roundtrips(orbit_workspace):
    import trimesh

    n = json.loads((orbit_workspace.export_dir / "export.json").read_text())["triangles"]
    for fmt in ("glb", "obj", "ply"):
        loaded = trimesh.load(orbit_workspace.export_path(fmt), force="mesh", process=False)
        assert len(loaded.faces) == n, fmt
    obj = trimesh.load(orbit_workspace.export_path("obj"), force="mesh")
    assert obj.visual.uv is not None and obj.visual.material.image is not None


def test_fbx_structure_roundtrip(tmp_path):
    V = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    F = np.array([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]])
    uv = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], float)
    path = tmp_path / "t.fbx"
    write_fbx(path, V, F, uv, V / np.linalg.norm(V + 1e-9, axis=1, keepdims=True), None)
    nodes = {n[0]: n for n in read_fbx_nodes(path)}
    assert set(nodes) >= {"FBXHeaderExtension", "GlobalSettings", "Definitions", "Objects", "Connections"}
    geom = next(c for c in nodes["Objects"][2] if c[0] == "Geometry")
    fields = {c[0]: c[1] for c in geom[2]}
    assert np.allclose(np.asarray(fields["Vertices"][0]).reshape(-1, 3), V)
    pvi = np.asarray(fields["PolygonVertexIndex"][0]).reshape(-1, 3)
    assert np.array_equal(pvi[:, :2], F[:, :2]) and np.array_equal(-pvi[:, 2] - 1, F[:, 2])
    assert geom[1][0] >= 2**31 or isinstance(geom[1][0], int)


def test_blender_imports_glb_obj_fbx_textured(orbit_workspace, tmp_path):
    blender = shutil.which("blender")
    if blender is None:
        pytest.skip("blender is not installed (apt-get install blender python3-numpy)")
    n = json.loads((orbit_workspace.export_dir / "export.json").read_text())["triangles"]
    files = [str(orbit_workspace.export_path(f)) for f in ("glb", "obj", "fbx")]
    out = subprocess.run([blender, "-b", "--factory-startup", "--python",
                          str(Path(__file__).parent / "tools" / "blender_import.py"), "--", *files],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    results = [json.loads(ln[7:]) for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    assert len(results) == 3, out.stdout[-2000:] + out.stderr[-2000:]
    for r in results:
        assert r["triangles"] == n, r
        assert r["textured"], r
