"""Typed, flat configuration: one frozen keyword-only dataclass per stage, plus named presets.

A preset is a set of per-stage overrides; the CLI's ``--set stage.field=value`` applies on top.
Configs are saved in ``manifest.json`` as plain JSON and compared to decide whether a stage reruns.
The measurements behind the defaults are in ``bench/results/config-history.md``.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

from vid2model.errors import UserError


# Settings that change how a stage runs, never what it produces: left out of the fingerprint, so changing
# one reruns nothing.
HOW_NOT_WHAT = {"fingerprint": False}


class _Choices:
    """Checks, when a config is built, that every ``Literal`` field holds one of its values and every field
    in ``_bounds`` lies in its range: a typo or an impossible value fails before any stage runs, saying
    what is allowed."""

    _bounds: ClassVar[dict[str, tuple[float | None, float | None]]] = {}

    def __post_init__(self) -> None:
        stage = type(self).__name__.removesuffix("Config").lower()
        for name, typ in typing.get_type_hints(type(self)).items():
            if typing.get_origin(typ) is Literal and getattr(self, name) not in typing.get_args(typ):
                raise UserError(f"{stage}.{name} cannot be {getattr(self, name)!r}; choose one of "
                                f"{', '.join(map(str, typing.get_args(typ)))}")
        for name, (lo, hi) in self._bounds.items():
            v = getattr(self, name)
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                want = f"from {lo} to {hi}" if lo is not None and hi is not None else \
                    f"at least {lo}" if lo is not None else f"at most {hi}"
                raise UserError(f"{stage}.{name} cannot be {v!r}; it must be {want}")


@dataclass(frozen=True, kw_only=True)
class IngestConfig(_Choices):
    """Decoding, frame scoring and keyframe selection."""

    _bounds = {"max_side": (64, None), "analysis_side": (64, None), "jpeg_quality": (1, 100),
               "target_keyframes": (0, None), "min_keyframes": (3, None), "max_keyframes": (3, None),
               "keyframe_step": (1e-4, None), "analysis_fps": (0, None), "min_track_survival": (0, 1),
               "keyframe_max_deg": (0, None), "keyframe_turn_views": (0, None)}

    max_side: int = 1280  # working resolution (long side) of images/
    analysis_side: int = 320  # resolution at which frames are scored
    keep_full_res: bool = True  # also write images_full/ for texturing
    target_keyframes: int = 0  # 0 = automatic from parallax
    min_keyframes: int = 8
    max_keyframes: int = 150
    jpeg_quality: int = 95
    keyframe_step: float = 0.05  # camera motion between keyframes, fraction of the image diagonal
    blur_threshold: float = 0.6  # relative sharpness under which a frame counts as blurred
    max_gap_steps: float = 4.0  # keyframe spacing (in keyframe_step units) accepted to skip blurred frames
    # share of a keyframe's feature tracks that must still be alive on the next keyframe: image motion alone lets
    # keyframes skip a long arc where the view turns to a plain wall, and the camera solve breaks there. Set under
    # what usual spacing and blur bursts keep
    min_track_survival: float = 0.3
    # a turn of the view by this many degrees (estimated from the tracks) counts as one keyframe_step; 0 = ignore
    keyframe_max_deg: float = 5.0
    keyframe_turn_views: int = 20  # ... and a shorter arc still gets this many keyframe steps (0 = no minimum)
    fast_motion: float = 0.08  # per-frame motion (fraction of diagonal) that is "too fast"
    static_motion: float = 0.05  # net image motion (fraction of diagonal) under which the camera is static
    analysis_fps: float = 30.0  # frames scored per second at most (0 = every frame)
    sharpness_window_s: float = 1.5  # half-width of the neighbourhood sharpness is relative to
    slow_motion: float = 0.01  # motion per second (fraction of diagonal) under which filming is "too slow"
    exposure_jump_ev: float = 0.4  # brightness step reported as a lighting jump
    probe_frames: bool = True  # video: also write one frame between each two keyframes, held out to test the solve


@dataclass(frozen=True, kw_only=True)
class SfmConfig(_Choices):
    """Camera solving."""

    _bounds = {"max_features": (100, None), "min_verified_share": (0, 1), "max_focal_uncertainty": (0, None),
               "warn_focal_uncertainty": (0, None), "max_rotation_uncertainty_deg": (0, None),
               "bridge_min_inliers": (0, None),
               "sequential_overlap": (1, None), "marker_size": (0, None), "known_distance": (0, None)}

    # xfeat: learned, needs onnxruntime + xfeat.onnx; aliked: known, refused with the reason (deformable conv)
    features: Literal["sift", "xfeat", "aliked"] = "sift"
    max_features: int = 4096
    min_keypoints: int = 600  # median features per image under which SIFT is rerun with a lower threshold
    models_dir: str = field(default="", metadata=HOW_NOT_WHAT)  # learned-feature weights; "" = $VID2MODEL_MODELS or cache
    matcher: Literal["auto", "sequential", "exhaustive"] = "auto"
    sequential_overlap: int = 8
    loop_closure: bool = True
    exhaustive_max_images: int = 40  # auto matcher: all pairs up to this many images
    retrieval_k: int = 5  # loop-closure candidates per image (pairs grow linearly)
    mapper: Literal["auto", "global", "incremental"] = "auto"
    incremental_max_images: int = 150  # auto mapper: incremental first up to this many images, else global
    camera_model: Literal["auto", "SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV",
                          "FULL_OPENCV"] = "auto"
    opencv_min_images: int = 30  # auto: this many views sharing one camera get RADIAL (else SIMPLE_RADIAL)
    marker_size: float = 0.0  # metres; > 0 enables ArUco metric scale
    known_distance: float = 0.0  # metres between two cameras named by known_distance_images
    known_distance_images: str = ""  # "imgA.jpg,imgB.jpg"
    gravity_up: bool = True
    # a solved model is checked against every verified pair's own two-view evidence; frames no agreeing pair
    # ties to the largest verified block are dropped, and a model that keeps under this share of the keyframes
    # is refused (sfm/camera_check.json and the report say which spans broke)
    min_verified_share: float = 0.3
    allow_unverified: bool = False  # carry on with the unverified model (a warning instead of a refusal)
    probe_check: bool = True  # video: localise the held-out frames between keyframes; cut links they contradict
    # video: two consecutive keyframes sharing fewer verified matches than this get the held-out frame between
    # them added to the solve (a bridge; taken out of the model again before it is written). 0: never
    bridge_min_inliers: int = 100
    # a model whose focal length the capture leaves this loose (relative std, from the bundle adjustment's cost
    # profile) is refused: every rotation inherits the focal error while the reprojection error stays small
    max_focal_uncertainty: float = 0.01
    # ... and a video's model left looser than this is delivered with a warning: a codec copies blocks along the
    # motion, an error common to every frame that the cost profile cannot see, so the focal length can be off by
    # several times the figure
    warn_focal_uncertainty: float = 0.005
    # a model in which the rotation between two consecutive keyframes is uncertain by more than this (degrees,
    # 1 sigma at 1 px of image noise, from the bundle adjustment's covariance) is refused
    max_rotation_uncertainty_deg: float = 0.5
    # the solved model is re-adjusted with a Cauchy loss at its own noise level, observations beyond three
    # times that noise removed (stages.sfm_refine): outliers otherwise pull the focal length and every rotation
    robust_refine: bool = True


@dataclass(frozen=True, kw_only=True)
class DenseConfig(_Choices):
    """Multi-view stereo and fusion."""

    _bounds = {"max_side": (64, None), "num_sources": (1, None), "n_planes": (2, None), "window": (1, None),
               "rounds": (0, None), "best_k": (1, None), "threads": (0, None), "rim_gap_share": (0, 1)}

    max_side: int = 640  # depth-map resolution (long side)
    num_sources: int = 8  # each pixel scores its best 2 (best_k); more sources cover more of the view
    n_planes: int = 48  # hypotheses of the global plane sweep (at least)
    plane_step_px: float = 4.0  # more planes (up to max_planes) where consecutive ones would move a source pixel more
    max_planes: int = 128
    # per-pixel hypotheses of each refinement sweep (the centre makes it odd); each round narrows the search by
    # 2.5 / n_refine. The fewest that lose no accuracy, with the propagation below (time grows with it)
    n_refine: int = 6
    window: int = 3  # NCC window radius (pixels)
    # refinement round k also scores the estimates of the 4 pixels propagate_px[k] away (working-resolution
    # pixels), which undoes the foreground fattening of the half-resolution sweep. One distance per round, coarse
    # to fine: every distance in every round gains little more at twice the cost; () = off
    propagate_px: tuple[int, ...] = (16, 8, 4)
    min_ncc: float = 0.3  # matching score under which a depth is dropped
    # other views that must agree with a depth: the thin parts of a sparse capture (columns seen by a few views far
    # apart) have no second agreeing view, and dense captures lose almost no precision with one
    min_consistent: int = 1
    # reprojection tolerance (working-resolution pixels) of that agreement: a tighter one loses the thin parts of
    # sparse captures, while dense captures score the same
    consistency_px: float = 3.0
    consistency_rel: float = 0.02
    rounds: int = 3  # full-resolution refinement sweeps
    best_k: int = 2  # the best sources averaged in the matching score
    # grey std in the NCC window under which a pixel is untextured (dropped); about one grey level, below which
    # 8-bit images hold no signal. Higher, the right depths of low-contrast objects were dropped (figures:
    # bench/results/surfaces-2026-12-02-comparison.md)
    min_texture: float = 0.004
    # under this std texture is weak: a weak pixel needs the stronger match weak_min_ncc, and none is taken in
    # dark windows (mean grey under dark_level), where faint variations are the sensor's noise floor and JPEG's
    # coarse steps (without these rules Middlebury temple's black backdrop joined the object)
    weak_texture: float = 0.01
    weak_min_ncc: float = 0.75
    dark_level: float = 0.1
    # drop pixels at a depth map's edge that are untextured over this radius: the matching window fattens the
    # foreground onto plain backdrops there; 0 = keep
    fringe_radius: int = 1
    # ... where the grey std over that radius is under this (the fringe's own flatness, apart from min_texture)
    fringe_flat_std: float = 0.01
    # peel depth-map rims that have the colour of a plain backdrop beside them, one pixel ring per iteration:
    # fattening reaches past the window's edge; it costs a little on richly textured scenes; 0 = off
    peel_iters: int = 6
    # gaps in a depth map up to this share of its pixels, mostly textured and away from edges, are specks where a
    # weakly textured surface did not match: the fringe and peel rules leave their rims (they dropped most of such
    # surfaces' right depths). 0 = off. What it adds on DTU lies mostly on the table its masks leave out
    # (bench/results/surfaces-2026-12-05-rim-gaps-on.md)
    rim_gap_share: float = 0.003
    rim_gap_min_consistent: int = 2  # other views that must agree on a depth only those gaps' rims kept
    max_incidence_deg: float = 80.0  # drop depths seen at grazing angles (poorly measured)
    # plain regions (no texture at all) whose measured rim agrees on one horizontal level take that plane's
    # depth where no view sees through it (ops/mvs/plane_fill.py): plain floors, table tops, ceilings. Off: the
    # few pixels it fills on DTU include wrong ones at the silhouette (figures: the comparison above)
    fill_plain_levels: bool = False
    voxel_divisions: int = 500  # fused-cloud voxel = scene radius / this
    holdout_every: int = 0  # hold every n-th view (0, n, 2n...) out of stereo and meshing, for evaluation; 0 = none
    threads: int = field(default=0, metadata=HOW_NOT_WHAT)  # CPU threads for torch; 0 = all available cores
    backend: Literal["auto", "cpu", "colmap_cuda"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"


@dataclass(frozen=True, kw_only=True)
class MeshConfig(_Choices):
    """Surface extraction and cleanup."""

    _bounds = {"hull_divisions": (8, None), "hull_max_gap_deg": (0, 360), "hull_min_missed": (0, 1),
               "hull_min_contradicted": (0, 1),
               "hull_margin": (0, None), "hull_max_up": (0, 1), "hull_reach": (0, None), "hull_gap": (0, None),
               "hull_lid_spread": (0, None), "hull_lid_unmeasured": (0, 1), "hull_max_share": (0, 1),
               "hull_corner_deg": (0, 180), "hull_face_turn_deg": (0, 90), "hull_refine": (1, 4),
               "hull_inset_px": (0, None), "hull_face_slack": (1, None),
               "hull_tent_turn_deg": (0, 90)}

    # Screened Poisson on the fused oriented points closes the gaps that filtered depth maps leave, which TSDF
    # keeps as holes (bench/bench_texture.py compares the two)
    method: Literal["poisson", "tsdf"] = "poisson"
    voxel_size: float = 0.0  # 0 = automatic: max(scene radius / voxel_divisions, voxel_footprint pixels)
    voxel_divisions: int = 200
    voxel_footprint: float = 1.0  # voxel >= this many depth-map pixels at the median depth (memory bound)
    sdf_trunc_voxels: float = 4.0  # TSDF truncation in voxels
    poisson_depth: int = 0  # octree depth, 0 = automatic from the voxel size (capped at poisson_max_depth)
    poisson_max_depth: int = 10  # each level costs ~3x time and memory
    # drop the lowest-density quantile of Poisson vertices (surface the data never saw: membranes, bridges to
    # background clutter). The fine octree spreads sparse real surface into that tail, so a larger share cuts
    # see-through holes into thin structures; the fast preset's coarser octree trims more (less let background
    # surface join the object)
    poisson_trim: float = 0.02
    # Poisson reaches past the data (unseen backs, rims): drop surface outside the fused points' silhouettes
    # (closed over carve_close of the image diagonal) in carve_min_views views; 0 = keep it
    carve_close: float = 0.02
    carve_min_views: int = 2
    # drop Poisson surface that carve_min_views depth maps saw through (measured depth farther than the surface's
    # by more than free_space_margin of it); unmeasured, plain surface stays
    carve_free_space: bool = False
    free_space_margin: float = 0.03
    # an orbit's object where stereo measured nothing (plain, evenly coloured): points on the volume no depth map
    # saw through (ops/free_space_hull.py) join the fused points, where none lies within hull_gap hull voxels
    complete_hull: bool = True
    hull_divisions: int = 300  # hull voxels across its box
    hull_max_gap_deg: float = 45.0  # only when the views circle the object: no wider gap between them
    # ... and only when stereo missed at least this share of the hull's sides: nearly all of a plain box's, most
    # of a plain cylinder's (its shading matches in places: 57 %), few of a textured object's (0-8 %), where
    # what is left are concavities the hull spans (it joined a body's arms to its chest: 37 %)
    hull_min_missed: float = 0.5
    # ... or when at least this share of the measured points round it lie where a depth map saw through: stereo
    # matched a plain object's shading (a plain cylinder's: 37-81 %; textured objects 7-12 %, a body 2 %)
    hull_min_contradicted: float = 0.3
    hull_margin: float = 0.002  # a depth map sees past a voxel by this share of its depth (stereo's noise)
    hull_max_up: float = 0.5  # hull points join only where their normal's up component is under this
    hull_reach: float = 0.5  # the hull's box reaches this share of the cameras' distance from the object's centre
    hull_gap: float = 2.0  # hull voxels: a hull point this near a fused point is measured surface already
    # a plain flat top (ops/free_space_hull.Hull.lid) is added where the image's grey spread over it is under
    # this (0-1): a flat face of one colour is evenly lit, a rounded one is shaded
    hull_lid_spread: float = 0.03
    # ... over the part of it stereo left unmeasured, when that is at least this share of it: stereo's points on
    # the rest lie on the lid (a plain cylinder's top was 53 % measured and Poisson domed the hole 9 mm over)
    hull_lid_unmeasured: float = 0.2
    hull_max_share: float = 0.3  # a hull filling more of its box than this carved nothing useful: none is added
    # a flat side between two corners (ops/free_space_hull.flat_faces: hull_corner_deg of turn) takes the chord
    # between them where the hull stands over it as the grazing views' tent (its outline within
    # hull_face_turn_deg of the chord's direction, within the tent the views' spacing allows)
    hull_flat_faces: bool = True
    # the hull completed is carved only by the depths that reach past the object's box (a plain object's wrong
    # matches carve channels into it): ops/free_space_hull.carve's past
    hull_past_object: bool = True
    # ... less the background's depth that stereo spread onto the object's plain pixels beside its outline
    # (ops/mvs/filtering.claim_far_rims): such pixels carved a channel 20 mm deep into a plain cylinder
    hull_claim_rims: bool = True
    # ... and the object's depth that stereo spread onto the textured background beside its outline given to the
    # background (ops/mvs/filtering.release_near_rims), where the hull stopped; off: on the plain products of
    # bench/bench_completion.py it gained a small box what it cost a cylinder
    hull_release_rims: bool = False
    hull_refine: int = 2  # ... in a box round the object, this many times finer than the decision's hull
    # flat faces move in by this many depth-map pixels (at the object): the dense stage's depth maps lose the
    # background pixel next to an occluding edge about half the time, and a flat side is carved by few views
    hull_inset_px: float = 1.0
    hull_corner_deg: float = 45.0
    hull_face_turn_deg: float = 20.0
    # how far out of a flat face the hull may stand and still be put onto it, in the largest tent the views'
    # spacing leaves (ops/free_space_hull.flat_faces's slack): the grazing views' missing depths beside the
    # outline leave taller tents than their spacing alone does
    hull_face_slack: float = 2.5
    # a curved side's tents (the sections' outline between two views' silhouette lines) rounded onto the curve
    # those lines touch (ops/free_space_hull.round_tents), at corners turning under hull_tent_turn_deg
    hull_round_tents: bool = True
    hull_tent_turn_deg: float = 30.0
    min_component_share: float = 0.02  # pieces smaller than this share of the largest are floaters
    isolate: bool = False  # keep only the object the cameras circle
    isolate_radius: float = 1.0  # in scene radii, around the scene centre (used when no cameras are known)
    isolate_view_share: float = 0.6  # isolation keeps surface in view of this share of the best-seen point's cameras
    isolate_grow_share: float = 0.15  # ... and surface joined to it in view of this share (objects filling the frame)
    drop_floor: bool = False
    fill_holes: bool = True
    max_hole_size: float = 0.1  # in scene radii
    smooth_iterations: int = 5
    # a closed surface: an orbit's object becomes a solid standing on its support (its unseen bottom flat on it,
    # the floor dropped); a walk-through gets every hole filled
    watertight: bool = False
    target_faces: int = 200_000
    lods: tuple[int, ...] = (200_000, 50_000, 10_000)


@dataclass(frozen=True, kw_only=True)
class TextureConfig(_Choices):
    """UV atlas and texture baking."""

    size: int = 2048
    use_full_res: bool = True  # sample the original frames (images_full/) through the distorted camera
    # the textured mesh is decimated to this: fewer faces move the surface off the views' geometry, which
    # misregisters the texture; more cost baking time for little gain
    max_faces: int = 100_000
    chunk_faces: int = 1_000  # faces per xatlas chart group (xatlas time grows faster than linearly in it)
    visibility_scale: float = 0.5  # ray-cast visibility at this fraction of image size
    level_exposure: bool = True  # per-view gains so seams between views do not show
    # down-weight views whose colour of a face is far from the median of all views (0: off); catches views
    # that see the surface behind/in front where the geometry is slightly off
    consistency_sigma: float = 0.1
    padding: int = 8  # texels of dilation around charts


@dataclass(frozen=True, kw_only=True)
class SplatConfig(_Choices):
    """Gaussian splat training."""

    _bounds = {"iterations": (1, None), "max_side": (16, None), "sh_degree": (0, 3), "max_gaussians": (1, None),
               "eval_every": (0, None), "max_init_points": (1, None), "far_points": (0, None)}

    iterations: int = 3000
    max_side: int = 480
    sh_degree: int = 3
    max_gaussians: int = 300_000
    device: Literal["auto", "cpu", "cuda"] = "auto"
    eval_every: int = 8  # hold out every n-th keyframe
    max_init_points: int = 100_000  # dense/sparse points used to seed splats (random subset beyond)
    far_points: int = 2000  # seed splats on a sphere around the scene for sky / far background
    exposure: bool = True  # learn a per-image colour gain/bias (phone auto-exposure)
    checkpoint_every: int = field(default=500, metadata=HOW_NOT_WHAT)  # iterations between resumable checkpoints
    image_cache_mb: int = field(default=1024, metadata=HOW_NOT_WHAT)  # training images in RAM; the rest re-read
    threads: int = field(default=0, metadata=HOW_NOT_WHAT)  # CPU threads (0: all cores, 1 when the machine is busy)


@dataclass(frozen=True, kw_only=True)
class NerfConfig(_Choices):
    """Radiance field (optional stage, ``vid2model nerf``): a sparse voxel grid trained on the keyframes."""

    _bounds = {"iterations": (1, None), "max_side": (16, None), "batch_rays": (64, None), "eval_every": (0, None),
               "resolution": (16, 1024), "coarse_resolution": (8, 1024), "lr_density": (0, None),
               "lr_color": (0, None), "tv_density": (0, None), "tv_color": (0, None), "depth_weight": (0, None),
               "spread_weight": (0, None), "shell": (0.5, 3)}

    iterations: int = 2000
    max_side: int = 400  # training image resolution (long side)
    batch_rays: int = 8192
    # grid vertices a side at the end; training starts at coarse_resolution and grows in three steps, pruning
    # empty space each time (the coarse grid finds the surfaces at a fraction of the cost)
    resolution: int = 256
    coarse_resolution: int = 64
    # SH degree of the colour (view dependence); 2 costs twice the memory and time of 1 for a fraction of a dB
    sh_degree: Literal[0, 1, 2] = 1
    # unbounded: contract space beyond the cube around the scene's points (backgrounds, walk-throughs);
    # bounded: only that cube, a fixed background colour beyond
    scene: Literal["unbounded", "bounded"] = "unbounded"
    # unbounded: the contracted shell's width beyond the cube, in the cube's half sizes; the grid gains vertices
    # with it (``resolution`` is that of the usual width 1) so the cube keeps its voxel and what lies round it
    # (the floor near the cameras, most of an orbit's held-out error at width 1) gets finer ones, for more
    # training time and memory; what it gains and costs: bench/results/nerf-2026-12-07-shell.md
    shell: float = 2.0
    lr_density: float = 0.5
    lr_color: float = 0.1
    # smoothness prior (squared differences to the 6 neighbours), against a mean squared error over the batch:
    # 1e-5 already cost the synthetic orbit 1 dB held out, so it is off
    tv_density: float = 0.0
    tv_color: float = 0.0
    exposure: bool = True  # learn a per-image colour gain/bias (phone auto-exposure)
    # depth prior from the dense stage's depth maps (when there are some): without it, a free grid paints each
    # view's pixels where no other view checks them (see bench/results/nerf-2026-12-03-orbit-diagnosis.md)
    depth_weight: float = 1.0
    # compactness prior: each ray's weighted variance of its samples' places along it (squared voxels, each
    # sample's share capped at 3 voxels); off by default: it sharpened one synthetic orbit and blurred lego and
    # random orbits (bench/results/nerf-2026-12-06-spread.md)
    spread_weight: float = 0.0
    eval_every: int = 8  # hold out every n-th keyframe for the PSNR (0: none)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    checkpoint_every: int = field(default=250, metadata=HOW_NOT_WHAT)  # iterations between resumable checkpoints
    threads: int = field(default=0, metadata=HOW_NOT_WHAT)  # CPU threads (0: all cores, 1 when the machine is busy)


@dataclass(frozen=True, kw_only=True)
class ExportConfig(_Choices):
    """Files for other tools."""

    # glb gltf obj usdz usd (binary) usda (text) fbx ply (mesh + dense points) splat_ply splat spz
    formats: tuple[str, ...] = ("glb", "gltf", "obj", "usdz", "usd", "fbx", "ply", "splat_ply", "splat", "spz")
    KNOWN_FORMATS: ClassVar[tuple[str, ...]] = ("glb", "gltf", "obj", "usdz", "usd", "usda", "fbx", "ply",
                                                "splat_ply", "splat", "spz")

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = sorted({f.strip().lower() for f in self.formats} - set(self.KNOWN_FORMATS) - {""})
        if unknown:
            raise UserError(f"unknown export format(s) {', '.join(unknown)}; choose from "
                            f"{', '.join(self.KNOWN_FORMATS)}")


STAGE_CONFIGS: dict[str, type] = {
    "ingest": IngestConfig,
    "sfm": SfmConfig,
    "dense": DenseConfig,
    "mesh": MeshConfig,
    "texture": TextureConfig,
    "splat": SplatConfig,
    "nerf": NerfConfig,
    "export": ExportConfig,
}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "fast": {
        "ingest": {"max_side": 960, "max_keyframes": 60, "keyframe_max_deg": 10.0},
        "sfm": {"max_features": 2048},
        "dense": {"max_side": 480, "num_sources": 4, "n_planes": 32, "n_refine": 8, "rounds": 2},
        "mesh": {"target_faces": 100_000, "voxel_divisions": 150, "poisson_max_depth": 9, "poisson_trim": 0.05},
        "texture": {"size": 1024, "max_faces": 50_000},
        "splat": {"iterations": 1000, "max_side": 320},
        "nerf": {"iterations": 1000, "max_side": 320, "resolution": 160, "coarse_resolution": 48, "shell": 1.0},
    },
    "default": {},
    "quality": {
        "ingest": {"max_side": 1920, "max_keyframes": 250},
        "sfm": {"max_features": 8192},
        "dense": {"max_side": 1280, "num_sources": 10, "n_planes": 64, "n_refine": 16},
        "mesh": {"target_faces": 500_000, "voxel_divisions": 300, "poisson_max_depth": 11},
        "texture": {"size": 4096, "max_faces": 300_000},
        "splat": {"iterations": 10000, "max_side": 960},
        "nerf": {"iterations": 8000, "max_side": 800, "resolution": 384, "coarse_resolution": 128, "sh_degree": 2},
    },
}


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    """All stage configs of one run (a flat record, one field per stage)."""

    ingest: IngestConfig = field(default_factory=IngestConfig)
    sfm: SfmConfig = field(default_factory=SfmConfig)
    dense: DenseConfig = field(default_factory=DenseConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    texture: TextureConfig = field(default_factory=TextureConfig)
    splat: SplatConfig = field(default_factory=SplatConfig)
    nerf: NerfConfig = field(default_factory=NerfConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def for_stage(self, stage: str) -> Any:
        return getattr(self, stage)


def _coerce(value: str, typ: Any, name: str) -> Any:
    origin = typing.get_origin(typ)
    if typ is bool:
        low = value.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise UserError(f"{name} expects true/false, got {value!r}")
    if origin is Literal:  # checked against its values when the config is built
        return next((a for a in typing.get_args(typ) if str(a) == value), value)  # Literal[0, 1, 2] too
    if origin is tuple:
        (inner, *_rest) = typing.get_args(typ)
        parts = [p for p in value.split(",") if p.strip()]
        return tuple(_coerce(p.strip(), inner, name) for p in parts)
    try:
        return typ(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} expects {getattr(typ, '__name__', typ)}, got {value!r}") from None


def build_config(preset: str = "default", overrides: dict[str, dict[str, Any]] | None = None,
                 sets: list[str] | tuple[str, ...] = ()) -> PipelineConfig:
    """Build a :class:`PipelineConfig` from a preset, typed overrides and ``stage.field=value`` strings.

    Raises:
        UserError: unknown preset, stage or field, or a value of the wrong type.
    """
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    merged: dict[str, dict[str, Any]] = {s: dict(v) for s, v in PRESETS[preset].items()}
    for stage, vals in (overrides or {}).items():
        merged.setdefault(stage, {}).update({k: v for k, v in vals.items() if v is not None})
    for item in sets:
        key, sep, value = item.partition("=")
        stage, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise UserError(f"--set expects stage.field=value, got {item!r}")
        cls = STAGE_CONFIGS.get(stage)
        if cls is None:
            raise UserError(f"--set: unknown stage {stage!r}; stages: {', '.join(STAGE_CONFIGS)}")
        hints = typing.get_type_hints(cls)
        if name not in hints:
            known = ", ".join(f.name for f in fields(cls))
            raise UserError(f"--set: {stage} has no setting {name!r}; known: {known}")
        merged.setdefault(stage, {})[name] = _coerce(value.strip(), hints[name], key)
    kwargs = {}
    for stage, cls in STAGE_CONFIGS.items():
        vals = merged.get(stage, {})
        known = {f.name for f in fields(cls)}
        bad = set(vals) - known
        if bad:
            raise UserError(f"{stage} has no setting(s) {', '.join(sorted(bad))}")
        kwargs[stage] = cls(**vals)
    return PipelineConfig(**kwargs)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain JSON-able dict of a stage config (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def fingerprint_dict(cfg: Any) -> dict[str, Any]:
    """:func:`config_to_dict` without the settings marked ``HOW_NOT_WHAT`` (what decides a rerun)."""
    skip = {f.name for f in fields(cfg) if f.metadata.get("fingerprint") is False}
    return {k: v for k, v in config_to_dict(cfg).items() if k not in skip}
