"""Ingest: decode the input, score every frame, choose keyframes, write them and the capture report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from vid2model.config import IngestConfig
from vid2model.errors import UserError
from vid2model.ops.frame_scores import MotionTracker, exposure, gray, relative_sharpness, sharpness
from vid2model.ops.keyframes import exposure_jumps, segments_where, select_keyframes
from vid2model.progress import bar
from vid2model.workspace import Workspace, atomic_dir

log = logging.getLogger("vid2model")


def _score(frames, total: int | None, desc: str) -> list[dict[str, Any]]:
    """Scores of each (index, timestamp, image) at analysis resolution."""
    tracker = MotionTracker()
    rows = []
    with bar(desc, total) as b:
        for idx, t, img in frames:
            g = gray(img)
            motion, diff = tracker.update(g)
            rows.append({"index": idx, "timestamp": round(t, 4), "sharpness": sharpness(g), "motion": motion,
                         "diff": diff, **exposure(g)})
            b.advance()
    return rows


def findings(rows: list[dict[str, Any]], rel: np.ndarray, duration: float, n_keyframes: int,
             cfg: IngestConfig) -> list[dict[str, Any]]:
    """Capture problems in plain words with time stamps and advice."""
    t = np.array([r["timestamp"] for r in rows])
    motion = np.array([r["motion"] for r in rows])
    mean = np.array([r["mean"] for r in rows])
    out: list[dict[str, Any]] = []

    def span(a: int, b: int) -> tuple[float, float]:
        return float(t[a]), float(t[b - 1])

    for a, b in segments_where(rel < cfg.blur_threshold, min_len=1):
        t0, t1 = span(a, b)
        out.append({"kind": "blur", "start": t0, "end": t1, "frames": [rows[a]["index"], rows[b - 1]["index"]],
                    "message": f"frames {t0:.1f}–{t1:.1f} s are blurred: move slower or add light there"})
    for j, step in exposure_jumps(np.array([r["ev"] for r in rows])):
        out.append({"kind": "exposure_jump", "start": float(t[j]), "end": float(t[j]), "ev": round(step, 2),
                    "message": f"brightness jumps by {step:+.1f} EV at {t[j]:.1f} s: lock exposure (tap and "
                               f"hold on the phone) and avoid lights switching"})
    fast = motion > cfg.fast_motion
    for a, b in segments_where(fast, min_len=2):
        t0, t1 = span(a, b)
        out.append({"kind": "too_fast", "start": t0, "end": t1,
                    "message": f"the camera moves too fast at {t0:.1f}–{t1:.1f} s: move slower so frames overlap"})
    for a, b in segments_where(mean < 0.12, min_len=3):
        t0, t1 = span(a, b)
        out.append({"kind": "too_dark", "start": t0, "end": t1,
                    "message": f"frames {t0:.1f}–{t1:.1f} s are too dark: add light"})
    total_motion = float(np.nansum(motion))
    if total_motion < cfg.static_motion:
        out.append({"kind": "static", "start": 0.0, "end": duration,
                    "message": "the camera barely moves: walk around the object (or through the room) while filming"})
    elif total_motion < 4 * cfg.static_motion and duration > 0:
        out.append({"kind": "too_slow", "start": 0.0, "end": duration,
                    "message": "the camera moves very little: cover more viewpoints around the object"})
    if n_keyframes < cfg.min_keyframes:
        out.append({"kind": "too_short", "start": 0.0, "end": duration,
                    "message": f"only {n_keyframes} useful frames: film longer (at least {cfg.min_keyframes} "
                               f"distinct viewpoints)"})
    return out


def _resize(img: np.ndarray, max_side: int) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return img
    s = max_side / max(h, w)
    return cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def _save(img: np.ndarray, path: Path, quality: int) -> None:
    from PIL import Image

    kw = {"quality": quality} if path.suffix.lower() in (".jpg", ".jpeg") else {}
    Image.fromarray(img).save(path, **kw)


def _ingest_video(ws: Workspace, path: Path, cfg: IngestConfig) -> dict[str, Any]:
    from vid2model.io.video import iter_frames, probe

    info = probe(path)
    rows = _score(iter_frames(path, cfg.analysis_side), info.n_frames_estimate or None, "analysing frames")
    if len(rows) < 2:
        raise UserError(f"{path.name} has a single frame: a 3D model needs a video that moves around the object")
    rel = relative_sharpness(np.array([r["sharpness"] for r in rows]))
    motion = np.array([r["motion"] for r in rows])
    picks = select_keyframes(motion, rel, step=cfg.keyframe_step, target=cfg.target_keyframes,
                             min_count=cfg.min_keyframes, max_count=cfg.max_keyframes,
                             blur_threshold=cfg.blur_threshold)
    key_idx = {rows[i]["index"] for i in picks}
    duration = rows[-1]["timestamp"] - rows[0]["timestamp"]
    found = findings(rows, rel, duration, len(picks), cfg)
    for r, s in zip(rows, rel):
        r["rel_sharpness"] = float(s)
        r["keyframe"] = r["index"] in key_idx
    ws.write_json(ws.frames_json, {"source": vars(info), "frames": rows, "findings": found})
    if any(f["kind"] == "static" for f in found):
        _report(ws)
        raise UserError(f"{path.name}: the camera barely moves, so depth cannot be recovered; walk around the "
                        f"object while filming (see {ws.report_html})")
    keyframes = []
    with atomic_dir(ws.images_dir) as tmp_work, atomic_dir(ws.images_full_dir) as tmp_full, \
            bar("writing keyframes", len(key_idx)) as b:
        for idx, t, img in iter_frames(path, None, indices=key_idx):
            name = f"frame_{idx:06d}.jpg"
            if cfg.keep_full_res:
                _save(img, tmp_full / name, cfg.jpeg_quality)
            work = _resize(img, cfg.max_side)
            _save(work, tmp_work / name, cfg.jpeg_quality)
            row = next(r for r in rows if r["index"] == idx)
            keyframes.append({"name": name, "index": idx, "timestamp": t, "sharpness": row["rel_sharpness"],
                              "width": work.shape[1], "height": work.shape[0]})
            b.advance()
    return {"kind": "video", "video": True, "source": vars(info), "keyframes": keyframes, "n_frames": len(rows),
            "findings": found, "focal_prior_px": None}


def _ingest_images(ws: Workspace, folder: Path, cfg: IngestConfig) -> dict[str, Any]:
    from vid2model.io.images import exif_focal_px, list_images, read_image

    files = list_images(folder)
    if len(files) < 2:
        raise UserError(f"{folder} holds a single image: a 3D model needs several views around the object")
    frames = ((i, float(i), read_image(p, cfg.analysis_side)) for i, p in enumerate(files))
    rows = _score(frames, len(files), "analysing images")
    rel = relative_sharpness(np.array([r["sharpness"] for r in rows]), window=len(rows))
    for r, s, p in zip(rows, rel, files):
        r.update(rel_sharpness=float(s), keyframe=True, name=p.name)
    found = [f for f in findings(rows, rel, 0.0, len(files), cfg) if f["kind"] in ("blur", "too_dark", "too_short")]
    for f in found:
        f["message"] = f["message"].replace("frames", "images").replace(" s ", " ")
    ws.write_json(ws.frames_json, {"source": {"path": str(folder), "n_images": len(files)}, "frames": rows,
                                   "findings": found})
    focal, keyframes = None, []
    with atomic_dir(ws.images_dir) as tmp_work, atomic_dir(ws.images_full_dir) as tmp_full, \
            bar("writing images", len(files)) as b:
        for i, p in enumerate(files):
            img = read_image(p)
            f = exif_focal_px(p)
            if f and focal is None:
                focal = f * min(1.0, cfg.max_side / max(img.shape[:2]))
            if cfg.keep_full_res:
                _save(img, tmp_full / p.name, cfg.jpeg_quality)
            work = _resize(img, cfg.max_side)
            _save(work, tmp_work / p.name, cfg.jpeg_quality)
            keyframes.append({"name": p.name, "index": i, "timestamp": None, "sharpness": float(rel[i]),
                              "width": work.shape[1], "height": work.shape[0]})
            b.advance()
    return {"kind": "images", "video": False, "source": {"path": str(folder)}, "keyframes": keyframes,
            "n_frames": len(files), "findings": found, "focal_prior_px": focal}


def _report(ws: Workspace) -> None:
    try:
        from vid2model.report import build_report
    except ImportError:  # pragma: no cover
        return
    build_report(ws)


def run(ws: Workspace, cfg: IngestConfig) -> dict[str, Any]:
    """Decode, score, choose and write keyframes; build the capture report.

    Writes ``images/`` (and ``images_full/``), ``ingest/frames.json``, ``ingest/keyframes.json`` and
    ``report/``. Raises :class:`UserError` on unreadable input or an impossible capture.
    """
    src = ws.read_json(ws.input_path)
    path = Path(src["path"])
    result = _ingest_images(ws, path, cfg) if src["kind"] == "images" else _ingest_video(ws, path, cfg)
    ws.write_json(ws.keyframes_json, result)
    _report(ws)
    return {"kind": result["kind"], "n_frames": result["n_frames"], "n_keyframes": len(result["keyframes"]),
            "findings": [f["message"] for f in result["findings"]]}
