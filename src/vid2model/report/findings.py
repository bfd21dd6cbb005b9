"""Capture problems found in the per-frame scores, in plain words with time stamps and advice."""

from __future__ import annotations

from typing import Any

import numpy as np

from vid2model.config import IngestConfig
from vid2model.ops.keyframes import exposure_jumps, segments_where


def _col(rows: list[dict[str, Any]], key: str, default: float = np.nan) -> np.ndarray:
    return np.array([r.get(key, default) if r.get(key) is not None else default for r in rows], float)


def capture_findings(rows: list[dict[str, Any]], n_keyframes: int, cfg: IngestConfig,
                     video: bool = True) -> list[dict[str, Any]]:
    """Findings of a capture from its scored frames.

    Args:
        rows: per-frame dicts with ``timestamp``, ``rel_sharpness``, ``motion``, ``net_motion``,
            ``mean``, ``ev``, ``bright``, ``duplicate`` (frames.json ``frames``).
        n_keyframes: how many keyframes were chosen.
        cfg: thresholds.
        video: False for photo folders (no timing, no motion advice).

    Returns:
        Dicts with ``kind`` (blur, exposure_jump, too_dark, overexposed, too_fast, too_slow, static,
        too_short, duplicates), ``start``/``end`` (seconds; image numbers for photo folders),
        ``message`` and, for keyframe-related kinds, the source frame ``frames`` range.
    """
    if not rows:
        return []
    t = _col(rows, "timestamp")
    rel = _col(rows, "rel_sharpness", 1.0)
    motion = np.nan_to_num(_col(rows, "motion", 0.0))
    mean, ev, bright = _col(rows, "mean"), _col(rows, "ev"), _col(rows, "bright", 0.0)
    unit, what = (" s", "frames") if video else ("", "images")
    out: list[dict[str, Any]] = []

    def add(kind: str, a: int, b: int, message: str, **extra: Any) -> None:
        out.append({"kind": kind, "start": round(float(t[a]), 3), "end": round(float(t[b - 1]), 3),
                    "frames": [rows[a]["index"], rows[b - 1]["index"]], "message": message, **extra})

    def when(a: int, b: int) -> str:
        if not video:
            first, last = rows[a].get("name", str(a)), rows[b - 1].get("name", str(b - 1))
            return first if b - a <= 1 else f"{first} to {last}"
        return f"{t[a]:.1f}{unit}" if b - a <= 1 else f"{t[a]:.1f}–{t[b - 1]:.1f}{unit}"

    for a, b in segments_where(rel < cfg.blur_threshold, min_len=2 if video else 1, max_hole=2):
        add("blur", a, b, f"{what} {when(a, b)} are blurred: "
            + ("move slower or add light there" if video else "retake them holding still"),
            min_sharpness=round(float(rel[a:b].min()), 3))
    for a, b in segments_where(mean < 0.12, min_len=3 if video else 1):
        add("too_dark", a, b, f"{what} {when(a, b)} are too dark: add light")
    for a, b in segments_where(bright > 0.25, min_len=3 if video else 1):
        add("overexposed", a, b, f"{what} {when(a, b)} are overexposed (a quarter of the picture is pure "
            f"white): lower the exposure or avoid direct light")
    if not video:
        if n_keyframes < cfg.min_keyframes:
            out.append({"kind": "too_short", "start": 0.0, "end": float(t[-1]), "message":
                        f"only {n_keyframes} images: take at least {cfg.min_keyframes} from around the object"})
        return out

    for j, step in exposure_jumps(ev, threshold=cfg.exposure_jump_ev):
        add("exposure_jump", j, j + 1, f"brightness jumps by {step:+.1f} EV at {t[j]:.1f} s: lock exposure "
            f"(tap and hold on the phone) and avoid lights switching on or off", ev=round(step, 2))
    for a, b in segments_where(motion > cfg.fast_motion, min_len=2, max_hole=1):
        add("too_fast", a, b, f"the camera moves too fast at {when(a, b)}: move slower so views overlap")
    duration = float(t[-1] - t[0])
    net = _col(rows, "net_motion", 0.0)
    if np.nanmax(net) < cfg.static_motion:
        out.append({"kind": "static", "start": float(t[0]), "end": float(t[-1]), "frames":
                    [rows[0]["index"], rows[-1]["index"]], "message": "the camera does not move, so depth "
                    "cannot be recovered: walk around the object (or through the room) while filming"})
    else:
        # Motion per second over a 1 s running window; long stretches of it near zero are slow filming.
        dt = np.diff(t, prepend=t[0])
        lo = np.searchsorted(t, t - 0.5)
        hi = np.searchsorted(t, t + 0.5, side="right")
        cm, ct = np.concatenate([[0], np.cumsum(motion)]), np.concatenate([[0], np.cumsum(dt)])
        span = np.maximum(ct[hi] - ct[lo], 1e-6)
        rate = (cm[hi] - cm[lo]) / span
        for a, b in segments_where(rate < cfg.slow_motion):
            if t[b - 1] - t[a] >= 3.0:
                add("too_slow", a, b, f"the camera hardly moves at {when(a, b)}: keep moving around the "
                    f"object (a steady walk, about a full turn in 20–60 s)")
    dup = _col(rows, "duplicate", 0.0) > 0
    if len(dup) >= 10 and dup.mean() > 0.2:
        add("duplicates", 0, len(rows), f"{100 * dup.mean():.0f}% of the frames repeat the previous one: "
            f"film at the camera's native frame rate (no screen recording or frame-rate conversion)")
    if n_keyframes < cfg.min_keyframes or duration < 2.0:
        add("too_short", 0, len(rows), f"the capture is too short ({duration:.1f} s, {n_keyframes} distinct "
            f"views): film longer, at least {cfg.min_keyframes} distinct viewpoints around the object")
    return out
