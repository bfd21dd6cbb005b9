"""The marker finder: found at the frame's own size, refined upsampled round each marker only; the corners are
those of upsampling the whole frame, and a marker at the frame's edge is still found."""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from vid2model.ops.marker import _detect, detect_aruco  # noqa: E402


def _frame(rng: np.random.Generator, side: float, at: tuple[float, float],
           turn_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """A 640x480 grey frame of mottled texture with marker 0 of ``side`` px centred at ``at``, turned by
    ``turn_deg``; (frame, true corners [4, 2] in pixel-index coordinates)."""
    tex = cv2.GaussianBlur(rng.integers(60, 200, (480, 640)).astype(np.uint8), (0, 0), 1.5)
    mk = cv2.aruco.generateImageMarker(cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50), 0, 600)
    big = np.pad(mk, 100, constant_values=255)  # the white quiet zone round it
    a = np.radians(turn_deg)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    s = side / 600
    src = np.array([[100, 100], [700, 100], [700, 700], [100, 700]], float) - 0.5  # corners, pixel edges
    dst = (src - 399.5) * s @ R.T + np.array(at)
    H = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
    warped = cv2.warpPerspective(big, H, (640, 480), flags=cv2.INTER_AREA, borderValue=0)
    cover = cv2.warpPerspective(np.ones_like(big), H, (640, 480), flags=cv2.INTER_AREA, borderValue=0)
    frame = np.where(cover > 0, warped, tex).astype(np.uint8)
    quiet = (np.array([[0, 0], [600, 0], [600, 600], [0, 600]], float) + 100 - 0.5 - 399.5) * s @ R.T + np.array(at)
    return frame, quiet


@pytest.mark.parametrize("side,at,turn", [(20.0, (320.0, 240.0), 10.0), (45.0, (200.0, 300.0), 33.0),
                                          (30.0, (24.0, 240.0), 5.0), (40.0, (500.0, 456.0), 0.0),
                                          (30.0, (17.0, 200.0), 0.0)])  # 2 px from the frame's edge
def test_markers_are_found_with_the_corners_of_the_whole_frame_upsampled(side, at, turn):
    rng = np.random.default_rng(int(side))
    frame, corners = _frame(rng, side, at, turn)
    got = detect_aruco(frame)
    # a 640-px frame is upsampled 3x (to a long side of about 1600 px), here as a whole
    whole = _detect(frame, cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50), 3, 8.0)
    assert list(got) == [0] == list(whole)
    assert np.abs(got[0] - whole[0]).max() < 1e-3  # the same refinement on a crop of the same upsampled pixels
    assert np.abs(got[0] - corners).max() < 0.5  # and where the marker is (measured 0.20-0.32 px off)
