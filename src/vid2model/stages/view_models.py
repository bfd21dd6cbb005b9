"""What the trained view models (splat, nerf) share: the device they train on and the held-out verdict."""

from __future__ import annotations

import logging

from vid2model.errors import UserError

log = logging.getLogger("vid2model")


def training_device(name: str, setting: str) -> str:
    """The torch device the ``setting`` (e.g. ``splat.device``) names: ``auto`` is CUDA when present."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{setting}=cuda but no CUDA GPU is available; use {setting}=auto")
    return name


def held_out_check(train_psnr: float | None, eval_psnr: float | None, n_eval: int, what: str) -> dict:
    """The held-out verdict (:func:`~vid2model.ops.held_out.held_out_verdict`), warned about when poor."""
    from vid2model.ops.held_out import held_out_verdict

    v = held_out_verdict(train_psnr, eval_psnr, n_eval, what)
    if v["verdict"] == "poor":
        log.warning("%s", v["reason"])
    return v
