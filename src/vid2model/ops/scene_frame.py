"""The scene frame: gravity-up (+Z), origin at the object or scene centre, and the capture kind."""

from __future__ import annotations

import numpy as np


def rotation_to_z(up: np.ndarray) -> np.ndarray:
    """(3, 3) rotation taking unit vector ``up`` to +Z."""
    up = up / np.linalg.norm(up)
    z = np.array([0.0, 0.0, 1.0])
    v = np.cross(up, z)
    c = float(up @ z)
    if np.linalg.norm(v) < 1e-9:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx * (1 / (1 + c))


def heading_to_y(R_w2c: np.ndarray) -> np.ndarray:
    """(3, 3) rotation about +Z turning one camera's horizontal heading to +Y.

    Gravity-up leaves the turn about the vertical free, and a mapper fixes it from whichever views it
    happened to start with, so two solves of one capture could come out turned apart. Turned so the
    first view looks along +Y (Blender's front view), the frame depends on the cameras alone, and the side
    the capture began on is the model's front. A camera looking straight down has no heading: its up
    (-y axis) stands in.

    Args:
        R_w2c: (3, 3) world-to-camera rotation of the first view, in a +Z-up frame.
    """
    fwd, cam_up = R_w2c[2], -R_w2c[1]
    h = fwd[:2] if np.linalg.norm(fwd[:2]) > 0.3 else cam_up[:2]
    if np.linalg.norm(h) < 1e-9:
        return np.eye(3)
    yaw = np.arctan2(h[0], h[1])  # turning by +yaw about +Z takes h onto +Y
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def estimate_up(R_w2c: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Gravity-up estimate from cameras.

    People hold cameras upright: little roll, so each camera's x axis is nearly horizontal, and its
    "up" (-y) points roughly up but tilted by the pitch (looking down at an object or the floor).
    In order of preference:

    1. the normal of the plane the camera centres spread in (an orbit, a walk at constant height);
    2. the direction orthogonal to all camera x axes, when the camera turned enough for those to span
       the horizontal plane (immune to a common pitch);
    3. the mean camera up.

    Each is signed to agree with the mean camera up and must lie within 70 deg of it: looking down at a
    product on a table tilts the mean camera up by the pitch (47 deg on a real phone capture).

    Args:
        R_w2c: (N, 3, 3) world-to-camera rotations.
        centers: (N, 3) camera centres.

    Returns:
        (3,) unit up vector in model coordinates.
    """
    cam_up = -R_w2c[:, 1, :]  # rows of R are camera axes in world coordinates
    mean_up = cam_up.mean(0)
    mean_up /= np.linalg.norm(mean_up)
    cos_max = np.cos(np.radians(70))
    if len(centers) >= 5:
        c = centers - centers.mean(0)
        _, s, vt = np.linalg.svd(c, full_matrices=False)
        normal = vt[2]
        planar = s[2] < 0.25 * s[1] and s[1] > 0.2 * s[0]
        if planar and abs(normal @ mean_up) > cos_max:
            return normal * np.sign(normal @ mean_up)
    if len(R_w2c) >= 3:
        _, s, vt = np.linalg.svd(R_w2c[:, 0, :], full_matrices=False)
        ortho = vt[2]
        if s[1] > 0.2 * s[0] and abs(ortho @ mean_up) > cos_max:
            return ortho * np.sign(ortho @ mean_up)
    return mean_up


def look_at_point(R_w2c: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Least-squares point closest to all optical axes (where an orbit's cameras look)."""
    A = np.zeros((3, 3))
    b = np.zeros(3)
    for R, c in zip(R_w2c, centers):
        d = R[2]
        P = np.eye(3) - np.outer(d, d)
        A += P
        b += P @ c
    return np.linalg.lstsq(A, b, rcond=None)[0]


def capture_kind(R_w2c: np.ndarray, centers: np.ndarray, target: np.ndarray, min_arc_deg: float = 25.0) -> str:
    """'orbit' when the cameras look at a common point from around it, else 'walk'.

    A partial arc counts: a phone capture often sweeps only 30-60 degrees around a product on a table
    (5 s of video), and it still needs the object-centred frame and ``--isolate``. Parallel optical axes
    (a sideways pan along a wall) have no common point: the look-at fit is degenerate there.
    """
    to_t = target - centers
    dist = np.linalg.norm(to_t, axis=1)
    axes = R_w2c[:, 2, :]
    cosang = np.einsum("ij,ij->i", axes, to_t / np.maximum(dist[:, None], 1e-12))
    facing = np.mean(cosang > np.cos(np.radians(35)))
    # smallest eigenvalue of mean(I - d d^T): ~sin^2 of the spread of the axes, 0 when they are parallel
    spread = float(np.linalg.eigvalsh(np.eye(3) - np.einsum("ij,ik->jk", axes, axes) / len(axes))[0])
    v = centers - target
    ang = np.sort(np.degrees(np.arctan2(v[:, 1], v[:, 0])))
    gaps = np.diff(np.append(ang, ang[0] + 360)) if len(ang) > 1 else np.array([360.0])
    span = 360 - gaps.max()
    return "orbit" if facing > 0.8 and span > min_arc_deg and spread > 0.005 else "walk"
