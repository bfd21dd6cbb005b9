"""Batch a catalogue of videos: one workspace per input, locally or on a Ray cluster."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from vid2model.config import PipelineConfig
from vid2model.errors import UserError, require
from vid2model.pipeline import VIDEO_SUFFIXES
from vid2model.workspace import Workspace

log = logging.getLogger("vid2model")


def find_inputs(paths: list[str | os.PathLike]) -> list[Path]:
    """Expand the given paths into inputs: video files, and folders of images or of videos.

    A folder holding videos contributes each video; a folder holding only images is one input.
    """
    inputs: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            raise UserError(f"input not found: {p}")
        if p.is_dir():
            videos = sorted(c for c in p.iterdir() if c.suffix.lower() in VIDEO_SUFFIXES)
            subdirs = sorted(c for c in p.iterdir() if c.is_dir())
            inputs.extend(videos or subdirs or [p])
        else:
            inputs.append(p)
    names = [i.stem for i in inputs]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise UserError(f"two inputs would share a workspace name: {', '.join(sorted(dupes))}; rename one")
    if not inputs:
        raise UserError("no inputs found")
    return inputs


def _one(input_path: str, ws_root: str, cfg: PipelineConfig, stages: list[str] | None,
         skip: tuple[str, ...]) -> dict[str, Any]:
    """Run one input; never raises, so one bad video does not stop the catalogue."""
    from vid2model.pipeline import run_pipeline

    t0 = time.perf_counter()
    try:
        res = run_pipeline(Workspace(ws_root), cfg, input_path=input_path, stages=stages, skip=skip)
        status = "done"
        error = ""
        done = {k: v["status"] for k, v in res.items()}
    except UserError as exc:
        status, error, done = "failed", str(exc), {}
    except Exception as exc:  # noqa: BLE001 - recorded per input, the batch goes on
        log.exception("%s failed", input_path)
        status, error, done = "failed", f"{type(exc).__name__}: {exc}", {}
    return {"input": input_path, "workspace": ws_root, "status": status, "error": error, "stages": done,
            "wall_s": round(time.perf_counter() - t0, 2)}


def run_batch(inputs: list[Path], out_dir: Path, cfg: PipelineConfig, *, stages: list[str] | None = None,
              skip: tuple[str, ...] = (), ray_address: str | None = None) -> dict[str, Any]:
    """Reconstruct every input into ``out_dir/<input stem>/`` and write ``out_dir/batch.json``.

    Args:
        inputs: video files or image folders.
        out_dir: parent folder of the workspaces.
        cfg: settings for every input.
        stages: stages to run (None = all).
        skip: stages to leave out.
        ray_address: run on a Ray cluster ("auto", "ray://host:port", or "local" for a local Ray);
            None runs one input after another in this process (each stage already uses all cores).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(str(p.resolve()), str((out_dir / p.stem).resolve())) for p in inputs]
    if ray_address is None:
        from vid2model.progress import track

        results = [_one(i, w, cfg, stages, skip) for i, w in track(jobs, "batch")]
    else:
        ray = require("ray", "running a batch on a Ray cluster", extra="cluster")
        ray.init(address=None if ray_address == "local" else ray_address, ignore_reinit_error=True,
                 log_to_driver=False)
        remote = ray.remote(num_cpus=1)(_one)
        results = ray.get([remote.remote(i, w, cfg, stages, skip) for i, w in jobs])
    summary = {"out_dir": str(out_dir.resolve()), "n_inputs": len(jobs),
               "n_done": sum(r["status"] == "done" for r in results), "results": results}
    Workspace(out_dir).write_json(out_dir / "batch.json", summary)
    return summary
