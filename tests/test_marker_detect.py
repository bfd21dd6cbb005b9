"""The marker finder: found at twice the frame's size, refined upsampled round each marker only; the corners are
those of upsampling the whole frame, a marker at the frame's edge is still found, and so is one seen at a
grazing angle (the thorough search where the quick one cannot)."""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from vid2model.ops.marker import _detect, detect_aruco  # noqa: E402


def _frame(rng: np.random.Generator, side: float, at: tuple[float, float],
           turn_deg: float, squash: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A 640x480 grey frame of mottled texture with marker 0 of ``side`` px centred at ``at``, turned by
    ``turn_deg`` and then its height times ``squash`` (a marker on the floor seen at a grazing angle);
    (frame, true corners [4, 2] in pixel-index coordinates)."""
    tex = cv2.GaussianBlur(rng.integers(60, 200, (480, 640)).astype(np.uint8), (0, 0), 1.5)
    mk = cv2.aruco.generateImageMarker(cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50), 0, 600)
    big = np.pad(mk, 100, constant_values=255)  # the white quiet zone round it
    a = np.radians(turn_deg)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    s = side / 600
    src = np.array([[100, 100], [700, 100], [700, 700], [100, 700]], float) - 0.5  # corners, pixel edges
    S = np.diag([1.0, squash])
    dst = (src - 399.5) * s @ R.T @ S + np.array(at)
    H = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
    warped = cv2.warpPerspective(big, H, (640, 480), flags=cv2.INTER_AREA, borderValue=0)
    cover = cv2.warpPerspective(np.ones_like(big), H, (640, 480), flags=cv2.INTER_AREA, borderValue=0)
    frame = np.where(cover > 0, warped, tex).astype(np.uint8)
    quiet = (np.array([[0, 0], [600, 0], [600, 600], [0, 600]], float) + 100 - 0.5 - 399.5) * s @ R.T @ S + np.array(at)
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


@pytest.mark.parametrize("side,squash,turn,quick", [(44.0, 0.24, 3.0, True), (46.0, 0.28, 0.0, True),
                                                    (36.0, 0.4, 80.0, True), (40.0, 0.3, 0.0, False)])
def test_a_marker_seen_at_a_grazing_angle_is_found(side, squash, turn, quick):
    """Markers 11-16 px across one way, slightly blurred, as an orbit's low views show a marker on the floor (a
    product capture had its marker only in four such views: the finder at the frame's own size, without the
    AprilTag quads, found none of them). The quick search finds three of these four; the thorough one all."""
    rng = np.random.default_rng(int(side))
    frame, corners = _frame(rng, side, (300.0, 220.0), turn, squash)
    frame = cv2.GaussianBlur(frame, (0, 0), 0.7)
    got = detect_aruco(frame, thorough=not quick)
    assert list(got) == [0]
    assert np.abs(got[0] - corners).max() < 0.5
