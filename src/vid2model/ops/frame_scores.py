"""Per-frame quality scores at analysis resolution: sharpness, exposure, motion, near-duplicates."""

from __future__ import annotations

from typing import NamedTuple

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


def focus_map(g: np.ndarray) -> np.ndarray:
    """Local focus (H, W) float32 of a grey image (H, W): Laplacian energy over a 13 px window divided
    by the intensity variance over a 41 px window.

    Both scale with the exposure gain squared, so the ratio ignores exposure. The variance window is
    wider than the blur it has to see, so blur lowers the numerator far more than the denominator.
    Only comparable between views of the same surface patch (see :class:`MotionTracker`).
    """
    import cv2

    energy = cv2.sqrBoxFilter(cv2.Laplacian(g, cv2.CV_32F, ksize=3), -1, (13, 13))
    mean = cv2.boxFilter(g, -1, (41, 41))
    var = cv2.sqrBoxFilter(g, -1, (41, 41)) - mean * mean
    return energy / (np.maximum(var, 0) + 1e-4)


def _sample(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Values of ``img`` (H, W) at the pixels nearest to ``pts`` (K, 2) (x, y)."""
    h, w = img.shape
    x = np.minimum(np.maximum(np.rint(pts[:, 0]).astype(int), 0), w - 1)
    y = np.minimum(np.maximum(np.rint(pts[:, 1]).astype(int), 0), h - 1)
    return img[y, x]


class FrameMotion(NamedTuple):
    """What :meth:`MotionTracker.update` measures on one frame."""

    motion: float  # median feature displacement since the previous frame, fraction of the image diagonal
    net: float  # accumulated motion since the first frame, fraction of the image diagonal
    diff: float  # mean absolute grey difference to the previous frame (0 = identical)
    focus_step: float  # log ratio of local focus on the same scene patches, this frame over the previous; NaN: too few
    tracks: int  # persistent tracks alive on this frame


class MotionTracker:
    """Image motion, focus change and track survival from sparse Lucas-Kanade tracks.

    ``motion`` is the median displacement since the previous frame of features detected afresh on
    it (long-lived tracks are biased towards slow points). Persistent tracks (never taken up again
    once lost, replenished on fresh features away from the living ones) give the rest:

    * ``net``: the accumulated median displacement of the tracks from where they were on an anchor
      frame, which stays bounded for a camera that only shakes in place (static-camera detection)
      but grows for orbits, pans and forward walks alike;
    * ``focus_step``: the local focus (:func:`focus_map`) of tracked points against the patches they
      were tracked to -- the same surface in both frames, so blur moves it and a change of view
      content (a plain wall turning into view) does not;
    * which frames still share scene points: see :meth:`spans`.

    Per frame, one LK call follows all points forwards and one checks the persistent tracks backwards.
    """

    WIN = (15, 15)
    LEVELS = 3
    MIN_FOCUS_FEATURES = 8
    MIN_AGED_TRACKS = 20  # focus steps on tracks alone when at least this many are older than one frame
    MAX_BACK_ERR = 2.0  # px: a persistent track followed back must land this close to where it was
    MERGE_PX = 3  # px: tracks that meet in a cell this size have slid onto the same point
    SPACING_PX = 8  # px: new tracks start at least a cell this size away from the living ones

    def __init__(self, max_corners: int = 150, max_tracks: int = 150) -> None:
        self.max_corners = max_corners
        self.max_tracks = max_tracks
        self.prev: np.ndarray | None = None
        self.prev_focus: np.ndarray | None = None  # (H, W) focus_map of the previous frame
        self.fresh: np.ndarray | None = None  # (K, 1, 2) features detected on the previous frame
        self.n0 = 0  # tracks alive on the anchor frame
        self.offset = 0.0
        self.frame = -1  # position of the latest frame
        self.track_pts = np.zeros((0, 1, 2), np.float32)  # (T, 1, 2) persistent tracks alive now
        # (T, 1, 2) where they were on the anchor frame (NaN: started after it)
        self.track_anchor = np.zeros((0, 1, 2), np.float32)
        self.track_first = np.zeros(0, int)  # (T,) the frame each started on
        self.track_uid = np.zeros(0, int)  # (T,) a number for each track, never reused
        self._next_uid = 0
        self._seen: list[tuple[np.ndarray, np.ndarray]] = []  # per frame: (uids (T,), positions (T, 2)) alive on it
        self.shape: tuple[int, int] | None = None
        self._ended: list[np.ndarray] = []  # (K, 2) first and last frame of lost tracks

    def _detect(self, u8: np.ndarray) -> np.ndarray | None:
        import cv2

        pts = cv2.goodFeaturesToTrack(u8, maxCorners=self.max_corners, qualityLevel=0.01, minDistance=7)
        return None if pts is None or len(pts) < 8 else pts.astype(np.float32)

    def _reanchor(self) -> None:
        self.track_anchor = self.track_pts.copy()
        self.n0 = len(self.track_pts)

    def _anchor_displacement(self, diag: float) -> tuple[float, int]:
        """Median displacement (fraction of ``diag``) since the anchor frame, and how many tracks tell."""
        d = np.linalg.norm((self.track_pts - self.track_anchor).reshape(-1, 2), axis=1)
        d = d[np.isfinite(d)]
        return (float(np.median(d)) / diag if len(d) else 0.0), len(d)

    def _replenish(self, shape: tuple[int, int]) -> None:
        """Start tracks on fresh features at least a cell clear of the living ones."""
        import cv2

        room = self.max_tracks - len(self.track_pts)
        if self.fresh is None or room <= 0:
            return
        cell = self.SPACING_PX
        occupied = np.zeros((shape[0] // cell + 3, shape[1] // cell + 3), np.uint8)
        if len(self.track_pts):
            cx, cy = _cells(self.track_pts.reshape(-1, 2), cell, occupied.shape)
            occupied[cy, cx] = 1
            occupied = cv2.dilate(occupied, np.ones((3, 3), np.uint8))  # the neighbouring cells too
        fx, fy = _cells(self.fresh.reshape(-1, 2), cell, occupied.shape)
        new = self.fresh[occupied[fy, fx] == 0][:room]
        self.track_pts = np.concatenate([self.track_pts, new])
        self.track_anchor = np.concatenate([self.track_anchor, np.full_like(new, np.nan)])
        self.track_first = np.concatenate([self.track_first, np.full(len(new), self.frame)])
        self.track_uid = np.concatenate([self.track_uid, np.arange(self._next_uid, self._next_uid + len(new))])
        self._next_uid += len(new)

    def spans(self) -> np.ndarray:
        """(T, 2) int: first and last frame (positions in update order) of every persistent track,
        in the order they started."""
        alive = np.stack([self.track_first, np.full(len(self.track_first), self.frame)], 1)
        spans = np.concatenate(self._ended + [alive]).reshape(-1, 2).astype(int)
        return spans[np.argsort(spans[:, 0], kind="stable")]

    def _focus_step(self, focus: np.ndarray, src: np.ndarray, dst: np.ndarray) -> float:
        """Median log focus ratio over points ``src`` (K, 2) of the previous frame tracked to ``dst`` (K, 2)."""
        h, w = focus.shape
        inside = _inside(dst, h, w)
        if inside.sum() < self.MIN_FOCUS_FEATURES:
            return float("nan")
        a = _sample(self.prev_focus, src[inside])
        b = _sample(focus, dst[inside])
        return float(np.median(np.log(b + 1e-9) - np.log(a + 1e-9)))

    def update(self, g: np.ndarray) -> FrameMotion:
        """Score frame ``g`` (H, W) float in [0, 1] against the previous one; see :class:`FrameMotion`."""
        import cv2

        self.frame += 1
        u8 = (np.clip(g, 0, 1) * 255).astype(np.uint8)
        focus = focus_map(g.astype(np.float32, copy=False))
        if self.prev is None:
            self.shape = g.shape
            self.prev, self.prev_focus, self.fresh = u8, focus, self._detect(u8)
            self._replenish(g.shape)
            self._reanchor()
            self._remember()
            return FrameMotion(0.0, 0.0, 1.0, float("nan"), len(self.track_pts))
        diag = float(np.hypot(*g.shape))
        diff = float(cv2.absdiff(u8, self.prev).mean() / 255.0)
        motion, step = np.nan, float("nan")
        nf = 0 if self.fresh is None else len(self.fresh)
        if nf + len(self.track_pts):
            src = np.concatenate([x for x in (self.fresh, self.track_pts) if x is not None and len(x)])
            nxt, st, _ = cv2.calcOpticalFlowPyrLK(self.prev, u8, src, None, winSize=self.WIN,
                                                  maxLevel=self.LEVELS)
            ok = st.ravel() == 1
            if ok[:nf].sum() >= 8:
                motion = float(np.median(np.linalg.norm((nxt - src)[:nf][ok[:nf]].reshape(-1, 2), axis=1)) / diag)
            aged = self._advance_tracks(self.prev, u8, nxt[nf:], ok[nf:])
            # Tracks older than one frame: a detector picked fresh features as the sharpest corners of the
            # previous frame, which biases each step down. Fresh features too where too few tracks are left.
            pairs = aged if len(aged[0]) >= self.MIN_AGED_TRACKS else (
                np.concatenate([src[:nf][ok[:nf]], aged[0]]), np.concatenate([nxt[:nf][ok[:nf]], aged[1]]))
            step = self._focus_step(focus, pairs[0].reshape(-1, 2), pairs[1].reshape(-1, 2))
        disp, n_anchored = self._anchor_displacement(diag)
        self.fresh = self._detect(u8)
        self._replenish(g.shape)
        if not np.isfinite(motion):
            # Textureless frames: a coarse global shift estimate instead.
            shift, _ = cv2.phaseCorrelate(self.prev.astype(np.float32), u8.astype(np.float32))
            motion = float(np.hypot(*shift) / diag)
            self.offset += motion
            disp = 0.0
            self._reanchor()
        elif n_anchored < max(8, self.n0 // 2) or disp > 0.15:
            self.offset += disp
            disp = 0.0
            self._reanchor()
        self.prev, self.prev_focus = u8, focus
        self._remember()
        return FrameMotion(motion, self.offset + disp, diff, step, len(self.track_pts))

    def _remember(self) -> None:
        self._seen.append((self.track_uid.copy(), self.track_pts.reshape(-1, 2).copy()))

    def view_angles(self, focal_px: float | None = None, every: int = 4, min_points: int = 15,
                    max_turn_per_frame: float = 6.0) -> np.ndarray:
        """(N,) degrees the camera has turned since the first frame, accumulated over every ``every`` frames.

        The turn between frames ``every`` apart is the rotation of the essential matrix of the tracks they
        share (focal length ``focal_px``, else that of a 65-degree lens across the long side). An orbit keeps
        the object in the middle of the view, so its image barely moves while the view of it turns; this
        says how far. Spans with fewer than ``min_points`` shared tracks add nothing (nothing to tell).
        """
        import cv2

        n = len(self._seen)
        out = np.zeros(n)
        if n < 2 or self.shape is None:
            return out
        h, w = self.shape
        f = focal_px or 0.5 * max(h, w) / np.tan(np.radians(32.5))
        K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
        cv2.setRNGSeed(0)  # RANSAC: the same video gives the same keyframes
        marks = list(range(0, n, every)) + ([n - 1] if (n - 1) % every else [])
        for a, b in zip(marks[:-1], marks[1:]):
            ua, pa = self._seen[a]
            ub, pb = self._seen[b]
            _, ia, ib = np.intersect1d(ua, ub, return_indices=True)
            turn = 0.0
            if len(ia) >= min_points:
                x1, x2 = pa[ia].astype(np.float64), pb[ib].astype(np.float64)
                E, inl = cv2.findEssentialMat(x1, x2, K, method=cv2.RANSAC, prob=0.999, threshold=1.0)
                if E is not None and E.shape == (3, 3) and inl is not None and int(inl.sum()) >= min_points:
                    _, R, _, _ = cv2.recoverPose(E, x1, x2, K, mask=inl.copy())
                    turn = float(np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1.0, 1.0))))
                    # a hand-held video does not turn this fast: a degenerate fit (little parallax, one plane
                    # filling the view) tells nothing
                    turn = turn if turn <= max_turn_per_frame * (b - a) else 0.0
            out[a + 1: b + 1] = out[a] + turn * np.arange(1, b - a + 1) / (b - a)
        return out

    def _advance_tracks(self, prev: np.ndarray, cur: np.ndarray, nxt: np.ndarray,
                        ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keep the persistent tracks that LK followed into ``cur`` (nxt: (T, 1, 2)) reliably.

        LK reports success for points that slid along an edge or piled up on an occlusion boundary;
        such tracks would never die and make distant frames look linked. A track must come back to
        where it started when followed backwards, stay inside the frame, and not land in the cell of
        an older track.

        Returns:
            Positions (K, 1, 2) in ``prev`` and in ``cur`` of the kept tracks born before ``prev``.
        """
        import cv2

        h, w = cur.shape
        ok = ok & _inside(nxt.reshape(-1, 2), h, w)
        if ok.any():
            # started where the track was, the check needs no coarse levels to find it again
            back, st, _ = cv2.calcOpticalFlowPyrLK(cur, prev, nxt[ok], self.track_pts[ok].copy(), winSize=self.WIN,
                                                   maxLevel=1, flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
            err = np.linalg.norm((back - self.track_pts[ok]).reshape(-1, 2), axis=1)
            # LK between a sharp and a blurred frame is less exact everywhere: the bound follows the frame
            bound = max(self.MAX_BACK_ERR, 3 * float(np.median(err)))
            ok[np.flatnonzero(ok)] = (st.ravel() == 1) & (err < bound)
        kept = np.flatnonzero(ok)
        # tracks are kept in the order they started, so the first of each cell is its oldest track
        shape = (h // self.MERGE_PX + 3, w // self.MERGE_PX + 3)
        cx, cy = _cells(nxt[kept].reshape(-1, 2), self.MERGE_PX, shape)
        kept = kept[np.sort(np.unique(cy * shape[1] + cx, return_index=True)[1])]
        lost = np.ones(len(ok), bool)
        lost[kept] = False
        if lost.any():
            first = self.track_first[lost]
            self._ended.append(np.stack([first, np.full(len(first), self.frame - 1)], 1))
        before = self.track_pts[kept]
        self.track_pts, self.track_anchor, self.track_first = nxt[kept], self.track_anchor[kept], self.track_first[kept]
        self.track_uid = self.track_uid[kept]
        aged = self.track_first < self.frame - 1
        return before[aged], self.track_pts[aged]


def _inside(xy: np.ndarray, h: int, w: int) -> np.ndarray:
    """(K,) bool: points ``xy`` (K, 2) within an image of ``h`` x ``w`` pixels."""
    return (xy[:, 0] >= 0) & (xy[:, 1] >= 0) & (xy[:, 0] <= w - 1) & (xy[:, 1] <= h - 1)


def _cells(pts: np.ndarray, cell: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Grid cell (x, y) of points (K, 2), offset by one so that neighbours of edge cells exist."""
    cx = np.minimum(np.maximum((pts[:, 0] // cell).astype(int) + 1, 1), shape[1] - 2)
    cy = np.minimum(np.maximum((pts[:, 1] // cell).astype(int) + 1, 1), shape[0] - 2)
    return cx, cy


def chained_focus(steps: np.ndarray, sharp: np.ndarray, window: int = 0) -> np.ndarray:
    """Log focus (N,) of each frame relative to the first, from the frame-to-frame focus steps (N,).

    Where a step is NaN (too few features tracked, e.g. a textureless frame) the log ratio of the
    whole-frame measure ``sharp`` (N,) (:func:`sharpness`) stands in. The first step is ignored.
    With ``window``, the running median of the steps over +-``window`` frames is taken out first: a
    blur episode comes and goes within it (few steps, that cancel), while a steady change of scale
    (walking towards a surface magnifies every patch a little each frame) steps one way throughout
    and would read as blur growing slowly.
    """
    steps = np.asarray(steps, float).copy()
    sharp = np.maximum(np.asarray(sharp, float), 1e-12)
    n = len(steps)
    if n == 0:
        return steps
    fallback = np.diff(np.log(sharp), prepend=np.log(sharp[0]))
    missing = ~np.isfinite(steps)
    steps[missing] = fallback[missing]
    steps[0] = np.nan
    if window > 0 and n > 2:
        w = min(window, n)
        padded = np.pad(steps, w, constant_values=np.nan)
        steps -= np.nanmedian(np.lib.stride_tricks.sliding_window_view(padded, 2 * w + 1), axis=1)
    steps[0] = 0.0
    return np.cumsum(steps)


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
