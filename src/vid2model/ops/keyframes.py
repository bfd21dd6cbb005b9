"""Keyframe selection: enough overlap for SfM, enough parallax to triangulate, the sharpest frames."""

from __future__ import annotations

from typing import Callable

import numpy as np


def _sharpest(frames: np.ndarray, cum: np.ndarray, rel: np.ndarray, ideal: float, step: float) -> int:
    """The sharpest of ``frames``; near-ties go to the one closest to the ideal spacing."""
    off = np.abs(cum[frames] - ideal) / step
    return int(frames[np.argmax(rel[frames] * (1 - 0.2 * off))])


class TrackSurvival:
    """Share of the tracks alive on one frame that are still alive on a later one.

    A track that is lost never comes back, so the share only falls with the distance between the
    frames, and the frames still linked to frame k form a run k+1..:meth:`reach` (k).
    """

    def __init__(self, spans: np.ndarray, min_share: float) -> None:
        """``spans``: (T, 2) first and last frame of every track; ``min_share``: the share that still links."""
        spans = np.asarray(spans, int).reshape(-1, 2)
        self.first, self.last = spans[:, 0], spans[:, 1]
        self.min_share = min_share
        self._reach: dict[int, int] = {}

    def shares(self, k: int, frames: np.ndarray) -> np.ndarray:
        """(F,) share of frame ``k``'s tracks still alive on each of ``frames`` (F,) >= k (1.0 when k has none)."""
        last = np.sort(self.last[(self.first <= k) & (self.last >= k)])
        frames = np.asarray(frames)
        if len(last) == 0:
            return np.ones(len(frames))
        return 1.0 - np.searchsorted(last, frames, side="left") / len(last)

    def reach(self, k: int) -> int:
        """The last frame that keeps at least ``min_share`` of frame ``k``'s tracks (>= k).

        A frame without tracks (textureless) sets no limit: track survival says nothing there.
        """
        if k not in self._reach:
            last = np.sort(self.last[(self.first <= k) & (self.last >= k)])
            if len(last) == 0:
                self._reach[k] = np.iinfo(np.int64).max
            else:
                # the share on frame j is the fraction of ``last`` >= j; it stays >= min_share up to:
                keep = int(np.ceil(self.min_share * len(last) - 1e-9))
                self._reach[k] = int(last[len(last) - max(keep, 1)])
        return self._reach[k]


def _greedy(cum: np.ndarray, rel: np.ndarray, sharp: np.ndarray, step: float, max_gap: float,
            linked: Callable[[int], int] | None = None, gap_cum: np.ndarray | None = None) -> list[int]:
    """One pass of the walk along cumulative motion; see :func:`select_keyframes`.

    ``linked(k)``: the last position still sharing enough tracks with position k (none: no limit).
    ``gap_cum``: the cumulative motion ``max_gap`` is measured on when skipping blurred frames (default ``cum``).
    """
    gap_cum = cum if gap_cum is None else gap_cum
    n = len(cum)
    first = np.flatnonzero(cum <= cum[0] + 0.5 * step)
    pool = first[sharp[first]] if sharp[first].any() else first
    picks = [int(pool[np.argmax(rel[pool])])]
    while True:
        k = picks[-1]
        c = cum[k]
        if cum[-1] - c < 0.5 * step or k >= n - 1:
            break
        end = n if linked is None else min(n, max(linked(k), k + 1) + 1)  # positions < end stay linked
        lo, hi = np.searchsorted(cum, [c + 0.5 * step, c + 1.5 * step], side="right")
        lo = max(lo, k + 1)
        ideal = c + step
        if lo >= end:  # the tracks break before the neighbourhood: the linked frames instead
            lo, hi, ideal = k + 1, end, cum[end - 1]
        win = np.arange(lo, max(min(hi, end), lo))
        good = win[sharp[win]] if len(win) else win
        if len(good):  # the sharpest frame of the neighbourhood
            picks.append(_sharpest(good, cum, rel, ideal, step))
            continue
        # The neighbourhood is blurred (or holds no frame: the views change faster than a step per frame): the
        # first sharp frame past it within reach, so the gap the blur forces stays as small as it can
        reach = np.arange(lo if len(win) else k + 1,
                          min(np.searchsorted(gap_cum, gap_cum[k] + max_gap, side="right"), end))
        good = reach[sharp[reach]] if len(reach) else reach
        if len(good):
            picks.append(int(good[0]))
        elif len(win):  # nothing sharp within reach: keep the chain connected with the least blurred
            picks.append(_sharpest(win, cum, rel, ideal, step))
        else:  # a single jump longer than the neighbourhood (too fast): take the next frame
            picks.append(k + 1)
    return picks


def _linker(idx: np.ndarray, survival: TrackSurvival) -> Callable[[int], int]:
    """``linked`` of :func:`_greedy` over candidate positions ``idx`` (K,) (frame of each candidate)."""
    return lambda k: int(np.searchsorted(idx, survival.reach(int(idx[k])), side="right")) - 1


def select_keyframes(motion: np.ndarray, rel_sharp: np.ndarray, *, step: float = 0.05, target: int = 0,
                     min_count: int = 8, max_count: int = 150, blur_threshold: float = 0.6,
                     max_gap_ratio: float = 4.0, candidates: np.ndarray | None = None,
                     tracks: np.ndarray | None = None, min_survival: float = 0.3,
                     angles: np.ndarray | None = None, max_angle: float = 0.0,
                     turn_views: int = 0) -> list[int]:
    """Pick keyframe indices by walking along the accumulated camera motion.

    From each keyframe the next one is the sharpest frame whose motion since it lies in
    [0.5, 1.5] x ``step``: slow passages give few keyframes, fast ones many, and consecutive
    keyframes overlap. If that neighbourhood holds only blurred frames (``rel_sharp <
    blur_threshold``), the first sharp frame past it within ``max_gap_ratio`` x ``step`` (of image
    motion) is taken instead, so a blurred frame is chosen only when no sharp one keeps the chain overlapping.
    With ``tracks``, a keyframe also comes before the share of the previous keyframe's tracks still
    alive falls under ``min_survival``, and blurred frames are skipped only as far as that holds:
    inside a long blurred span its least blurred frame is kept rather than a gap the tracks break.
    With ``angles``, a turn of ``max_angle`` degrees counts as a ``step`` of motion (an orbit turns the
    view while its image barely moves).
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
        tracks: (T, 2) int, first and last frame (positions in ``motion``) of every feature track
            (:meth:`MotionTracker.spans`); default: no limit from track survival.
        min_survival: share of a keyframe's tracks that must survive to the next keyframe.
        angles: (N,) degrees the view has turned since the first frame (non-decreasing;
            :meth:`MotionTracker.view_angles`); max_angle: the turn worth one ``step`` (0: ignore turns).
        turn_views: an arc turning less than ``turn_views`` x ``max_angle`` is divided into this many steps.

    Returns:
        Sorted frame indices (positions in ``motion``).
    """
    motion = np.nan_to_num(np.asarray(motion, float))
    image_motion = motion
    if angles is not None and max_angle > 0:
        # a turn of max_angle counts as a step of image motion, so the walk (and its allowance for blurred
        # frames) spaces keyframes by whichever of the two changes faster
        turn = np.maximum(np.diff(np.nan_to_num(np.asarray(angles, float)), prepend=0.0), 0.0)
        # a short arc still gets turn_views keyframes: the focal length is fixed by views at many angles
        per_step = min(max_angle, max(float(turn.sum()) / turn_views, 0.5)) if turn_views > 0 else max_angle
        motion = np.maximum(motion, turn * step / per_step)
    rel = np.asarray(rel_sharp, float)
    n = len(motion)
    if n == 0:
        return []
    idx = np.arange(n) if candidates is None else np.flatnonzero(candidates)
    if len(idx) == 0:
        idx = np.arange(n)
    cum = np.concatenate([[0.0], np.cumsum(motion[1:])])[idx]
    gap_cum = cum if image_motion is motion else np.concatenate([[0.0], np.cumsum(image_motion[1:])])[idx]
    rel_c = rel[idx]
    sharp = rel_c >= blur_threshold
    total = float(cum[-1] - cum[0])

    if total <= 1e-9:  # no motion at all: evenly spaced sharp frames
        want = target if target > 0 else min_count
        pool = np.flatnonzero(sharp) if sharp.sum() >= want else np.arange(len(idx))
        picks = pool[np.linspace(0, len(pool) - 1, min(want, len(pool))).round().astype(int)]
        return sorted({int(idx[p]) for p in picks})
    counts = (target, target) if target > 0 else (min_count, max_count)
    gap = (step, max_gap_ratio)
    picks = None
    if tracks is not None:
        picks = _walk(cum, rel_c, sharp, gap, counts, _linker(idx, TrackSurvival(tracks, min_survival)), gap_cum)
    if picks is None or not counts[0] <= len(picks) <= counts[1]:
        # The wanted count wins over track survival: a long video under max_count needs wider spacing.
        picks = _walk(cum, rel_c, sharp, gap, counts, None, gap_cum)
    return sorted({int(idx[p]) for p in picks})


def _walk(cum: np.ndarray, rel: np.ndarray, sharp: np.ndarray, gap: tuple[float, float], counts: tuple[int, int],
          linked: Callable[[int], int] | None, gap_cum: np.ndarray | None = None) -> list[int]:
    """:func:`_greedy` at ``gap`` = (step, max_gap_ratio); when the number of picks falls outside
    ``counts`` = (lo, hi), at the step that brings it closest to that range."""
    step, ratio = gap
    lo_n, hi_n = counts
    picks = _greedy(cum, rel, sharp, step, ratio * step, linked, gap_cum)
    if lo_n <= len(picks) <= hi_n:
        return picks
    # Count falls (roughly) monotonically with the step: bisect in log space.
    total = float(cum[-1] - cum[0])
    a, b = np.log(total * 1e-4), np.log(total * 4)
    best = picks
    for _ in range(40):
        m = 0.5 * (a + b)
        p = _greedy(cum, rel, sharp, float(np.exp(m)), ratio * float(np.exp(m)), linked, gap_cum)
        if abs(len(p) - np.clip(len(p), lo_n, hi_n)) < abs(len(best) - np.clip(len(best), lo_n, hi_n)):
            best = p
        if len(p) > hi_n:
            a = m
        elif len(p) < lo_n:
            b = m
        else:
            return p
    return best


def probe_frames(picks: list[int], motion: np.ndarray, rel_sharp: np.ndarray, candidates: np.ndarray,
                 blur_threshold: float = 0.6) -> list[tuple[int, int, int]]:
    """One held-out frame between each two consecutive keyframes: (probe, keyframe before, keyframe after).

    The probe is the frame nearest halfway (in image motion) between the two; blurred frames
    (``rel_sharp`` under ``blur_threshold``) only where the gap holds no sharp one. Gaps without a
    candidate frame between their keyframes get no probe.

    Args:
        picks: keyframe positions, ascending.
        motion: (N,) image motion from the previous frame; rel_sharp: (N,); candidates: (N,) bool.
    """
    cum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(np.asarray(motion, float))[1:])])
    out = []
    for a, b in zip(picks[:-1], picks[1:]):
        inner = np.arange(a + 1, b)
        inner = inner[np.asarray(candidates, bool)[inner]]
        if not len(inner):
            continue
        sharp = inner[rel_sharp[inner] >= blur_threshold]
        pool = sharp if len(sharp) else inner[[int(np.argmax(rel_sharp[inner]))]]
        half = 0.5 * (cum[a] + cum[b])
        out.append((int(pool[np.argmin(np.abs(cum[pool] - half))]), a, b))
    return out


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
