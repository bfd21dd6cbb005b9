"""Growth with input size: one synthetic orbit video, reconstructed with 30, 60, 120 and 240 keyframes.

Each size runs the default pipeline (all stages of ``vid2model run``) in a fresh process, so the peak
memory of each stage is its own run's. Per stage: wall time, CPU time (less sensitive to a shared machine
than wall time) and peak resident memory; beside them the cameras' and the mesh's accuracy against the
exact ground truth, so a size that is fast because it failed shows.

    python bench/bench_growth.py [--sizes 30,60,120,240] [--width 960 --height 540] [--skip splat] [--tag T]

Writes bench/results/growth-<date>[-tag].{json,md,png}. Sizes already measured in that .json are kept
(the run resumes size by size).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent))

WORK = Path(__file__).resolve().parent / "work" / "growth"
RESULTS = Path(__file__).resolve().parent / "results"
STAGE_ORDER = ("ingest", "sfm", "dense", "mesh", "texture", "export", "splat")


def _video(width: int, height: int, frames: int) -> Path:
    from vid2model.synth import SynthConfig, generate

    src = WORK / f"input-{width}x{height}-{frames}"
    if not (src / "video.mp4").exists():
        # the fixed orbit scene of bench/run.py's synth_orbit, filmed as a 30 fps phone video
        generate(src, SynthConfig(path="orbit", width=width, height=height, n_frames=frames, fps=30.0, seed=11))
    return src


def run_size(src: str, n: int, skip: tuple[str, ...]) -> dict:
    """The default pipeline with ``n`` keyframes; stage figures and accuracy against the ground truth."""
    import numpy as np
    import trimesh

    from run import _manifest, _stage_figures
    from vid2model.config import build_config
    from vid2model.ops.metrics import sample_surface
    from vid2model.pipeline import run_pipeline
    from vid2model.progress import set_quiet
    from vid2model.synth.evaluate import camera_errors, load_gt, surface_fscore
    from vid2model.workspace import Workspace

    set_quiet(True)
    src = Path(src)
    ws = Workspace(WORK / f"{src.name}-kf{n}")
    shutil.rmtree(ws.root, ignore_errors=True)
    sets = [f"ingest.target_keyframes={n}", f"ingest.max_keyframes={max(n, 150)}"]
    t0 = time.perf_counter()
    run_pipeline(ws, build_config("default", sets=sets), input_path=src / "video.mp4", skip=skip)
    res: dict = {"total_wall_s": round(time.perf_counter() - t0, 1), "stages": _stage_figures(ws)}
    man = _manifest(ws)
    res["keyframes"] = (man["ingest"].get("summary") or {}).get("n_keyframes")
    gt = load_gt(src / "gt.json")
    res["cameras"] = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in camera_errors(ws, gt).items()}
    if ws.clean_mesh.exists():
        scene = trimesh.load(src / "scene.ply", process=False)
        m = trimesh.load(ws.clean_mesh, process=False)
        res["mesh"] = surface_fscore(sample_surface(m.vertices, m.faces, 1_000_000), ws, gt, scene.vertices,
                                     scene.faces)
    s = (man.get("splat") or {}).get("summary") or {}
    res["splat"] = {k: s.get(k) for k in ("eval_psnr", "gaussians", "iterations", "eval_views")} if s else None
    res["load_end"] = os.getloadavg()[0]
    del np
    return res


def _fmt(x, spec=".0f") -> str:
    return "" if x is None else format(x, spec)


def markdown(res: dict) -> str:
    sizes = sorted(res["sizes"], key=int)
    stages = [s for s in STAGE_ORDER if any(s in res["sizes"][k]["stages"] for k in sizes)]
    lines = [f"# Growth with input size ({res['date']}, {res['commit']})", "",
             f"One synthetic orbit video ({res['video']}), default preset, `ingest.target_keyframes` set per row; "
             f"each size in a fresh process on {res['cpus']} cores. `python bench/bench_growth.py "
             f"{res['args']}`.", "",
             "## Time and memory per stage", "",
             "Wall s / CPU s / peak MB for each stage.", "",
             "| keyframes | " + " | ".join(stages) + " | total wall s | load at the end |",
             "|---|" + "---|" * (len(stages) + 2)]
    for k in sizes:
        r = res["sizes"][k]
        cells = []
        for s in stages:
            f = r["stages"].get(s)
            cells.append(f"{_fmt(f['wall_s'])} / {_fmt(f['cpu_s'])} / {_fmt(f['peak_mem_mb'])}" if f else "")
        lines.append(f"| {r.get('keyframes') or k} | " + " | ".join(cells) + f" | {_fmt(r['total_wall_s'])} | "
                     f"{_fmt(r.get('load_end'), '.1f')} |")
    base = sizes[0]
    lines += ["", f"## CPU time relative to {res['sizes'][base].get('keyframes') or base} keyframes", "",
              "Linear growth doubles with each row (x2, x4, x8).", "",
              "| keyframes | " + " | ".join(stages) + " | all stages |", "|---|" + "---|" * (len(stages) + 1)]
    b = res["sizes"][base]["stages"]
    for k in sizes:
        r = res["sizes"][k]["stages"]
        cells = [f"x{r[s]['cpu_s'] / b[s]['cpu_s']:.1f}" if s in r and s in b and b[s]["cpu_s"] else "" for s in stages]
        tot = sum(r[s]["cpu_s"] for s in stages if s in r) / max(sum(b[s]["cpu_s"] for s in stages if s in b), 1e-9)
        lines.append(f"| {res['sizes'][k].get('keyframes') or k} | " + " | ".join(cells) + f" | x{tot:.1f} |")
    lines += ["", "## Accuracy beside the times", "",
              "| keyframes | rotation median (deg) | centre error median (% of scene) | mesh F@1% | mesh F@0.5% | "
              "splat PSNR held out (dB) |", "|---|---|---|---|---|---|"]
    for k in sizes:
        r = res["sizes"][k]
        c, m, sp = r.get("cameras") or {}, r.get("mesh") or {}, r.get("splat") or {}
        rot = c.get("rot_median_deg")
        cen = c.get("center_median_rel")
        f1 = (m.get("at_0.01") or {}).get("fscore")
        f05 = (m.get("at_0.005") or {}).get("fscore")
        lines.append(f"| {r.get('keyframes') or k} | {_fmt(rot, '.3f')} | "
                     f"{_fmt(None if cen is None else cen * 100, '.2f')} | {_fmt(f1, '.3f')} | {_fmt(f05, '.3f')} | "
                     f"{_fmt(sp.get('eval_psnr'), '.2f')} |")
    lines += ["", f"![growth](growth-{res['stamp']}.png)", ""]
    return "\n".join(lines)


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(res["sizes"], key=int)
    x = [res["sizes"][k].get("keyframes") or int(k) for k in sizes]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for s in STAGE_ORDER:
        ys = [res["sizes"][k]["stages"].get(s, {}).get("cpu_s") for k in sizes]
        if all(y is not None for y in ys):
            a.plot(x, ys, "o-", label=s)
            b.plot(x, [res["sizes"][k]["stages"][s]["peak_mem_mb"] for k in sizes], "o-", label=s)
    if x:
        a.plot(x, [x_ / x[0] * sum(res["sizes"][sizes[0]]["stages"][s]["cpu_s"] for s in
                                  res["sizes"][sizes[0]]["stages"]) for x_ in x], "k:", label="all stages, linear")
    for ax, t in ((a, "CPU seconds per stage"), (b, "peak memory per stage (MB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("keyframes")
        ax.set_title(t)
        ax.grid(True, which="both", alpha=0.3)
    b.axhline(2500, color="r", ls="--", lw=0.8, label="2.5 GB")
    a.legend(fontsize=7)
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    from run import _commit, _isolated

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="30,60,120,240")
    ap.add_argument("--width", type=int, default=960)
    ap.add_argument("--height", type=int, default=540)
    ap.add_argument("--frames", type=int, default=480, help="video frames (30 fps)")
    ap.add_argument("--skip", default="", help="stages to leave out, e.g. splat")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    stamp = dt.date.today().isoformat() + (f"-{args.tag}" if args.tag else "")
    out = RESULTS / f"growth-{stamp}"
    res = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").exists() else {"sizes": {}}
    src = _video(args.width, args.height, args.frames)
    res.update(date=dt.date.today().isoformat(), commit=_commit(), cpus=os.cpu_count(), stamp=stamp,
               video=f"{args.frames} frames at {args.width}x{args.height}, 30 fps, full orbit",
               args=" ".join(sys.argv[1:]))
    skip = tuple(s for s in args.skip.split(",") if s)
    for n in (int(s) for s in args.sizes.split(",")):
        if str(n) in res["sizes"]:
            continue
        print(f"{n} keyframes ...", flush=True)
        res["sizes"][str(n)] = r = _isolated(run_size, str(src), n, skip)
        print(f"{n}: {r.get('keyframes')} keyframes, {r['total_wall_s']:.0f} s, "
              + ", ".join(f"{s} {f['cpu_s']:.0f} s CPU / {f['peak_mem_mb']:.0f} MB" for s, f in r["stages"].items()),
              flush=True)
        out.with_suffix(".json").write_text(json.dumps(res, indent=2, default=str))
        out.with_suffix(".md").write_text(markdown(res))
        plot(res, out.with_suffix(".png"))
    print(f"wrote {out}.json, .md and .png")


if __name__ == "__main__":
    main()
