"""Volume rendering of a :class:`~vid2model.nerf.field.Field` along rays: the compiled CPU kernels, and the
same rule in torch (CUDA, CPUs without a compiler, and the tests' reference).

Rays are in normalised space (unit directions). A ray marches in steps of ``step_vox`` voxels; in the
contracted shell the world step grows with the distance as ``max(1, |u|_inf)^(1 + q)`` (the square for a
shell of width 1, see :class:`~vid2model.nerf.field.FieldSpec`), which keeps it at about ``step_vox``
contracted voxels. Opacity per sample is ``1 - exp(-softplus(raw + shift) * step_vox)``: density is per voxel.
Depth is the expected distance along the ray (normalised units).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from vid2model.nerf import kernels
from vid2model.nerf.field import EMPTY_RAW, Field


def use_kernels(field: Field) -> bool:
    return field.data.device.type == "cpu" and kernels.load() is not None


# ---- compiled CPU path ------------------------------------------------------------------------------------
def forward_cpu(field: Field, o: np.ndarray, d: np.ndarray, moments: np.ndarray | None = None
                ) -> tuple[np.ndarray, ...]:
    """(rgb (n, 3), depth (n,), opacity (n,), samples per ray (n,)) from the C++ kernel; ``moments`` [n, 3]
    float32, when given, receives each ray's sum w, sum w u and sum w u^2 over its samples' weights w and
    places u (in grid voxels along the ray: see :func:`spread`)."""
    lib = kernels.load()
    n = len(o)
    p = field.params()
    rgb, depth = np.empty((n, 3), np.float32), np.empty(n, np.float32)
    acc, ns = np.empty(n, np.float32), np.empty(n, np.int32)
    data, idx, occ = field.data.numpy(), field.idx.numpy(), field.occ.numpy()
    lib.nerf_forward(n, kernels.ptr(o), kernels.ptr(d), kernels.ptr(data), kernels.ptr(idx), kernels.ptr(occ),
                     kernels.ptr(p["ip"]), kernels.ptr(p["fp"]), kernels.ptr(rgb), kernels.ptr(depth),
                     kernels.ptr(acc), kernels.ptr(ns), None if moments is None else kernels.ptr(moments))
    return rgb, depth, acc, ns


class CpuOptimizer:
    """Per-thread gradient buffers and lazy Adam over the rows a batch touched (C++)."""

    def __init__(self, field: Field, betas=(0.9, 0.99), eps=1e-15):
        self.field, self.betas, self.eps = field, betas, eps
        self.nt = kernels.load().nerf_num_threads()
        self.reset()

    def reset(self) -> None:
        n, C = self.field.data.shape
        self.m, self.v = np.zeros((n, C), np.float32), np.zeros((n, C), np.float32)
        self.grads = np.zeros((self.nt, n, C), np.float32)
        self.touched = np.zeros((self.nt, n), np.uint8)
        self.t = 0

    def backward(self, o: np.ndarray, d: np.ndarray, rgb: np.ndarray, g_rgb: np.ndarray,
                 depth: np.ndarray | None = None, g_depth: np.ndarray | None = None,
                 acc: np.ndarray | None = None, g_acc: np.ndarray | None = None,
                 moments: np.ndarray | None = None, g_spread: float = 0.0, spread_cap: float = 0.0) -> None:
        """Accumulate the gradients of a loss whose gradient is ``g_rgb`` (n, 3) on the forward pass's ``rgb``
        and, optionally, ``g_depth`` (n,) on its expected ``depth`` (n,), ``g_acc`` (n,) on its opacity
        ``acc`` (n,) and ``g_spread`` (the same for every ray) on each ray's :func:`spread`, from the forward
        pass's ``moments`` (n, 3), each sample's share capped at ``spread_cap`` voxels (0: none)."""
        f, lib = self.field, kernels.load()
        p = f.params()
        # each optional output goes with its gradient or not at all; the arrays stay referenced until the call
        # returns (the kernel only gets their addresses)
        opt = [x for value, grad in ((depth, g_depth), (acc, g_acc))
               for x in ((value, grad) if value is not None and grad is not None else (None, None))]
        opt = [None if x is None else np.ascontiguousarray(x, np.float32) for x in opt]
        ptrs = [None if x is None else kernels.ptr(x) for x in opt]
        lib.nerf_backward(len(o), kernels.ptr(o), kernels.ptr(d), kernels.ptr(f.data.numpy()),
                          kernels.ptr(f.idx.numpy()), kernels.ptr(f.occ.numpy()), kernels.ptr(p["ip"]),
                          kernels.ptr(p["fp"]), kernels.ptr(rgb), kernels.ptr(np.ascontiguousarray(g_rgb, np.float32)),
                          *ptrs, None if moments is None else kernels.ptr(moments), float(g_spread),
                          float(spread_cap) ** 2, len(f.data),
                          kernels.ptr(self.grads), kernels.ptr(self.touched))

    def tv(self, w_density: float, w_color: float, stride: int, offset: int) -> None:
        f, lib = self.field, kernels.load()
        lib.nerf_tv(len(f.data), kernels.ptr(f.data.numpy()), kernels.ptr(f.idx.numpy()),
                    kernels.ptr(f.coords.numpy()), f.R, f.C, w_density, w_color, stride, offset,
                    kernels.ptr(self.grads), kernels.ptr(self.touched))

    def step(self, lr_density: float, lr_color: float) -> None:
        self.t += 1
        b1, b2 = self.betas
        f, lib = self.field, kernels.load()
        lib.nerf_adam(len(f.data), f.C, self.nt, kernels.ptr(f.data.numpy()), kernels.ptr(self.m),
                      kernels.ptr(self.v), kernels.ptr(self.grads), kernels.ptr(self.touched), lr_density,
                      lr_color, b1, b2, self.eps, 1 - b1 ** self.t, 1 - b2 ** self.t)

    def state_dict(self) -> dict:
        return {"m": torch.from_numpy(self.m), "v": torch.from_numpy(self.v), "t": self.t}

    def load_state_dict(self, d: dict) -> None:
        self.m, self.v, self.t = d["m"].numpy().copy(), d["v"].numpy().copy(), int(d["t"])


# ---- torch path -------------------------------------------------------------------------------------------
def sh_basis(d: torch.Tensor, K: int) -> torch.Tensor:
    x, y, z = d.unbind(-1)
    c0 = torch.full_like(x, 0.28209479)
    out = [c0]
    if K > 1:
        out += [-0.48860251 * y, 0.48860251 * z, -0.48860251 * x]
    if K > 4:
        out += [1.09254843 * x * y, -1.09254843 * y * z, 0.31539157 * (2 * z * z - x * x - y * y),
                -1.09254843 * x * z, 0.54627421 * (x * x - y * y)]
    return torch.stack(out, -1)


@torch.no_grad()
def march(field: Field, o: torch.Tensor, d: torch.Tensor
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Samples of the rays that fall in occupied cells: (ray id (M,), distance (M,), grid coordinates (M, 3),
    place along the ray in grid voxels (M,)), ordered by ray then distance; the kernels' sampling rule."""
    s = field.spec
    p = field.params()
    step, B, R = float(p["fp"][1]), s.half, field.R
    n = len(o)
    if s.contract:
        t = torch.full((n,), s.near, device=o.device)
        t1 = torch.full((n,), float("inf"), device=o.device)
    else:
        inv = 1 / torch.where(d.abs() > 1e-9, d, torch.full_like(d, 1e-9))
        ta, tb = (-B - o) * inv, (B - o) * inv
        t = torch.minimum(ta, tb).amax(-1).clamp(min=s.near)
        t1 = torch.maximum(ta, tb).amin(-1)
    alive = t < t1
    ids, ts, gs, order = [], [], [], []
    dvox = float(p["fp"][10])
    sc = (R - 1) / (2 * B)
    for k in range(field.max_steps()):
        if not alive.any():
            break
        u = o + t[:, None] * d
        if s.contract:
            m = u.abs().amax(-1)
            alive &= m <= s.far
            dt = step * m.clamp(min=1) ** (1 + s.shell_exponent)
        else:
            dt = torch.full_like(t, step)
        tm = t + 0.5 * dt
        u = o + tm[:, None] * d
        if s.contract:
            m = u.abs().amax(-1, keepdim=True)
            u = torch.where(m > 1, (B - (B - 1) * m.clamp(min=1) ** -s.shell_exponent) / m * u, u)
        g = (u + B) * sc
        inside = alive & ((g >= 0) & (g <= R - 1)).all(-1)
        i = g.floor().long().clamp(0, R - 2)
        cell = i // s.cell
        ok = torch.zeros_like(inside)
        ok[inside] = field.occ[cell[inside, 0], cell[inside, 1], cell[inside, 2]].bool()
        sel = ok.nonzero()[:, 0]
        ids.append(sel)
        ts.append(tm[sel])
        gs.append(g[sel])
        order.append(sel * field.max_steps() + k)
        t = t + dt
        alive &= t < t1
    if not ids:
        e = torch.zeros(0, device=o.device)
        return e.long(), e, torch.zeros((0, 3), device=o.device), e
    key = torch.cat(order)
    perm = torch.argsort(key)
    return torch.cat(ids)[perm], torch.cat(ts)[perm], torch.cat(gs)[perm], (key[perm] % field.max_steps() + 0.5) * dvox


def _interp(field: Field, data: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Trilinear raw channels at g with gradients to ``data``, and whether any corner is active."""
    R = field.R
    i0 = g.floor().long().clamp(0, R - 2)
    f = g - i0
    out = torch.zeros((len(g), data.shape[1]), device=g.device, dtype=data.dtype)
    empty = torch.zeros(data.shape[1], device=g.device)
    empty[0] = EMPTY_RAW
    any_active = torch.zeros(len(g), dtype=torch.bool, device=g.device)
    for c in range(8):
        off = torch.tensor([c >> 2, (c >> 1) & 1, c & 1], device=g.device)
        v = i0 + off
        rows = field.idx[v[:, 0], v[:, 1], v[:, 2]].long()
        w = torch.where(off.bool(), f, 1 - f).prod(-1, keepdim=True)
        act = rows >= 0
        any_active |= act
        out = out + w * torch.where(act[:, None], data[rows.clamp(min=0)], empty)
    return out, any_active


def render_torch(field: Field, o: torch.Tensor, d: torch.Tensor, data: torch.Tensor | None = None,
                 spread: bool = False, spread_cap: float = 0.0) -> tuple[torch.Tensor, ...]:
    """(rgb (n, 3), depth (n,), opacity (n,)) with autograd to ``data`` (default: the field's), and with
    ``spread`` each ray's :func:`spread` (n,) too; with ``spread_cap`` (voxels) each sample's share capped
    there and the rays' mean places held fixed (the kernels' rule)."""
    s = field.spec
    data = field.data if data is None else data
    n = len(o)
    ray, tm, g, u = march(field, o, d)
    raw, active = _interp(field, data, g)
    ray, tm, raw, u = ray[active], tm[active], raw[active], u[active]
    Y = sh_basis(d, s.K)[ray]
    col = torch.sigmoid((raw[:, 1:].reshape(-1, 3, s.K) * Y[:, None, :]).sum(-1))
    tau = F.softplus(raw[:, 0] + s.shift) * s.step_vox  # optical depth of each sample
    # one running sum over the whole batch, in double: in single precision an opaque batch's sum reaches
    # 1e5 and each ray's share of it loses its fractional part
    cum = torch.cumsum(tau.double(), 0)
    start = torch.zeros(n, device=o.device, dtype=torch.long)
    counts = torch.bincount(ray, minlength=n)
    start[1:] = torch.cumsum(counts, 0)[:-1]
    before = torch.cat([torch.zeros(1, device=o.device, dtype=cum.dtype), cum])[start]  # optical depth before each ray
    excl = (cum - before[ray]).float() - tau
    # a ray stops where its transmittance falls under t_stop, as in the kernels: what lies behind gets no
    # weight and no gradient
    w = torch.where(excl <= -math.log(s.t_stop), torch.exp(-excl) * (1 - torch.exp(-tau)), 0.0)
    acc = torch.zeros(n, device=o.device).index_add(0, ray, w)
    rgb = torch.zeros((n, 3), device=o.device).index_add(0, ray, w[:, None] * col)
    depth = torch.zeros(n, device=o.device).index_add(0, ray, w * tm)
    rgb = field.add_background(rgb, acc, d)
    if not spread:
        return rgb, depth, acc
    mean = torch.zeros(n, device=o.device).index_add(0, ray, w * u) / acc.clamp(min=1e-6)
    if spread_cap > 0:
        mean = mean.detach()
    q = (u - mean[ray]) ** 2
    if spread_cap > 0:
        q = q.clamp(max=spread_cap ** 2)
    return rgb, depth, acc, torch.zeros(n, device=o.device).index_add(0, ray, w * q)


def spread(moments: np.ndarray) -> np.ndarray:
    """[n] each ray's weighted variance of its samples' places about their mean, sum_i w_i (u_i - U)^2 with
    U = sum w u / sum w, in squared grid voxels, from the forward pass's ``moments`` [n, 3] (sum w, sum w u,
    sum w u^2). A surface is one voxel thin; weight spread along the ray is a fog that agrees with the views
    it was fitted to and blurs the others."""
    m0 = np.maximum(moments[:, 0], 1e-6)
    return np.maximum(moments[:, 2] - moments[:, 1] ** 2 / m0, 0.0)


@torch.no_grad()
def render_rays(field: Field, o: np.ndarray, d: np.ndarray, chunk: int = 1 << 14) -> tuple[np.ndarray, ...]:
    """(rgb (n, 3), depth (n,), opacity (n,)) numpy, in chunks, by the kernels when they are available."""
    outs = []
    for s in range(0, len(o), chunk):
        oc, dc = np.ascontiguousarray(o[s:s + chunk]), np.ascontiguousarray(d[s:s + chunk])
        if use_kernels(field):
            rgb, depth, acc = forward_cpu(field, oc, dc)[:3]
            if field.env is not None:  # the kernel's constant background is 0 then
                rgb = field.add_background(*map(torch.from_numpy, (rgb, acc, dc))).numpy()
            outs.append((rgb, depth, acc))
        else:
            dev = field.data.device
            r = render_torch(field, torch.from_numpy(oc).to(dev), torch.from_numpy(dc).to(dev))
            outs.append(tuple(x.cpu().numpy() for x in r))
    return tuple(np.concatenate([x[i] for x in outs]) for i in range(3))
