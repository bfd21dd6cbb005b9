"""Randomised captures: what a real user varies, drawn from a seed.

Objects and their textures, plain backdrops, near and far, orbit speed from 0.3 to 5 degrees per
frame, partial arcs, walk-throughs, texture-poor scenes, exposure drift, blur bursts and rotation
metadata. No fixed scene can be tuned to: each seed is a new capture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vid2model.synth.generate import SynthConfig, make_scene


@dataclass(frozen=True)
class Capture:
    """A drawn capture: its config and what makes it hard (for tables)."""

    seed: int
    config: SynthConfig
    deg_per_frame: float | None  # orbit speed (None for walk-throughs)
    traits: tuple[str, ...]

    @property
    def label(self) -> str:
        speed = f"{self.deg_per_frame:.1f} deg/frame" if self.deg_per_frame is not None else "walk"
        return f"seed {self.seed}: {speed}" + (f", {', '.join(self.traits)}" if self.traits else "")


def _bursts(rng: np.random.Generator, n: int) -> tuple[tuple[int, int], ...]:
    out = []
    for _ in range(int(rng.integers(1, 3))):
        a = int(rng.integers(2, max(3, n - 10)))
        out.append((a, min(n, a + int(rng.integers(3, 9)))))
    return tuple(sorted(out))


def _drift(rng: np.random.Generator, n: int) -> tuple[tuple[int, float], ...]:
    """Brightness that wanders by up to about +-0.6 EV over the video (auto-exposure at work)."""
    steps = np.cumsum(rng.normal(0, 0.6 / np.sqrt(n), n))
    steps -= np.linspace(0, steps[-1], n) * rng.uniform(0, 1)
    return tuple((i, float(2.0 ** np.clip(s, -0.8, 0.8))) for i, s in enumerate(steps) if i % 2 == 0)


def random_capture(seed: int, *, width: int = 480, height: int = 270, max_frames: int = 160,
                   kind: str | None = None, max_deg_per_frame: float = 5.0) -> Capture:
    """Draw one capture from ``seed`` (deterministic).

    Args:
        width, height: landscape frame size (rotated captures are filmed in portrait: swapped).
        max_frames: the longest video drawn (slow orbits then cover a partial arc).
        kind: "orbit" or "walk" to force the path; None draws it (three in four are orbits).
        max_deg_per_frame: the fastest orbit drawn.
    """
    rng = np.random.default_rng(10_000 + seed)
    path = kind or ("orbit" if rng.random() < 0.75 else "walk")
    traits: list[str] = []
    kw: dict = {}
    low = rng.random() < 0.3
    contrast = float(rng.uniform(0.1, 0.3) if low else rng.uniform(0.5, 1.2))
    if low:
        traits.append("texture-poor")
    backdrop = bool(rng.random() < (0.35 if path == "orbit" else 0.3))
    if backdrop:
        traits.append("plain backdrop" if path == "orbit" else "plain wall")
    deg = None
    if path == "orbit":
        deg = float(np.exp(rng.uniform(np.log(0.3), np.log(max_deg_per_frame))))
        arc = 360.0 if rng.random() < 0.5 else float(rng.uniform(90, 300))
        n = int(np.clip(round(arc / deg), 12, max_frames))
        arc = min(arc, n * deg)
        if arc < 360:
            traits.append(f"{arc:.0f} deg arc")
        r = float(rng.uniform(1.0, 2.2))
        kw.update(arc_deg=arc, orbit_radius=r, orbit_height=float(rng.uniform(0.3, 0.7)),
                  orbit_start_deg=float(rng.uniform(0, 360)))
        traits.append("near" if r < 1.3 else "far" if r > 1.9 else "")
    else:
        n = int(rng.integers(60, max_frames + 1))
        traits.append(f"{3.2 / n * 100:.1f} cm/frame")
    if rng.random() < 0.25:
        kw["blur_frames"] = _bursts(rng, n)
        traits.append("blur bursts")
    if rng.random() < 0.25:
        kw["exposure_gain"] = _drift(rng, n)
        traits.append("exposure drift")
    rotation = 0
    if rng.random() < 0.2:
        rotation = int(rng.choice([90, 270]))
        width, height = height, width
        traits.append(f"rotated {rotation}")
    layout = int(rng.integers(0, 2 ** 31 - 1))
    fov = float(rng.uniform(50, 70))  # across the long side of the sensor
    if rotation:  # filmed in portrait: the lens spans the upright image's height; fov_deg is across its width
        fov = float(np.degrees(2 * np.arctan(np.tan(np.radians(fov) / 2) * width / height)))
    cfg = SynthConfig(path=path, width=width, height=height, n_frames=n, fps=30.0,
                      fov_deg=fov, seed=int(rng.integers(0, 1000)), rotation=rotation,
                      jitter=float(rng.uniform(0.5, 1.5)), layout_seed=layout, contrast=contrast,
                      backdrop=backdrop, **kw)
    if path == "orbit":  # look at the middle of whatever was placed, from a little above it
        from dataclasses import replace

        scene = make_scene(cfg)
        top = max([b.hi[2] for b in scene.boxes] + [s.center[2] + s.radius for s in scene.spheres])
        c = scene.center
        cfg = replace(cfg, orbit_target=(c[0], c[1], 0.5 * (c[2] + top) - 0.1),
                      orbit_height=0.5 * top + cfg.orbit_height)
        if any(b.lo[2] < 0 for b in scene.plain_boxes):
            traits.append("tabletop, plain floor")
    return Capture(seed=seed, config=cfg, deg_per_frame=deg, traits=tuple(t for t in traits if t))
