"""Camera intrinsics and hand-held-like camera paths (OpenCV camera-to-world, world +Z up)."""

from __future__ import annotations

import numpy as np

from vid2model.synth.config import SynthConfig


def intrinsics(cfg: SynthConfig) -> np.ndarray:
    """(3, 3) pinhole K of the upright image: square pixels, ``fov_deg`` horizontal, centred principal point.

    COLMAP pixel convention (:mod:`vid2model.camera`): the principal point of a centred camera is at
    (width / 2, height / 2); OpenCV functions that put pixel centres at integers take :attr:`Camera.K_index`.
    """
    f = 0.5 * cfg.width / np.tan(np.radians(cfg.fov_deg) / 2)
    return np.array([[f, 0, cfg.width / 2], [0, f, cfg.height / 2], [0, 0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """(4, 4) camera-to-world, OpenCV axes, world +Z up."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c, s = np.cos(roll), np.sin(roll)
    x, y = c * x + s * y, -s * x + c * y
    m = np.eye(4)
    m[:3, :3] = np.stack([x, y, z], 1)
    m[:3, 3] = eye
    return m


def _shake(u: np.ndarray, seed: int, dims: int) -> np.ndarray:
    """Smooth pseudo-random wobble (len(u), dims) in about [-1, 1]: a few sines of random phase."""
    rng = np.random.default_rng(seed + 1000)
    out = np.zeros((len(u), dims))
    for k in (1.7, 3.1, 5.3):
        out += np.sin(2 * np.pi * k * u[:, None] + rng.uniform(0, 2 * np.pi, dims)) / k
    return out / 1.5


def camera_path(cfg: SynthConfig, u: np.ndarray) -> np.ndarray:
    """Camera-to-world poses (N, 4, 4) at path parameters ``u`` in [0, 1)."""
    sh = _shake(u, cfg.seed, 6) * cfg.jitter
    poses = []
    for i, ui in enumerate(u):
        if cfg.path == "orbit":
            az = np.radians(cfg.orbit_start_deg + cfg.arc_deg * ui)
            r, h = cfg.orbit_radius + 0.04 * sh[i, 0], cfg.orbit_height + 0.04 * sh[i, 1]
            eye = np.array([r * np.cos(az), r * np.sin(az), h])
            target = np.asarray(cfg.orbit_target, float) + 0.03 * sh[i, 2:5]
        elif cfg.walk_tour:  # a loop round the room's middle, looking out at the walls and up to the ceiling
            az = np.radians(cfg.orbit_start_deg) + 2 * np.pi * ui
            eye = np.array([0.45 * np.cos(az) + 0.03 * sh[i, 0], 0.65 * np.sin(az) + 0.03 * sh[i, 1],
                            cfg.orbit_height + 0.03 * sh[i, 2]])
            look = az + 0.4 * np.sin(2 * np.pi * 3 * ui) + 0.05 * sh[i, 3]
            # pitch from 39 deg down (the floor by the walls, where the tour's marker lies at azimuth 200 deg) to
            # 27 deg up (the ceiling), tour_pitch_cycles times round the loop
            pitch = -0.15 - 0.65 * np.cos(cfg.tour_pitch_cycles * (az - np.radians(200.0)))
            fwd = np.array([np.cos(look), np.sin(look), pitch + 0.05 * sh[i, 4]])
            target = eye + fwd
        else:
            y = -2.3 + 3.2 * ui
            eye = np.array([0.35 * np.sin(2 * np.pi * ui) + 0.03 * sh[i, 0], y, 1.5 + 0.03 * sh[i, 1]])
            yaw = np.radians(25) * np.sin(2 * np.pi * 1.3 * ui) + 0.05 * sh[i, 2]
            fwd = np.array([np.sin(yaw), np.cos(yaw), -0.25 + 0.03 * sh[i, 3]])
            target = eye + fwd
        poses.append(look_at(eye, target, roll=0.03 * sh[i, 5]))
    return np.stack(poses)


def frame_params(cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """Path parameter u (N,) in [0, 1] and timestamp in seconds (N,) of each frame.

    Timestamps are rounded to milliseconds, the video's time base, so file PTS equal them exactly.
    """
    n = cfg.n_frames
    closed = (cfg.path == "orbit" and abs(cfg.arc_deg) >= 360) or (cfg.path == "walk" and cfg.walk_tour)
    if cfg.vfr:
        # Irregular gaps; the camera moves at constant speed in time, so a long gap is a big step.
        rng = np.random.default_rng(cfg.seed + 7)
        dt = rng.uniform(0.5, 1.5, n) / cfg.fps
        ts = np.round(np.concatenate([[0.0], np.cumsum(dt[:-1])]), 3)
        span = ts[-1] + (dt[-1] if closed else 0.0)
        u = ts / span if span > 0 else np.zeros(n)
    else:
        ts = np.round(np.arange(n) / cfg.fps, 3)
        u = np.arange(n) / (n if closed else max(n - 1, 1))
    return u, ts
