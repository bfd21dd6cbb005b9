"""The randomised capture suite: captures drawn from seeds, filmed to MP4, solved as a user would.

    python bench/bench_random.py                      # seeds 0-29, walks w100-103, short s100-111
    python bench/bench_random.py --seeds 0-5 --preset fast --tag try1

Each capture runs ``vid2model ingest`` and ``vid2model sfm`` in a child process, exactly as the CLI
does, and is classed:

* correct: median rotation error under 0.5 degrees and median centre error under 1 % of the
  trajectory extent on the cameras it kept;
* refused: a non-zero exit with a one-line reason (the reason is in the table);
* wrong: cameras delivered that fail the bounds above (the outcome that must never happen).

Writes ``bench/results/random-<tag>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "work" / "random"


def parse_seeds(spec: str) -> list[str]:
    """"0-29,w100-103,s100-111" -> ["0", ..., "29", "w100", ..., "s111"]: a "w" seed is drawn as a
    walk-through, an "s" seed as a short video (at most 60 frames: few views, the focal length weakly held)."""
    out: list[str] = []
    for part in spec.split(","):
        tag = part[0] if part[0] in "ws" else ""
        a, _, b = part.lstrip("ws").partition("-")
        out += [tag + str(s) for s in (range(int(a), int(b) + 1) if b else [int(a)])]
    return out


def draw(seed: str):
    """The capture a seed of :func:`parse_seeds` names."""
    from vid2model.synth.captures import random_capture

    n = int(seed.lstrip("ws"))
    if seed.startswith("w"):
        return random_capture(n, kind="walk")
    return random_capture(n, max_frames=60) if seed.startswith("s") else random_capture(n)


def _cli(*args: str, timeout: float) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-m", "vid2model.cli", *args], capture_output=True, text=True,
                           timeout=timeout)
        code, err = p.returncode, p.stderr
    except subprocess.TimeoutExpired:
        code, err = -1, "timed out"
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    return code, (lines[-1] if lines else ""), time.perf_counter() - t0


def filmed(seed: str, supersample: int = 1):
    """(capture, its folder, the folder with video.mp4 and gt.json), rendered once and kept."""
    from vid2model.synth import generate
    from vid2model.synth.generate import scene_fields

    cap = draw(seed)
    root = WORK / (f"seed{seed}" if supersample == 1 else f"seed{seed}-ss{supersample}")
    gen = root / "gen"
    if not (gen / "video.mp4").exists() or not (gen / "gt.json").exists():
        generate(gen, replace(cap.config, write_video=True, supersample=supersample))
    gt = json.loads((gen / "gt.json").read_text())
    if "scene_config" not in gt:  # rendered before gt.json named its scene: add it, the frames stay
        gt["scene_config"] = scene_fields(cap.config)
        (gen / "gt.json").write_text(json.dumps(gt, indent=1))
    return cap, root, gen


def run_one(seed: str, preset: str, timeout: float, sets: list[str], supersample: int = 1) -> dict:
    cap, root, gen = filmed(seed, supersample)
    ws = root / f"ws-{preset}"
    shutil.rmtree(ws, ignore_errors=True)  # a workspace keeps the settings it was run with: start clean
    extra = [a for s in sets for a in ("--set", s)]
    row = {"seed": seed, "label": f"seed {seed}: {cap.label.split(': ', 1)[1]}", "deg_per_frame": cap.deg_per_frame,
           "n_frames": cap.config.n_frames, "path": cap.config.path}
    code, msg, t_ing = _cli("ingest", str(gen / "video.mp4"), "-o", str(ws), "--preset", preset, "-q", "--force",
                            *extra, timeout=timeout)
    row["ingest_s"] = round(t_ing, 1)
    if code == 0:
        code, msg, t_sfm = _cli("sfm", str(ws), "--preset", preset, "-q", "--force", *extra, timeout=timeout)
        row["sfm_s"] = round(t_sfm, 1)
    kf = json.loads((ws / "ingest" / "keyframes.json").read_text()) if (ws / "ingest" / "keyframes.json").exists() \
        else {}
    row["keyframes"] = len(kf.get("keyframes", []))
    check = ws / "sfm" / "camera_check.json"
    probes = json.loads(check.read_text()).get("probes") if check.exists() else None
    if probes:
        tested = [r for r in probes["results"] if r["verdict"] != "untested"]
        row["probes"] = {"n": probes["probes"], "tested": probes["tested"], "disagreeing": probes["disagreeing"],
                         "worst_rotation": max((r["rotation_off_deg"] / r["rotation_bound_deg"] for r in tested),
                                               default=None),
                         "worst_centre": max((r["centre_off"] for r in tested), default=None),
                         "lowest_side_share": min((min(s for s in r["side_shares"] if s is not None)
                                                   for r in tested if any(s is not None for s in r["side_shares"])),
                                                  default=None)}
    if code != 0:
        row.update(outcome="refused" if code == 2 else "error", reason=msg)
        return row
    from vid2model.synth.evaluate import judge_cameras, load_gt
    from vid2model.workspace import Workspace

    err = judge_cameras(Workspace(ws), load_gt(gen / "gt.json"))
    row.update({k: err[k] for k in ("registered", "keyframes", "rot_median_deg", "rot_max_deg", "center_median_rel",
                                    "center_max_rel", "focal_err_rel", "aspect", "n_rot_over_5deg")})
    row["outcome"] = "correct" if err["correct"] else "wrong"
    summ = json.loads((ws / "manifest.json").read_text())["stages"]["sfm"].get("summary", {})
    row["dropped_spans"] = summ.get("dropped_spans", [])
    row["focal_std_rel"] = summ.get("focal_std_rel")
    return row


def table(rows: list[dict]) -> str:
    def f(v, fmt):
        return "" if v is None else format(v, fmt)

    lines = ["| seed | capture | frames | keyframes | outcome | placed | rot. median (deg) | centre median (%) | "
             "rot. max (deg) | focal err (%) | fy/fx | ingest+sfm (s) | reason / dropped |", "|" + "---|" * 13]
    for r in rows:
        note = r.get("reason", "") or "; ".join(r.get("dropped_spans", []))
        lines.append(f"| {r['seed']} | {r['label'].split(': ', 1)[1]} | {r['n_frames']} | {r.get('keyframes', '')} | "
                     f"**{r['outcome']}** | {r.get('registered', '')} | {f(r.get('rot_median_deg'), '.3f')} | "
                     f"{f(r.get('center_median_rel') and 100 * r['center_median_rel'], '.2f')} | "
                     f"{f(r.get('rot_max_deg'), '.2f')} | "
                     f"{f(r.get('focal_err_rel') is not None and 100 * r['focal_err_rel'] or None, '.2f')} | "
                     f"{f(r.get('aspect'), '.4f')} | {r.get('ingest_s', 0) + r.get('sfm_s', 0):.0f} | {note} |")
    return "\n".join(lines)


def _line(rows: list[dict], what: str) -> str:
    n = len(rows)
    count = {k: sum(r["outcome"] == k for r in rows) for k in ("correct", "refused", "wrong", "error")}
    upto3 = [r for r in rows if r["deg_per_frame"] is None or r["deg_per_frame"] <= 3.0]
    c3 = sum(r["outcome"] == "correct" for r in upto3)
    foc = [r["focal_err_rel"] for r in rows if r["outcome"] == "correct"]
    stray = sum(r.get("n_rot_over_5deg", 0) > 0 for r in rows if r["outcome"] == "correct")
    return (f"{what}: {n} captures, {count['correct']} correct, {count['refused']} refused, **{count['wrong']} "
            f"wrong**, {count['error']} errors; {stray} of the correct ones hold a camera more than 5 deg off. "
            f"Up to 3 deg/frame (and walks): {c3}/{len(upto3)} correct ({100 * c3 / max(len(upto3), 1):.0f} %). "
            f"Focal error on the correct ones: max {100 * max(foc, default=0):.2f} %, median "
            f"{100 * float(np.median(foc)) if foc else 0:.2f} %, "
            f"{sum(f < 0.02 for f in foc)}/{len(foc)} within 2 %.")


def summary(rows: list[dict]) -> str:
    """One line for the full-length captures (and walks), one for the short ones (s-seeds)."""
    full = [r for r in rows if not str(r["seed"]).startswith("s")]
    short = [r for r in rows if str(r["seed"]).startswith("s")]
    return "\n\n".join(_line(g, w) for g, w in ((full, "Full-length"), (short, "Short (at most 60 frames)")) if g)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0-29,w100-103,s100-111")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--supersample", type=int, default=1, help="rays per pixel along each axis when rendering")
    ap.add_argument("--tag", default=time.strftime("%Y-%m-%d"))
    ap.add_argument("--tables-from", nargs="+", default=None, metavar="JSON",
                    help="only write the tables for the rows of these results files (merged, in order)")
    args = ap.parse_args()
    out = ROOT / "results" / f"random-{args.tag}"
    if args.tables_from:
        rows = [r for p in args.tables_from for r in json.loads(Path(p).read_text())]
        out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
        out.with_suffix(".md").write_text(f"# Randomised captures ({args.preset} preset)\n\n{summary(rows)}\n\n"
                                          f"{table(rows)}\n")
        return
    rows = []
    for seed in parse_seeds(args.seeds):
        t0 = time.perf_counter()
        row = run_one(seed, args.preset, args.timeout, args.sets, args.supersample)
        rows.append(row)
        print(f"[{time.perf_counter() - t0:5.0f} s] {row['label']}: {row['outcome']} "
              f"{row.get('rot_median_deg', '')} {row.get('center_median_rel', '')} {row.get('reason', '')}", flush=True)
        out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    md = f"# Randomised captures ({args.preset} preset, seeds {args.seeds})\n\n{summary(rows)}\n\n{table(rows)}\n"
    out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
