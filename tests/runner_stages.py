"""Tiny stages for runner tests: each writes an artifact atomically and counts its runs."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from vid2model.workspace import Workspace, atomic_path


@dataclass(frozen=True, kw_only=True)
class StepConfig:
    value: int = 1
    sleep: float = 0.0


def _count(ws: Workspace, name: str) -> None:
    p = ws.root / f"runs_{name}.txt"
    with open(p, "a") as f:
        f.write("x")


def _step(ws: Workspace, cfg: StepConfig, name: str, src: str | None) -> dict:
    _count(ws, name)
    base = int((ws.root / f"{src}.txt").read_text()) if src else 0
    out = ws.root / f"{name}.txt"
    with atomic_path(out) as tmp:
        with open(tmp, "w") as f:
            f.write(str(base + cfg.value))
            f.flush()
            marker = ws.root / f"started_{name}"
            marker.touch()
            if cfg.sleep:
                time.sleep(cfg.sleep)
    return {"value": base + cfg.value, "pid": os.getpid()}


def step_a(ws, cfg):
    return _step(ws, cfg, "a", None)


def step_b(ws, cfg):
    return _step(ws, cfg, "b", "a")


def step_c(ws, cfg):
    return _step(ws, cfg, "c", "b")


def step_splat(ws, cfg):
    """Long training that a user may stop: a negative value stops it."""
    _count(ws, "splat")
    if cfg.value < 0:
        raise KeyboardInterrupt
    with atomic_path(ws.root / "splat.txt") as tmp:
        tmp.write_text("splats")
    return {}


def step_export(ws, cfg):
    """Writes what was there to export."""
    _count(ws, "export")
    have = ["a"] + (["splat"] if (ws.root / "splat.txt").exists() else [])
    with atomic_path(ws.root / "export.txt") as tmp:
        tmp.write_text(",".join(have))
    return {}


def step_refuse(ws, cfg):
    """Refuses as sfm does: writes its verdict for the report, then raises."""
    from vid2model.errors import UserError

    _count(ws, "refuse")
    reason = "the cameras cannot be trusted: a test refusal"
    ws.write_json(ws.camera_check_json, {"verdict": "refused", "reason": reason})
    raise UserError(reason)


def step_crash(ws, cfg):
    _count(ws, "crash")
    raise RuntimeError("a bug in the stage")
