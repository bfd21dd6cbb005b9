"""Ingest throughput and memory on a long 1080p30 H.264 clip.

Generates (once, cached under bench/work/) a 60 s 1920x1080 30 fps H.264 clip by moving a
window over a large procedural texture, plus a 20 s clip cut the same way, then measures in a fresh
subprocess each (so peak memory is per measurement):

* ``pyav_decode``   -- PyAV decode + libswscale resize to the analysis size (no scoring),
* ``opencv_decode`` -- the peer: cv2.VideoCapture decode + cv2.resize to the same size,
* ``analysis``      -- vid2model's analysis pass (decode + sharpness/exposure/motion scoring),
* ``ingest``        -- the whole ingest stage (analysis, keyframe choice, second decode pass writing
  keyframes at working and full resolution, report).

Prints a table and writes bench/work/bench_ingest.json. Target: the 60 s clip analysed in < 30 s
on 2 cores, peak memory flat in clip length (60 s vs 20 s).

Usage: python bench/bench_ingest.py [--quick]   (--quick: 20 s clip only)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WORK = Path(__file__).resolve().parent / "work"
W, H, FPS = 1920, 1080, 30


def _texture(seed: int = 0) -> np.ndarray:
    """A 3000x5200 RGB texture with detail at several scales (blobs, lines, text)."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = 3000, 5200
    base = rng.random((h // 40, w // 40, 3)).astype(np.float32)
    img = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)
    img += 0.35 * cv2.resize(rng.random((h // 8, w // 8, 3)).astype(np.float32), (w, h))
    img = (np.clip(img / 1.4, 0, 1) * 200).astype(np.uint8)
    for _ in range(2500):
        c = tuple(int(v) for v in rng.integers(0, 255, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.5:
            cv2.circle(img, (x, y), int(rng.integers(5, 60)), c, -1)
        else:
            cv2.putText(img, str(rng.integers(0, 9999)), (x, y), cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.8, 3)),
                        c, int(rng.integers(1, 5)))
    return img


def make_clip(path: Path, seconds: float) -> Path:
    """Encode ``seconds`` of 1080p30 H.264 panning over the texture (cached)."""
    import av

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tex = _texture()
    n = int(round(seconds * FPS))
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as out:
        s = out.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = {"crf": "20", "preset": "veryfast"}
        for i in range(n):
            u = i / FPS
            x = int((tex.shape[1] - W) * (0.5 + 0.45 * np.sin(2 * np.pi * u / 40)))
            y = int((tex.shape[0] - H) * (0.5 + 0.4 * np.sin(2 * np.pi * u / 27)))
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(tex[y:y + H, x:x + W]), format="rgb24")
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    tmp.rename(path)
    return path


# ---- measurements, each run in its own process ---------------------------------------------
def _m_pyav(path: str, side: int) -> dict:
    from vid2model.io.video import iter_frames

    return {"frames": sum(1 for _ in iter_frames(path, side, gray=True))}


def _m_opencv(path: str, side: int) -> dict:
    import cv2

    cap = cv2.VideoCapture(path)
    n = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        h, w = img.shape[:2]
        s = side / max(h, w)
        small = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        n += 1
    return {"frames": n}


def _m_analysis(path: str, side: int) -> dict:
    from vid2model.io.video import iter_frames, prefetch
    from vid2model.stages.ingest import score_frames

    rows = score_frames(prefetch(iter_frames(path, side, min_dt=1 / 30, gray=True)), None)
    return {"frames": len(rows)}


def _m_ingest(path: str, side: int) -> dict:
    import tempfile

    from vid2model.config import IngestConfig
    from vid2model.stages.ingest import run
    from vid2model.workspace import Workspace

    with tempfile.TemporaryDirectory(dir=WORK) as d:
        ws = Workspace(d)
        ws.write_json(ws.input_path, {"path": path, "kind": "video"})
        s = run(ws, IngestConfig(analysis_side=side))
    return {"frames": s["n_frames"], "keyframes": s["n_keyframes"]}


def _child(kind: str, path: str, side: int) -> None:
    from vid2model.progress import set_quiet

    set_quiet(True)
    t, cpu = time.perf_counter(), time.process_time()
    res = globals()[f"_m_{kind}"](path, side)
    res["wall_s"] = time.perf_counter() - t
    res["cpu_s"] = time.process_time() - cpu  # all threads: compare with wall time x cores when the box is busy
    # VmHWM, not ru_maxrss: the latter keeps the parent's high-water mark across fork+exec.
    hwm = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM"))
    res["peak_rss_mb"] = int(hwm.split()[1]) / 1024
    print("RESULT " + json.dumps(res))


def measure(kind: str, path: Path, side: int = 320) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(path), str(side)],
                         capture_output=True, text=True, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    res = json.loads(line[7:])
    res["fps"] = res["frames"] / res["wall_s"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20 s clip only")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(a.child[0], a.child[1], int(a.child[2]))
        return
    clips = {"20s": make_clip(WORK / "pan_1080p30_20s.mp4", 20)}
    if not a.quick:
        clips["60s"] = make_clip(WORK / "pan_1080p30_60s.mp4", 60)
    results: dict = {"cpu_count": os.cpu_count(), "load_average_before": os.getloadavg(), "clips": {}}
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (other work on the box slows wall times)")
    print(f"{'clip':5} {'measure':14} {'frames':>6} {'wall s':>8} {'cpu s':>7} {'frames/s':>9} {'peak MB':>8}")
    for name, path in clips.items():
        results["clips"][name] = {}
        for kind in ("pyav_decode", "opencv_decode", "analysis", "ingest"):
            r = measure({"pyav_decode": "pyav", "opencv_decode": "opencv"}.get(kind, kind), path)
            results["clips"][name][kind] = r
            print(f"{name:5} {kind:14} {r['frames']:6d} {r['wall_s']:8.2f} {r['cpu_s']:7.1f} {r['fps']:9.1f} "
                  f"{r['peak_rss_mb']:8.0f}")
        c = results["clips"][name]
        c["pyav_vs_opencv_speed"] = c["pyav_decode"]["fps"] / c["opencv_decode"]["fps"]
        print(f"{name:5} PyAV/OpenCV decode speed ratio: {c['pyav_vs_opencv_speed']:.2f}")
    if "60s" in results["clips"]:
        c60, c20 = results["clips"]["60s"], results["clips"]["20s"]
        results["analysis_60s_wall_s"] = c60["analysis"]["wall_s"]
        results["target_met"] = c60["analysis"]["wall_s"] < 30.0
        results["memory_ratio_60s_vs_20s"] = {k: c60[k]["peak_rss_mb"] / c20[k]["peak_rss_mb"]
                                              for k in ("analysis", "ingest")}
        print(f"60 s clip analysed in {c60['analysis']['wall_s']:.1f} s (target < 30 s: "
              f"{'met' if results['target_met'] else 'MISSED'}); peak memory 60 s / 20 s: "
              + ", ".join(f"{k} {v:.2f}" for k, v in results["memory_ratio_60s_vs_20s"].items()))
    (WORK / "bench_ingest.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
