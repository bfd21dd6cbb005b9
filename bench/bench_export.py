"""Export time, size and peak memory per format on a ~200k-triangle textured mesh, beside trimesh's exporters.

Builds (once, cached under bench/work/export_ws/) a textured workspace laid out as the texture stage
writes it: a wavy height field of 199,712 triangles cut into 8x8 UV charts (seams duplicate vertices,
like an atlas) and a 2048x2048 noisy PNG atlas. Then measures, in one process:

* ``load``           -- reading texture/model.obj (trimesh) + seam-aware normals (shared by all formats),
* one row per format -- vid2model's writer (GLB, glTF, OBJ, USDZ, USD, FBX, PLY),
* peers              -- trimesh's GLB / OBJ / PLY exporters on the same mesh (no Python peer writes FBX/USDZ),
* ``stage``          -- the whole export stage for glb,usdz,fbx,obj (target: < 60 s on 2 cores),
* checks             -- Khronos validator errors on the GLB (when tools/node_modules is installed) and
  ufbx (strict) triangle count on the FBX (when ufbx is installed).

Peak memory is the process's RSS high-water mark after each step (ru_maxrss: monotone, so read it as
"peak so far"). Prints a table and writes bench/work/bench_export.json.

Usage: python bench/bench_export.py [--quick]   (--quick: 50k triangles)
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build_workspace(root: Path, n: int, tiles: int = 8, tex_size: int = 2048):
    """A textured height field with 2*(n-1)^2 triangles in ``tiles`` x ``tiles`` UV charts."""
    from PIL import Image

    from vid2model.workspace import Workspace

    ws = Workspace(root)
    if ws.textured_obj.exists():
        return ws
    ws.texture_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    img = (rng.random((tex_size // 8, tex_size // 8, 3)) * 255).astype(np.uint8)
    img = np.asarray(Image.fromarray(img).resize((tex_size, tex_size), Image.BICUBIC))
    img = np.clip(img.astype(int) + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(ws.texture_dir / "texture.png")
    (ws.texture_dir / "model.mtl").write_text("newmtl material_0\nKd 1 1 1\nmap_Kd texture.png\n")
    V_all, T_all, F_all, base = [], [], [], 0
    cells = (n - 1) // tiles
    for ty in range(tiles):
        for tx in range(tiles):
            i0, j0 = tx * cells, ty * cells
            ii, jj = np.meshgrid(np.arange(i0, i0 + cells + 1), np.arange(j0, j0 + cells + 1))
            x, y = ii / (n - 1) - 0.5, jj / (n - 1) - 0.5
            z = 0.05 * np.sin(12 * x) * np.cos(9 * y) + 0.1
            V_all.append(np.stack([x, y, z], -1).reshape(-1, 3))
            T_all.append((np.stack([ii - i0, jj - j0], -1).reshape(-1, 2) / cells * 0.96 + 0.02
                          + np.array([tx, ty])) / tiles)
            k = cells + 1
            a = (np.arange(cells)[None, :] + k * np.arange(cells)[:, None]).ravel() + base
            F_all.append(np.concatenate([np.stack([a, a + 1, a + k + 1], 1), np.stack([a, a + k + 1, a + k], 1)]))
            base += k * k
    V, T, F = np.concatenate(V_all), np.concatenate(T_all), np.concatenate(F_all) + 1
    with open(ws.textured_obj, "w") as f:
        f.write("mtllib model.mtl\no model\n")
        np.savetxt(f, V, fmt="v %.6f %.6f %.6f")
        np.savetxt(f, T, fmt="vt %.6f %.6f")
        f.write("usemtl material_0\n")
        np.savetxt(f, np.repeat(F, 2, axis=1), fmt="f %d/%d %d/%d %d/%d")
    ws.sfm_dir.mkdir(parents=True, exist_ok=True)
    ws.write_json(ws.scene_json, {"up": [0, 0, 1], "scale": "metric", "metres_per_unit": 1.0,
                                  "center": [0, 0, 0.1], "radius": 0.75, "capture": "orbit"})
    return ws


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    import trimesh

    from vid2model.config import ExportConfig
    from vid2model.stages import export as E

    n = 159 if args.quick else 317  # 2*(n-1)^2 triangles in 8x8 charts: 49,928 or 199,712
    ws = build_workspace(WORK / f"export_ws_{n}", n)
    rows: dict[str, dict] = {}
    out = ws.root / "bench_out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()

    t = time.perf_counter()
    data = E.load_mesh(ws)
    normals = E.smooth_normals(data.vertices, data.faces)
    rows["load"] = {"s": time.perf_counter() - t, "peak_mb": _peak_mb()}
    y_up = E.MeshData(data.vertices @ E.Z_UP_TO_Y_UP.T, data.faces, data.uvs, data.texture, data.colors)
    n_y = normals @ E.Z_UP_TO_Y_UP.T
    for fmt in ("glb", "gltf", "obj", "usdz", "usd", "fbx", "ply"):
        path = out / f"model.{fmt}"
        if fmt == "ply":
            s = _timed(lambda: E._write_ply(path, data, normals, 1.0))
        else:
            s = _timed(lambda: E._write_mesh(fmt, path, y_up, n_y, "model"))
        size = path.stat().st_size + (path.with_suffix(".bin").stat().st_size if fmt == "gltf" else 0)
        rows[fmt] = {"s": s, "bytes": size, "peak_mb": _peak_mb()}

    tm = trimesh.load(ws.textured_obj, process=False, force="mesh")
    peer = out / "peer"
    peer.mkdir()
    rows["trimesh_glb"] = {"s": _timed(lambda: (peer / "m.glb").write_bytes(trimesh.exchange.gltf.export_glb(tm)))}
    rows["trimesh_obj"] = {"s": _timed(lambda: tm.export(peer / "m.obj"))}
    rows["trimesh_ply"] = {"s": _timed(lambda: tm.export(peer / "m.ply"))}
    for k, name in (("trimesh_glb", "m.glb"), ("trimesh_obj", "m.obj"), ("trimesh_ply", "m.ply")):
        rows[k].update(bytes=(peer / name).stat().st_size, peak_mb=_peak_mb())

    stage_fmts = ("glb", "usdz", "fbx", "obj")
    s = _timed(lambda: E.run(ws, ExportConfig(formats=stage_fmts)))
    rows["stage(glb,usdz,fbx,obj)"] = {"s": s, "peak_mb": _peak_mb()}

    checks: dict[str, object] = {"triangles": int(len(data.faces))}
    validator = REPO / "tools" / "validate_gltf.js"
    if shutil.which("node") and (REPO / "tools" / "node_modules" / "gltf-validator").exists():
        rep = json.loads(subprocess.run(["node", str(validator), str(out / "model.glb")], capture_output=True,
                                        text=True, check=True).stdout)
        checks["gltf_validator_errors"] = rep["issues"]["numErrors"]
        checks["gltf_validator_warnings"] = rep["issues"]["numWarnings"]
    try:
        import ufbx

        scene = ufbx.load_file(str(out / "model.fbx"), strict=True)
        checks["ufbx_triangles"] = int(scene.meshes[0].num_triangles)
    except ImportError:
        pass

    print(f"export bench: {checks['triangles']:,} triangles, 2048^2 PNG atlas ({data.texture.stat().st_size:,} B)")
    print(f"{'step':26s} {'time s':>8s} {'size MB':>9s} {'peak RSS MB':>12s}")
    for k, r in rows.items():
        size = f"{r['bytes'] / 1e6:9.2f}" if "bytes" in r else " " * 9
        print(f"{k:26s} {r['s']:8.2f} {size} {r['peak_mb']:12.0f}")
    for ours, theirs in (("glb", "trimesh_glb"), ("obj", "trimesh_obj"), ("ply", "trimesh_ply")):
        print(f"{ours}: {rows[theirs]['s'] / rows[ours]['s']:.2f}x trimesh's speed")
    print("checks:", checks)
    result = {"rows": rows, "checks": checks, "quick": args.quick}
    (WORK / "bench_export.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
