"""One entry point for the benchmark: the pipeline on synthetic scenes (exact GT) and on the real sets in
../shared/data (GT cameras), with Debian's `colmap` CLI as a peer for camera solving on fox.

    python bench/run.py                       # everything present, fast preset
    python bench/run.py --datasets synth_orbit,fox --preset default

Writes bench/results/<date>.json and bench/results/<date>.md (and bench/results/latest.md).
Every figure is computed in this run; nothing is copied.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402

from vid2model.config import build_config  # noqa: E402
from vid2model.errors import UserError  # noqa: E402
from vid2model.io.colmap import load_views  # noqa: E402
from vid2model.ops.similarity import pose_errors  # noqa: E402
from vid2model.pipeline import run_pipeline  # noqa: E402
from vid2model.progress import set_quiet  # noqa: E402
from vid2model.workspace import Workspace  # noqa: E402

WORK = Path(__file__).resolve().parent / "work"
RESULTS = Path(__file__).resolve().parent / "results"
SYNTH = {"synth_orbit": dict(path="orbit", width=640, height=480, n_frames=48, seed=11),
         "synth_walk": dict(path="walk", width=640, height=480, n_frames=48, seed=12)}


def _stage_figures(ws: Workspace) -> dict:
    m = json.loads(ws.manifest_path.read_text())
    return {k: {"wall_s": v.get("wall_s"), "cpu_s": v.get("cpu_s"), "peak_mem_mb": v.get("peak_mem_mb")}
            for k, v in m["stages"].items() if v.get("status") == "done"}


def _pose_figures(ws: Workspace, gt: dict[str, np.ndarray], n_inputs: int) -> dict:
    views = [v for v in load_views(ws.sparse_dir) if v.name in gt]
    est = np.array([v.cam_to_world for v in views])
    ref = np.array([gt[v.name] for v in views])
    out = {"registered": len(load_views(ws.sparse_dir)), "inputs": n_inputs}
    if len(views) >= 3:
        out.update({k: round(v, 5) for k, v in pose_errors(est, ref).items()})
    m = json.loads(ws.manifest_path.read_text())["stages"]["sfm"]["summary"]
    out["reproj_px"] = m.get("mean_reproj_error_px")
    return out


def run_synth(name: str, preset: str, skip: tuple[str, ...]) -> dict:
    from vid2model.synth import SynthConfig, generate
    from vid2model.synth.evaluate import camera_errors, load_gt, surface_fscore
    from vid2model.io.colmap_dense import read_points_ply

    src = WORK / f"{name}_input"
    if not (src / "video.mp4").exists():
        generate(src, SynthConfig(**SYNTH[name]))
    ws = Workspace(WORK / f"{name}_{preset}")
    shutil.rmtree(ws.root, ignore_errors=True)
    t0 = time.perf_counter()
    run_pipeline(ws, build_config(preset), input_path=src / "video.mp4", skip=skip)
    gt = load_gt(src / "gt.json")
    import trimesh

    scene_mesh = trimesh.load(src / "scene.ply", process=False)
    res = {"total_wall_s": round(time.perf_counter() - t0, 1), "stages": _stage_figures(ws),
           "cameras": {k: (round(v, 5) if isinstance(v, float) else v) for k, v in camera_errors(ws, gt).items()}}
    if ws.fused_ply.exists():
        pts = read_points_ply(ws.fused_ply)["xyz"]
        res["dense"] = surface_fscore(pts, ws, gt, scene_mesh.vertices, scene_mesh.faces)
    if ws.clean_mesh.exists():
        from vid2model.ops.metrics import sample_surface

        m = trimesh.load(ws.clean_mesh, process=False)
        res["mesh"] = surface_fscore(sample_surface(m.vertices, m.faces, 200_000), ws, gt, scene_mesh.vertices,
                                     scene_mesh.faces)
    if ws.export_dir.exists():
        res["exports_bytes"] = {p.name: p.stat().st_size for p in sorted(ws.export_dir.glob("model.*"))}
    return res


def run_real(name: str, preset: str, stages: list[str]) -> dict:
    images, gt = datasets.REAL[name]()
    ws = Workspace(WORK / f"{name}_{preset}")
    shutil.rmtree(ws.root, ignore_errors=True)
    t0 = time.perf_counter()
    run_pipeline(ws, build_config(preset, sets=["ingest.max_side=1280", "ingest.max_keyframes=400"]), input_path=images, stages=stages)
    n = len([p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".png", ".jpeg")])
    return {"total_wall_s": round(time.perf_counter() - t0, 1), "stages": _stage_figures(ws),
            "cameras": _pose_figures(ws, gt, n)}


def run_colmap_peer(images: Path, ours_ws: Workspace) -> dict | None:
    """Debian's colmap CLI (CPU SIFT, exhaustive matching, incremental mapper) on the same keyframes."""
    exe = shutil.which("colmap")
    if exe is None:
        return {"skipped": "colmap CLI not installed (apt-get install colmap)"}
    work = WORK / "colmap_peer"
    shutil.rmtree(work, ignore_errors=True)
    (work / "sparse").mkdir(parents=True)
    db = work / "database.db"
    t0 = time.perf_counter()
    steps = [[exe, "feature_extractor", "--database_path", str(db), "--image_path", str(images),
              "--ImageReader.single_camera", "1", "--SiftExtraction.use_gpu", "0"],
             [exe, "exhaustive_matcher", "--database_path", str(db), "--SiftMatching.use_gpu", "0"],
             [exe, "mapper", "--database_path", str(db), "--image_path", str(images), "--output_path",
              str(work / "sparse")]]
    for cmd in steps:
        subprocess.run(cmd, check=True, capture_output=True, env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin"})
    wall = time.perf_counter() - t0
    import pycolmap

    models = [pycolmap.Reconstruction(str(p)) for p in sorted((work / "sparse").iterdir())]
    best = max(models, key=lambda r: r.num_reg_images()) if models else None
    return {"wall_s": round(wall, 1), "registered": best.num_reg_images() if best else 0,
            "reproj_px": round(best.compute_mean_reprojection_error(), 4) if best else None, "n_models": len(models)}


def markdown(results: dict) -> str:
    lines = [f"# vid2model benchmark {results['date']}", "", f"Command: `{results['command']}`  ",
             f"Machine: {results['machine']}", "",
             "| dataset | registered | rot med (deg) | centre med (% extent) | reproj (px) | dense F@1% | dense F@0.5% | "
             "mesh F@1% | total (s) | peak mem (MB) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["datasets"].items():
        if "error" in r:
            lines.append(f"| {name} | error: {r['error']} | | | | | | | | |")
            continue
        c = r.get("cameras", {})
        reg = f"{c.get('registered')}/{c.get('inputs', c.get('keyframes'))}"
        f = lambda k, th: (f"{r[k][f'at_{th}']['fscore']:.3f}" if k in r else "")  # noqa: E731
        peak = max((s.get("peak_mem_mb") or 0) for s in r["stages"].values()) if r.get("stages") else 0
        cm = c.get("center_median_rel")
        lines.append(f"| {name} | {reg} | {c.get('rot_median_deg', float('nan')):.3f} | "
                     f"{100 * cm if cm is not None else float('nan'):.3f} | {c.get('reproj_px') or ''} | "
                     f"{f('dense', 0.01)} | {f('dense', 0.005)} | {f('mesh', 0.01)} | {r['total_wall_s']} | {peak:.0f} |")
    peer = results.get("peer_colmap_fox")
    if peer:
        lines += ["", "## Camera solving vs Debian colmap CLI on fox (same keyframes, same machine, same run)", ""]
        if "skipped" in peer:
            lines.append(f"colmap: {peer['skipped']}")
        else:
            ours = results["datasets"]["fox"]
            sfm_s = ours["stages"]["sfm"]["wall_s"]
            lines += ["| tool | wall (s) | registered | reproj (px) |", "|---|---|---|---|",
                      f"| vid2model sfm | {sfm_s} | {ours['cameras']['registered']} | {ours['cameras']['reproj_px']} |",
                      f"| colmap CLI | {peer['wall_s']} | {peer['registered']} | {peer['reproj_px']} |", "",
                      f"Speed ratio colmap/vid2model: **{peer['wall_s'] / max(sfm_s, 1e-9):.1f}x**"]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=None, help="comma separated (default: all present)")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--real-stages", default="ingest,sfm", help="stages run on the real datasets")
    ap.add_argument("--no-peer", action="store_true")
    args = ap.parse_args()
    set_quiet(True)
    names = args.datasets.split(",") if args.datasets else list(SYNTH) + datasets.available()
    WORK.mkdir(parents=True, exist_ok=True)
    results = {"date": dt.date.today().isoformat(), "command": "python " + " ".join(sys.argv),
               "machine": f"{__import__('os').cpu_count()} cores", "preset": args.preset, "datasets": {}}
    for name in names:
        print(f"== {name}", flush=True)
        try:
            if name in SYNTH:
                results["datasets"][name] = run_synth(name, args.preset, skip=("splat",))
            elif name in datasets.REAL:
                results["datasets"][name] = run_real(name, args.preset, args.real_stages.split(","))
            else:
                print(f"unknown dataset {name}", file=sys.stderr)
                continue
        except (UserError, FileNotFoundError) as exc:
            results["datasets"][name] = {"error": str(exc)}
        print(json.dumps(results["datasets"][name], default=str)[:600], flush=True)
    if "fox" in results["datasets"] and "error" not in results["datasets"]["fox"] and not args.no_peer:
        ws = Workspace(WORK / f"fox_{args.preset}")
        results["peer_colmap_fox"] = run_colmap_peer(ws.images_dir, ws)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / results["date"]
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
    md = markdown(results)
    stem.with_suffix(".md").write_text(md)
    (RESULTS / "latest.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
