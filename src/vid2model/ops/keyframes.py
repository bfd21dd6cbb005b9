"""Keyframe selection: enough overlap for SfM, enough parallax to triangulate, the sharpest frames."""

from __future__ import annotations

import numpy as np


def _sharpest(frames: np.ndarray, cum: np.ndarray, rel: np.ndarray, ideal: float, step: float) -> int:
    """The sharpest of ``frames``; near-ties go to the one closest to the ideal spacing."""
    off = np.abs(cum[frames] - ideal) / step
    return int(frames[np.argmax(rel[frames] * (1 - 0.2 * off))])


def _greedy(cum: np.ndarray, rel: np.ndarray, sharp: np.ndarray, step: float, max_gap: float) -> list[int]:
    """One pass of the walk along cumulative motion; see :func:`select_keyframes`."""
    n = len(cum)
    first = np.flatnonzero(cum <= cum[0] + 0.5 * step)
    pool = first[sharp[first]] if sharp[first].any() else first
    picks = [int(pool[np.argmax(rel[pool])])]
    while True:
        k = picks[-1]
        c = cum[k]
        if cum[-1] - c < 0.5 * step or k >= n - 1:
            break
        lo, hi = np.searchsorted(cum, [c + 0.5 * step, c + 1.5 * step], side="right")
        lo = max(lo, k + 1)
        win = np.arange(lo, max(hi, lo))
        good = win[sharp[win]] if len(win) else win
        if len(good):  # the sharpest frame of the neighbourhood
            picks.append(_sharpest(good, cum, rel, c + step, step))
            continue
        # The neighbourhood is blurred: the farthest sharp frame still overlapping, if any.
        reach = np.arange(k + 1, np.searchsorted(cum, c + max_gap, side="right"))
        good = reach[sharp[reach]] if len(reach) else reach
        if len(good):
            picks.append(int(good[-1]))
        elif len(win):  # nothing sharp within reach: keep the chain connected with the least blurred
            picks.append(_sharpest(win, cum, rel, c + step, step))
        else:  # a single jump longer than the neighbourhood (too fast): take the next frame
            picks.append(k + 1)
    return picks


def select_keyframes(motion: np.ndarray, rel_sharp: np.ndarray, *, step: float = 0.05, target: int = 0,
                     min_count: int = 8, max_count: int = 150, blur_threshold: float = 0.6,
                     max_gap_ratio: float = 4.0, candidates: np.ndarray | None = None) -> list[int]:
    """Pick keyframe indices by walking along the accumulated camera motion.

    From each keyframe the next one is the sharpest frame whose motion since it lies in
    [0.5, 1.5] x ``step``: slow passages give few keyframes, fast ones many, and consecutive
    keyframes overlap. If that neighbourhood holds only blurred frames (``rel_sharp <
    blur_threshold``), the farthest sharp frame within ``max_gap_ratio`` x ``step`` is taken
    instead, so a blurred frame is chosen only when no sharp one keeps the chain overlapping.
    With ``target`` (or when the automatic count falls outside [min_count, max_count]) the step
    is searched so the count lands on (or within) the wanted number.

    Args:
        motion: (N,) image motion of each frame since the previous one, fraction of the image
            diagonal (0 or NaN for the first).
        rel_sharp: (N,) relative sharpness (1 = as sharp as its neighbours).
        step: wanted motion between keyframes (fraction of the image diagonal).
        target: exact number of keyframes wanted (0 = automatic).
        min_count, max_count: bounds on the automatic count.
        blur_threshold: relative sharpness below which a frame counts as blurred.
        max_gap_ratio: largest keyframe spacing, in steps, accepted to avoid a blurred frame.
        candidates: (N,) bool, frames allowed at all (e.g. not near-duplicates); default all.

    Returns:
        Sorted frame indices (positions in ``motion``).
    """
    motion = np.nan_to_num(np.asarray(motion, float))
    rel = np.asarray(rel_sharp, float)
    n = len(motion)
    if n == 0:
        return []
    idx = np.arange(n) if candidates is None else np.flatnonzero(candidates)
    if len(idx) == 0:
        idx = np.arange(n)
    cum = np.concatenate([[0.0], np.cumsum(motion[1:])])[idx]
    rel_c = rel[idx]
    sharp = rel_c >= blur_threshold
    total = float(cum[-1] - cum[0])

    def count_for(s: float) -> list[int]:
        return _greedy(cum, rel_c, sharp, s, max_gap_ratio * s)

    if total <= 1e-9:  # no motion at all: evenly spaced sharp frames
        want = target if target > 0 else min_count
        pool = np.flatnonzero(sharp) if sharp.sum() >= want else np.arange(len(idx))
        picks = pool[np.linspace(0, len(pool) - 1, min(want, len(pool))).round().astype(int)]
        return sorted({int(idx[p]) for p in picks})
    lo_n, hi_n = (target, target) if target > 0 else (min_count, max_count)
    picks = count_for(step)
    if not lo_n <= len(picks) <= hi_n:
        # Count falls (roughly) monotonically with the step: bisect in log space.
        a, b = np.log(total * 1e-4), np.log(total * 4)
        best = picks
        for _ in range(40):
            m = 0.5 * (a + b)
            p = count_for(float(np.exp(m)))
            if abs(len(p) - np.clip(len(p), lo_n, hi_n)) < abs(len(best) - np.clip(len(best), lo_n, hi_n)):
                best = p
            if len(p) > hi_n:
                a = m
            elif len(p) < lo_n:
                b = m
            else:
                best = p
                break
        picks = best
    return sorted({int(idx[p]) for p in picks})


def segments_where(mask: np.ndarray, min_len: int = 1, max_hole: int = 0) -> list[tuple[int, int]]:
    """[start, end) index ranges where ``mask`` is true for at least ``min_len`` frames.

    Runs separated by at most ``max_hole`` false frames are merged first.
    """
    runs, start = [], None
    for i, m in enumerate(list(mask) + [False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            runs.append([start, i])
            start = None
    merged: list[list[int]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] <= max_hole:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged if b - a >= min_len]


def exposure_jumps(ev: np.ndarray, threshold: float = 0.4, window: int = 5) -> list[tuple[int, float]]:
    """Frames where brightness steps by more than ``threshold`` EV and stays there.

    Args:
        ev: (N,) exposure value (log2 mean luminance) per frame.

    Returns:
        (frame index, step in EV) of each jump: the frame after the largest single step near a
        place where the medians of the ``window`` frames before and after differ by ``threshold``.
    """
    ev = np.asarray(ev, float)
    jumps = []
    i = 1
    while i <= len(ev) - 1:
        before = np.median(ev[max(0, i - window):i])
        after = np.median(ev[i:i + window])
        if abs(after - before) > threshold:
            lo, hi = max(1, i - window + 1), min(len(ev), i + window)
            j = lo + int(np.argmax(np.abs(np.diff(ev[lo - 1:hi]))))
            step = float(np.median(ev[j:j + window]) - np.median(ev[max(0, j - window):j]))
            if abs(step) > threshold:
                jumps.append((j, step))
            i = j + window
        else:
            i += 1
    return jumps
