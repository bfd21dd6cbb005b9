"""Real spherical harmonics (degree <= 3) in the 3DGS convention: colour = SH(dir) + 0.5."""

from __future__ import annotations

import torch

C0 = 0.28209479177387814
C1 = 0.4886025119029199
C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
      1.445305721320277, -0.5900435899266435)


def num_coeffs(degree: int) -> int:
    return (degree + 1) ** 2


def sh_basis(dirs: torch.Tensor, degree: int) -> torch.Tensor:
    """(N, 3) unit directions -> (N, (degree+1)^2) basis values."""
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, C0)]
    if degree > 0:
        out += [-C1 * y, C1 * z, -C1 * x]
    if degree > 1:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [C2[0] * xy, C2[1] * yz, C2[2] * (2 * zz - xx - yy), C2[3] * xz, C2[4] * (xx - yy)]
    if degree > 2:
        out += [C3[0] * y * (3 * xx - yy), C3[1] * xy * z, C3[2] * y * (4 * zz - xx - yy),
                C3[3] * z * (2 * zz - 3 * xx - 3 * yy), C3[4] * x * (4 * zz - xx - yy), C3[5] * z * (xx - yy),
                C3[6] * x * (xx - 3 * yy)]
    return torch.stack(out, -1)


def sh_to_rgb(sh: torch.Tensor, dirs: torch.Tensor, degree: int) -> torch.Tensor:
    """Colours (N, 3) >= 0 from coefficients (N, K, 3) seen along unit directions (N, 3)."""
    k = num_coeffs(degree)
    basis = sh_basis(dirs, degree)
    rgb = torch.einsum("nk,nkc->nc", basis, sh[:, :k])
    return (rgb + 0.5).clamp_min(0.0)


def sh_to_rgb_split(sh0: torch.Tensor, shN: torch.Tensor, dirs: torch.Tensor, degree: int) -> torch.Tensor:
    """Like :func:`sh_to_rgb` with the DC (N, 1, 3) and higher (N, K-1, 3) coefficients kept apart
    (no (N, K, 3) concatenation per iteration: it costs more than the SH sum itself on CPU)."""
    rgb = C0 * sh0[:, 0] + 0.5
    if degree > 0:
        k = num_coeffs(degree)
        basis = sh_basis(dirs, degree)[:, 1:]
        rgb = rgb + (basis[:, :, None] * shN[:, :k - 1]).sum(1)
    return rgb.clamp_min(0.0)


def rgb_to_sh0(rgb):
    """DC coefficient for a colour in [0, 1] (works on numpy arrays and tensors)."""
    return (rgb - 0.5) / C0
