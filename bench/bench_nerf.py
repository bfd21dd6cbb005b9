"""NeRF benchmark: held-out PSNR, training time and peak memory of the radiance field, beside the splat's.

Sections (CPU, 2 threads unless --threads):
  lego   NeRF lego at 200x200 (../shared/data), every 8th view held out, white background, the bounded
         scene [-1.5, 1.5]^3 (the NeRF-synthetic convention); target >= 30 dB in <= 10 min on 2 cores.
         With --splat, bench_splat's lego run on the same views in the same process.
  synth  the synthetic orbit of bench_splat (24 frames, 320x240, GT cameras), unbounded; target >= 30 dB.
  fox    ../shared/data/fox (transforms.json), unbounded, every 8th view held out; reported.

The machine is shared: the load average is recorded beside each time. Writes
bench/results/nerf-<date>.md and .json. Usage:
  python bench/bench_nerf.py [--sections lego,synth,fox] [--iters N] [--splat] [--tag TAG]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
SHARED = Path(os.environ.get("VID2MODEL_SHARED", HERE.parents[1] / "shared"))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(views, spec, opts, depths=None) -> dict:
    from vid2model.nerf.train import train
    from vid2model.splat.train import split_views

    tr, te = split_views(len(views), 8)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = train(views, tr, te, spec, opts, depths=depths)
    return {"eval_psnr": res.eval_psnr, "train_psnr": res.train_psnr, "train_s": res.seconds,
            "total_s": time.perf_counter() - t0, "iterations": res.iterations, "grid": res.field.R,
            "rows": res.rows, "train_views": len(tr), "eval_views": len(te), "load_start": load0,
            "load_end": os.getloadavg()[0], "peak_rss_mb": _peak_mb(), "depth_weight": opts.depth_weight,
            "spread_weight": opts.spread_weight,
            "resolution": [views[0].camera.width, views[0].camera.height]}


def bench_lego(opts) -> dict | None:
    from vid2model.nerf.scene import scene_spec
    from vid2model.splat.scenes import views_from_nerf_synthetic

    folder = SHARED / "data" / "nerf_synthetic_lego"
    if not folder.exists():
        return None
    views = views_from_nerf_synthetic(folder, 200)
    spec = scene_spec(views, None, contract=False, sh_degree=opts.sh_degree, background=(1.0, 1.0, 1.0),
                      center=(0.0, 0.0, 0.0), half=1.5)
    return _run(views, spec, opts.__class__(**{**opts.__dict__, "exposure": False}))


def _mesh_depths(views, mesh_path: Path) -> list:
    """Each view's z-depth [H, W] of the mesh (0 where a ray misses): the depth prior's measurements."""
    import open3d as o3d
    import trimesh

    mesh = trimesh.load(mesh_path, process=False)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)),
                        o3d.core.Tensor(np.asarray(mesh.faces, np.uint32)))
    out = []
    for v in views:
        c = v.camera
        rays = c.pixel_rays().reshape(-1, 3) @ c.world_to_cam[:3, :3]  # world directions, camera z = 1
        n = np.linalg.norm(rays, axis=1, keepdims=True)
        ro = np.concatenate([np.broadcast_to(c.center, rays.shape), rays / n], 1).astype(np.float32)
        t = scene.cast_rays(o3d.core.Tensor(ro))["t_hit"].numpy()
        out.append(np.where(np.isfinite(t), t / n[:, 0], 0).astype(np.float32).reshape(c.height, c.width))
    return out


def bench_synth(opts, shell: float = 1.0) -> dict:
    import bench_splat
    from vid2model.nerf.scene import scene_spec

    views, pts, _ = bench_splat._synth(bench_splat.WORK / "splat_synth", 320, 240, 24, 50_000)
    # the depth prior (when on) measures the exact surface, as the splat starts from exact surface points
    depths = _mesh_depths(views, bench_splat.WORK / "splat_synth" / "scene.ply") if opts.depth_weight > 0 else None
    return _run(views, scene_spec(views, pts, contract=True, sh_degree=opts.sh_degree, shell=shell), opts, depths)


def bench_fox(opts, max_side: int = 400, shell: float = 1.0) -> dict | None:
    from vid2model.camera import Camera
    from vid2model.nerf.scene import scene_spec
    from vid2model.splat.scenes import _read_rgb, working_size
    from vid2model.splat.train import TrainView

    folder = SHARED / "data" / "fox"
    if not (folder / "transforms.json").exists():
        return None
    meta = json.loads((folder / "transforms.json").read_text())
    W, H = int(meta["w"]), int(meta["h"])
    w, h = working_size(W, H, max_side)
    s = w / W
    K = np.array([[meta["fl_x"] * s, 0, meta["cx"] * s], [0, meta["fl_y"] * s, meta["cy"] * s], [0, 0, 1.0]])
    flip = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenGL camera axes -> OpenCV
    views = []
    for fr in sorted(meta["frames"], key=lambda f: f["file_path"]):
        p = folder / fr["file_path"]
        c2w = np.asarray(fr["transform_matrix"], np.float64) @ flip
        views.append(TrainView(name=p.name, camera=Camera.from_cam_to_world(K, c2w, w, h),
                               load=lambda p=p: _read_rgb(p, (w, h))))
    # the fox's lens distortion (k1, k2) is not undone here: a small loss of sharpness at the edges
    # no points come with the set: the cube round what the cameras look at, as the stage's rule without points
    return _run(views, scene_spec(views, None, contract=True, sh_degree=opts.sh_degree, shell=shell), opts)


def main() -> None:
    from vid2model.nerf.train import NerfOptions
    from vid2model.progress import set_quiet

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", default="lego")
    ap.add_argument("--iters", type=int, default=NerfOptions.iterations)
    ap.add_argument("--resolutions", default=",".join(map(str, NerfOptions.resolutions)))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--depth-weight", type=float, default=0.0, help="depth prior (synth: the exact surface's depth)")
    ap.add_argument("--spread-weight", type=float, default=NerfOptions.spread_weight,
                    help="compactness prior (NerfOptions.spread_weight)")
    ap.add_argument("--shell", type=float, default=1.0,
                    help="unbounded scenes: the contracted shell's width (FieldSpec.shell; the cube keeps its voxel)")
    ap.add_argument("--splat", action="store_true", help="also bench_splat's lego on the same views")
    ap.add_argument("--splat-iters", type=int, default=3000)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    set_quiet(not sys.stderr.isatty())
    opts = NerfOptions(iterations=args.iters, threads=args.threads, depth_weight=args.depth_weight,
                       spread_weight=args.spread_weight,
                       resolutions=tuple(int(x) for x in args.resolutions.split(",")))
    from vid2model.nerf import kernels

    res: dict = {"backend": "cpp" if kernels.load() is not None else "torch", "threads": args.threads,
                 "options": {k: list(v) if isinstance(v, tuple) else v for k, v in opts.__dict__.items()},
                 "cpus": os.cpu_count(), "shell": args.shell}
    stamp = datetime.date.today().isoformat() + (f"-{args.tag}" if args.tag else "")
    out = HERE / "results" / f"nerf-{stamp}"
    for name, fn in (("lego", bench_lego), ("synth", bench_synth), ("fox", bench_fox)):
        if name in args.sections.split(","):
            r = fn(opts) if name == "lego" else fn(opts, shell=args.shell)
            res[name] = r
            out.with_suffix(".json").write_text(json.dumps(res, indent=2, default=str))  # kept if stopped later
            if r:
                print(f"{name}: held-out PSNR {r['eval_psnr']:.2f} dB, train {r['train_s']:.0f} s, peak RSS "
                      f"{r['peak_rss_mb']:.0f} MB, load {r['load_start']:.1f}-{r['load_end']:.1f}", flush=True)
    if args.splat and "lego" in args.sections.split(","):
        import bench_splat

        bench_splat.THREADS = args.threads
        load0 = os.getloadavg()[0]
        r = bench_splat.bench_lego(args.splat_iters)
        if r:
            r.update(load_start=load0, load_end=os.getloadavg()[0])
        res["splat_lego"] = r
        if r:
            print(f"splat lego: held-out PSNR {r['eval_psnr']:.2f} dB, {r['seconds']:.0f} s", flush=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=2, default=str))
    out.with_suffix(".md").write_text(markdown(res))
    print(f"wrote {out}.json and .md")


def markdown(res: dict) -> str:
    """The results table (the .md beside the .json)."""
    rows = ["| scene | method | held-out PSNR (dB) | training (s) | peak RSS (MB) | load avg (start-end) | notes |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    targets = {"lego": ">= 30 dB in <= 600 s", "synth": ">= 30 dB", "fox": "reported"}
    for name in ("lego", "synth", "fox"):
        r = res.get(name)
        if r:
            rows.append(f"| {name} {r['resolution'][0]}x{r['resolution'][1]} | NeRF (grid {r['grid']}^3, {r['rows']} rows, "
                        f"{r['iterations']} its) | {r['eval_psnr']:.2f} | {r['train_s']:.0f} | {r['peak_rss_mb']:.0f} | "
                        f"{r['load_start']:.1f}-{r['load_end']:.1f} | target {targets[name]}; {r['eval_views']} held out"
                        + (f"; depth prior {r['depth_weight']:g}" if r.get("depth_weight") else "") + " |")
    r = res.get("splat_lego")
    if r:
        rows.append(f"| lego 200x200 | splat ({r['gaussians']} splats, {r['iterations']} its) | {r['eval_psnr']:.2f} | "
                    f"{r['seconds']:.0f} | (process peak above) | {r.get('load_start', 0):.1f}-{r.get('load_end', 0):.1f} | "
                    f"same views, same process |")
    return ("# NeRF benchmark\n\n" + f"Backend {res['backend']}, {res['threads']} threads on {res['cpus']} cores; "
            "the machine was shared (load averages beside each time: wall times are inflated).\n\n" +
            "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
