"""Gaussian splat parameters (3DGS parameterisation), initialisation from points, densify/prune surgery.

Stored (raw) parameters, as in the standard 3DGS PLY: ``means`` (N, 3), ``log_scales`` (N, 3),
``quats`` (N, 4) wxyz unnormalised, ``opacity_logits`` (N,), ``sh0`` (N, 1, 3), ``shN`` (N, K-1, 3).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vid2model.ops.sh import num_coeffs, rgb_to_sh0

PARAM_NAMES = ("means", "log_scales", "quats", "opacity_logits", "sh0", "shN")


class GaussianModel:
    """A set of 3D Gaussians; ``params`` maps names to leaf tensors with ``requires_grad``."""

    def __init__(self, params: dict[str, torch.Tensor], sh_degree: int):
        self.params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        self.sh_degree = sh_degree

    # ---- construction --------------------------------------------------------------------------
    @classmethod
    def from_points(cls, xyz: np.ndarray, rgb: np.ndarray, sh_degree: int = 3, opacity: float = 0.1,
                    device: str | torch.device = "cpu") -> "GaussianModel":
        """Isotropic Gaussians at points (N, 3) coloured rgb (N, 3) uint8 or [0, 1] float.

        Scales are the RMS distance to the 3 nearest neighbours, so the cloud starts gap-free.
        """
        from scipy.spatial import cKDTree

        xyz = np.asarray(xyz, np.float64)
        rgb = np.asarray(rgb)
        rgb = rgb.astype(np.float64) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float64)
        n = len(xyz)
        if n < 4:
            raise ValueError("need at least 4 points to initialise splats")
        d, _ = cKDTree(xyz).query(xyz, k=4)
        dist = np.sqrt(np.mean(d[:, 1:] ** 2, axis=1)).clip(1e-7, None)
        k = num_coeffs(sh_degree)
        f = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=device)  # noqa: E731
        params = {
            "means": f(xyz),
            "log_scales": f(np.log(dist))[:, None].repeat(1, 3),
            "quats": f(np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))),
            "opacity_logits": torch.full((n,), math.log(opacity / (1 - opacity)), device=device),
            "sh0": f(rgb_to_sh0(rgb))[:, None, :],
            "shN": torch.zeros((n, k - 1, 3), device=device),
        }
        return cls(params, sh_degree)

    # ---- activated views -----------------------------------------------------------------------
    def __len__(self) -> int:
        return self.params["means"].shape[0]

    @property
    def means(self) -> torch.Tensor:
        return self.params["means"]

    @property
    def scales(self) -> torch.Tensor:
        return torch.exp(self.params["log_scales"])

    @property
    def quats(self) -> torch.Tensor:
        return self.params["quats"]

    @property
    def opacities(self) -> torch.Tensor:
        return torch.sigmoid(self.params["opacity_logits"])

    @property
    def sh(self) -> torch.Tensor:
        return torch.cat([self.params["sh0"], self.params["shN"]], 1)

    def render(self, viewmat, K, width: int, height: int, sh_degree: int | None = None, bg=None) -> dict:
        from vid2model.splat.rasterize import render

        deg = self.sh_degree if sh_degree is None else sh_degree
        return render(self.means, self.quats, self.scales, self.opacities, self.params["sh0"], deg, viewmat, K,
                      width, height, bg=bg, shN=self.params["shN"])

    # ---- surgery (keeps Adam moments aligned with the parameters) -------------------------------
    def _replace(self, opt: torch.optim.Optimizer | None, fn) -> None:
        """Apply ``fn(name, tensor, is_state) -> tensor`` to every parameter and its Adam moments."""
        for name in PARAM_NAMES:
            old = self.params[name]
            new = fn(name, old.detach(), False).requires_grad_(True)
            if opt is not None:
                for group in opt.param_groups:
                    if group["params"] and group["params"][0] is old:
                        st = opt.state.pop(old, None)
                        if st is not None:
                            for key in ("exp_avg", "exp_avg_sq"):
                                if key in st:
                                    st[key] = fn(name, st[key], True)
                            opt.state[new] = st
                        group["params"] = [new]
            self.params[name] = new

    def keep(self, mask: torch.Tensor, opt=None) -> None:
        """Keep only splats where mask (N,) is True."""
        self._replace(opt, lambda _n, t, _s: t[mask].contiguous())

    def append(self, extra: dict[str, torch.Tensor], opt=None) -> None:
        """Append new splats (raw parameter tensors); their Adam moments start at zero."""
        self._replace(opt, lambda n, t, is_state: torch.cat(
            [t, torch.zeros_like(extra[n]) if is_state else extra[n].to(t)], 0))

    def state_dict(self) -> dict:
        return {"sh_degree": self.sh_degree, "params": {k: v.detach().cpu() for k, v in self.params.items()}}

    @classmethod
    def from_state_dict(cls, sd: dict, device="cpu") -> "GaussianModel":
        return cls({k: v.to(device) for k, v in sd["params"].items()}, sd["sh_degree"])


def model_from_data(d, device="cpu") -> GaussianModel:
    """A :class:`GaussianModel` from file data (:class:`vid2model.io.splat_formats.SplatData`)."""
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)  # noqa: E731
    return GaussianModel({"means": t(d.means), "log_scales": t(d.log_scales), "quats": t(d.quats),
                          "opacity_logits": t(d.opacity_logits), "sh0": t(d.sh0)[:, None], "shN": t(d.shN)},
                         d.sh_degree)
