"""Per-frame quality scores at analysis resolution: sharpness, exposure, motion since the last frame."""

from __future__ import annotations

import numpy as np


def gray(img: np.ndarray) -> np.ndarray:
    """(H, W) float32 luminance in [0, 1] of an RGB uint8 image."""
    return (img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114).astype(np.float32) / 255.0


def sharpness(g: np.ndarray) -> float:
    """Variance of the Laplacian (focus measure) of a grey image (H, W)."""
    import cv2

    return float(cv2.Laplacian(g, cv2.CV_32F, ksize=3).var())


def exposure(g: np.ndarray) -> dict[str, float]:
    """Mean luminance, exposure value (log2 of mean) and clipped shadow/highlight fractions."""
    mean = float(g.mean())
    return {"mean": mean, "ev": float(np.log2(max(mean, 1e-4))), "dark": float((g < 0.02).mean()),
            "bright": float((g > 0.98).mean())}


class MotionTracker:
    """Median feature displacement between consecutive frames (fraction of the image diagonal)."""

    def __init__(self) -> None:
        self.prev: np.ndarray | None = None

    def update(self, g: np.ndarray) -> tuple[float, float]:
        """Return (motion, near_duplicate_score) of ``g`` relative to the previous frame.

        motion is the median optical-flow length / image diagonal; the duplicate score is the mean
        absolute grey difference (0 = identical).
        """
        import cv2

        u8 = (np.clip(g, 0, 1) * 255).astype(np.uint8)
        if self.prev is None:
            self.prev = u8
            return 0.0, 1.0
        diag = float(np.hypot(*g.shape))
        pts = cv2.goodFeaturesToTrack(self.prev, maxCorners=300, qualityLevel=0.01, minDistance=7)
        diff = float(np.abs(u8.astype(np.int16) - self.prev).mean() / 255.0)
        motion = np.nan
        if pts is not None and len(pts) >= 8:
            nxt, st, _ = cv2.calcOpticalFlowPyrLK(self.prev, u8, pts, None, winSize=(21, 21), maxLevel=3)
            ok = st.ravel() == 1
            if ok.sum() >= 8:
                motion = float(np.median(np.linalg.norm((nxt - pts)[ok].reshape(-1, 2), axis=1)) / diag)
        if not np.isfinite(motion):
            # Textureless frames: fall back to a coarse global shift estimate.
            shift, _ = cv2.phaseCorrelate(self.prev.astype(np.float32), u8.astype(np.float32))
            motion = float(np.hypot(*shift) / diag)
        self.prev = u8
        return motion, diff


def relative_sharpness(sharp: np.ndarray, window: int = 15) -> np.ndarray:
    """Sharpness divided by the running upper-quartile of its neighbours (robust to texture amount).

    A blurred frame among sharp neighbours scores well below 1 whatever the scene's texture.
    """
    n = len(sharp)
    out = np.ones(n)
    for i in range(n):
        lo, hi = max(0, i - window), min(n, i + window + 1)
        ref = np.percentile(sharp[lo:hi], 75)
        out[i] = sharp[i] / ref if ref > 0 else 1.0
    return out
