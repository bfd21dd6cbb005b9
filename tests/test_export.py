"""Export stage: every file opens in a real reader with the right triangles, texture, axes, units and UVs.

Readers: Khronos glTF validator (tools/node_modules), pxr.UsdValidation, Blender (one background process
for GLB + OBJ + FBX), trimesh, plyfile. The mesh is built here (xatlas-unwrapped ellipsoid + checker PNG);
the pipeline's own files (synthetic orbit through the CLI) are validated at the end, on real data.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from export_mesh import textured_mesh, write_textured_workspace
from scipy.spatial import cKDTree

from vid2model.config import ExportConfig
from vid2model.errors import UserError
from vid2model.stages.export import Z_UP_TO_Y_UP, run
from vid2model.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / "tools"
ALL = ("glb", "gltf", "obj", "usdz", "usd", "usda", "fbx", "ply")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(workspace, summary, source vertices (V,3) Z-up metres, source uvs (V,2)) with every mesh format."""
    ws, _ = write_textured_workspace(tmp_path_factory.mktemp("export") / "ws")
    V, _, uv = textured_mesh()
    summary = run(ws, ExportConfig(formats=ALL))
    return ws, summary, V, uv


def _match_uvs(src_v: np.ndarray, src_uv: np.ndarray, pos: np.ndarray, uv: np.ndarray) -> float:
    """Largest UV difference between read-back (pos, uv) pairs and the source vertex with that position.

    Seam vertices share a position with different UVs, so the best of the coincident source vertices counts.
    """
    tree = cKDTree(src_v)
    worst = 0.0
    for p, t in zip(pos, uv):
        idx = tree.query_ball_point(p, 1e-4)
        assert idx, f"no source vertex at {p}"
        worst = max(worst, min(np.abs(src_uv[i] - t).max() for i in idx))
    return worst


def _validate_gltf(path: Path) -> dict:
    node = shutil.which("node")
    if node is None or not (TOOLS / "node_modules" / "gltf-validator").exists():
        pytest.skip("Khronos gltf-validator not installed (apt-get install nodejs npm; cd tools && npm ci)")
    out = subprocess.run([node, str(TOOLS / "validate_gltf.js"), str(path)], capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout)


def _glb_attribute(path: Path, name: str) -> np.ndarray:
    """A float vertex attribute read straight from a GLB's JSON and BIN chunks."""
    import struct

    data = Path(path).read_bytes()
    (jlen,) = struct.unpack_from("<I", data, 12)
    gltf = json.loads(data[20:20 + jlen])
    binary = data[20 + jlen + 8:]
    acc = gltf["accessors"][gltf["meshes"][0]["primitives"][0]["attributes"][name]]
    view = gltf["bufferViews"][acc["bufferView"]]
    width = {"VEC2": 2, "VEC3": 3, "VEC4": 4}[acc["type"]]
    start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    return np.frombuffer(binary, np.float32, acc["count"] * width, start).reshape(-1, width)


def test_summary_records_files_sizes_and_conventions(exported):
    ws, summary, V, _ = exported
    on_disk = json.loads(ws.export_json.read_text())
    assert on_disk["files"] == summary["files"]
    for fmt in ALL:
        entry = summary["files"][fmt]
        path = ws.export_dir / entry["path"]
        assert path.exists() and entry["bytes"] == path.stat().st_size > 1000, fmt
        assert entry["convention"]
    assert summary["files"]["usda"]["path"] == "model.usda" and summary["files"]["usd"]["path"] == "model.usd"
    assert summary["triangles"] == 1280 and summary["textured"] and summary["scale_to_metres"] == 1.0
    assert np.allclose(summary["axes"]["matrix_z_up_to_y_up"], Z_UP_TO_Y_UP)
    assert summary["total_bytes"] >= sum(f["bytes"] for f in summary["files"].values())


@pytest.mark.parametrize("fmt", ["glb", "gltf"])
def test_gltf_validator_reports_no_errors(exported, fmt):
    ws = exported[0]
    report = _validate_gltf(ws.export_path(fmt))
    assert report["issues"]["numErrors"] == 0, report["issues"]["messages"][:5]
    assert report["issues"]["numWarnings"] == 0, report["issues"]["messages"][:5]
    assert report["info"]["totalTriangleCount"] == 1280
    assert report["info"]["hasTextures"] is True and report["info"]["materialCount"] == 1


def test_web_copy_without_node_is_quantized_lighter_and_valid(exported, tmp_path, monkeypatch):
    """The page's GLB where gltfpack cannot run (no Node.js): KHR_mesh_quantization and a WebP texture, the
    same mesh within its quantization steps, fewer bytes, and the Khronos validator finds nothing wrong. (The
    simplified, compressed copy is tested on a capture-sized model in test_publish.py.)"""
    from PIL import Image

    from vid2model.errors import UserError
    from vid2model.io.gltf import read_glb
    from vid2model.viewer import publish

    def no_node(*args, **kwargs):
        raise UserError("Node.js is not installed")

    monkeypatch.setattr(publish, "_gltfpack", no_node)
    src, dst = exported[0].export_path("glb"), tmp_path / "web.glb"
    sizes = publish.web_glb(src, dst, publish.WebCopy(max_texture=64))
    full, web = read_glb(src), read_glb(dst)
    extent = float(np.ptp(full["vertices"], axis=0).max())
    assert not sizes["compressed"] and sizes["faces"] == sizes["source_faces"] == 1280
    assert np.array_equal(full["faces"], web["faces"])
    assert np.abs(full["vertices"] - web["vertices"]).max() <= 0.51 * extent / 65535  # half a step
    assert np.abs(full["normals"] - web["normals"]).max() < 0.01  # 8-bit normals: 1/127 per component
    assert np.abs(full["uvs"] - web["uvs"]).max() <= 0.51 / 65535
    img = Image.open(io.BytesIO(web["texture"]))
    assert img.format == "WEBP" and max(img.size) == 64
    assert sizes["bytes"] < 0.6 * sizes["source_bytes"]
    report = _validate_gltf(dst)
    assert report["issues"]["numErrors"] == 0 and report["issues"]["numWarnings"] == 0, report["issues"]
    assert report["info"]["extensionsRequired"] == ["KHR_mesh_quantization", "EXT_texture_webp"]
    assert report["info"]["totalTriangleCount"] == 1280


def test_gltf_validator_catches_a_broken_file(exported, tmp_path):
    data = bytearray(exported[0].export_path("glb").read_bytes())
    data[40:60] = b"x" * 20  # corrupt the JSON chunk
    bad = tmp_path / "bad.glb"
    bad.write_bytes(bytes(data))
    assert _validate_gltf(bad)["issues"]["numErrors"] > 0


def test_glb_axes_units_and_uvs(exported):
    """glTF is +Y up metres: positions are the rotated source; V is flipped (image origin top-left)."""
    import trimesh

    ws, _, V, uv = exported
    mesh = trimesh.load(ws.export_path("glb"), force="mesh", process=False)
    assert len(mesh.faces) == 1280
    assert np.allclose(np.asarray(mesh.vertices), V @ Z_UP_TO_Y_UP.T, atol=1e-5)
    top = np.asarray(mesh.vertices)[:, 1].max()
    assert top == pytest.approx(V[:, 2].max(), abs=1e-5)  # the source's top (max z) is glTF's max y
    assert np.abs(np.asarray(mesh.visual.uv) - uv).max() < 1e-5  # trimesh undoes glTF's V flip
    assert mesh.visual.material.baseColorTexture.size == (256, 256)


def test_trimesh_roundtrips_obj_glb_ply(exported):
    import trimesh

    ws, _, V, uv = exported
    for fmt in ("glb", "obj", "ply"):
        loaded = trimesh.load(ws.export_path(fmt), force="mesh", process=False)
        assert len(loaded.faces) == 1280, fmt
    obj = trimesh.load(ws.export_path("obj"), force="mesh", process=False)
    assert obj.visual.material.image is not None and obj.visual.material.image.size == (256, 256)
    assert _match_uvs(V @ Z_UP_TO_Y_UP.T, uv, np.asarray(obj.vertices), np.asarray(obj.visual.uv)) < 1e-5
    ply = trimesh.load(ws.export_path("ply"), process=False)
    assert np.allclose(np.asarray(ply.vertices), V, atol=1e-5)  # PLY keeps the workspace's +Z up
    assert ply.visual.uv is not None and ply.visual.material.image is not None  # TextureFile comment + s, t
    from plyfile import PlyData

    red = PlyData.read(str(ws.export_path("ply")))["vertex"].data["red"]
    assert red.std() > 10  # colours sampled from the checker atlas for viewers without textures


@pytest.mark.parametrize("fmt", ["usdz", "usd", "usda"])
def test_usd_validation_axes_and_uvs(exported, fmt):
    from pxr import Usd, UsdGeom

    from vid2model.io.usd import validate_usd

    ws, _, V, uv = exported
    path = ws.export_path(fmt)
    assert validate_usd(path) == []
    stage = Usd.Stage.Open(str(path))
    assert UsdGeom.GetStageUpAxis(stage) == "Y" and UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    assert stage.GetDefaultPrim().GetPath().pathString == "/model"
    mesh = UsdGeom.Mesh(stage.GetPrimAtPath("/model/mesh"))
    assert len(mesh.GetFaceVertexCountsAttr().Get()) == 1280
    assert np.allclose(np.asarray(mesh.GetPointsAttr().Get()), V @ Z_UP_TO_Y_UP.T, atol=1e-5)
    st = UsdGeom.PrimvarsAPI(mesh).GetPrimvar("st")
    assert np.allclose(np.asarray(st.Get()), uv, atol=1e-6)  # USD's st origin is bottom-left like OBJ
    if fmt == "usdz":
        names = zipfile.ZipFile(path).namelist()
        assert names[0].endswith(".usdc") and "texture.png" in names  # AR Quick Look: layer first, texture inside


def test_usd_validation_is_not_vacuous(tmp_path):
    """A USDZ holding an unsupported file type must be flagged: the validators really run."""
    from pxr import Sdf, Usd, UsdUtils

    from vid2model.io.usd import validate_usd

    stage_path = tmp_path / "m.usda"
    stage = Usd.Stage.CreateNew(str(stage_path))
    stage.DefinePrim("/a", "Xform")
    (tmp_path / "notes.txt").write_text("not allowed in a usdz")
    stage.GetPrimAtPath("/a").CreateAttribute("doc", Sdf.ValueTypeNames.Asset).Set("./notes.txt")
    stage.GetRootLayer().Save()
    out = tmp_path / "bad.usdz"
    UsdUtils.CreateNewUsdzPackage(Sdf.AssetPath(str(stage_path)), str(out))
    assert validate_usd(out), "expected errors for a package with a .txt file and no default prim"


def test_blender_imports_glb_obj_fbx_textured(exported, tmp_path):
    """One Blender process: right triangle count, image texture attached, back in +Z up metres, same UVs."""
    blender = shutil.which("blender")
    if blender is None:
        pytest.skip("blender is not installed (apt-get install -y blender)")
    ws, _, V, uv = exported
    files = [str(ws.export_path(f)) for f in ("glb", "obj", "fbx")]
    out = subprocess.run([blender, "-b", "--factory-startup", "--python",
                          str(Path(__file__).parent / "tools" / "blender_import.py"), "--", *files],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    results = [json.loads(ln[7:]) for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    assert len(results) == 3, out.stdout[-2000:] + out.stderr[-2000:]
    for r in results:
        assert "error" not in r, r
        assert r["triangles"] == 1280, r["file"]
        assert r["textured"], r["file"]
        # Blender is +Z up metres: every importer must undo its format's convention back to the source frame.
        assert np.allclose(r["bbox"], [V.min(0), V.max(0)], atol=1e-4), (r["file"], r["bbox"])
        samples = np.asarray([p for p, _ in r["uv_samples"]]), np.asarray([t for _, t in r["uv_samples"]])
        assert len(samples[0]) > 20
        assert _match_uvs(V, uv, *samples) < 1e-4, r["file"]


def test_arbitrary_scale_is_brought_to_about_a_metre(tmp_path):
    import trimesh

    ws, _ = write_textured_workspace(tmp_path / "ws", subdivisions=1, scale="arbitrary")
    summary = run(ws, ExportConfig(formats=("glb",)))
    assert summary["scale_to_metres"] == pytest.approx(0.5 / 0.45) and "arbitrary" in summary["units"]
    V, _, _ = textured_mesh(1)
    mesh = trimesh.load(ws.export_path("glb"), force="mesh", process=False)
    assert np.allclose(np.asarray(mesh.vertices), (V @ Z_UP_TO_Y_UP.T) * 0.5 / 0.45, atol=1e-5)


def test_vertex_colour_fallback_and_points(tmp_path):
    """No textured OBJ: the clean mesh's vertex colours reach GLB/USD/OBJ/PLY; dense points are exported too."""
    import trimesh
    from plyfile import PlyData, PlyElement
    from pxr import Usd, UsdGeom

    from vid2model.io.usd import validate_usd

    ws = Workspace(tmp_path / "ws")
    box = trimesh.creation.box(extents=(0.4, 0.2, 0.3))
    colors = np.tile(np.array([[200, 30, 40, 255]], np.uint8), (len(box.vertices), 1))
    colors[::2] = [20, 180, 60, 255]
    box.visual.vertex_colors = colors
    ws.mesh_dir.mkdir(parents=True)
    box.export(ws.clean_mesh)
    pts = np.empty(500, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"),
                               ("blue", "u1")])
    for k, v in zip(("x", "y", "z"), np.random.default_rng(0).normal(size=(3, 500))):
        pts[k] = v
    ws.dense_dir.mkdir(parents=True)
    PlyData([PlyElement.describe(pts, "vertex")]).write(str(ws.fused_ply))
    ws.sfm_dir.mkdir(parents=True)
    ws.write_json(ws.scene_json, {"up": [0, 0, 1], "scale": "metric", "metres_per_unit": 2.0, "radius": 0.3})

    summary = run(ws, ExportConfig(formats=("glb", "usdz", "obj", "ply", "spz")))
    assert not summary["textured"] and summary["vertex_colours"] and summary["scale_to_metres"] == 2.0
    assert summary["source"] == "mesh/mesh.ply"
    assert any("spz" in n for n in summary["notes"])  # no splat in this workspace: skipped with a note
    report = _validate_gltf(ws.export_path("glb"))
    assert report["issues"]["numErrors"] == 0, report["issues"]["messages"][:5]
    glb = trimesh.load(ws.export_path("glb"), force="mesh", process=False)
    assert np.allclose(np.ptp(np.asarray(glb.vertices), axis=0), [0.8, 0.6, 0.4], atol=1e-6)  # x, z->y, y->z; x2
    col = _glb_attribute(ws.export_path("glb"), "COLOR_0")
    assert len({tuple(c) for c in col.round(4)}) == 2
    assert col[:, 0].max() == pytest.approx(((200 / 255 + 0.055) / 1.055) ** 2.4, abs=1e-4)  # linear, not sRGB
    assert validate_usd(ws.export_path("usdz")) == []
    stage = Usd.Stage.Open(str(ws.export_path("usdz")))
    mesh = UsdGeom.Mesh(stage.GetPrimAtPath("/model/mesh"))
    assert len(mesh.GetDisplayColorPrimvar().Get()) == len(box.vertices)
    obj = trimesh.load(ws.export_path("obj"), force="mesh", process=False)
    assert len(obj.faces) == 12
    v_rows = [ln.split()[1:] for ln in ws.export_path("obj").read_text().splitlines() if ln.startswith("v ")]
    assert len({tuple(r[3:]) for r in v_rows}) == 2  # the "v x y z r g b" colour extension
    back = PlyData.read(str(ws.export_dir / "points.ply"))["vertex"].data
    assert np.allclose(back["x"], pts["x"] * 2.0) and np.array_equal(back["red"], pts["red"])


def test_clear_errors(tmp_path):
    ws = Workspace(tmp_path / "empty")
    with pytest.raises(UserError, match="run the mesh"):
        run(ws, ExportConfig(formats=("glb",)))
    with pytest.raises(UserError, match="unknown export format"):
        run(ws, ExportConfig(formats=("glb", "stl3")))


def test_splat_formats_when_a_splat_exists(tmp_path):
    """splat/point_cloud.ply goes out as splat.ply, model.splat and model.spz (the splat teammate's writers)."""
    sf = pytest.importorskip("vid2model.io.splat_formats", reason="splat format writers not in this version")
    rng = np.random.default_rng(0)
    n = 300
    quats = rng.normal(size=(n, 4)).astype(np.float32)
    data = sf.SplatData(rng.normal(size=(n, 3)).astype(np.float32), np.full((n, 3), -3.0, np.float32),
                        quats / np.linalg.norm(quats, axis=1, keepdims=True), np.full(n, 2.0, np.float32),
                        rng.normal(size=(n, 3)).astype(np.float32), np.zeros((n, 0, 3), np.float32))
    ws = Workspace(tmp_path / "ws")
    sf.write_ply(data, ws.splat_ply)
    summary = run(ws, ExportConfig(formats=("splat_ply", "splat", "spz")))
    assert set(summary["files"]) == {"splat_ply", "splat", "spz"} and summary["notes"] == []
    assert (ws.export_dir / "splat.ply").read_bytes() == ws.splat_ply.read_bytes()
    assert len(sf.read_splat(ws.export_path("splat"))["means"]) == n
    assert len(sf.read_spz(ws.export_path("spz"))) == n


# ---- the pipeline's own files: real meshes and atlases pass the same readers (conventions: above) ----------
def _triangles(ws: Workspace) -> int:
    n = json.loads(ws.export_json.read_text())["triangles"]
    assert n > 1000
    return n


@pytest.mark.parametrize("fmt", ["glb", "gltf"])
def test_pipeline_gltf_validates(orbit_workspace, fmt):
    report = _validate_gltf(orbit_workspace.export_path(fmt))
    assert report["issues"]["numErrors"] == 0, report["issues"]["messages"][:5]
    assert report["info"]["totalTriangleCount"] == _triangles(orbit_workspace)
    assert report["info"]["hasTextures"] is True


@pytest.mark.parametrize("fmt", ["usdz", "usd"])
def test_pipeline_usd_validates(orbit_workspace, fmt):
    from pxr import Usd, UsdGeom

    from vid2model.io.usd import validate_usd

    path = orbit_workspace.export_path(fmt)
    assert validate_usd(path) == []
    stage = Usd.Stage.Open(str(path))  # held: its prims die with it
    mesh = UsdGeom.Mesh(stage.GetPrimAtPath("/model/mesh"))
    assert len(mesh.GetFaceVertexCountsAttr().Get()) == _triangles(orbit_workspace)


def test_pipeline_obj_and_ply_read_back(orbit_workspace):
    """(The GLB read back textured and Y-up: test_e2e.)"""
    import trimesh

    n = _triangles(orbit_workspace)
    for fmt in ("obj", "ply"):
        assert len(trimesh.load(orbit_workspace.export_path(fmt), force="mesh", process=False).faces) == n, fmt
    obj = trimesh.load(orbit_workspace.export_path("obj"), force="mesh")
    assert obj.visual.uv is not None and obj.visual.material.image is not None
