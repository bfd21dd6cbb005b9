"""Analytic synthetic scenes: boxes, spheres and a ground plane with solid procedural textures.

World frame: metres, +Z up. The texture is a function of the 3D world point, so a surface point has
the same colour in every view (Lambertian), and fine enough for SIFT at phone-video resolutions.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class Box:
    """Axis-aligned box from corner ``lo`` to corner ``hi`` (metres)."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]


@dataclass(frozen=True)
class Sphere:
    """Sphere of ``radius`` around ``center`` (metres)."""

    center: tuple[float, float, float]
    radius: float


@dataclass(frozen=True)
class EllipticCylinder:
    """Upright cylinder of elliptic cross-section with flat caps: semi-axes ``a`` along x and ``b`` along y about
    ``center`` (x, y), from height ``z0`` to ``z1`` (metres)."""

    center: tuple[float, float]
    a: float
    b: float
    z0: float
    z1: float


@dataclass(frozen=True)
class Prism:
    """A flat shape lying level: the simple polygon ``outline`` [K, 2] (counter-clockwise seen from above)
    extruded from height ``z0`` to ``z1`` (metres)."""

    outline: tuple[tuple[float, float], ...]
    z0: float
    z1: float


@dataclass(frozen=True)
class Scene:
    """Primitives of a scene (world +Z up, metres).

    The ground is a finite square on z = 0 of half-size ``ground_half`` (0 = none); ``inner_boxes`` are
    rooms seen from inside. ``center`` / ``radius``: a sphere holding what the cameras film (the
    object for an orbit, the room for a walk), for scale-relative tolerances.
    """

    boxes: tuple[Box, ...] = ()
    spheres: tuple[Sphere, ...] = ()
    ground_half: float = 2.0
    inner_boxes: tuple[Box, ...] = ()  # rooms: seen from inside (walls face inward)
    seed: int = 0
    center: tuple[float, float, float] = (0.0, 0.0, 0.25)
    radius: float = 0.5
    marker: tuple = field(default=())  # make_marker()'s tuple, or ()
    contrast: float = 1.0  # amplitude of the fine texture detail: 1 = rich texture, ~0.1 = texture-poor
    # untextured boxes (a plain backdrop, a painted object): one flat colour, no detail at all
    plain_boxes: tuple[Box, ...] = ()
    plain_color: tuple[float, float, float] = (0.78, 0.76, 0.72)
    plain_spheres: tuple[Sphere, ...] = ()  # balls of that one colour (shading only)
    plain_cylinders: tuple[EllipticCylinder, ...] = ()  # ... and upright cylinders
    cylinders: tuple[EllipticCylinder, ...] = ()
    prisms: tuple[Prism, ...] = ()
    # doors and windows: thin boxes across a room's wall; where one holds a wall point the wall is absent and
    # rays go on to the surfaces beyond (an enclosing room)
    openings: tuple[Box, ...] = ()


def orbit_scene(seed: int = 0) -> Scene:
    """A product-like object (box with a sphere on top and a small box beside) on a textured floor."""
    return Scene(boxes=(Box((-0.25, -0.18, 0.0), (0.25, 0.18, 0.3)), Box((0.3, -0.1, 0.0), (0.45, 0.05, 0.12))),
                 spheres=(Sphere((0.0, 0.0, 0.45), 0.15),), ground_half=2.0, seed=seed,
                 center=(0.05, 0.0, 0.25), radius=0.5)


def product_scene(size: tuple[float, float, float], seed: int = 0, plain: bool = False,
                  shape: str = "box") -> Scene:
    """One box of ``size`` (x, y, z extents, metres) standing at the origin on a textured floor: a product of
    exactly known dimensions; ``plain``: painted one flat colour (its faces told apart by shading alone);
    ``shape`` "cylinder": an upright elliptic cylinder of those extents instead."""
    sx, sy, h = size
    around = dict(ground_half=2.0, seed=seed, center=(0.0, 0.0, h / 2), radius=0.5 * float(np.linalg.norm(size)))
    if shape == "cylinder":
        can = (EllipticCylinder((0.0, 0.0), sx / 2, sy / 2, 0.0, h),)
        return Scene(cylinders=() if plain else can, plain_cylinders=can if plain else (), **around)
    if shape != "box":
        raise ValueError(f"product shape {shape!r}: box or cylinder")
    box = (Box((-sx / 2, -sy / 2, 0.0), (sx / 2, sy / 2, h)),)
    return Scene(boxes=() if plain else box, plain_boxes=box if plain else (), **around)


def walk_scene(seed: int = 0) -> Scene:
    """A 4 m x 6 m room with textured walls and floor and a few objects."""
    return Scene(boxes=(Box((-1.2, 0.8, 0.0), (-0.6, 1.4, 0.8)), Box((0.7, -0.5, 0.0), (1.3, 0.3, 0.5)),
                        Box((-0.3, 2.0, 0.0), (0.5, 2.4, 1.2))),
                 spheres=(Sphere((0.9, -0.1, 0.75), 0.25),), ground_half=0.0,
                 inner_boxes=(Box((-2.0, -3.0, 0.0), (2.0, 3.0, 2.5)),), seed=seed,
                 center=(0.0, 0.0, 1.0), radius=3.0)


def with_openings(scene: Scene, beyond: float = 1.2) -> Scene:
    """``scene``'s room (its first inner box) with a door and two windows cut into its walls, and a larger room
    ``beyond`` metres out on every side round it, of the same floor and ceiling, so that views through the
    openings find textured surfaces (depth) rather than sky. Walls at y = lo and x = hi are cut; the other two
    are whole (one partly hidden by furniture)."""
    lo, hi = np.asarray(scene.inner_boxes[0].lo, float), np.asarray(scene.inner_boxes[0].hi, float)
    th = 0.05  # half the thickness of a cutting box: it straddles the zero-thickness wall
    door = Box((lo[0] + 0.5, lo[1] - th, lo[2]), (lo[0] + 1.4, lo[1] + th, lo[2] + 2.0))
    window = Box((hi[0] - 1.5, lo[1] - th, lo[2] + 0.9), (hi[0] - 0.5, lo[1] + th, lo[2] + 2.1))
    wide = Box((hi[0] - th, lo[1] + 3.8, lo[2] + 1.0), (hi[0] + th, lo[1] + 5.2, lo[2] + 2.0))
    outer = Box((lo[0] - beyond, lo[1] - beyond, lo[2]), (hi[0] + beyond, hi[1] + beyond, hi[2]))
    return replace(scene, inner_boxes=scene.inner_boxes + (outer,), openings=(door, window, wide))


def opening_truth(scene: Scene) -> list[dict]:
    """The exact openings of ``scene``'s room (its first inner box), one dict per opening: ``wall`` ("x-", "x+",
    "y-" or "y+": the side of the room), ``start`` and ``end`` along the wall's axis (world metres), ``sill`` and
    ``top`` above the room's floor, ``width``, ``height``, ``center`` [3] (world) and ``kind`` (door: on the
    floor)."""
    lo, hi = np.asarray(scene.inner_boxes[0].lo, float), np.asarray(scene.inner_boxes[0].hi, float)
    out = []
    for o in scene.openings:
        olo, ohi = np.asarray(o.lo, float), np.asarray(o.hi, float)
        mid = (olo + ohi) / 2
        k = int(np.argmin(ohi - olo))  # the axis the cutting box is thin along: the wall's normal
        side = "xy"[k] + ("-" if abs(mid[k] - lo[k]) < abs(mid[k] - hi[k]) else "+")
        along = 1 - k
        sill, top = max(olo[2], lo[2]) - lo[2], min(ohi[2], hi[2]) - lo[2]
        c = mid.copy()
        c[k] = lo[k] if side[1] == "-" else hi[k]
        c[2] = lo[2] + (sill + top) / 2
        out.append({"wall": side, "start": float(olo[along]), "end": float(ohi[along]), "sill": float(sill),
                    "top": float(top), "width": float(ohi[along] - olo[along]), "height": float(top - sill),
                    "center": c.tolist(), "kind": "door" if sill <= 1e-9 else "window"})
    return out


def in_opening(scene: Scene, p: np.ndarray) -> np.ndarray:
    """Which points ``p`` (N, 3) lie inside one of the scene's openings (N,) bool: by more than rounding, so that
    the floor at a door's foot stays."""
    inside = np.zeros(len(p), bool)
    for o in scene.openings:
        inside |= np.all((p > np.asarray(o.lo) + 1e-9) & (p < np.asarray(o.hi) - 1e-9), axis=1)
    return inside


# ---- solid texture ---------------------------------------------------------------------------

_P = (np.uint32(73856093), np.uint32(19349663), np.uint32(83492791))


def _mix(h: np.ndarray) -> np.ndarray:
    """Finalise lattice hashes (N,) uint32 into values in [0, 1) float32 (xor-shift-multiply)."""
    h = (h ^ (h >> np.uint32(15))) * np.uint32(0x2C1B3C6D)
    h = h ^ (h >> np.uint32(12))
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def value_noise(p: np.ndarray, freq: float, seed: int) -> np.ndarray:
    """Smoothstep-interpolated value noise at points ``p`` (N, 3); returns (N,) float32 in [0, 1).

    The value at integer lattice point (i, j, k) is a hash of ``P1 i ^ P2 j ^ P3 k ^ seed``, so the
    pattern is defined everywhere in space (a solid texture). Per-axis products are formed once and
    shared by the 8 corners; uint32 arithmetic halves memory traffic against int64.
    """
    q = p * freq
    f = np.floor(q)
    t = (q - f).astype(np.float32)
    t = t * t * (3 - 2 * t)
    i = f.astype(np.int64).astype(np.uint32)  # wraps negatives: fine for hashing
    s = np.uint32((seed * 2654435761) & 0xFFFFFFFF)
    hx0 = i[:, 0] * _P[0]
    hx1 = hx0 + _P[0]
    hy0 = i[:, 1] * _P[1]
    hy = (hy0, hy0 + _P[1])
    hz0 = i[:, 2] * _P[2]
    hz = (hz0 ^ s, (hz0 + _P[2]) ^ s)
    tx, ty, tz = t[:, 0], t[:, 1], t[:, 2]
    zs = []
    for hzk in hz:
        ys = []
        for hyk in hy:
            a = hyk ^ hzk
            v0 = _mix(hx0 ^ a)
            ys.append(v0 + tx * (_mix(hx1 ^ a) - v0))
        zs.append(ys[0] + ty * (ys[1] - ys[0]))
    return zs[0] + tz * (zs[1] - zs[0])


PALETTE = np.array([[0.85, 0.25, 0.2], [0.95, 0.8, 0.3], [0.2, 0.45, 0.85], [0.15, 0.7, 0.4],
                    [0.9, 0.9, 0.85], [0.15, 0.12, 0.2], [0.7, 0.4, 0.75], [0.95, 0.55, 0.15]], np.float32)


def albedo(p: np.ndarray, seed: int, contrast: float = 1.0) -> np.ndarray:
    """Solid texture colour (N, 3) float in [0, 1] at world points ``p`` (N, 3).

    Coarse colour patches (palette) modulated by multi-octave detail with high contrast, so that
    features exist from a metre down to a few millimetres. ``contrast`` scales the detail: near 0 only
    the broad, evenly coloured patches remain (a texture-poor surface).
    """
    if len(p) == 0:
        return np.zeros((0, 3), np.float32)
    a = value_noise(p, 6.0, seed)
    b = value_noise(p + 17.3, 6.0, seed + 1)
    idx = (np.floor(a * 4).astype(int) * 2 + (b > 0.5)) % len(PALETTE)
    base = PALETTE[idx]
    if contrast < 0.5:  # texture-poor: the colour patches fade towards one paint colour as well
        base = PALETTE.mean(0) + (base - PALETTE.mean(0)) * (2 * contrast)
    detail = np.zeros(len(p), np.float32)
    amp = 0.0
    for k, freq in enumerate((14.0, 30.0, 62.0, 120.0)):
        w = 1.0 / (1 + 0.5 * k)
        detail += w * value_noise(p, freq, seed + 10 + k)
        amp += w
    detail = np.clip((detail / amp - 0.5) * 3.0 * contrast + 0.5, 0, 1)
    return np.clip(base * (0.25 + 0.95 * detail[:, None]), 0, 1)


def inside_polygon(xy: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Which points [N, 2] lie inside the simple polygon [K, 2] (crossing number)."""
    inside = np.zeros(len(xy), bool)
    x, y = xy[:, 0], xy[:, 1]
    for (x0, y0), (x1, y1) in zip(poly, np.roll(poly, -1, axis=0)):
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < xc)
    return inside


def polygon_distance(xy: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Distance [N] of points [N, 2] to the outline of the polygon [K, 2]."""
    d = np.full(len(xy), np.inf)
    for a, b in zip(poly, np.roll(poly, -1, axis=0)):
        e = b - a
        s = np.clip((xy - a) @ e / (e @ e), 0, 1)
        d = np.minimum(d, np.linalg.norm(xy - (a + s[:, None] * e), axis=1))
    return d


def surface_albedo(scene: Scene, p: np.ndarray) -> np.ndarray:
    """Unlit surface colour (N, 3) float32 in [0, 1] at surface points ``p`` (N, 3): texture, plain boxes,
    marker."""
    col = albedo(p, scene.seed, scene.contrast)
    for prism in scene.prisms:  # a fabric of its own pattern, not the floor's continued up through it
        poly = np.asarray(prism.outline, float)
        on = (p[:, 2] >= prism.z0 - 1e-6) & (p[:, 2] <= prism.z1 + 1e-6)
        on[on] = inside_polygon(p[on, :2], poly) | (polygon_distance(p[on, :2], poly) < 1e-6)
        if on.any():
            col[on] = albedo(p[on] + 37.1, scene.seed + 7, scene.contrast) * np.array([0.7, 0.8, 1.0], np.float32)
    for box in scene.plain_boxes:
        on = np.all((p >= np.asarray(box.lo) - 1e-6) & (p <= np.asarray(box.hi) + 1e-6), axis=1)
        col[on] = scene.plain_color
    for ball in scene.plain_spheres:
        col[np.linalg.norm(p - np.asarray(ball.center), axis=1) <= ball.radius + 1e-6] = scene.plain_color
    for can in scene.plain_cylinders:
        r = np.hypot((p[:, 0] - can.center[0]) / can.a, (p[:, 1] - can.center[1]) / can.b)
        col[(r <= 1 + 1e-6) & (p[:, 2] >= can.z0 - 1e-6) & (p[:, 2] <= can.z1 + 1e-6)] = scene.plain_color
    return marker_albedo(scene, p, col)


def marker_albedo(scene: Scene, p: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Overwrite colours of ground points inside the marker square with the marker image."""
    if not scene.marker:
        return col
    size, full_corners, img = scene.marker[:3]
    lo = full_corners[3, :2]
    uv = (p[:, :2] - lo) / size
    inside = (np.abs(p[:, 2]) < 1e-6) & (uv[:, 0] >= 0) & (uv[:, 0] < 1) & (uv[:, 1] >= 0) & (uv[:, 1] < 1)
    if not inside.any():
        return col
    s = img.shape[0]
    # marker image row 0 is at the corner with the largest y (corners[0] is top-left seen from above)
    ui = np.clip((uv[inside, 0] * s).astype(int), 0, s - 1)
    vi = np.clip(((1 - uv[inside, 1]) * s).astype(int), 0, s - 1)
    col = col.copy()
    col[inside] = (img[vi, ui].astype(np.float32) / 255.0)[:, None] * np.array([0.95, 0.95, 0.95], np.float32)
    return col


def make_marker(size: float, position: tuple[float, float] = (-0.9, -0.9)) -> tuple:
    """An ArUco DICT_4X4_50 id 0 marker (with a white quiet border) lying on the ground.

    Returns:
        (size, corners (4, 3) world coords of the black square's corners in ArUco order
        (top-left, top-right, bottom-right, bottom-left seen from above with +y up), image (S, S) uint8)
        where the image includes a white border of 1/4 marker size on each side.
    """
    import cv2

    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)
    px = 240
    mk = cv2.aruco.generateImageMarker(dictionary, 0, px)
    border = px // 4
    img = np.full((px + 2 * border, px + 2 * border), 255, np.uint8)
    img[border:border + px, border:border + px] = mk
    full = size * (px + 2 * border) / px
    x0, y0 = position
    # square of the full image: [x0, x0+full] x [y0, y0+full]; black part inset by size/4
    inset = size / 4
    tl = (x0 + inset, y0 + full - inset)
    corners = np.array([[tl[0], tl[1], 0], [tl[0] + size, tl[1], 0], [tl[0] + size, tl[1] - size, 0],
                        [tl[0], tl[1] - size, 0]], float)
    full_corners = np.array([[x0, y0 + full, 0], [x0 + full, y0 + full, 0], [x0 + full, y0, 0], [x0, y0, 0]], float)
    return (full, full_corners, img, size, corners)
