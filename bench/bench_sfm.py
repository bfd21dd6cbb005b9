"""Camera-solving benchmark: accuracy against ground-truth cameras, time and peak memory, and Debian's
``colmap`` CLI (feature_extractor + exhaustive_matcher + mapper, CPU) side by side on the fox frames.

    python bench/bench_sfm.py                                  # everything present
    python bench/bench_sfm.py --datasets synth_orbit,fox --max-side 960
    python bench/bench_sfm.py --datasets fox --no-peer

Each solve runs in its own child process (peak memory is that process's own). Every figure is
computed in this run; results go to bench/work/bench_sfm.json. Images are resized copies under
bench/work/sfm/ (the shared data is never modified); both tools get the very same files.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402

WORK = Path(__file__).resolve().parent / "work" / "sfm"
SYNTH = {"synth_orbit": dict(path="orbit", width=640, height=480, n_frames=48, seed=11),
         "synth_walk": dict(path="walk", width=640, height=480, n_frames=48, seed=12),
         "synth_marker": dict(path="orbit", width=640, height=480, n_frames=48, seed=13, marker_size=0.15)}


def _peak_mb(who: int = resource.RUSAGE_SELF) -> float:
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)


def _cpu_s(who: int = resource.RUSAGE_SELF) -> float:
    """User + system CPU seconds: less sensitive than wall time to other work on a shared machine."""
    r = resource.getrusage(who)
    return round(r.ru_utime + r.ru_stime, 1)


def prepare(name: str, max_side: int) -> tuple[Path, dict[str, np.ndarray], bool]:
    """Images (resized to ``max_side``) of one dataset and its GT camera-to-world poses by name."""
    import cv2

    root = WORK / f"{name}_{max_side}"
    images = root / "images"
    if name.startswith("synth_"):
        from vid2model.synth import SynthConfig, generate

        res = generate(root / "gen", SynthConfig(write_video=False, write_images=True, **SYNTH[name]))
        names = sorted(p.name for p in res.images_dir.iterdir())
        gt = {n: res.cam_to_world[int(n.split("_")[1].split(".")[0])] for n in names}
        src, video = res.images_dir, True
    else:
        src, gt = datasets.REAL[name]()
        video = False
    if not images.exists():
        tmp = root / ".images_tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for n in gt:
            img = cv2.imread(str(Path(src) / n), cv2.IMREAD_COLOR)
            if img is None:
                continue
            s = min(1.0, max_side / max(img.shape[:2]))
            if s < 1:
                img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(tmp / n), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        os.replace(tmp, images)
    return images, gt, video


def solve_child(name: str, max_side: int, overrides: dict) -> dict:
    """Run our SfM stage on one dataset (in this process) and compare with the GT cameras."""
    from vid2model.config import SfmConfig
    from vid2model.errors import UserError
    from vid2model.io.colmap import load_views
    from vid2model.ops.similarity import pose_errors
    from vid2model.progress import set_quiet
    from vid2model.stages import sfm
    from vid2model.workspace import Workspace

    set_quiet(True)
    images, gt, video = prepare(name, max_side)
    if name == "synth_marker":  # its marker gives the scale only when the solve is told its size
        overrides = {"marker_size": SYNTH[name]["marker_size"], **overrides}
    tag = "_".join(f"{k}-{v}" for k, v in sorted(overrides.items()))
    ws = Workspace(WORK / f"{name}_{max_side}" / f"ws{('_' + tag) if tag else ''}")
    shutil.rmtree(ws.root, ignore_errors=True)  # the bench's own scratch folder: always start afresh
    ws.create()
    os.symlink(images, ws.images_dir)
    if video:
        import cv2

        h, w = cv2.imread(str(next(images.iterdir()))).shape[:2]
        ws.write_json(ws.keyframes_json, {"video": True, "keyframes": [
            {"name": n, "width": w, "height": h} for n in sorted(p.name for p in images.iterdir())]})
    t0, c0 = time.perf_counter(), _cpu_s()
    try:
        summary = sfm.run(ws, SfmConfig(**overrides))
    except UserError as err:  # a refusal is a result: which dataset, and why
        return {"dataset": name, "tool": "vid2model", "overrides": overrides, "refused": str(err),
                "wall_s": round(time.perf_counter() - t0, 1)}
    wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    views = [v for v in load_views(ws.sparse_dir) if v.name in gt]
    out = {"dataset": name, "tool": "vid2model", "overrides": overrides, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
           "peak_mem_mb": _peak_mb(), "n_inputs": len(list(images.iterdir())),
           "registered": summary["n_registered"], "reproj_px": summary["mean_reproj_error_px"],
           **{k: summary.get(k) for k in ("mapper", "n_pairs", "strategy", "features_s", "matching_s",
                                          "mapping_s", "camera_model", "pieces_merged", "false_links_dropped", "scale",
                                          "mapper_attempts", "unregistered", "camera_check", "pairs_judged",
                                          "pairs_disagreeing", "dropped_spans", "focal_std_rel")}}
    if len(views) >= 3:
        err = pose_errors(np.array([v.cam_to_world for v in views]), np.array([gt[v.name] for v in views]))
        out.update({k: round(float(v), 5) for k, v in err.items()})
    if name == "synth_marker":  # metric scale: GT is in metres, so the similarity should not scale
        out["marker_scale_error"] = round(abs(out["scale"] - 1.0), 5)
    return out


def colmap_child(name: str, max_side: int) -> dict:
    """Debian's colmap CLI on the same images, default options, CPU."""
    import pycolmap

    exe = shutil.which("colmap")
    if exe is None:
        return {"dataset": name, "tool": "colmap", "skipped": "colmap CLI not installed (apt-get install colmap)"}
    images, gt, _ = prepare(name, max_side)
    work = WORK / f"{name}_{max_side}" / "colmap_peer"
    shutil.rmtree(work, ignore_errors=True)
    (work / "sparse").mkdir(parents=True)
    db = work / "database.db"
    env = {"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    steps = {"features_s": [exe, "feature_extractor", "--database_path", str(db), "--image_path", str(images),
                            "--ImageReader.single_camera", "1", "--SiftExtraction.use_gpu", "0"],
             "matching_s": [exe, "exhaustive_matcher", "--database_path", str(db), "--SiftMatching.use_gpu", "0"],
             "mapping_s": [exe, "mapper", "--database_path", str(db), "--image_path", str(images), "--output_path",
                           str(work / "sparse")]}
    out = {"dataset": name, "tool": "colmap", "n_inputs": len(list(images.iterdir()))}
    t0 = time.perf_counter()
    for key, cmd in steps.items():
        t1 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        out[key] = round(time.perf_counter() - t1, 1)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["cpu_s"] = _cpu_s(resource.RUSAGE_CHILDREN)
    out["peak_mem_mb"] = _peak_mb(resource.RUSAGE_CHILDREN)
    models = [pycolmap.Reconstruction(str(p)) for p in sorted((work / "sparse").iterdir())]
    best = max(models, key=lambda r: r.num_reg_images()) if models else None
    out.update(registered=best.num_reg_images() if best else 0, n_models=len(models),
               reproj_px=round(best.compute_mean_reprojection_error(), 4) if best else None)
    if best is not None and best.num_reg_images() >= 3:
        from vid2model.ops.similarity import pose_errors

        c2w, g = [], []
        for i in best.reg_image_ids():
            img = best.image(i)
            if img.name in gt:
                m = np.eye(4)
                m[:3, :] = np.asarray(img.cam_from_world().matrix())
                c2w.append(np.linalg.inv(m))
                g.append(gt[img.name])
        out.update({k: round(float(v), 5) for k, v in pose_errors(np.array(c2w), np.array(g)).items()})
    return out


def _child(args: list[str], timeout: float) -> dict:
    """Run this script in a child process and return the JSON it prints last."""
    try:
        p = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s", "args": args}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode or not lines:
        return {"error": (p.stderr or p.stdout)[-800:], "args": args}
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="")
    ap.add_argument("--max-side", type=int, default=1280, help="long side of the images both tools get")
    ap.add_argument("--no-peer", action="store_true", help="skip the colmap CLI on fox")
    ap.add_argument("--mappers", action="store_true", help="also run each mapper alone on every dataset")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--out", default=str(WORK.parent / "bench_sfm.json"))
    ap.add_argument("--child", choices=["ours", "colmap"], help=argparse.SUPPRESS)
    ap.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child == "ours":
        print(json.dumps(solve_child(a.datasets, a.max_side, json.loads(a.overrides))))
        return
    if a.child == "colmap":
        print(json.dumps(colmap_child(a.datasets, a.max_side)))
        return
    names = [n for n in a.datasets.split(",") if n] or [*SYNTH, *datasets.available()]
    results = []
    out_path = Path(a.out)
    for name in names:
        if not name.startswith("synth_") and name not in datasets.available():
            results.append({"dataset": name, "skipped": "dataset not present"})
            continue
        runs = [{}] + ([{"mapper": "global"}, {"mapper": "incremental"}] if a.mappers else [])
        for ov in runs:
            r = _child(["--child", "ours", "--datasets", name, "--max-side", str(a.max_side),
                        "--overrides", json.dumps(ov)], a.timeout)
            results.append(r)
            print(json.dumps(r), flush=True)
        if name == "fox" and not a.no_peer:
            peer = _child(["--child", "colmap", "--datasets", name, "--max-side", str(a.max_side)], a.timeout)
            results.append(peer)
            print(json.dumps(peer), flush=True)
            ours = next((r for r in results if r.get("dataset") == "fox" and r.get("tool") == "vid2model"
                         and not r.get("overrides")), None)
            if ours and "wall_s" in peer and "wall_s" in ours:
                ratio = {"dataset": "fox", "comparison": "colmap_cli / vid2model wall time",
                         "speedup": round(peer["wall_s"] / ours["wall_s"], 2),
                         "cpu_ratio": round(peer["cpu_s"] / ours["cpu_s"], 2) if "cpu_s" in ours and "cpu_s" in peer
                         else None,
                         "registered": [ours["registered"], peer["registered"]],
                         "reproj_px": [ours["reproj_px"], peer["reproj_px"]]}
                results.append(ratio)
                print(json.dumps(ratio), flush=True)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps({"max_side": a.max_side, "cores": os.cpu_count(), "results": results},
                                       indent=1))
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
