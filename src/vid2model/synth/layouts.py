"""Random scene layouts: a few objects on a floor (orbits) or a furnished room (walk-throughs).

Every layout is a pure function of its seed, so a capture is reproducible from its config alone.
"""

from __future__ import annotations

import numpy as np

from vid2model.synth.scene import Box, Scene, Sphere


def _objects(rng: np.random.Generator, n: int, spread: float) -> tuple[list[Box], list[Sphere]]:
    """``n`` boxes and spheres standing on z = 0 within ``spread`` metres of the origin, not overlapping."""
    boxes: list[Box] = []
    spheres: list[Sphere] = []
    placed: list[tuple[float, float, float]] = []  # (x, y, footprint radius)
    for _ in range(40 * n):
        if len(placed) == n:
            break
        size = rng.uniform(0.08, 0.28)
        x, y = rng.uniform(-spread, spread, 2)
        if any(np.hypot(x - a, y - b) < size + r + 0.02 for a, b, r in placed):
            continue
        placed.append((x, y, size))
        if rng.random() < 0.3:
            spheres.append(Sphere((x, y, size), size))
        else:
            sx, sy = size * rng.uniform(0.6, 1.0, 2)
            h = rng.uniform(0.1, 0.55)
            boxes.append(Box((x - sx, y - sy, 0.0), (x + sx, y + sy, h)))
            if rng.random() < 0.3:  # something standing on it
                r = min(sx, sy) * 0.6
                spheres.append(Sphere((x, y, h + r), r))
    return boxes, spheres


def _bounds(boxes: list[Box], spheres: list[Sphere]) -> tuple[np.ndarray, np.ndarray]:
    lo = [np.asarray(b.lo) for b in boxes] + [np.asarray(s.center) - s.radius for s in spheres]
    hi = [np.asarray(b.hi) for b in boxes] + [np.asarray(s.center) + s.radius for s in spheres]
    return np.min(lo, axis=0), np.max(hi, axis=0)


def random_orbit_scene(layout_seed: int, *, seed: int = 0, contrast: float = 1.0, backdrop: bool = False,
                       orbit_radius: float = 1.5) -> Scene:
    """One to four objects on a textured floor, or (two in five) on a textured tabletop over a plain
    floor; with ``backdrop`` plain walls stand outside the orbit on one or two sides, so that part of
    the circle looks at surfaces without any texture."""
    rng = np.random.default_rng(layout_seed)
    table = rng.random() < 0.4
    boxes, spheres = _objects(rng, int(rng.integers(1, 5)), 0.35)
    plain: list[Box] = []
    ground = max(2.0, orbit_radius + 0.5)
    if table:  # lift the objects onto a table top; the floor becomes plain
        top = float(rng.uniform(0.45, 0.8))
        boxes = [Box((b.lo[0], b.lo[1], b.lo[2] + top), (b.hi[0], b.hi[1], b.hi[2] + top)) for b in boxes]
        spheres = [Sphere((s.center[0], s.center[1], s.center[2] + top), s.radius) for s in spheres]
        hx, hy = rng.uniform(0.55, 0.8), rng.uniform(0.45, 0.7)
        boxes.append(Box((-hx, -hy, 0.0), (hx, hy, top)))
        plain.append(Box((-ground, -ground, -0.02), (ground, ground, 0.0)))
        ground = 0.0
    lo, hi = _bounds(boxes, spheres)
    lo[2] = 0.0
    center = (lo + hi) / 2
    radius = float(max(np.linalg.norm(hi - lo) / 2, 0.2))
    if backdrop:
        d = orbit_radius + 0.6
        sides = [(int(rng.integers(0, 2)), float(rng.choice([-1.0, 1.0])))]
        if rng.random() < 0.5:  # a corner: two walls
            sides.append((1 - sides[0][0], float(rng.choice([-1.0, 1.0]))))
        for axis, side in sides:
            lo_w, hi_w = [-d, -d, 0.0], [d, d, 2.5]
            lo_w[axis], hi_w[axis] = side * d - 0.02, side * d + 0.02
            plain.append(Box(tuple(lo_w), tuple(hi_w)))
    return Scene(boxes=tuple(boxes), spheres=tuple(spheres), ground_half=ground, seed=seed,
                 center=tuple(float(v) for v in center), radius=radius, contrast=contrast, plain_boxes=tuple(plain),
                 plain_color=tuple(float(v) for v in rng.uniform(0.55, 0.85, 3)))


def random_walk_scene(layout_seed: int, *, seed: int = 0, contrast: float = 1.0, backdrop: bool = False,
                      orbit_radius: float = 1.5) -> Scene:
    """The 4 m x 6 m room of the walk-through path with random furniture kept off the path
    (|x| < 0.6, y < 1.3); with ``backdrop`` one long wall is painted plain."""
    del orbit_radius
    rng = np.random.default_rng(layout_seed)
    boxes: list[Box] = []
    spheres: list[Sphere] = []
    for _ in range(int(rng.integers(2, 6))):
        side = rng.choice([-1.0, 1.0])
        w, d, h = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.3, 1.4)
        if rng.random() < 0.25:  # at the far end, across the path
            x, y = rng.uniform(-1.4, 1.4), rng.uniform(1.8, 2.6)
        else:
            x, y = side * rng.uniform(1.0, 1.6), rng.uniform(-2.5, 2.5)
        boxes.append(Box((x - w / 2, y - d / 2, 0.0), (x + w / 2, y + d / 2, h)))
        if rng.random() < 0.3:
            r = min(w, d) * 0.35
            spheres.append(Sphere((x, y, h + r), r))
    plain: tuple[Box, ...] = ()
    if backdrop:
        x = rng.choice([-1.0, 1.0]) * 1.98
        plain = (Box((x - 0.015, -3.0, 0.0), (x + 0.015, 3.0, 2.5)),)
    return Scene(boxes=tuple(boxes), spheres=tuple(spheres), ground_half=0.0,
                 inner_boxes=(Box((-2.0, -3.0, 0.0), (2.0, 3.0, 2.5)),), seed=seed, center=(0.0, 0.0, 1.0),
                 radius=3.0, contrast=contrast, plain_boxes=plain,
                 plain_color=tuple(float(v) for v in rng.uniform(0.6, 0.9, 3)))
