"""USD / USDZ writer (pxr): one textured mesh with a UsdPreviewSurface material, AR Quick Look ready."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np


def write_usd(path: Path, vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray | None, normals: np.ndarray | None,
              texture_png: Path | None, up_axis: str = "Y", meters_per_unit: float = 1.0, name: str = "model",
              colors: np.ndarray | None = None) -> list[Path]:
    """Write ``.usda``/``.usdc`` (by suffix) or ``.usdz`` (packaged with its texture).

    Args:
        vertices: (V, 3) in the target axes.
        faces: (F, 3) triangles.
        uvs: (V, 2) per-vertex texture coordinates or None.
        normals: (V, 3) per-vertex normals or None.
        texture_png: base-colour texture file, or None for a plain material.
        up_axis: "Y" or "Z".
        meters_per_unit: stage units.
        name: root prim name (the default prim).
        colors: (V, 3) uint8 vertex colours used when there is no texture (``displayColor``), or None.

    Returns:
        Every file written: ``path``, then the texture copied beside it (``.usda``/``.usdc`` with a texture).
    """
    from pxr import Gf, Sdf, Usd, UsdGeom, UsdShade, UsdUtils, Vt

    path = Path(path)
    written = [path]
    work = Path(tempfile.mkdtemp(prefix="v2m-usd-"))
    try:
        layer_path = work / (f"{name}.usdc" if path.suffix == ".usdz" else path.name)
        stage = Usd.Stage.CreateNew(str(layer_path))
        UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y if up_axis == "Y" else UsdGeom.Tokens.z)
        UsdGeom.SetStageMetersPerUnit(stage, meters_per_unit)
        root = UsdGeom.Xform.Define(stage, f"/{name}")
        stage.SetDefaultPrim(root.GetPrim())
        Usd.ModelAPI(root.GetPrim()).SetKind("component")
        mesh = UsdGeom.Mesh.Define(stage, f"/{name}/mesh")
        mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(vertices.astype(np.float32)))
        mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(faces), 3, np.int32)))
        mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(faces.astype(np.int32).ravel()))
        mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
        mesh.CreateDoubleSidedAttr(False)
        lo, hi = vertices.min(0), vertices.max(0)
        mesh.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(*map(float, lo)), Gf.Vec3f(*map(float, hi))]))
        if normals is not None:
            mesh.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(normals.astype(np.float32)))
            mesh.SetNormalsInterpolation(UsdGeom.Tokens.vertex)
        if uvs is not None:
            pv = UsdGeom.PrimvarsAPI(mesh).CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray,
                                                         UsdGeom.Tokens.vertex)
            pv.Set(Vt.Vec2fArray.FromNumpy(uvs.astype(np.float32)))
        mat = UsdShade.Material.Define(stage, f"/{name}/material")
        shader = UsdShade.Shader.Define(stage, f"/{name}/material/surface")
        shader.CreateIdAttr("UsdPreviewSurface")
        shader.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(0.9)
        shader.CreateInput("metallic", Sdf.ValueTypeNames.Float).Set(0.0)
        mat.CreateSurfaceOutput().ConnectToSource(shader.ConnectableAPI(), "surface")
        if texture_png is not None and uvs is not None:
            tex_name = Path(texture_png).name
            shutil.copy(texture_png, work / tex_name)
            reader = UsdShade.Shader.Define(stage, f"/{name}/material/st_reader")
            reader.CreateIdAttr("UsdPrimvarReader_float2")
            reader.CreateInput("varname", Sdf.ValueTypeNames.String).Set("st")
            tex = UsdShade.Shader.Define(stage, f"/{name}/material/diffuse_texture")
            tex.CreateIdAttr("UsdUVTexture")
            tex.CreateInput("file", Sdf.ValueTypeNames.Asset).Set(f"./{tex_name}")
            tex.CreateInput("sourceColorSpace", Sdf.ValueTypeNames.Token).Set("sRGB")
            tex.CreateInput("st", Sdf.ValueTypeNames.Float2).ConnectToSource(reader.ConnectableAPI(), "result")
            tex.CreateOutput("rgb", Sdf.ValueTypeNames.Float3)
            shader.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).ConnectToSource(tex.ConnectableAPI(), "rgb")
        elif colors is not None:
            srgb = np.asarray(colors, np.float32)[:, :3] / 255.0
            linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)  # displayColor is linear
            mesh.CreateDisplayColorPrimvar(UsdGeom.Tokens.vertex).Set(
                Vt.Vec3fArray.FromNumpy(linear.astype(np.float32)))
            reader = UsdShade.Shader.Define(stage, f"/{name}/material/color_reader")
            reader.CreateIdAttr("UsdPrimvarReader_float3")
            reader.CreateInput("varname", Sdf.ValueTypeNames.String).Set("displayColor")
            reader.CreateOutput("result", Sdf.ValueTypeNames.Float3)
            shader.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).ConnectToSource(
                reader.ConnectableAPI(), "result")
        else:
            shader.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).Set(Gf.Vec3f(0.7, 0.7, 0.7))
        UsdShade.MaterialBindingAPI.Apply(mesh.GetPrim()).Bind(mat)
        stage.GetRootLayer().Save()
        del stage
        if path.suffix == ".usdz":
            tmp_out = work / path.name
            if not UsdUtils.CreateNewARKitUsdzPackage(Sdf.AssetPath(str(layer_path)), str(tmp_out)):
                raise OSError("USDZ packaging failed")
            shutil.move(str(tmp_out), path)
        else:
            if texture_png is not None and uvs is not None:
                written.append(path.parent / tex_name)
                shutil.copy(work / tex_name, written[-1])
            shutil.move(str(layer_path), path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return written


def validate_usd(path: Path) -> list[str]:
    """Errors reported by pxr's UsdValidation validators (all registered ones)."""
    from pxr import Usd, UsdValidation

    stage = Usd.Stage.Open(str(path))
    registry = UsdValidation.ValidationRegistry()
    validators = registry.GetOrLoadAllValidators()
    ctx = UsdValidation.ValidationContext(validators)
    errors = ctx.Validate(stage)
    return [e.GetMessage() for e in errors if e.GetType() == UsdValidation.ValidationErrorType.Error]
