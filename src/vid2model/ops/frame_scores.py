"""Per-frame quality scores at analysis resolution: sharpness, exposure, motion, near-duplicates."""

from __future__ import annotations

import numpy as np


def gray(img: np.ndarray) -> np.ndarray:
    """(H, W) float32 luminance in [0, 1] of an RGB uint8 image (H, W, 3)."""
    return (img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114).astype(np.float32) / 255.0


def sharpness(g: np.ndarray) -> float:
    """Focus measure of a grey image (H, W): Laplacian variance over intensity variance.

    Dividing by the intensity variance makes it invariant to exposure gain and offset, so a
    brightness jump is not mistaken for a focus change (the raw Laplacian variance scales with
    gain squared).
    """
    import cv2

    return float(cv2.Laplacian(g, cv2.CV_32F, ksize=3).var() / (g.var() + 1e-5))


def exposure(g: np.ndarray) -> dict[str, float]:
    """Mean luminance, exposure value (log2 of the mean) and clipped shadow/highlight fractions."""
    mean = float(g.mean())
    return {"mean": mean, "ev": float(np.log2(max(mean, 1e-4))), "dark": float((g < 0.02).mean()),
            "bright": float((g > 0.98).mean())}


class MotionTracker:
    """Image motion from sparse Lucas-Kanade tracks, as fractions of the image diagonal.

    Features found on an anchor frame are followed frame to frame. ``motion`` is the median
    displacement since the previous frame of features detected afresh on it (long-lived tracks are
    biased towards slow points); ``net`` is the accumulated median displacement from the anchors,
    which stays bounded for a camera that only shakes in place (static-camera detection) but grows
    for orbits, pans and forward walks alike. Both track sets go through one LK call.
    """

    WIN = (15, 15)
    LEVELS = 3

    def __init__(self, max_corners: int = 150) -> None:
        self.max_corners = max_corners
        self.prev: np.ndarray | None = None
        self.fresh: np.ndarray | None = None  # (K, 1, 2) features detected on the previous frame
        self.pts: np.ndarray | None = None  # (M, 1, 2) current positions of the anchor tracks
        self.anchor: np.ndarray | None = None  # (M, 1, 2) their positions in the anchor frame
        self.n0 = 0
        self.offset = 0.0

    def _detect(self, u8: np.ndarray) -> np.ndarray | None:
        import cv2

        pts = cv2.goodFeaturesToTrack(u8, maxCorners=self.max_corners, qualityLevel=0.01, minDistance=7)
        return None if pts is None or len(pts) < 8 else pts.astype(np.float32)

    def _reanchor(self) -> None:
        self.pts = None if self.fresh is None else self.fresh.copy()
        self.anchor = None if self.pts is None else self.pts.copy()
        self.n0 = 0 if self.pts is None else len(self.pts)

    def update(self, g: np.ndarray) -> tuple[float, float, float]:
        """Score frame ``g`` (H, W) float in [0, 1] against the previous one.

        Returns:
            (motion since the previous frame, net motion since the first frame, mean absolute grey
            difference to the previous frame; 0 = identical) -- the first two as fractions of the
            image diagonal.
        """
        import cv2

        u8 = (np.clip(g, 0, 1) * 255).astype(np.uint8)
        if self.prev is None:
            self.prev, self.fresh = u8, self._detect(u8)
            self._reanchor()
            return 0.0, 0.0, 1.0
        diag = float(np.hypot(*g.shape))
        diff = float(cv2.absdiff(u8, self.prev).mean() / 255.0)
        motion, disp = np.nan, 0.0
        nf = 0 if self.fresh is None else len(self.fresh)
        na = 0 if self.pts is None else len(self.pts)
        if nf + na:
            src = np.concatenate([x for x in (self.fresh, self.pts) if x is not None and len(x)])
            nxt, st, _ = cv2.calcOpticalFlowPyrLK(self.prev, u8, src, None, winSize=self.WIN,
                                                  maxLevel=self.LEVELS)
            ok = st.ravel() == 1
            d = np.linalg.norm((nxt - src).reshape(-1, 2), axis=1)
            if ok[:nf].sum() >= 8:
                motion = float(np.median(d[:nf][ok[:nf]]) / diag)
            if na:
                keep = ok[nf:]
                if keep.sum() >= 8:
                    self.pts, self.anchor = nxt[nf:][keep], self.anchor[keep]
                    disp = float(np.median(np.linalg.norm((self.pts - self.anchor).reshape(-1, 2), axis=1)) / diag)
                else:
                    self.pts = None
        self.fresh = self._detect(u8)
        if not np.isfinite(motion):
            # Textureless frames: a coarse global shift estimate instead.
            shift, _ = cv2.phaseCorrelate(self.prev.astype(np.float32), u8.astype(np.float32))
            motion = float(np.hypot(*shift) / diag)
            self.offset += motion
            self._reanchor()
        elif self.pts is None or len(self.pts) < max(8, self.n0 // 2) or disp > 0.15:
            self.offset += disp
            self._reanchor()
            disp = 0.0
        self.prev = u8
        return motion, self.offset + disp, diff


def relative_sharpness(sharp: np.ndarray, window: int = 15) -> np.ndarray:
    """Sharpness (N,) divided by the upper quartile of its +-``window`` neighbours.

    Robust to the amount of texture: a blurred frame among sharp neighbours scores well below 1
    whatever the scene, as long as blurred frames are under three quarters of the window.
    """
    sharp = np.asarray(sharp, float)
    n = len(sharp)
    if n == 0:
        return sharp
    w = max(1, min(window, n))
    padded = np.pad(sharp, w, mode="reflect" if n > w else "edge")
    ref = np.percentile(np.lib.stride_tricks.sliding_window_view(padded, 2 * w + 1), 75, axis=1)[:n]
    return np.where(ref > 0, sharp / np.maximum(ref, 1e-12), 1.0)
