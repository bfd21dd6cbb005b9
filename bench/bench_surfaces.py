"""Surfaces on scenes nobody tuned for: randomised texture-poor captures, scored against their exact surface.

    python bench/bench_surfaces.py                    # the first 20 texture-poor seeds from 0 on
    python bench/bench_surfaces.py --count 6 --tag try1 --set dense.max_side=640

Draws captures with ``synth.captures.random_capture`` and keeps those with texture-poor surfaces, runs
``vid2model ingest, sfm, dense, mesh`` on each in child processes (as a user would), and scores, in the
ground-truth frame (similarity from the solved cameras, refined by rigid ICP onto the GT surface: the
surface's shape is judged here, the cameras' registration by bench_random.py):

* mesh and dense F-score at 1 % and 0.5 % of the scene size (the surface any frame sees; orbits: the
  object and the floor within two scene radii);
* holes: the share of ground-truth surface seen by at least 3 keyframes that lies farther than 1 % of the
  scene size from the mesh.

Captures whose cameras are refused are listed with the reason and not scored. Writes
``bench/results/surfaces-<tag>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from bench_random import WORK, _cli, filmed  # noqa: E402

N_MESH_SAMPLES = 400_000


def texture_poor_seeds(count: int, start: int = 0) -> list[int]:
    from vid2model.synth.captures import random_capture

    out, seed = [], start
    while len(out) < count:
        if "texture-poor" in random_capture(seed).traits:
            out.append(seed)
        seed += 1
    return out


def holes_share(ws, gt: dict, mesh_pts_gt: np.ndarray, samples: np.ndarray, size: float) -> float | None:
    """Share of GT samples seen by >= 3 keyframes and farther than 1 % of ``size`` from the mesh."""
    from scipy.spatial import cKDTree

    from vid2model.ops.metrics import view_counts
    from vid2model.synth.generate import render_depth, scene_of_gt
    from vid2model.synth.evaluate import frame_index

    kf = json.loads(ws.keyframes_json.read_text())["keyframes"]
    idx = sorted({frame_index(k["name"]) for k in kf})
    c2w = np.array([gt["c2w"][i] for i in idx])
    depths = render_depth(scene_of_gt(gt), gt["K"], gt["width"], gt["height"], c2w)
    count = view_counts(samples, list(depths), [gt["K"]] * len(idx), [np.linalg.inv(m) for m in c2w])
    seen3 = samples[count >= 3]
    if len(seen3) == 0 or len(mesh_pts_gt) == 0:
        return None
    dist = cKDTree(mesh_pts_gt).query(seen3, workers=-1)[0]
    return float((dist > 0.01 * size).mean())


def _cached_seen(gen: Path, gt: dict, V: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`gt_surface_samples` of a capture, kept beside its ``gt.json``: rendering every frame is the
    costly part of scoring, and the variants of one capture share it."""
    from vid2model.synth.evaluate import gt_surface_samples

    cache = gen / "seen-samples-region.npz"  # samples drawn inside the scoring region (not seen-samples.npz)
    if cache.exists() and cache.stat().st_mtime >= (gen / "gt.json").stat().st_mtime:
        z = np.load(cache)
        return z["samples"], z["seen"]
    samples, seen = gt_surface_samples(gt, V, F)
    np.savez(cache, samples=samples, seen=seen)
    return samples, seen


def _near_region(ws, gt: dict, V: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The faces of a workspace mesh near the scoring region (a quarter of its radius to spare for the
    ICP correction): the mesh's samples are spent where they are scored, as the GT's are."""
    from vid2model.synth.evaluate import region_of, to_gt_frame

    region = region_of(gt)
    if region is None:
        return V, F
    s, R, t = to_gt_frame(ws, gt)
    near = np.linalg.norm((s * (R @ V.T)).T + t - region[0], axis=1) <= 1.25 * region[1]
    keep = F[near[F].any(axis=1)]
    return (V, keep) if len(keep) else (V, F)


def scored_mesh(ws, gen: Path, **fscore_args) -> tuple[dict, dict, tuple, np.ndarray]:
    """The workspace mesh scored against the capture's exact surface: ``surface_fscore``'s result, the GT, its
    seen samples and the mesh's samples [N, 3] in the GT frame, with the registration the scores used (the
    cameras' similarity, then the ICP)."""
    import trimesh

    from vid2model.ops.metrics import sample_surface
    from vid2model.synth.evaluate import load_gt, surface_fscore, to_gt_frame

    gt = load_gt(gen / "gt.json")
    if not (gen / "scene.ply").exists():
        raise SystemExit(f"no ground-truth mesh in {gen}")
    gt_mesh = trimesh.load(gen / "scene.ply", process=False)
    V, F = np.asarray(gt_mesh.vertices), np.asarray(gt_mesh.faces)
    seen = _cached_seen(gen, gt, V, F)
    mesh = trimesh.load(ws.clean_mesh, process=False)
    mesh_pts = sample_surface(*_near_region(ws, gt, np.asarray(mesh.vertices), np.asarray(mesh.faces)),
                              N_MESH_SAMPLES) if len(mesh.faces) else np.zeros((0, 3))
    m = surface_fscore(mesh_pts, ws, gt, V, F, gt_samples=seen, icp=True, **fscore_args)
    s, R, t = to_gt_frame(ws, gt)
    mesh_gt = (s * (R @ mesh_pts.T)).T + t
    if "icp" in m:
        T = np.asarray(m["icp"]["matrix"])
        mesh_gt = mesh_gt @ T[:3, :3].T + T[:3, 3]
    return m, gt, seen, mesh_gt


def score(ws_root: Path, gen: Path) -> dict:
    from vid2model.io.colmap_dense import read_points_ply
    from vid2model.synth.evaluate import surface_fscore
    from vid2model.workspace import Workspace

    ws = Workspace(ws_root)
    m, gt, seen, mesh_gt = scored_mesh(ws, gen, with_whole=True)
    out: dict = {}
    out["mesh_f1"], out["mesh_f05"] = m["at_0.01"]["fscore"], m["at_0.005"]["fscore"]
    out["mesh_p1"], out["mesh_r1"] = m["at_0.01"]["precision"], m["at_0.01"]["recall"]
    # precision against the whole surface: closing a real but unseen surface is not an error
    out["mesh_f1_whole"], out["mesh_f05_whole"] = m["whole_at_0.01"]["fscore"], m["whole_at_0.005"]["fscore"]
    out["mesh_p1_whole"] = m["whole_at_0.01"]["precision"]
    pts = read_points_ply(ws.fused_ply)["xyz"]
    d = surface_fscore(pts, ws, gt, None, None, gt_samples=seen, icp=True)  # the GT mesh's samples are given
    out["dense_f1"], out["dense_f05"] = d["at_0.01"]["fscore"], d["at_0.005"]["fscore"]
    size = m["scene_size"]
    region = np.ones(len(seen[0]), bool)  # the region surface_fscore scores: orbits, two scene radii
    if gt["path"] == "orbit":
        c, r = np.asarray(gt["scene_center"]), 2.0 * float(gt["scene_radius"])
        region = np.linalg.norm(seen[0] - c, axis=1) <= r
    samples = seen[0][region]
    if "icp" in m:
        out["icp_shift"] = m["icp"]["translation"] / size
    out["holes"] = holes_share(ws, gt, mesh_gt, samples, size)
    out.update(plain_recall(gt, mesh_gt, seen[0][seen[1] & region], size))
    return out


def plain_recall(gt: dict, mesh_pts_gt: np.ndarray, samples: np.ndarray, size: float) -> dict:
    """The seen surface's share that is plain (one flat colour: no stereo can measure it) and the mesh's
    recall at 1 % on it and on the textured rest, so that the two kinds of hole are told apart."""
    from scipy.spatial import cKDTree

    from vid2model.synth.generate import scene_of_gt

    plain = np.zeros(len(samples), bool)
    for b in scene_of_gt(gt).plain_boxes:
        plain |= np.all((samples >= np.array(b.lo) - 1e-4) & (samples <= np.array(b.hi) + 1e-4), axis=1)
    if len(mesh_pts_gt) == 0 or len(samples) == 0:
        return {}
    near = cKDTree(mesh_pts_gt).query(samples, workers=-1)[0] <= 0.01 * size
    return {"plain_share": float(plain.mean()),
            "recall_plain": float(near[plain].mean()) if plain.any() else None,
            "recall_textured": float(near[~plain].mean()) if (~plain).any() else None}


def _reuse_cameras(src: Path, dst: Path, keep_dense: bool = False) -> bool:
    """Copy ``src``'s ingest and camera solution (and its depth maps with ``keep_dense``) into a fresh
    ``dst``, so that a variant of the surface stages is compared on the very same cameras. False when
    ``src`` has none."""
    import shutil

    if not (src / "sparse").is_dir() or not (src / "dense" / "sparse").is_dir():
        return False
    if keep_dense and not (src / "dense" / "fused.ply").exists():
        return False
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=lambda d, names: [n for n in names if Path(d) == src and n in ("mesh", "texture")]
                    + [n for n in names if Path(d) == src / "dense" and n not in ("sparse", "images")
                       and not keep_dense])
    return True


def run_one(seed: int, preset: str, timeout: float, sets: list[str], variant: str = "", mesh_only: bool = False) -> dict:
    cap, root, gen = filmed(str(seed))
    base = root / f"ws-surf-{preset}"
    ws = root / f"ws-surf-{preset}-{variant}" if variant else base
    extra = [a for s in sets for a in ("--set", s)]
    row = {"seed": seed, "capture": cap.label.split(": ", 1)[1], "n_frames": cap.config.n_frames}
    if variant and _reuse_cameras(base, ws, mesh_only):
        code, msg, times = 0, "", {}
    else:
        code, msg, dt = _cli("ingest", str(gen / "video.mp4"), "-o", str(ws), "--preset", preset, "-q", *extra,
                             timeout=timeout)
        times = {"ingest": dt}
    for stage in ("sfm", "dense", "mesh"):
        if not times and (stage == "sfm" or (stage == "dense" and mesh_only)):  # reused
            continue
        if code != 0:
            break
        code, msg, times[stage] = _cli(stage, str(ws), "--preset", preset, "-q", *extra, timeout=timeout)
    row.update({f"{k}_s": round(v, 1) for k, v in times.items()})
    if code != 0:
        row.update(outcome="refused" if code == 2 else "error", reason=msg, stage=list(times)[-1])
        return row
    row.update(outcome="scored", **score(ws, gen))
    return row


def table(rows: list[dict]) -> str:
    def f(v, fmt=".3f"):
        return "" if v is None else format(v, fmt)

    lines = ["| seed | capture | frames | outcome | mesh F@1% (P / R) | mesh F@0.5% | mesh F@1% / F@0.5%, P on the "
             "whole surface (P) | dense F@1% | dense F@0.5% | holes | plain share: R@1% plain / textured | "
             "dense+mesh (s) | reason |", "|" + "---|" * 13]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['capture']} | {r['n_frames']} | {r['outcome']} | "
                     f"{f(r.get('mesh_f1'))} ({f(r.get('mesh_p1'), '.2f')} / {f(r.get('mesh_r1'), '.2f')}) | "
                     f"{f(r.get('mesh_f05'))} | {f(r.get('mesh_f1_whole'))} / {f(r.get('mesh_f05_whole'))} "
                     f"({f(r.get('mesh_p1_whole'), '.2f')}) | {f(r.get('dense_f1'))} | {f(r.get('dense_f05'))} | "
                     f"{f(r.get('holes') is not None and 100 * r['holes'] or None, '.1f')}{' %' if r.get('holes') is not None else ''} | "
                     f"{f(r.get('plain_share'), '.2f')}: {f(r.get('recall_plain'), '.2f')} / {f(r.get('recall_textured'), '.2f')} | "
                     f"{r.get('dense_s', 0) + r.get('mesh_s', 0):.0f} | {r.get('reason', '')} |")
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    s = [r for r in rows if r["outcome"] == "scored"]
    if not s:
        return f"{len(rows)} captures, none scored."
    med = {k: float(np.median([r[k] for r in s if r.get(k) is not None] or [np.nan])) for k in
           ("mesh_f1", "mesh_f05", "mesh_f1_whole", "mesh_f05_whole", "dense_f1", "dense_f05", "holes")}
    return (f"{len(rows)} texture-poor captures, {len(s)} scored, {len(rows) - len(s)} refused or failed. "
            f"Median mesh F@1% **{med['mesh_f1']:.3f}**, F@0.5% **{med['mesh_f05']:.3f}** (precision on the "
            f"whole surface: {med['mesh_f1_whole']:.3f} / {med['mesh_f05_whole']:.3f}); dense F@1% "
            f"{med['dense_f1']:.3f}, F@0.5% {med['dense_f05']:.3f}; holes {100 * med['holes']:.1f} % "
            f"(targets of the surfaces issue: 0.90, 0.75, holes under 5 %).")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--seeds", default=None, help="comma-separated seeds instead of the first --count texture-poor")
    ap.add_argument("--variant", default="", help="run dense and mesh (with --set) on a copy of the default "
                    "run's cameras, in ws-surf-<preset>-<variant>")
    ap.add_argument("--mesh-only", action="store_true", help="with --variant: reuse the default run's depth maps "
                    "too and run the mesh stage alone")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--tag", default=time.strftime("%Y-%m-%d"))
    ap.add_argument("--rescore", action="store_true", help="with --tables-from: score the finished runs again")
    ap.add_argument("--tables-from", default=None, metavar="JSON",
                    help="only write the tables for the rows of this results file (e.g. a run stopped early)")
    args = ap.parse_args()
    out = ROOT / "results" / f"surfaces-{args.tag}"
    if args.tables_from:
        rows = json.loads(Path(args.tables_from).read_text())
        if args.rescore:
            for r in rows:
                if r["outcome"] == "scored":
                    root = WORK / f"seed{r['seed']}"
                    name = f"ws-surf-{args.preset}" + (f"-{args.variant}" if args.variant else "")
                    r.update(score(root / name, root / "gen"))
            out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
        out.with_suffix(".md").write_text(f"# Surfaces on randomised texture-poor captures ({args.preset} preset)"
                                          f"\n\n{summary(rows)}\n\n{table(rows)}\n")
        return
    rows = []
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else texture_poor_seeds(args.count, args.start)
    for seed in seeds:
        t0 = time.perf_counter()
        row = run_one(seed, args.preset, args.timeout, args.sets, args.variant, args.mesh_only)
        rows.append(row)
        print(f"[{time.perf_counter() - t0:5.0f} s] seed {seed}: {row['outcome']} mesh F1 {row.get('mesh_f1')} "
              f"F05 {row.get('mesh_f05')} holes {row.get('holes')} {row.get('reason', '')}", flush=True)
        out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    md = (f"# Surfaces on randomised texture-poor captures ({args.preset} preset"
          f"{', ' + ' '.join(args.sets) if args.sets else ''}{', cameras of the plain run' if args.variant else ''})\n\n{summary(rows)}\n\n{table(rows)}\n")
    out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
