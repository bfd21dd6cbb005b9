"""Learned local features (optional): model files are found by path, never downloaded.

``sfm.features=xfeat`` runs the XFeat backbone (``xfeat.onnx``) through onnxruntime, matches by mutual
nearest neighbour and writes keypoints, matches and verified two-view geometries into the COLMAP
database, so pairing and mapping are the same as for SIFT (see ``colmap_db.py``). ALIKED weights are
located, but ALIKED needs deformable convolution (torchvision), which is not available here.
"""

from __future__ import annotations

import os
from pathlib import Path

from vid2model.errors import UserError

KNOWN = {"xfeat": ["xfeat.onnx"],
         "aliked": ["aliked-n16.pth", "aliked-n16rot.pth", "aliked-t16.pth", "aliked-n32.pth"]}
FOLDERS = {"xfeat": ["xfeat", "xfeat_onnx"], "aliked": ["aliked"]}  # sub-folders also looked in
SUPPORTED = ("xfeat",)


def models_dirs(configured: str = "") -> list[Path]:
    """Where model files are looked for: the configured folder, $VID2MODEL_MODELS, the user cache."""
    dirs = [Path(configured).expanduser()] if configured else []
    if os.environ.get("VID2MODEL_MODELS"):
        dirs.append(Path(os.environ["VID2MODEL_MODELS"]).expanduser())
    dirs.append(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vid2model" / "models")
    return dirs


def find_model(name: str, configured: str = "") -> Path:
    """Path of a learned-feature weight file, or a clear error naming where it was looked for."""
    if name not in KNOWN:
        raise UserError(f"unknown feature type {name!r}; choose sift or {', '.join(KNOWN)}")
    dirs = models_dirs(configured)
    for d in dirs:
        for fname in KNOWN[name]:
            for cand in [d / fname] + [d / sub / fname for sub in FOLDERS[name]]:
                if cand.exists():
                    return cand
    raise UserError(f"{name} weights ({KNOWN[name][0]}) not found in {', '.join(map(str, dirs))}: put them there "
                    f"or pass --set sfm.models_dir=FOLDER, or use --set sfm.features=sift")


def check_learned_features(cfg) -> Path:
    """Weights for ``cfg.features`` and its runtime, or a one-line UserError saying what is missing."""
    if cfg.features not in KNOWN:
        raise UserError(f"unknown feature type {cfg.features!r}; choose sift or {', '.join(SUPPORTED)}")
    if cfg.features not in SUPPORTED:
        raise UserError(f"sfm.features={cfg.features} is not supported by this version (it needs deformable "
                        f"convolution from torchvision): use --set sfm.features=xfeat or sift")
    from vid2model.errors import require

    require("onnxruntime", f"sfm.features={cfg.features}", package="onnxruntime", extra="learned")
    return find_model(cfg.features, cfg.models_dir)


def extractor(cfg):
    """The feature extractor for ``cfg.features`` (an SfmConfig), weights located as above."""
    from vid2model.features.xfeat import XFeat

    return XFeat(check_learned_features(cfg), top_k=cfg.max_features)
