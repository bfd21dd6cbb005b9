"""Where the cameras were: azimuth/elevation around the object and the arcs never filmed."""

from __future__ import annotations

import numpy as np


def camera_angles(centers: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])):
    """Azimuth (deg, [0, 360)) and elevation (deg) of camera centres (N, 3) seen from ``target``."""
    up = up / np.linalg.norm(up)
    ref = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = ref - up * (ref @ up)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up, e1)
    v = centers - target
    az = np.degrees(np.arctan2(v @ e2, v @ e1)) % 360
    el = np.degrees(np.arctan2(v @ up, np.hypot(v @ e1, v @ e2)))
    return az, el


def azimuth_gaps(az: np.ndarray, min_gap: float = 45.0) -> list[tuple[float, float]]:
    """Arcs (start, end) in degrees, going counter-clockwise, wider than ``min_gap`` with no camera."""
    if len(az) == 0:
        return [(0.0, 360.0)]
    s = np.sort(az)
    gaps = []
    for a, b in zip(s, np.append(s[1:], s[0] + 360)):
        if b - a > min_gap:
            gaps.append((float(a % 360), float(b % 360)))
    return gaps
