"""Ingest: decode the input, score every frame, choose keyframes, write them and the capture findings."""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from vid2model.config import IngestConfig
from vid2model.errors import UserError
from vid2model.ops.frame_scores import (MotionTracker, chained_focus, exposure, gray, relative_sharpness,
                                        sharpness)
from vid2model.ops.keyframes import TrackSurvival, probe_frames, select_keyframes
from vid2model.progress import bar
from vid2model.report.findings import capture_findings
from vid2model.workspace import Workspace, atomic_dir

log = logging.getLogger("vid2model")
MIN_SIDE_PX = 64  # below this SIFT finds too few features to link any two views
DUPLICATE_DIFF = 0.002  # mean absolute grey difference under which a frame repeats the previous one


def score_frames(frames: Iterable[tuple[int, float, np.ndarray]], total: int | None,
                 desc: str = "analysing frames", tracker: MotionTracker | None = None) -> list[dict[str, Any]]:
    """Scores of each (index, timestamp, (H, W, 3) uint8 RGB or (H, W) uint8 grey image), one dict per frame.

    ``tracker``: pass one to read its feature tracks afterwards (:meth:`MotionTracker.spans`).
    """
    tracker = tracker or MotionTracker()
    rows = []
    with bar(desc, total) as b:
        for idx, t, img in frames:
            g = gray(img) if img.ndim == 3 else img.astype(np.float32) * (1 / 255)
            m = tracker.update(g)
            rows.append({"index": idx, "timestamp": round(float(t), 4), "sharpness": sharpness(g),
                         "focus_step": round(m.focus_step, 4) if np.isfinite(m.focus_step) else None,
                         "motion": m.motion, "net_motion": m.net, "diff": m.diff, "tracks": m.tracks,
                         "duplicate": bool(len(rows) and m.diff < DUPLICATE_DIFF), **exposure(g)})
            b.advance()
    return rows


def _relative_sharpness(rows: list[dict[str, Any]], window: int) -> np.ndarray:
    """(N,) sharpness of each frame relative to its neighbours, judged on the same scene patches.

    The whole-frame measure also falls where the view turns to plain surfaces, which is not blur;
    the frame-to-frame focus steps of tracked patches are chained instead (see :func:`chained_focus`).
    """
    steps = np.array([np.nan if r.get("focus_step") is None else r["focus_step"] for r in rows], float)
    log_focus = chained_focus(steps, np.array([r["sharpness"] for r in rows], float), window=window)
    for r, f in zip(rows, log_focus):
        r["focus"] = round(float(f), 4)
    return relative_sharpness(np.exp(log_focus), window=window)


def _choose(rows: list[dict[str, Any]], cfg: IngestConfig, window: int,
            tracks: np.ndarray | None = None, angles: np.ndarray | None = None) -> list[int]:
    """Relative sharpness into ``rows`` and the positions of the keyframes among them.

    ``tracks``: (T, 2) first and last row of every feature track, to keep consecutive keyframes linked;
    ``angles``: (N,) degrees the view has turned since the first row, to keep keyframes this close.
    """
    if angles is not None:
        for r, a in zip(rows, angles):
            r["turn_deg"] = round(float(a), 3)
    rel = _relative_sharpness(rows, window)
    for r, s in zip(rows, rel):
        r["rel_sharpness"] = round(float(s), 4)
    motion = np.array([r["motion"] for r in rows], float)
    picks = select_keyframes(motion, rel, step=cfg.keyframe_step, target=cfg.target_keyframes,
                             min_count=cfg.min_keyframes, max_count=cfg.max_keyframes,
                             blur_threshold=cfg.blur_threshold, max_gap_ratio=cfg.max_gap_steps,
                             candidates=~np.array([r["duplicate"] for r in rows]), tracks=tracks,
                             min_survival=cfg.min_track_survival, angles=angles, max_angle=cfg.keyframe_max_deg,
                             turn_views=cfg.keyframe_turn_views)
    _mark_keyframes(rows, picks, motion, None if tracks is None else TrackSurvival(tracks, cfg.min_track_survival))
    return picks


def _mark_keyframes(rows: list[dict[str, Any]], picks: list[int], motion: np.ndarray,
                    survival: TrackSurvival | None) -> None:
    """Per row: keyframe or not, image motion since the previous keyframe and the share of that
    keyframe's feature tracks still alive (for a keyframe: how well it links to the one before)."""
    chosen = set(picks)
    since = 0.0  # image motion accumulated since the last keyframe (fraction of the diagonal)
    for i, r in enumerate(rows):
        since += float(np.nan_to_num(motion[i])) if i else 0.0
        r["since_keyframe"] = round(since, 5)
        r["keyframe"] = i in chosen
        if r["keyframe"]:
            since = 0.0
    if survival is None:
        return
    is_key = np.zeros(len(rows), bool)
    is_key[list(chosen)] = True
    # the last keyframe strictly before each row (row 0 before the first)
    before = np.maximum.accumulate(np.concatenate([[0], np.where(is_key, np.arange(len(rows)), 0)[:-1]]))
    for k in np.unique(before):
        at = np.flatnonzero(before == k)
        for i, share in zip(at, survival.shares(int(k), at)):
            rows[i]["track_survival"] = round(float(share), 3)


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


@contextlib.contextmanager
def _output_dirs(ws: Workspace, keep_full: bool):
    """Temp folders for images/ (and images_full/), swapped in together only on success."""
    with atomic_dir(ws.images_dir) as work:
        if keep_full:
            with atomic_dir(ws.images_full_dir) as full:
                yield work, full
        else:
            yield work, None
    if not keep_full and ws.images_full_dir.exists():
        shutil.rmtree(ws.images_full_dir)  # stale full-resolution frames of an earlier run


def _keyframe(name: str, row: dict[str, Any], work: np.ndarray, timestamp: float | None) -> dict[str, Any]:
    return {"name": name, "index": row["index"], "timestamp": timestamp, "sharpness": row["rel_sharpness"],
            "motion": round(float(row["motion"]), 5), "parallax": row.get("since_keyframe"),
            "ev": round(row["ev"], 3),
            "width": int(work.shape[1]), "height": int(work.shape[0])}


def _ingest_video(ws: Workspace, path: Path, cfg: IngestConfig) -> dict[str, Any]:
    from vid2model.io.video import iter_frames, prefetch, probe

    info = probe(path)
    if min(info.width, info.height) < MIN_SIDE_PX:
        raise UserError(f"{path.name}: frames of {info.width}x{info.height} pixels are too small to reconstruct "
                        f"from; film at {MIN_SIDE_PX} pixels a side or more (any phone video is far larger)")
    min_dt = 1.0 / cfg.analysis_fps if cfg.analysis_fps > 0 else 0.0
    total = info.n_frames_estimate
    if min_dt and info.fps > cfg.analysis_fps:
        total = int(total * cfg.analysis_fps / info.fps)
    damaged: list[float] = []
    frames = iter_frames(path, cfg.analysis_side, min_dt=min_dt, gray=True, damaged=damaged)
    tracker = MotionTracker()
    rows = score_frames(prefetch(frames), total or None, tracker=tracker)
    if len(rows) < 2:
        raise UserError(f"{path.name} holds a single frame: a 3D model needs a video that moves around the object")
    duration = rows[-1]["timestamp"] - rows[0]["timestamp"]
    rate = (len(rows) - 1) / duration if duration > 0 else info.fps
    picks = _choose(rows, cfg, window=max(15, round(cfg.sharpness_window_s * rate)), tracks=tracker.spans(),
                    angles=tracker.view_angles())
    found = capture_findings(rows, len(picks), cfg, video=True)
    found += _damage_findings(path, damaged)
    source = {**vars(info), "analysed_frames": len(rows), "analysis_rate": round(rate, 3),
              "damaged_packets": len(damaged)}
    ws.write_json(ws.frames_json, {"source": source, "frames": rows, "findings": found})
    if any(f["kind"] == "static" for f in found):  # frames.json is written: the runner's report shows why
        raise UserError(f"{path.name}: the camera does not move, so depth cannot be recovered; walk around the "
                        f"object while filming (see {ws.report_html})")
    by_index = {rows[i]["index"]: rows[i] for i in picks}
    probes = _probes(rows, picks, cfg)
    keyframes, written = [], []
    with _output_dirs(ws, cfg.keep_full_res) as (tmp_work, tmp_full), atomic_dir(ws.probes_dir) as tmp_probes, \
            bar("writing keyframes", len(by_index) + len(probes)) as b:
        for idx, t, img in prefetch(iter_frames(path, None, indices=set(by_index) | set(probes)), depth=2):
            name = _frame_name(idx)
            work = _resize(img, cfg.max_side)
            if idx in probes:
                _save(work, ws.probe_image(name, root=tmp_probes), cfg.jpeg_quality)
                written.append({**probes[idx], "name": name, "timestamp": round(t, 4)})
            else:
                if tmp_full is not None:
                    _save(img, ws.full_image(name, root=tmp_full), cfg.jpeg_quality)
                _save(work, ws.keyframe_image(name, root=tmp_work), cfg.jpeg_quality)
                keyframes.append(_keyframe(name, by_index[idx], work, round(t, 4)))
            b.advance()
    if len(keyframes) < len(by_index):
        raise UserError(f"{path.name}: frames could not be decoded a second time; the file may be damaged")
    if not written:
        shutil.rmtree(ws.probes_dir, ignore_errors=True)
    work_size = [keyframes[0]["width"], keyframes[0]["height"]]
    return {"kind": "video", "video": True, "source": source, "fps": info.fps, "duration": info.duration,
            "rotation": info.rotation, "source_size": [info.width, info.height], "working_size": work_size,
            "focal_prior_px": None, "n_frames": len(rows), "keyframes": keyframes, "probes": written,
            "findings": found}


def _probes(rows: list[dict[str, Any]], picks: list[int], cfg: IngestConfig) -> dict[int, dict[str, Any]]:
    """Source index -> the keyframes (names) a held-out probe frame lies between."""
    if not cfg.probe_frames:
        return {}
    motion = np.array([r["motion"] for r in rows], float)
    rel = np.array([r["rel_sharpness"] for r in rows], float)
    ok = ~np.array([r["duplicate"] for r in rows])
    found = probe_frames(picks, motion, rel, ok, cfg.blur_threshold)
    return {rows[p]["index"]: {"index": rows[p]["index"],
                               "between": [_frame_name(rows[a]["index"]), _frame_name(rows[b]["index"])]}
            for p, a, b in found}


def _frame_name(index: int) -> str:
    """The image name of a video's frame ``index`` (keyframes and probes alike)."""
    return f"frame_{index:06d}.jpg"


def _damage_findings(path: Path, damaged: list[float]) -> list[dict[str, Any]]:
    from vid2model.io.video import damaged_spans

    out = []
    for a, b, n in damaged_spans(damaged):
        where = f"{a:.1f}-{b:.1f} s" if np.isfinite(a) else "at unknown times"
        msg = (f"{path.name} is damaged {where}: {n} piece{'s' * (n != 1)} of the video could not be decoded and "
               "were skipped; the frames there are missing from the model")
        log.warning("%s", msg)
        out.append({"kind": "damaged", "start": a if np.isfinite(a) else None,
                    "end": b if np.isfinite(b) else None, "count": n, "message": msg})
    return out


def _ingest_images(ws: Workspace, folder: Path, cfg: IngestConfig) -> dict[str, Any]:
    from vid2model.io.images import exif_focal_px, list_images, read_image

    listed = list_images(folder)
    skipped: list[dict[str, str]] = []
    files: list[Path] = []

    def readable():
        # One unreadable photo among many is skipped and reported, not fatal.
        for p in listed:
            try:
                img = read_image(p, cfg.analysis_side)
            except UserError as exc:
                skipped.append({"name": p.name, "reason": str(exc).removeprefix(f"cannot read image {p.name}: ")})
                log.warning("%s", exc)
                continue
            files.append(p)
            yield len(files) - 1, float(len(files) - 1), img

    tracker = MotionTracker()
    rows = score_frames(readable(), len(listed), "analysing images", tracker=tracker)
    if len(files) < 2:
        bad = f" ({len(skipped)} could not be read: {', '.join(s['name'] for s in skipped[:5])})" if skipped else ""
        raise UserError(f"{folder} holds {len(files)} readable image{'s' * (len(files) != 1)}{bad}: "
                        "a 3D model needs several views around the object")
    for r, p in zip(rows, files):
        r["name"] = p.name
    # Photos are chosen by the photographer: all are kept unless there are more than asked for.
    if len(files) > cfg.max_keyframes or cfg.target_keyframes:
        picks = _choose(rows, cfg, window=max(15, len(rows) // 10), tracks=tracker.spans(),
                        angles=tracker.view_angles())
    else:
        _choose(rows, cfg, window=7)
        picks = list(range(len(files)))
        for r in rows:
            r["keyframe"] = True
    found = capture_findings(rows, len(picks), cfg, video=False)
    if skipped:
        found.append({"kind": "unreadable", "start": None, "end": None, "files": skipped,
                      "message": f"{len(skipped)} of {len(listed)} files could not be read and were left out: "
                                 + "; ".join(f"{s['name']} ({s['reason']})" for s in skipped[:10])
                                 + (" ..." if len(skipped) > 10 else "")})
    source = {"path": str(folder), "n_images": len(files), "skipped": skipped}
    ws.write_json(ws.frames_json, {"source": source, "frames": rows, "findings": found})
    focal, keyframes, sizes = None, [], set()
    with _output_dirs(ws, cfg.keep_full_res) as (tmp_work, tmp_full), bar("writing images", len(picks)) as b:
        for i in picks:
            p = files[i]
            img = read_image(p)
            f = exif_focal_px(p)
            if f and focal is None:
                focal = f * min(1.0, cfg.max_side / max(img.shape[:2]))
            if tmp_full is not None:
                _save(img, ws.full_image(p.name, root=tmp_full), cfg.jpeg_quality)
            work = _resize(img, cfg.max_side)
            _save(work, ws.keyframe_image(p.name, root=tmp_work), cfg.jpeg_quality)
            keyframes.append(_keyframe(p.name, rows[i], work, None))
            sizes.add((img.shape[1], img.shape[0]))
            b.advance()
    if len(sizes) > 1:
        log.warning("%s: images of %d different sizes; cameras will be solved per size", folder, len(sizes))
    big = max(sizes, key=lambda s: s[0] * s[1])
    return {"kind": "images", "video": False, "source": source, "fps": None, "duration": None, "rotation": 0,
            "source_size": list(big), "working_size": [keyframes[0]["width"], keyframes[0]["height"]],
            "focal_prior_px": focal, "n_frames": len(files), "keyframes": keyframes, "findings": found}


def run(ws: Workspace, cfg: IngestConfig) -> dict[str, Any]:
    """Decode, score, choose and write keyframes and the findings the capture report shows.

    Writes ``images/`` (and ``images_full/``), ``ingest/frames.json`` and ``ingest/keyframes.json``.
    Raises :class:`UserError` on unreadable input or an impossible capture; then no ``keyframes.json`` or
    ``images/`` of this run is left behind.
    """
    src = ws.read_json(ws.input_path)
    if not src or "path" not in src:
        raise UserError(f"{ws.input_path} is missing: create the workspace with 'vid2model ingest INPUT -o DIR'")
    path = Path(src["path"])
    if not path.exists():
        raise UserError(f"input not found: {path}")
    # Outputs of an earlier run must not look finished if this one fails.
    ws.keyframes_json.unlink(missing_ok=True)
    kind = src.get("kind") or ("images" if path.is_dir() else "video")
    result = _ingest_images(ws, path, cfg) if kind == "images" else _ingest_video(ws, path, cfg)
    ws.write_json(ws.keyframes_json, result)
    return {"kind": result["kind"], "n_frames": result["n_frames"], "n_keyframes": len(result["keyframes"]),
            "working_size": result["working_size"], "findings": [f["message"] for f in result["findings"]],
            "_human": f"{len(result['keyframes'])} keyframes of {result['n_frames']} frames; "
                      f"report: {ws.report_html}"}
