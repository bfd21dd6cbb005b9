"""Whether a model trained to reproduce the keyframes (splats, a radiance field) holds between them.

Training PSNR only says the model fits the views it was fitted to: a field with too few views or no
prior paints each view's pixels onto its own floaters and reproduces them to 40 dB while a view a few
degrees away comes out as noise. The views held out of training are the only evidence of what a user
sees when the model is turned.
"""

from __future__ import annotations

from typing import Any

# Held-out PSNR under which renders look wrong rather than soft. Measured on held-out views: splats 28.9-33.5 dB
# (fox, synthetic orbits, NeRF lego), the radiance field 32.5 dB on lego and 14-16 dB where it memorised its
# views (synthetic orbit of 21 views); a phone capture's splat with exposure changes lands in the low 20s.
MIN_HELD_OUT_DB = 20.0
# Training PSNR above held-out by more than this: the model learnt the views, not the scene. Measured gaps:
# 0.8-3 dB where held-out views render well, 14-45 dB where they do not.
MAX_GAP_DB = 6.0


def held_out_verdict(train_psnr: float | None, eval_psnr: float | None, n_eval: int, what: str) -> dict[str, Any]:
    """``{"verdict": "ok" | "poor" | "unchecked", "reason": str | None}`` for a model called ``what``
    (singular, e.g. "the splat model") from its training and held-out PSNR (dB) over ``n_eval`` held-out views."""
    if not n_eval or eval_psnr is None:
        return {"verdict": "unchecked",
                "reason": f"no keyframe was held out of training, so nothing shows how {what} renders between the "
                          "filmed views"}
    if train_psnr is not None and train_psnr - eval_psnr > MAX_GAP_DB:
        return {"verdict": "poor",
                "reason": f"{what} fits its training views ({train_psnr:.1f} dB) but not the {n_eval} held out "
                          f"({eval_psnr:.1f} dB): views away from the filmed ones will be wrong"}
    if eval_psnr < MIN_HELD_OUT_DB:
        return {"verdict": "poor",
                "reason": f"the {n_eval} held-out views render at {eval_psnr:.1f} dB from {what}: expect visibly "
                          "wrong images"}
    return {"verdict": "ok", "reason": None}
