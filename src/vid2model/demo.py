"""``vid2model demo``: film a synthetic product orbit, then run the whole pipeline on it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vid2model.config import build_config
from vid2model.pipeline import run_pipeline
from vid2model.workspace import Workspace

log = logging.getLogger("vid2model")


def run_demo(out_dir: Path, *, preset: str = "fast", skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Generate a hand-held-like orbit video with known ground truth and reconstruct it.

    Args:
        out_dir: workspace folder; the generated video and its ground truth go beside it, to
            ``<out_dir>-input`` (an input inside a workspace is refused: the workspace's folders are rewritten).
        preset: speed/quality preset.
        skip: stages to leave out.

    Returns:
        Summary with the workspace, the stage results and where to look.
    """
    from vid2model.synth import SynthConfig, generate

    out_dir = Path(out_dir).expanduser().resolve()
    src_dir = out_dir.with_name(out_dir.name + "-input")
    ws = Workspace(out_dir).create()
    video = src_dir / "video.mp4"
    if not video.exists():
        log.info("generating the demo video in %s", src_dir)
        generate(src_dir, SynthConfig(path="orbit", width=640, height=480, n_frames=60, fps=10.0, seed=7))
    cfg = build_config(preset)
    stages = run_pipeline(ws, cfg, input_path=video, skip=skip)
    exports = sorted(p.name for p in ws.export_dir.glob("model.*")) if ws.export_dir.exists() else []
    lines = [
        f"demo video:  {video}",
        f"workspace:   {ws.root}",
        f"report:      {ws.report_html}",
        f"exports:     {ws.export_dir} ({', '.join(exports) or 'none'})",
        "look at it:  open the report in a browser, open export/model.glb in Blender or any glTF viewer,",
        f"             or run: vid2model view {ws.root}   /   vid2model publish {ws.root} -o site/",
    ]
    return {"workspace": str(ws.root), "video": str(video), "stages": stages, "exports": exports,
            "_human": "\n".join(lines)}
