"""Robust final refinement of a solved model: a bundle adjustment that outliers cannot pull.

The mapper's global bundle adjustment weighs every observation it kept (up to 4 px off) by its square.
A few points that are not one surface point (an object's outline against the backdrop, a highlight)
then bend the whole model: on orbits with few points (a plain floor, a texture-poor object) they held
the focal length a few percent off while rotations still looked right. A Cauchy loss at the
model's own noise level and removing observations beyond three times that noise leave the geometry to
the points that agree with each other.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vid2model.io.colmap import bundle_adjust
from vid2model.signals import interruptible_all
from vid2model.stages.sfm_verify import reprojection_residuals

RAYLEIGH_MEDIAN = 1.1774  # median of the length of a 2D isotropic Gaussian error, in units of its sigma


def noise_px(rec) -> float:
    """Per-axis image noise (px) of the model's observations, from the median residual (robust to outliers)."""
    r = reprojection_residuals(rec)
    r = r[np.isfinite(r)]
    return float(np.median(r) / RAYLEIGH_MEDIAN) if len(r) else 0.0


def robust_adjust(rec, sigma: float | None = None) -> None:
    """One bundle adjustment of ``rec`` with a Cauchy loss at its noise level (``sigma`` px when already
    known: :func:`noise_px`)."""
    import pycolmap

    opts = pycolmap.BundleAdjustmentOptions()
    opts.ceres.loss_function_type = pycolmap.LossFunctionType.CAUCHY
    opts.ceres.loss_function_scale = max(noise_px(rec) if sigma is None else sigma, 0.1)
    # from a solved model the cost flattens long before the gradient test stops it; a relative change of
    # the cost under 1e-6 no longer moves the focal length by anything that matters
    opts.ceres.solver_options.function_tolerance = 1e-6
    bundle_adjust(rec, opts)


def refine_robust(rec, cutoff_sigmas: float = 3.0, min_cutoff_px: float = 1.0,
                  min_tri_angle_deg: float = 1.5) -> dict[str, Any]:
    """Re-adjust ``rec`` in place with a Cauchy loss scaled to its noise, drop the observations more than
    ``cutoff_sigmas`` noise (at least ``min_cutoff_px``) off, and adjust again. Returns what it did."""
    import pycolmap

    sigma0 = noise_px(rec)
    robust_adjust(rec, sigma0)
    cutoff = max(cutoff_sigmas * noise_px(rec), min_cutoff_px)
    removed = int(pycolmap.ObservationManager(rec).filter_all_points3D(cutoff, min_tri_angle_deg))
    robust_adjust(rec)
    return {"noise_px_before": round(sigma0, 3), "noise_px": round(noise_px(rec), 3),
            "observations_removed": removed}


# one focal length and square pixels (video frames share one camera), simplest first; each adds a radial term
LENSES = ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL")
MIN_HELD_OUT = 5  # probes that must count before the held-out frames choose the lens model


def refit(rec, lens: str):
    """A copy of ``rec`` with every camera turned into ``lens`` (focal, principal point and the radial terms
    it shares with the old model kept, new ones 0) and adjusted again."""
    import pycolmap

    n_radial = LENSES.index(lens)
    r = pycolmap.Reconstruction(rec)
    for cam in r.cameras.values():
        p = np.asarray(cam.params, float)
        k = list(p[3:5]) if cam.model.name in LENSES[1:] else []
        cam.model = lens
        cam.params = [p[0], p[1], p[2], *(k + [0.0, 0.0])[:n_radial]]
    robust_adjust(r)
    return r


def choose_lens(rec, matched: dict[str, Any], min_gain: float = 0.02,
                adjusted: bool = True) -> tuple[Any, dict[str, Any]]:
    """The lens model the held-out frames (``matched``: :func:`vid2model.stages.sfm_probes.held_out`) are
    best predicted by: each model of :data:`LENSES` is fitted to the keyframes, and the simplest whose
    held-out error is within ``min_gain`` of the lowest wins (a model that fits the solve better but predicts
    unseen frames no better is fitting noise, and its extra terms trade off against the focal length).
    ``adjusted``: ``rec`` has had :func:`robust_adjust` (else its own model is refitted like the others).

    Returns the model to keep (``rec`` itself when too few probes count) and what was measured."""
    from vid2model.stages.sfm_probes import held_out_error

    own = {c.model.name for c in rec.cameras.values()}
    if len(own) != 1 or next(iter(own)) not in LENSES:
        return rec, {"lens": sorted(own), "chosen_by": "settings"}
    own_lens = next(iter(own))
    # every model gets the same adjustment: ``adjusted`` says the solve's own already had it (refine_robust)
    # the refits are independent single-threaded adjustments: side by side on the cores
    todo = [lens for lens in LENSES if not (adjusted and lens == own_lens)]
    done = interruptible_all([lambda lens=lens: refit(rec, lens) for lens in todo])
    fits = {lens: rec for lens in LENSES} | dict(zip(todo, done))
    scored = {lens: held_out_error(r, matched) for lens, r in fits.items()}
    counted = min(n for _, n in scored.values())
    errors = {lens: e for lens, (e, _) in scored.items()}
    info: dict[str, Any] = {"held_out_error_px2": {k: round(v, 5) for k, v in errors.items()}, "probes": counted}
    if counted < MIN_HELD_OUT or not all(np.isfinite(list(errors.values()))):
        return rec, {**info, "lens": own_lens, "chosen_by": "views (too few held-out frames)"}
    best = min(errors.values())
    lens = next(m for m in LENSES if errors[m] <= best * (1 + min_gain))
    return fits[lens], {**info, "lens": lens, "chosen_by": "held-out frames"}
