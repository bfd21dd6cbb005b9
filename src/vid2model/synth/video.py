"""Writing synthetic frames as an H.264 MP4 with exact timestamps and display rotation, or as images."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

TIME_BASE = Fraction(1, 1000)  # PTS in milliseconds: GT timestamps are rounded to match exactly


class VideoWriter:
    """Streaming encoder of upright RGB frames (H, W, 3) uint8 into an MP4.

    With ``rotation`` r the pixels are stored turned by -r (clockwise) and the stream's display matrix
    says "rotate r degrees counter-clockwise", so a player that honours it shows them upright, as phones
    do for portrait video (an upright phone writes r = 270, which ffprobe lists as "rotation of -90").
    Decoding with PyAV gives ``frame.rotation == r`` (as -90 / -180 for 270 / 180).
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float, rotation: int = 0,
                 crf: int = 16) -> None:
        import av

        self.path = Path(path)
        self.k = (int(rotation) // 90) % 4
        w, h = (height, width) if self.k % 2 else (width, height)
        self.container = av.open(str(self.path), "w")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self.stream = self.container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        self.stream.width, self.stream.height, self.stream.pix_fmt = w, h, "yuv420p"
        self.stream.time_base = TIME_BASE
        self.stream.codec_context.time_base = TIME_BASE
        self.stream.codec_context.max_b_frames = 0  # irregular PTS with B-frames gives non-monotonic DTS
        if codec == "libx264":
            self.stream.options = {"crf": str(crf), "preset": "veryfast"}
        else:
            self.stream.codec_context.qmin, self.stream.codec_context.qmax = 1, 3
        if self.k:
            self.stream.set_display_rotation(float(self.k * 90))

    def write(self, img: np.ndarray, timestamp: float) -> None:
        """Append an upright frame shown at ``timestamp`` seconds (rounded to the millisecond)."""
        import av

        stored = np.ascontiguousarray(np.rot90(img, k=-self.k)) if self.k else np.ascontiguousarray(img)
        frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
        frame.pts = int(round(timestamp * 1000))
        frame.time_base = TIME_BASE
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def write_video(path: Path, frames: list[np.ndarray], timestamps: np.ndarray, fps: float,
                rotation: int = 0) -> Path:
    """Encode upright frames (each (H, W, 3) uint8) shown at ``timestamps`` (N,) seconds."""
    h, w = frames[0].shape[:2]
    writer = VideoWriter(path, w, h, fps, rotation)
    try:
        for img, t in zip(frames, timestamps):
            writer.write(img, float(t))
    finally:
        writer.close()
    return Path(path)


def save_image(path: Path, img: np.ndarray) -> None:
    """Write an upright frame (H, W, 3) uint8 as PNG (lossless) or JPEG (quality 95) by extension."""
    from PIL import Image

    Image.fromarray(img).save(path, **({"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg") else {}))
