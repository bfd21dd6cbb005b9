"""Subjects of exactly known measurements: a standing mannequin and a garment laid flat.

Each is a pure function of a seed, and comes with its true measurements, defined as the measuring code
defines them (tape girths of horizontal sections; a garment's flat measurements along its centre line).
"""

from __future__ import annotations

import numpy as np

from vid2model.synth.scene import EllipticCylinder, Prism, Scene, Sphere


def ellipse_perimeter(a: float, b: float, n: int = 100_000) -> float:
    """Perimeter of the ellipse with semi-axes ``a`` and ``b`` (numerically, to about 1e-9)."""
    t = (np.arange(n) + 0.5) * (2 * np.pi / n)
    return float(np.sum(np.hypot(a * np.sin(t), b * np.cos(t))) * (2 * np.pi / n))


def mannequin(seed: int) -> tuple[tuple[EllipticCylinder, ...], Sphere, dict[str, float]]:
    """A standing body without arms (a shop mannequin) of stacked elliptic sections, and its true
    measurements (metres): height, chest, waist, hips and thigh girths, crotch height.

    The sections keep a person's proportions (crotch at 0.45 of the height, hips just above it, the waist
    at 0.6, the chest at 0.7); ``seed`` varies the height by up to 8 % and each width by up to 10 %.
    """
    rng = np.random.default_rng(5000 + seed)
    h = float(rng.uniform(0.92, 1.08))  # heights scale together
    w = lambda x: float(x * rng.uniform(0.9, 1.1))  # noqa: E731 - one draw per width
    hips = (w(0.20), w(0.14))
    thigh = min(w(0.075), 0.5 * hips[0] - 0.02)
    leg_x = min(0.12, hips[0] - thigh)  # the legs stay under the hips, apart by at least 4 cm
    waist = (min(w(0.15), 0.85 * hips[0]), w(0.105))
    chest = (w(0.175), w(0.12))
    chest = (max(chest[0], waist[0] + 0.02), max(chest[1], waist[1] + 0.01))
    shoulders = (0.93 * chest[0], 0.85 * chest[1])
    z = {k: v * h for k, v in dict(knee=0.50, crotch=0.80, waist=0.98, chest=1.12, shoulders=1.34, neck=1.44,
                                   neck_top=1.56, head=1.66).items()}
    parts = []
    for side in (-1, 1):
        parts.append(EllipticCylinder((side * leg_x, 0.0), 0.73 * thigh, 0.73 * thigh, 0.0, z["knee"]))
        parts.append(EllipticCylinder((side * leg_x, 0.0), thigh, thigh, z["knee"], z["crotch"]))
    for (a, b), z0, z1 in ((hips, z["crotch"], z["waist"]), (waist, z["waist"], z["chest"]),
                           (chest, z["chest"], z["shoulders"]), (shoulders, z["shoulders"], z["neck"]),
                           ((0.055 * h, 0.055 * h), z["neck"], z["neck_top"])):
        parts.append(EllipticCylinder((0.0, 0.0), a, b, z0, z1))
    head = Sphere((0.0, 0.0, z["head"]), 0.10 * h)
    truth = {"height": z["head"] + head.radius, "chest": ellipse_perimeter(*chest),
             "waist": ellipse_perimeter(*waist), "hips": ellipse_perimeter(*hips), "thigh": 2 * np.pi * thigh,
             "crotch_height": z["crotch"]}
    return tuple(parts), head, truth


def garment(seed: int) -> tuple[np.ndarray, dict[str, float]]:
    """A shirt's outline laid flat, front up: [K, 2] counter-clockwise (metres, centred, turned by a random
    angle), and its true flat measurements: length (high point of the shoulder to the hem, along the centre
    line), chest width (2.5 cm below the armpit), waist width (the narrowest between hem and chest), hem width,
    sleeve length (shoulder point to the cuff along the sleeve's top edge). Seeds alternate short and long
    sleeves."""
    rng = np.random.default_rng(6000 + seed)
    long_sleeves = seed % 2 == 1
    L = float(rng.uniform(0.62, 0.76))
    C = float(rng.uniform(0.46, 0.56))
    Wa = C - float(rng.uniform(0.02, 0.07))
    H = Wa + float(rng.uniform(0.0, 0.05))
    Ls = float(rng.uniform(0.50, 0.60) if long_sleeves else rng.uniform(0.18, 0.25))
    theta = np.radians(rng.uniform(25, 40) if long_sleeves else rng.uniform(15, 30))
    cuff = float(rng.uniform(0.08, 0.10) if long_sleeves else rng.uniform(0.12, 0.15))
    neck, drop = 0.09, 0.035
    s_s = L - drop  # shoulder point's height
    s_a = s_s - float(rng.uniform(0.17, 0.21))  # armpit
    S = np.array([C / 2, s_s])
    u = np.array([np.cos(theta), -np.sin(theta)])
    C1 = S + Ls * u
    C2 = C1 + cuff * np.array([-np.sin(theta), -np.cos(theta)])
    right = [(H / 2, 0.0), (H / 2, 0.05), (Wa / 2, 0.45 * s_a), (C / 2, s_a - 0.06), (C / 2, s_a), tuple(C2),
             tuple(C1), tuple(S), (neck, L), (0.6 * neck, L - 0.035)]
    outline = np.array(right + [(0.0, L - 0.065)] + [(-x, y) for x, y in reversed(right)])
    outline[:, 1] -= L / 2
    yaw = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
    truth = {"length": L, "chest_width": C, "waist_width": Wa, "hem_width": H, "sleeve_length": Ls}
    return outline @ rot.T, truth


THICKNESS = 0.008  # a knitted shirt laid flat: two layers of fabric


def body_scene(seed: int) -> Scene:
    """The mannequin of ``seed`` standing at the origin on a textured floor."""
    parts, head, truth = mannequin(seed)
    return Scene(cylinders=parts, spheres=(head,), ground_half=2.5, seed=seed,
                 center=(0.0, 0.0, truth["height"] / 2), radius=truth["height"] / 2)


def garment_scene(seed: int) -> Scene:
    """The shirt of ``seed`` laid flat at the origin on a textured floor."""
    outline, _ = garment(seed)
    prism = Prism(tuple(map(tuple, outline.tolist())), 0.0, THICKNESS)
    return Scene(prisms=(prism,), ground_half=2.0, seed=seed, center=(0.0, 0.0, 0.0),
                 radius=float(np.linalg.norm(outline, axis=1).max()))
