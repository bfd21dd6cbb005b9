"""The pipeline's own exports (synthetic orbit, through the CLI) open in real readers: Khronos glTF validator,
pxr.UsdValidation, trimesh. The readers' own checks (a broken file is caught, Blender's import with its
axes and UVs) run on a known mesh in test_export.py and test_fbx.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from vid2model.io.usd import validate_usd

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


@pytest.mark.parametrize("fmt", ["usdz", "usd"])
def test_usd_validation_no_errors(orbit_workspace, fmt):
    from pxr import Usd, UsdGeom

    path = orbit_workspace.export_path(fmt)
    assert validate_usd(path) == []
    stage = Usd.Stage.Open(str(path))
    assert UsdGeom.GetStageUpAxis(stage) == "Y" and UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    mesh = UsdGeom.Mesh(stage.GetPrimAtPath("/model/mesh"))
    assert len(mesh.GetFaceVertexCountsAttr().Get()) > 1000


def test_trimesh_roundtrips(orbit_workspace):
    import trimesh

    n = json.loads(orbit_workspace.export_json.read_text())["triangles"]
    for fmt in ("glb", "obj", "ply"):
        loaded = trimesh.load(orbit_workspace.export_path(fmt), force="mesh", process=False)
        assert len(loaded.faces) == n, fmt
    obj = trimesh.load(orbit_workspace.export_path("obj"), force="mesh")
    assert obj.visual.uv is not None and obj.visual.material.image is not None
