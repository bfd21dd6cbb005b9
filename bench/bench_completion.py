"""Plain objects: what stereo alone recovers of a product painted one flat colour, and what the free-space
hull adds (``mesh.complete_hull``).

    python bench/bench_completion.py --seeds 0,1,2 --tag 2026-12-03

Each seed is a product capture of ``bench_measure.product_capture`` with its box painted one colour (shading
only) on a textured floor. The pipeline runs to the mesh at the default preset with ``mesh.complete_hull=false``
(stereo alone); the mesh stage runs again on a copy with it on (same cameras, same depth maps). Scored in the ground-truth frame
(similarity from the cameras, then ICP, as ``bench_surfaces``): recall and precision at 1 % of the scene size
on the box's five seen faces, and the F-score of the scoring region. Writes
``bench/results/completion-<tag>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from bench_measure import product_capture  # noqa: E402
from bench_random import WORK, _cli  # noqa: E402

RESULTS = ROOT / "results"


def product_surface(size: tuple[float, float, float], shape: str = "box", n: int = 200_000) -> np.ndarray:
    """Points [n, 3] spread evenly over the product's seen surface (its sides and top; GT frame): a box's five
    faces, or an upright elliptic cylinder's side and top."""
    sx, sy, h = size
    rng = np.random.default_rng(0)
    if shape == "cylinder":
        t = rng.uniform(0, 2 * np.pi, 4 * n)
        ring = np.c_[sx / 2 * np.cos(t), sy / 2 * np.sin(t)]
        speed = np.hypot(sx / 2 * np.sin(t), sy / 2 * np.cos(t))  # arc length per radian: keep evenly by it
        ring = ring[rng.uniform(0, speed.max(), len(t)) < speed]
        side = np.pi * (3 * (sx + sy) / 2 - np.sqrt((3 * sx / 2 + sy / 2) * (sx / 2 + 3 * sy / 2))) * h
        top = np.pi * sx * sy / 4
        k = int(n * side / (side + top))
        wall = np.c_[ring[rng.integers(0, len(ring), k)], rng.uniform(0, h, k)]
        r, a = np.sqrt(rng.uniform(0, 1, n - k)), rng.uniform(0, 2 * np.pi, n - k)
        return np.r_[wall, np.c_[sx / 2 * r * np.cos(a), sy / 2 * r * np.sin(a), np.full(n - k, h)]]
    pts = rng.uniform(-0.5, 0.5, (n, 3)) * [sx, sy, h] + [0, 0, h / 2]
    face = rng.integers(0, 5, len(pts))
    for f, (axis, value) in enumerate(((0, sx / 2), (0, -sx / 2), (1, sy / 2), (1, -sy / 2), (2, h))):
        pts[face == f, axis] = value
    return pts


def box_scores(P: np.ndarray, size: tuple[float, float, float], tol: float, shape: str = "box") -> dict:
    """Recall of the product's seen surface (a box's five faces) by the mesh samples ``P`` [N, 3] (GT frame),
    and the precision of the samples standing over its footprint (the floor excluded), both at ``tol``."""
    from scipy.spatial import cKDTree

    sx, sy, h = size
    pts = product_surface(size, shape)
    recall = float((cKDTree(P).query(pts, workers=-1)[0] <= tol).mean())
    over = (np.all(np.abs(P[:, :2]) <= [sx / 2 + 3 * tol, sy / 2 + 3 * tol], axis=1) & (P[:, 2] > 3 * tol)
            & (P[:, 2] < h + 3 * tol))
    precision = float((cKDTree(pts).query(P[over], workers=-1)[0] <= tol).mean()) if over.any() else None
    return {"box_recall": recall, "box_precision": precision}


def score(ws_root: Path, gen: Path) -> dict:
    from bench_surfaces import scored_mesh
    from vid2model.workspace import Workspace

    m, gt, _, P = scored_mesh(Workspace(ws_root), gen)
    out = {"region_f1": m["at_0.01"]["fscore"], "region_p1": m["at_0.01"]["precision"],
           "region_r1": m["at_0.01"]["recall"], "scene_size": m["scene_size"]}
    cfg = gt["scene_config"]
    out.update(box_scores(P, tuple(cfg["product"]), 0.01 * m["scene_size"], cfg.get("product_shape", "box")))
    return out


def run_one(seed: int, timeout: float, shape: str = "box") -> dict:
    from vid2model.synth import generate

    cfg = dataclasses.replace(product_capture(seed), product_plain=True, product_shape=shape)
    root = WORK / "completion" / (f"plain{seed}" if shape == "box" else f"plain-{shape}{seed}")
    gen, ws, hull = root / "gen", root / "ws-default", root / "ws-default-hull"
    if not (gen / "video.mp4").exists():
        generate(gen, cfg)
    row: dict = {"seed": seed, "shape": shape, "size": [round(x, 3) for x in cfg.product], "frames": cfg.n_frames}
    code, msg, times = 0, "", {}
    if not (ws / "mesh" / "mesh.ply").exists():
        code, msg, times["ingest"] = _cli("ingest", str(gen / "video.mp4"), "-o", str(ws), "-q", timeout=timeout)
        for stage in ("sfm", "dense", "mesh"):
            if code != 0:
                break
            stereo = ("--set", "mesh.complete_hull=false") if stage == "mesh" else ()
            code, msg, times[stage] = _cli(stage, str(ws), "-q", *stereo, timeout=timeout)
    if code != 0:
        row.update(outcome="refused" if code == 2 else "error", reason=msg)
        return row
    row["stereo"] = score(ws, gen)
    shutil.rmtree(hull, ignore_errors=True)
    shutil.copytree(ws, hull, ignore=lambda d, names: [n for n in names if Path(d) == ws and n == "mesh"])
    code, msg, times["mesh_hull"] = _cli("mesh", str(hull), "-q", "--set", "mesh.complete_hull=true", timeout=timeout)
    if code != 0:
        row.update(outcome="error", reason=msg)
        return row
    row.update(outcome="scored", hull=score(hull, gen), secs={k: round(v, 1) for k, v in times.items()})
    return row


def table(rows: list[dict]) -> str:
    def f(v):
        return "" if v is None else f"{v:.3f}"

    lines = ["| seed | box (m) | box recall @1%: stereo -> hull | box precision @1% | region F@1% (P) | "
             "mesh s: stereo / hull |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("outcome") != "scored":
            lines.append(f"| {r['seed']} | {r['size']} | {r.get('outcome')}: {r.get('reason', '')} | | | |")
            continue
        a, b, s = r["stereo"], r["hull"], r.get("secs", {})
        lines.append(f"| {r['seed']} | {' x '.join(str(x) for x in r['size'])} | {f(a['box_recall'])} -> "
                     f"{f(b['box_recall'])} | {f(a['box_precision'])} -> {f(b['box_precision'])} | "
                     f"{f(a['region_f1'])} ({f(a['region_p1'])}) -> {f(b['region_f1'])} ({f(b['region_p1'])}) | "
                     f"{s.get('mesh', '')} / {s.get('mesh_hull', '')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--tag", default=time.strftime("%Y-%m-%d"))
    ap.add_argument("--shape", choices=("box", "cylinder"), default="box")
    args = ap.parse_args()
    rows = []
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        t0 = time.time()
        rows.append(run_one(seed, args.timeout, args.shape))
        print(f"[{time.time() - t0:5.0f} s] seed {seed}: {json.dumps(rows[-1])}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"completion-{args.tag}.json").write_text(json.dumps(rows, indent=1))
    (RESULTS / f"completion-{args.tag}.md").write_text(
        f"# Plain products: stereo alone and with the free-space hull ({args.tag})\n\n`python bench/bench_completion.py "
        f"--seeds {args.seeds} --shape {args.shape}`\n\n{table(rows)}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
