"""Streaming video decoding with PyAV: upright frames, real timestamps, one resize, flat memory."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, TypeVar

import numpy as np

from vid2model.errors import UserError

log = logging.getLogger("vid2model")
T = TypeVar("T")


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds. Sizes are of the upright (displayed) picture."""

    path: str
    codec: str
    width: int
    height: int
    rotation: int  # display rotation applied on decode (degrees counter-clockwise)
    fps: float
    duration: float  # seconds
    n_frames_estimate: int
    pix_fmt: str


def _open(path: Path):
    import av

    if not path.exists():
        raise UserError(f"input not found: {path}")
    if path.stat().st_size == 0:
        raise UserError(f"the video file is empty: {path}")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, OSError) as exc:
        raise UserError(f"cannot read {path.name} as a video ({exc.__class__.__name__}): is the file corrupt "
                        f"or not a video?") from None
    if not container.streams.video:
        container.close()
        raise UserError(f"{path.name} has no video stream (audio only?)")
    return container


def _rotation(stream, first_frame=None) -> int:
    rot = 0
    if first_frame is not None and getattr(first_frame, "rotation", None) is not None:
        rot = int(round(first_frame.rotation))
    elif "rotate" in stream.metadata:  # old-style tag
        rot = -int(stream.metadata["rotate"])
    return rot % 360


def probe(path: str | Path) -> VideoInfo:
    """Read container metadata and the first frame (for the display rotation)."""
    import av

    path = Path(path)
    with _open(path) as c:
        s = c.streams.video[0]
        cc = s.codec_context
        try:
            first = next(c.decode(s))
        except StopIteration:
            raise UserError(f"{path.name}: no frame could be decoded") from None
        except av.error.FFmpegError as exc:
            raise UserError(f"{path.name}: the video cannot be decoded ({exc.__class__.__name__}); "
                            f"unsupported codec or corrupt file") from None
        rot = _rotation(s, first)
        w, h = first.width, first.height
        if rot in (90, 270):
            w, h = h, w
        fps = float(s.average_rate or s.guessed_rate or 30)
        dur = float(s.duration * s.time_base) if s.duration else (float(c.duration) / 1e6 if c.duration else 0.0)
        n = int(s.frames) if s.frames else int(round(dur * fps))
        return VideoInfo(str(path), cc.name, w, h, rot, fps, dur, n, str(first.format.name))


def _upright(img: np.ndarray, rotation: int) -> np.ndarray:
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(img, k=k)) if k else img


def scaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Size with the long side at most ``max_side`` (even numbers, aspect kept)."""
    s = min(1.0, max_side / max(width, height))
    return max(2, int(round(width * s / 2)) * 2), max(2, int(round(height * s / 2)) * 2)


def iter_frames(path: str | Path, max_side: int | None = None, indices: set[int] | None = None,
                min_dt: float = 0.0, gray: bool = False,
                damaged: list[float] | None = None) -> Iterator[tuple[int, float, np.ndarray]]:
    """Decode frames one at a time.

    Args:
        path: video file.
        max_side: scale so the long side is at most this (resize done by libswscale on the
            stored picture, before rotation, so 4K input never lives in memory at full size twice).
        indices: only yield these frame indices (decode order); others are decoded but not converted.
        min_dt: yield a frame only when at least this many seconds passed since the last one yielded
            (caps the analysis rate of 60/120 fps video; indices still count every decoded frame).
        gray: yield (H, W) uint8 luma instead of RGB (analysis: a third of the conversion cost).
        damaged: if given, receives the time (s) of every packet that could not be decoded; a damaged
            stretch is skipped and decoding goes on after it (the same packets fail on every pass, so
            frame indices stay the same between passes).

    Yields:
        (index in decode order, timestamp in seconds, (H, W, 3) uint8 RGB upright picture, or
        (H, W) with ``gray``).
    """
    import av

    path = Path(path)
    with _open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        if max_side and indices is None:
            # Deblocking is invisible once downscaled for analysis: skipping it saves decoding time.
            s.codec_context.options = {"skip_loop_filter": "all"}
        fmt = "gray" if gray else "rgb24"
        rot = None
        last_index = max(indices) if indices else None
        i = -1
        last_slot = None
        try:
            for frame in _decode_skipping(c, s, damaged if damaged is not None else []):
                i += 1
                if rot is None:
                    rot = _rotation(s, frame)
                if indices is not None and i not in indices:
                    if last_index is not None and i > last_index:
                        break
                    continue
                t = float(frame.time) if frame.time is not None else i / float(s.average_rate or 30)
                if min_dt > 0 and indices is None:
                    # one frame per min_dt slot (a frame counts for the next slot from 3/4 of the way): rounded
                    # timestamps of 30 fps video (33, 33, 34 ms apart) otherwise lost every third frame at 1/30 s
                    slot = int(np.floor(t / min_dt + 0.25))
                    if slot == last_slot:
                        continue
                    last_slot = slot
                w, h = frame.width, frame.height
                if max_side and max(w, h) > max_side:
                    w, h = scaled_size(w, h, max_side)
                    img = frame.to_ndarray(format=fmt, width=w, height=h)
                else:
                    img = frame.to_ndarray(format=fmt)
                yield i, t, _upright(img, rot)
        except av.error.FFmpegError as exc:
            if i < 0:
                raise UserError(f"{path.name}: the video cannot be decoded ({exc.__class__.__name__})") from None
            log.warning("%s: decoding stopped at frame %d (%s); the file may be truncated", path.name, i, exc)
        if i < 0:
            raise UserError(f"{path.name}: no frame could be decoded")


MAX_DAMAGED_PACKETS = 500  # beyond this the file is not damaged in places but broken: stop there


def _decode_skipping(c, s, damaged: list[float]):
    """Frames of stream ``s``, packet by packet, skipping (and noting) packets the decoder rejects."""
    import av

    for packet in c.demux(s):
        try:
            frames = packet.decode()
        except (av.error.InvalidDataError, av.error.UndefinedError, av.error.PatchWelcomeError) as exc:
            t = float(packet.pts * packet.time_base) if packet.pts is not None and packet.time_base else float("nan")
            damaged.append(t)
            if len(damaged) > MAX_DAMAGED_PACKETS:
                raise exc
            continue
        for frame in frames:
            if frame.is_corrupt:  # decoded, but patched over missing data: not a picture to measure from
                damaged.append(float(frame.time) if frame.time is not None else float("nan"))
                continue
            yield frame


def damaged_spans(times: list[float], gap_s: float = 1.0) -> list[tuple[float, float, int]]:
    """Group the times of undecodable packets into (start, end, count) stretches."""
    ts = sorted(t for t in times if np.isfinite(t))
    out: list[tuple[float, float, int]] = []
    for t in ts:
        if out and t - out[-1][1] <= gap_s:
            out[-1] = (out[-1][0], t, out[-1][2] + 1)
        else:
            out.append((t, t, 1))
    n_unknown = len(times) - len(ts)
    if n_unknown:
        out.append((float("nan"), float("nan"), n_unknown))
    return out


def prefetch(iterable: Iterable[T], depth: int = 8) -> Iterator[T]:
    """Run ``iterable`` in a background thread, ``depth`` items ahead of the consumer.

    Decoding (FFmpeg) and scoring (OpenCV) both release the GIL, so on two cores they overlap.
    Exceptions of the producer are re-raised in the consumer; closing the consumer stops it.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        q.put((None, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((None, done))
        except BaseException as exc:  # handed to the consumer
            q.put((exc, None))

    th = threading.Thread(target=produce, name="vid2model-decode", daemon=True)
    th.start()
    try:
        while True:
            exc, item = q.get()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()
        th.join(timeout=5)
