"""Texture quality on a synthetic orbit: the textured mesh rendered at held-out ground-truth poses.

    python bench/bench_texture.py --work DIR [--presets fast,default] [--reuse] [--views 8]

For a finished workspace (ingest, sfm, dense, mesh, texture) of a synthetic capture, the textured
OBJ is moved into the ground-truth frame (similarity fitted on the keyframe camera centres, as the
other synthetic benchmarks do) and rendered at GT camera poses of frames that were *not* keyframes.
The references are the scene rendered at the same poses with its exact appearance (no codec, no
blur). PSNR and SSIM are computed on the object pixels: pixels whose GT depth hits a non-ground
primitive and that the render covers; ``coverage`` is the share of those object pixels the render
covers. The same figures are also given for every covered GT surface pixel within two scene radii
(object plus the floor around it, ``region``), and for the object pixels where the rendered depth is
within 1 % of the scene size of the GT depth (``object_on_surface``: the texture alone, geometry errors
left out).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SYNTH_ORBIT = dict(path="orbit", width=640, height=480, n_frames=48, seed=11)  # as SYNTH in bench/run.py


def _ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM map (H, W) of two greyscale float images in [0, 255] (Gaussian window sigma 1.5, 11 x 11)."""
    import cv2

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    saa = blur(a * a) - mu_a ** 2
    sbb = blur(b * b) - mu_b ** 2
    sab = blur(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))


def _grey(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def image_figures(render: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """PSNR (dB, RGB over the mask) and SSIM (greyscale, mean of the map over the eroded mask)."""
    import cv2

    if mask.sum() == 0:
        return {"psnr": float("nan"), "ssim": float("nan"), "pixels": 0}
    d = render.astype(np.float64)[mask] - ref.astype(np.float64)[mask]
    mse = float(np.mean(d ** 2))
    psnr = 10 * np.log10(255.0 ** 2 / max(mse, 1e-10))
    # the SSIM window must not straddle the mask border (the render is black outside its coverage)
    inner = cv2.erode(mask.astype(np.uint8), np.ones((11, 11), np.uint8)).astype(bool)
    use = inner if inner.sum() >= 0.25 * mask.sum() else mask
    ssim = float(_ssim_map(_grey(render), _grey(ref))[use].mean())
    return {"psnr": float(psnr), "ssim": ssim, "pixels": int(mask.sum()), "mse": mse}


def held_out_frames(ws, gt: dict[str, Any], n_views: int) -> list[int]:
    """GT frame indices that were not keyframes (nor registered views), ``n_views`` spread evenly."""
    from vid2model.io.colmap import load_views
    from vid2model.synth.evaluate import frame_index

    used = {frame_index(v.name) for v in load_views(ws.sparse_dir)}
    kf = ws.read_json(ws.keyframes_json, default={}) or {}
    used |= {int(k["index"]) if "index" in k else frame_index(k["name"]) for k in kf.get("keyframes", [])}
    free = [i for i in sorted(gt["c2w"]) if i not in used]
    if len(free) <= n_views:
        return free
    pick = np.linspace(0, len(free) - 1, n_views).round().astype(int)
    return [free[i] for i in np.unique(pick)]


def texture_figures(ws, src_dir: str | Path, n_views: int = 8, save_dir: str | Path | None = None) -> dict[str, Any]:
    """PSNR / SSIM / coverage of the textured mesh against GT renders at held-out poses.

    Args:
        ws: a finished :class:`vid2model.workspace.Workspace` of a synthetic capture.
        src_dir: the generator's folder (``gt.json``; the scene comes from its path/seed/marker).
        n_views: how many held-out frames to render.
        save_dir: when given, writes ``<frame>_render.png`` / ``_gt.png`` / ``_mask.png`` (object pixels) /
            ``_err.png`` (4 x the largest channel error) / ``_offsurface.png`` (mesh > 1 % off the GT) there.

    Returns:
        {"views": [...per frame...], "object": {psnr, ssim, coverage}, "region": {...}, ...}; the
        aggregate PSNR pools the squared errors of all views (not a mean of per-view dB).
    """
    from vid2model.ops.raster import RenderMesh, load_render_mesh, rasterize, sample_texture
    from vid2model.synth.evaluate import load_gt, to_gt_frame
    from vid2model.synth.generate import render_depth, render_views, scene_of_gt
    from vid2model.synth.mesh import nearest_surface
    from vid2model.synth.render import primitives

    src_dir = Path(src_dir)
    gt = load_gt(src_dir / "gt.json")
    if not ws.textured_obj.exists():
        raise FileNotFoundError(f"no textured mesh in {ws.root} (run the texture stage)")
    scene = scene_of_gt(gt)
    W, H, K = int(gt["width"]), int(gt["height"]), gt["K"]
    s, R, t = to_gt_frame(ws, gt)
    m = load_render_mesh(ws.textured_obj)
    mesh_gt = RenderMesh((s * (R @ m.vertices.T)).T + t, m.faces, uv=m.uv, texture=m.texture, colors=m.colors)
    frames = held_out_frames(ws, gt, n_views)
    if not frames:
        raise ValueError("every GT frame was a keyframe: nothing held out")
    c2w = np.array([gt["c2w"][i] for i in frames])
    refs = render_views(scene, K, W, H, c2w)
    depths = render_depth(scene, K, W, H, c2w)
    ground = {k for k, (kind, _) in enumerate(primitives(scene)) if kind == "ground"}
    c = np.asarray(gt["scene_center"], float)
    r_scene = float(gt["scene_radius"])
    ys, xs = np.mgrid[0:H, 0:W]
    rays = np.stack([(xs + 0.5 - K[0, 2]) / K[0, 0], (ys + 0.5 - K[1, 2]) / K[1, 1], np.ones((H, W))], -1)
    per_view, acc = [], {k: [0.0, 0, 0, 0, []] for k in ("object", "region", "object_on_surface")}
    for k, i in enumerate(frames):
        r = rasterize(mesh_gt.vertices, mesh_gt.faces, K, np.linalg.inv(c2w[k]), W, H)
        img = np.zeros((H, W, 3), np.float32)
        rows, cols = np.nonzero(r.mask)
        if len(rows):
            f = mesh_gt.faces[r.face[rows, cols]]
            b = r.bary[rows, cols][:, :, None]
            if mesh_gt.texture is not None:
                img[rows, cols] = sample_texture(mesh_gt.texture, (mesh_gt.uv[f] * b).sum(1))[:, :3]
            elif mesh_gt.colors is not None:
                img[rows, cols] = (mesh_gt.colors[f].astype(np.float32) * b).sum(1)
        render = np.clip(img + 0.5, 0, 255).astype(np.uint8)
        d = depths[k]
        on = np.isfinite(d)
        X = (rays * np.where(on, d, 0)[..., None]).reshape(-1, 3) @ c2w[k][:3, :3].T + c2w[k][:3, 3]
        pid = np.full(H * W, -1)
        pid[on.ravel()] = nearest_surface(scene, X[on.ravel()])[0]
        obj = on & ~np.isin(pid, list(ground)).reshape(H, W)
        region = on & (np.linalg.norm(X - c, axis=1) <= 2 * r_scene).reshape(H, W)
        covered = r.mask
        # the render must show the same surface: its depth within 5 % of the scene size of the GT depth
        agree = covered & (np.abs(np.where(covered, r.depth, 0) - np.where(on, d, 0)) <= 0.05 * 2 * r_scene)
        # texture alone: object pixels where the mesh is within 1 % of the scene size of the GT surface
        exact = covered & (np.abs(np.where(covered, r.depth, 0) - np.where(on, d, 0)) <= 0.01 * 2 * r_scene)
        row = {"frame": int(i)}
        for name, sel, base in (("object", obj, obj), ("region", region, region),
                                ("object_on_surface", obj & exact, obj)):
            fig = image_figures(render, refs[k], sel & covered)
            fig["coverage"] = float((sel & covered).sum() / max(base.sum(), 1))
            fig["depth_agree"] = float((sel & agree).sum() / max((sel & covered).sum(), 1))
            row[name] = {kk: round(v, 4) if isinstance(v, float) else v for kk, v in fig.items()}
            a = acc[name]
            a[0] += fig.get("mse", 0.0) * fig["pixels"]
            a[1] += fig["pixels"]
            a[2] += int((sel & covered).sum())
            a[3] += int(base.sum())
            if np.isfinite(fig["ssim"]):
                a[4].append(fig["ssim"])
        per_view.append(row)
        if save_dir is not None:
            from PIL import Image

            out = Path(save_dir)
            out.mkdir(parents=True, exist_ok=True)
            Image.fromarray(render).save(out / f"{i:04d}_render.png")
            Image.fromarray(refs[k]).save(out / f"{i:04d}_gt.png")
            Image.fromarray(((obj & covered) * 255).astype(np.uint8)).save(out / f"{i:04d}_mask.png")
            # where the error is: |render - GT| x 4 on the object, and the pixels whose geometry is off (> 1 %)
            err = np.abs(render.astype(np.int16) - refs[k].astype(np.int16)).max(-1) * (obj & covered)
            Image.fromarray(np.clip(err * 4, 0, 255).astype(np.uint8)).save(out / f"{i:04d}_err.png")
            Image.fromarray(((obj & covered & ~exact) * 255).astype(np.uint8)).save(out / f"{i:04d}_offsurface.png")
    res: dict[str, Any] = {"frames": frames, "views": per_view, "similarity_scale": float(s)}
    for name, (se, n, cov, tot, ss) in acc.items():
        res[name] = {"psnr": round(float(10 * np.log10(255.0 ** 2 / max(se / max(n, 1), 1e-10))), 3),
                     "ssim": round(float(np.mean(ss)), 4) if ss else float("nan"),
                     "coverage": round(cov / max(tot, 1), 4), "pixels": int(n)}
    return res


def run_preset(work: Path, src: Path, preset: str, reuse: bool, overrides: list[str],
               from_stage: str = "texture") -> dict[str, Any]:
    from vid2model.config import build_config
    from vid2model.pipeline import run_pipeline
    from vid2model.workspace import Workspace

    ws = Workspace(work / f"synth_orbit_{preset}")
    cfg = build_config(preset, sets=overrides) if overrides else build_config(preset)
    t0 = time.perf_counter()
    if reuse and ws.textured_obj.exists():
        # rerun from the texture stage (e.g. after changing it) on the existing reconstruction
        run_pipeline(ws, cfg, skip=("splat",), from_stage=from_stage)
    elif reuse and ws.input_path.exists():
        run_pipeline(ws, cfg, skip=("splat",))  # finish an interrupted run
    else:
        shutil.rmtree(ws.root, ignore_errors=True)
        run_pipeline(ws, cfg, input_path=src / "video.mp4", skip=("splat",))
    wall = time.perf_counter() - t0
    manifest = json.loads(ws.manifest_path.read_text())["stages"]
    tex = manifest.get("texture", {})
    figs = texture_figures(ws, src, save_dir=work / f"renders_{preset}")
    figs.update({"preset": preset, "pipeline_wall_s": round(wall, 1), "texture_wall_s": tex.get("wall_s"),
                 "texture_summary": tex.get("summary"), "mesh_faces": (manifest.get("mesh", {}).get("summary") or {}
                                                                       ).get("faces")})
    return figs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="folder for the capture and the workspaces")
    ap.add_argument("--presets", default="fast,default")
    ap.add_argument("--reuse", action="store_true", help="keep existing workspaces, rerun from --from-stage")
    ap.add_argument("--from-stage", default="texture", help="with --reuse: rerun this stage and those after it")
    ap.add_argument("--set", action="append", default=[], help="config override, e.g. texture.size=4096")
    args = ap.parse_args(argv)
    from vid2model.progress import set_quiet
    from vid2model.synth import SynthConfig, generate

    set_quiet(True)
    work = args.work.resolve()
    src = work / "synth_orbit_input"
    if not (src / "video.mp4").exists():
        generate(src, SynthConfig(**SYNTH_ORBIT))
    results = {}
    for preset in [p for p in args.presets.split(",") if p]:
        r = run_preset(work, src, preset, args.reuse, args.set, args.from_stage)
        results[preset] = r
        print(f"[{preset}] object: PSNR {r['object']['psnr']:.2f} dB  SSIM {r['object']['ssim']:.3f}  "
              f"coverage {r['object']['coverage']:.3f} | region (object + floor <= 2 radii): PSNR "
              f"{r['region']['psnr']:.2f} dB  SSIM {r['region']['ssim']:.3f}  coverage {r['region']['coverage']:.3f} | "
              f"object where the mesh is within 1 % of the GT surface: PSNR {r['object_on_surface']['psnr']:.2f} dB "
              f"SSIM {r['object_on_surface']['ssim']:.3f} ({r['object_on_surface']['coverage']:.3f} of object pixels) | "
              f"texture stage {r['texture_wall_s']} s, pipeline {r['pipeline_wall_s']} s, held-out frames {r['frames']}",
              flush=True)
    (work / "texture_figures.json").write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    sys.exit(main())
