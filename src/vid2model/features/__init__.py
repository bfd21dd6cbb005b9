"""Learned local features (optional): model files are found by path, never downloaded."""

from __future__ import annotations

import os
from pathlib import Path

from vid2model.errors import UserError

KNOWN = {"aliked": ["aliked-n16.pth", "aliked-n16rot.pth", "aliked-t16.pth", "aliked-n32.pth"]}


def models_dirs(configured: str = "") -> list[Path]:
    """Where model files are looked for: the configured folder, $VID2MODEL_MODELS, the user cache."""
    dirs = [Path(configured)] if configured else []
    if os.environ.get("VID2MODEL_MODELS"):
        dirs.append(Path(os.environ["VID2MODEL_MODELS"]))
    dirs.append(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vid2model" / "models")
    return dirs


def find_model(name: str, configured: str = "") -> Path:
    """Path of a learned-feature weight file, or a clear error naming where it was looked for."""
    if name not in KNOWN:
        raise UserError(f"unknown feature type {name!r}; choose sift or {', '.join(KNOWN)}")
    dirs = models_dirs(configured)
    for d in dirs:
        for fname in KNOWN[name]:
            for cand in (d / fname, d / name / fname):
                if cand.exists():
                    return cand
    raise UserError(f"{name} weights ({KNOWN[name][0]}) not found in {', '.join(map(str, dirs))}: put them there "
                    f"or pass --set sfm.models_dir=FOLDER, or use --set sfm.features=sift")


def check_learned_features(cfg) -> Path:
    """Locate the weights for ``cfg.features``; the learned matcher itself is not wired in yet."""
    path = find_model(cfg.features, cfg.models_dir)
    raise UserError(f"found {path.name}, but learned features are not supported by this version yet: "
                    f"use --set sfm.features=sift")
