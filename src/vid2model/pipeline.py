"""The pipeline: which stages exist, what each needs, and how a whole run is put together."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from vid2model.config import PipelineConfig
from vid2model.errors import UserError
from vid2model.runner import Stage, run_stages
from vid2model.workspace import Workspace

log = logging.getLogger("vid2model")

STAGES: list[Stage] = [
    Stage(name="ingest", target="vid2model.stages.ingest:run", outputs=("keyframes_json", "images_dir"),
          help="decode the video (or image folder), score frames, pick keyframes, write the capture report"),
    Stage(name="sfm", target="vid2model.stages.sfm:run", needs=("ingest",),
          outputs=("sparse_dir", "transforms_json", "dense_sparse_dir", "undistorted_dir"),
          help="solve cameras (features, matching, mapping) into sparse/0 and transforms.json"),
    Stage(name="dense", target="vid2model.stages.dense:run", needs=("sfm",),
          outputs=("fused_ply", "depth_maps_dir", "holdout_json"),
          help="multi-view stereo depth maps and a fused dense point cloud"),
    Stage(name="mesh", target="vid2model.stages.mesh:run", needs=("dense",), outputs=("mesh_dir",),
          help="surface mesh, cleanup, decimation and LODs"),
    Stage(name="texture", target="vid2model.stages.texture:run", needs=("mesh",), outputs=("texture_dir",),
          help="UV atlas and texture baked from the keyframes"),
    Stage(name="splat", target="vid2model.stages.splat:run", needs=("sfm",), optional_needs=("dense",),
          outputs=("splat_ply",),
          help="train 3D Gaussian splats"),
    Stage(name="nerf", target="vid2model.stages.nerf:run", needs=("sfm",), outputs=("nerf_field",),
          help="train a radiance field (NeRF) on the keyframes (optional: not part of a default run)"),
    Stage(name="export", target="vid2model.stages.export:run", needs=("mesh",),
          optional_needs=("texture", "dense", "splat"),
          help="GLB/glTF, OBJ, USD/USDZ, FBX, PLY and splat files under export/"),
]
STAGE_NAMES = [s.name for s in STAGES]
OPTIONAL_STAGES = ("nerf",)  # run only when named (`vid2model nerf WS`), never by a whole `run`
VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mts", ".3gp"}


def stage(name: str) -> Stage:
    for s in STAGES:
        if s.name == name:
            return s
    raise UserError(f"unknown stage {name!r}; stages: {', '.join(STAGE_NAMES)}")


def set_input(ws: Workspace, input_path: str | os.PathLike) -> dict[str, Any]:
    """Record the workspace's input (a video file or a folder of images)."""
    path = Path(input_path).expanduser()
    if not path.exists():
        raise UserError(f"input not found: {path}")
    path = path.resolve()
    if path.is_dir():
        kind = "images"
    elif path.is_file():
        if not os.access(path, os.R_OK):
            raise UserError(f"input is not readable: {path}")
        kind = "video"
    else:
        raise UserError(f"input is neither a video file nor a folder of images: {path}")
    if path == ws.root or ws.root in path.parents:
        raise UserError(f"the input {path} lies inside the workspace {ws.root}, whose folders vid2model "
                        "rewrites; give a workspace folder (-o) outside the input")
    ws.create()
    info = {"path": str(path), "kind": kind}
    old = ws.read_json(ws.input_path)
    if old != info:
        ws.write_json(ws.input_path, info)
    return info


def run_pipeline(ws: Workspace, cfg: PipelineConfig, *, input_path: str | os.PathLike | None = None,
                 stages: list[str] | None = None, skip: tuple[str, ...] = (), force: bool = False,
                 from_stage: str | None = None) -> dict[str, Any]:
    """Run the selected stages (default: all) on a workspace.

    Args:
        ws: the workspace (created when ``input_path`` is given).
        cfg: configs of all stages.
        input_path: a video file or a folder of images; needed the first time.
        stages: stage names to run; None = the whole pipeline less ``skip``.
        skip: stage names to leave out.
        force: rerun even finished stages.
        from_stage: rerun this stage and all after it.
    """
    if input_path is not None:
        set_input(ws, input_path)
    elif not ws.input_path.exists():
        raise UserError(f"{ws.root} is not a vid2model workspace (no input.json); create it with: "
                        f"vid2model run INPUT -o {ws.root}")
    for name in list(stages or []) + list(skip):
        stage(name)
    chosen = selected_stages(stages, skip)
    return run_stages(ws, chosen, cfg, force=force, from_stage=from_stage, all_stages=STAGES)


def selected_stages(stages: list[str] | None, skip: tuple[str, ...]) -> list[Stage]:
    """The named stages (None: all but the optional ones) less ``skip``, in run order."""
    return assets_first([s for s in STAGES if (s.name in stages if stages is not None else s.name not in
                                               OPTIONAL_STAGES) and s.name not in skip])


def assets_first(chosen: list[Stage]) -> list[Stage]:
    """The stages in run order, with export also run before splat training when both are chosen: the mesh
    files are then ready (and the report says so) however long training takes or if it is stopped; the export
    after training adds the splat files (its fingerprint changed with the splats)."""
    names = [s.name for s in chosen]
    if "splat" in names and "export" in names and names.index("export") > names.index("splat"):
        chosen = list(chosen)
        chosen.insert(names.index("splat"), chosen[names.index("export")])
    return chosen
