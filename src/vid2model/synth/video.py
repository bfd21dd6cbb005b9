"""Writing synthetic frames as an H.264 MP4 with exact timestamps and display rotation."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def write_video(path: Path, frames: list[np.ndarray], timestamps: np.ndarray, fps: float,
                rotation: int = 0) -> Path:
    """Encode upright frames (H, W, 3) uint8.

    With ``rotation`` r the pixels are stored turned by -r so that a player applying the display
    matrix (rotate r degrees counter-clockwise) shows them upright, as phones do for portrait video.
    PTS are the given timestamps (milliseconds), so variable frame rate is represented exactly.
    """
    import av

    k = (int(rotation) // 90) % 4
    stored = [np.ascontiguousarray(np.rot90(f, k=-k)) for f in frames]
    h, w = stored[0].shape[:2]
    with av.open(str(path), "w") as out:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.codec_context.max_b_frames = 0  # irregular PTS with B-frames gives non-monotonic DTS
        if codec == "libx264":
            stream.options = {"crf": "16", "preset": "veryfast"}
        if k:
            stream.set_display_rotation(float(rotation))
        for img, t in zip(stored, timestamps):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = int(round(t * 1000))
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
