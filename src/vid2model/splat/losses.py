"""Photometric losses and metrics for splat training: L1, SSIM (separable Gaussian window), PSNR."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

_WIN: dict[tuple, torch.Tensor] = {}


def _window(size: int, sigma: float, device, dtype) -> torch.Tensor:
    key = (size, sigma, str(device), dtype)
    if key not in _WIN:
        x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
        g = torch.exp(-(x * x) / (2 * sigma * sigma))
        _WIN[key] = g / g.sum()
    return _WIN[key]


def _blur(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Separable blur of (B, C, H, W) with 1D window w (valid padding)."""
    c = x.shape[1]
    x = F.conv2d(x, w.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, w.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


class _FusedSSIM(torch.autograd.Function):
    """:func:`ssim` by the compiled kernel, its gradient computed in the same pass: the chain of grouped
    convolutions costs about as much as the rasteriser's own step on a CPU."""

    @staticmethod
    def forward(ctx, img, ref, win, c1, c2):
        from vid2model.splat import kernels

        a = np.ascontiguousarray(img.detach().numpy(), dtype=np.float32)
        b = np.ascontiguousarray(ref.detach().numpy(), dtype=np.float32)
        val, grad = kernels.ssim(a, b, np.ascontiguousarray(win.numpy(), dtype=np.float32), c1, c2,
                                 img.requires_grad)
        ctx.grad = torch.from_numpy(grad) if grad is not None else None
        return torch.tensor(val, dtype=img.dtype)

    @staticmethod
    def backward(ctx, g):
        return g * ctx.grad, None, None, None, None


def ssim(img: torch.Tensor, ref: torch.Tensor, size: int = 11, sigma: float = 1.5,
         fused: bool = True) -> torch.Tensor:
    """Mean SSIM of two (H, W, 3) images in [0, 1] (Gaussian 11x11 window, as in 3DGS); by the compiled
    kernel on the CPU when it is available and ``fused``."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    if fused and img.device.type == "cpu" and img.dtype == torch.float32 and not ref.requires_grad:
        from vid2model.splat.kernels import load_cpp

        if load_cpp() is not None:
            return _FusedSSIM.apply(img, ref, _window(size, sigma, img.device, img.dtype), c1, c2)
    x = img.permute(2, 0, 1)[None]
    y = ref.permute(2, 0, 1)[None]
    w = _window(size, sigma, x.device, x.dtype)
    stacked = _blur(torch.cat([x, y, x * x, y * y, x * y], 1), w)
    mx, my, sxx, syy, sxy = stacked.split(x.shape[1], 1)
    vx, vy, cxy = sxx - mx * mx, syy - my * my, sxy - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean()


def l1(img: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return (img - ref).abs().mean()


def photometric_loss(img: torch.Tensor, ref: torch.Tensor, ssim_weight: float = 0.2) -> torch.Tensor:
    """3DGS loss: (1 - w) L1 + w (1 - SSIM)."""
    loss = (1 - ssim_weight) * l1(img, ref)
    if ssim_weight > 0:
        loss = loss + ssim_weight * (1 - ssim(img, ref))
    return loss


def psnr(img: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR in dB of images in [0, 1]."""
    mse = float(((img.clamp(0, 1) - ref) ** 2).mean())
    return 99.0 if mse <= 1e-10 else -10.0 * math.log10(mse)
