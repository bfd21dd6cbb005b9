"""Keyframe selection: enough overlap for SfM, enough parallax to triangulate, the sharpest frames."""

from __future__ import annotations

import numpy as np


def select_keyframes(motion: np.ndarray, rel_sharp: np.ndarray, *, step: float = 0.05, target: int = 0,
                     min_count: int = 8, max_count: int = 150, blur_threshold: float = 0.6) -> list[int]:
    """Pick keyframe indices.

    The cumulative camera motion (sum of per-frame median flow, as a fraction of the image diagonal)
    is cut into equal-motion segments, one keyframe per segment: about one per ``step`` of motion,
    so slow passages give fewer keyframes and fast ones more. In each segment the frame with the
    highest relative sharpness wins; a blurred frame (``rel_sharp < blur_threshold``) is taken only
    when its whole segment is blurred.

    Args:
        motion: (N,) motion of each frame since the previous one (0 for the first).
        rel_sharp: (N,) relative sharpness (1 = as sharp as its neighbours).
        step: motion between keyframes (fraction of the image diagonal) when ``target`` is 0.
        target: exact number of keyframes wanted (0 = automatic).
        min_count, max_count: bounds on the automatic count.
        blur_threshold: relative sharpness below which a frame counts as blurred.

    Returns:
        Sorted frame indices.
    """
    n = len(motion)
    if n == 0:
        return []
    cum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(motion[1:]))])
    total = cum[-1]
    count = target if target > 0 else int(np.clip(round(total / step) + 1, min_count, max_count))
    count = max(1, min(count, n))
    if total <= 0:
        edges = np.linspace(0, n, count + 1).astype(int)
        segments = [np.arange(edges[k], edges[k + 1]) for k in range(count)]
    else:
        bins = np.minimum((cum / total * count).astype(int), count - 1)
        segments = [np.flatnonzero(bins == k) for k in range(count)]
    chosen = []
    for seg in segments:
        if len(seg) == 0:
            continue
        sharp_ok = seg[rel_sharp[seg] >= blur_threshold]
        pool = sharp_ok if len(sharp_ok) else seg
        chosen.append(int(pool[np.argmax(rel_sharp[pool])]))
    return sorted(set(chosen))


def segments_where(mask: np.ndarray, min_len: int = 1) -> list[tuple[int, int]]:
    """[start, end) index ranges where ``mask`` is true for at least ``min_len`` frames."""
    out, start = [], None
    for i, m in enumerate(list(mask) + [False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            if i - start >= min_len:
                out.append((start, i))
            start = None
    return out


def exposure_jumps(ev: np.ndarray, threshold: float = 0.4, window: int = 5) -> list[tuple[int, float]]:
    """Frames where brightness steps by more than ``threshold`` EV and stays there.

    Returns:
        (frame index, step in EV) of each jump, comparing the medians of the ``window`` frames
        before and after.
    """
    jumps = []
    i = window
    while i <= len(ev) - 2:
        before = np.median(ev[max(0, i - window):i])
        after = np.median(ev[i:i + window])
        if abs(after - before) > threshold:
            # the exact frame: largest single step near i
            lo, hi = max(1, i - window + 1), min(len(ev), i + window)
            j = lo + int(np.argmax(np.abs(np.diff(ev[lo - 1:hi]))))
            jumps.append((j, float(np.median(ev[j:j + window]) - np.median(ev[max(0, j - window):j]))))
            i = j + window
        else:
            i += 1
    return jumps
