"""What a synthetic capture films: one frozen config, read by the camera path, the renderer and the writer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class SynthConfig:
    """What to film. Sizes are of the upright (displayed) image; K and poses refer to it."""

    path: str = "orbit"  # orbit: around an object on a floor | walk: through a room
    width: int = 320
    height: int = 240
    n_frames: int = 24
    fps: float = 10.0
    fov_deg: float = 60.0  # horizontal field of view
    arc_deg: float = 360.0  # orbit: how far around the object
    seed: int = 0  # texture pattern and hand-held shake
    blur_frames: tuple[tuple[int, int], ...] = ()  # [start, end) frame ranges with motion blur
    blur_strength: float = 1.0  # exposure time; 1.0 sweeps 3 frame intervals of path
    exposure_gain: tuple[tuple[int, float], ...] = ()  # from frame k on, multiply brightness by gain (clipped)
    rotation: int = 0  # display-matrix rotation, degrees counter-clockwise: 0, 90, 180, 270 (phone portrait: 270)
    vfr: bool = False  # irregular frame timestamps (PTS in the file equal the GT timestamps)
    marker_size: float | None = None  # metres; an ArUco DICT_4X4_50 id 0 marker on the floor
    product: tuple[float, ...] = ()  # orbit: one box of these (x, y, z) extents in metres instead of the fixed scene
    product_plain: bool = False  # ... painted one flat colour: no texture for stereo to match, shading only
    product_shape: str = "box"  # ... "box", or "cylinder": an upright elliptic cylinder of those extents
    write_video: bool = True
    write_images: bool = False
    image_ext: str = "png"  # png (lossless) or jpg
    jitter: float = 1.0  # hand-held shake, relative
    # a random scene layout (objects, textures, backdrop) made from this seed; -1 = the fixed scene of ``path``
    layout_seed: int = -1
    contrast: float = 1.0  # texture detail of a random layout (~0.1 = texture-poor)
    backdrop: bool = False  # random layout: a plain backdrop on part of an orbit's circle / a plain wall in a walk
    orbit_radius: float = 1.5  # metres from the orbit's axis
    orbit_height: float = 0.75  # camera height above the floor
    orbit_target: tuple[float, float, float] = (0.05, 0.0, 0.25)  # the point an orbit looks at
    orbit_start_deg: float = 0.0  # azimuth of the first frame
    # walk: a loop round the room's middle at orbit_height looking out at the walls and up at the ceiling (a room
    # tour; every wall is seen), instead of walking down the room
    walk_tour: bool = False
    # orbit: instead of the fixed scene, a mannequin of exactly known girths standing on the floor ("body") or a
    # shirt of known flat measurements laid on it ("garment"), drawn from ``seed``
    subject: str = ""
    # the tour's look down and up, cycles per loop: 2 sees the x walls' feet and the y walls' tops; 4 sees all
    # of every wall, looking down and up at each
    tour_pitch_cycles: int = 2
    # walk: a door and two windows in the room's walls, with a larger room round it seen through them
    room_openings: bool = False
    # rays per pixel along each axis, averaged: a sensor integrates light over each pixel, while one ray at its
    # centre aliases fine texture seen far or at a grazing angle into patterns that move with the camera
    supersample: int = 1

    def __post_init__(self) -> None:
        if self.path not in ("orbit", "walk"):
            raise ValueError(f"path must be 'orbit' or 'walk', not {self.path!r}")
        if self.subject not in ("", "body", "garment"):
            raise ValueError(f"subject must be '', 'body' or 'garment', not {self.subject!r}")
        if self.supersample < 1:
            raise ValueError("supersample must be at least 1")
        if self.rotation % 90 or self.n_frames < 1 or self.width < 2 or self.height < 2:
            raise ValueError("rotation must be a multiple of 90, n_frames >= 1 and the image at least 2x2")
        if self.write_video and (self.width % 2 or self.height % 2):
            raise ValueError("yuv420p video needs an even width and height")
