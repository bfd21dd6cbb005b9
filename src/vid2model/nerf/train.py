"""Training of the radiance field: random rays from all training pixels, MSE, lazy Adam on the grid, a
total-variation prior, per-image exposure, coarse-to-fine growth with pruning, resumable checkpoints.

Views are duck-typed (``name``, ``camera``, ``load()`` -> (H, W, 3) uint8), as the splat trainer's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from vid2model.nerf.field import Field, FieldSpec
from vid2model.nerf.render import CpuOptimizer, render_rays, render_torch, use_kernels

log = logging.getLogger("vid2model")


@dataclass(frozen=True, kw_only=True)
class NerfOptions:
    iterations: int = 1500
    batch_rays: int = 8192
    resolutions: tuple[int, ...] = (64, 128, 256)  # vertices a side, grown at equal shares of the iterations
    sh_degree: int = 1
    lr_density: float = 0.5
    lr_color: float = 0.1
    lr_decay: float = 0.1  # learning rates fall to this share by the end
    tv_density: float = 0.0
    tv_color: float = 0.0
    tv_stride: int = 4  # the prior touches every n-th row each step (rotating)
    occupancy_every: int = 16
    occupancy_threshold: float = 1e-2  # step opacity under which a cell is empty
    warmup: int = 32  # iterations before cells are emptied
    exposure: bool = True
    lr_exposure: float = 1e-3
    lr_env: float = 0.05  # the background at infinity (unbounded scenes)
    # weight of the rays' mean opacity in the loss: where the background at infinity explains a pixel, no
    # density is cheaper than density painted with it (unbounded scenes with a learned background only)
    sparsity: float = 1e-3
    # depth prior: weight of the squared relative error between a ray's expected depth and a measured one
    # (``train(depths=...)``; pixels without a measurement are free)
    depth_weight: float = 0.0
    # compactness prior: weight of each ray's weighted variance of its samples' places (squared grid voxels,
    # each sample's share capped at spread_cap) in the loss (mean over the batch); see render.spread. Off by
    # default: a fog also stands for what one voxel cannot (thin parts, partly covered pixels)
    spread_weight: float = 0.0
    spread_cap: float = 3.0
    checkpoint_every: int = 500
    seed: int = 0
    threads: int = 0


@dataclass(kw_only=True)
class NerfResult:
    field: Field
    iterations: int
    resumed_from: int
    seconds: float
    train_psnr: float
    eval_psnr: float | None
    n_eval: int
    rows: int


def camera_rays(camera: Any, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """World origins (n, 3) and unit directions (n, 3) through every ``step``-th pixel centre, row-major."""
    rays = camera.pixel_rays()[::step, ::step].reshape(-1, 3)
    R = camera.world_to_cam[:3, :3]
    d = rays @ R  # (R^T r)^T
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return np.broadcast_to(camera.center, d.shape), d


def render_view(field: Field, camera: Any) -> dict[str, np.ndarray]:
    """image (H, W, 3) float in [0, 1], depth (H, W) z-depth in world units (0: nothing), opacity (H, W)."""
    o, d = camera_rays(camera)
    on, dn = field.normalise_rays(o, d)
    rgb, t, acc = render_rays(field, on, dn)
    H, W = camera.height, camera.width
    z = (d @ camera.world_to_cam[:3, :3].T)[:, 2]  # a unit world ray's forward component
    depth = np.where(acc > 1e-3, t / np.maximum(acc, 1e-6) * field.spec.scale * z, 0.0)
    return {"image": rgb.reshape(H, W, 3).clip(0, 1), "depth": depth.reshape(H, W).astype(np.float32),
            "opacity": acc.reshape(H, W)}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1) - b) ** 2))
    return 99.0 if mse <= 1e-10 else -10 * np.log10(mse)


def evaluate(field: Field, views: Sequence[Any]) -> float | None:
    """Mean PSNR over views (no exposure correction)."""
    if not views:
        return None
    return float(np.mean([psnr(render_view(field, v.camera)["image"], v.load() / 255.0) for v in views]))


class _Rays:
    """Every training pixel's normalised ray, colour, image index and, when ``depths`` are given, the measured
    distance along the normalised ray (NaN where none), sampled at random each step."""

    def __init__(self, field: Field, views: Sequence[Any], idx: Sequence[int],
                 depths: Sequence[np.ndarray | None] | None = None):
        os_, ds, cs, ims, ts = [], [], [], [], []
        for i in idx:
            v = views[i]
            img = np.ascontiguousarray(v.load())
            c = v.camera
            if img.shape[:2] != (c.height, c.width):
                raise ValueError(f"image {v.name} is {img.shape[1]}x{img.shape[0]}, expected {c.width}x{c.height}")
            o, d = field.normalise_rays(*camera_rays(c))
            if depths is not None:
                t = np.full(len(d), np.nan, np.float32)
                if depths[i] is not None:
                    z = np.asarray(depths[i], np.float32).reshape(-1)
                    fwd = d @ c.world_to_cam[2, :3].astype(np.float32)  # a unit ray's forward component
                    t = np.where(z > 0, z / np.maximum(fwd, 1e-6) / field.spec.scale, np.nan).astype(np.float32)
                ts.append(t)
            os_.append(o[:1])
            ds.append(d)
            cs.append(img.reshape(-1, 3))
            ims.append(np.full(len(d), i, np.int32))
        self.origin = np.concatenate(os_)  # one per image (pinhole)
        self.slot = np.concatenate([np.full(len(d), k, np.int32) for k, d in enumerate(ds)])
        self.d, self.rgb, self.image = np.concatenate(ds), np.concatenate(cs), np.concatenate(ims)
        self.t = np.concatenate(ts) if depths is not None else None

    def __len__(self) -> int:
        return len(self.d)

    def batch(self, rng: np.random.Generator, n: int):
        k = rng.integers(0, len(self), n)
        return (np.ascontiguousarray(self.origin[self.slot[k]]), np.ascontiguousarray(self.d[k]),
                self.rgb[k].astype(np.float32) / 255, self.image[k], None if self.t is None else self.t[k])


def _fingerprint(opts: NerfOptions, spec: FieldSpec, views: Sequence[Any]) -> str:
    o = {k: v for k, v in asdict(opts).items() if k not in ("threads", "checkpoint_every")}
    data = json.dumps([o, asdict(spec), [v.name for v in views]], sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def _pick_threads(requested: int) -> int:
    if requested > 0:
        return requested
    try:
        busy = os.getloadavg()[0] > (os.cpu_count() or 1) + 0.5
    except OSError:
        busy = False
    return 1 if busy else torch.get_num_threads()


def train(views: Sequence[Any], train_idx: list[int], eval_idx: list[int], spec: FieldSpec, opts: NerfOptions, *,
          checkpoint: Path | None = None, device: str = "cpu",
          depths: Sequence[np.ndarray | None] | None = None) -> NerfResult:
    """Train a field on ``views[train_idx]``; PSNR on ``views[eval_idx]``. Resumes from ``checkpoint`` when it
    holds a run of the same options, scene and views. ``depths``: per view, a measured z-depth map [H, W]
    (world units, 0 where none) or None, for the depth prior (``opts.depth_weight``)."""
    old = torch.get_num_threads()
    n_threads = _pick_threads(opts.threads)
    torch.set_num_threads(n_threads)
    old_omp = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(n_threads)  # read by the kernels' OpenMP runtime when first used
    try:
        return _train(views, train_idx, eval_idx, spec, opts, checkpoint, device, depths)
    finally:
        torch.set_num_threads(old)
        if old_omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = old_omp


def _stage_of(it: int, opts: NerfOptions) -> int:
    n = len(opts.resolutions)
    return min(n - 1, it * n // max(opts.iterations, 1))


class _Trainer:
    """The optimiser state of either path: compiled kernels (CPU) or torch autograd + Adam (CUDA)."""

    def __init__(self, field: Field, opts: NerfOptions):
        self.field, self.opts = field, opts
        self.cpu = use_kernels(field)
        self.spread: torch.Tensor | None = None
        self.reset()

    def reset(self) -> None:
        if self.cpu:
            self.opt = CpuOptimizer(self.field)
        else:
            self.field.data.requires_grad_(True)
            self.opt = torch.optim.Adam([self.field.data], lr=1.0, betas=(0.9, 0.99), eps=1e-15)

    def seen(self) -> torch.Tensor | None:
        """[N] bool: the rows some training ray reached since the last reset (lazy Adam leaves every other
        row's moments at zero); None before the first step."""
        if self.cpu:
            return torch.from_numpy((self.opt.v != 0).any(1)) if self.opt.t > 0 else None
        st = self.opt.state.get(self.field.data)
        return (st["exp_avg_sq"] != 0).any(1) if st else None

    def forward(self, o, d):
        """(rgb (n, 3), expected depth (n,), opacity (n,)) with gradients."""
        if self.cpu:
            from vid2model.nerf.render import forward_cpu

            mom = np.empty((len(o), 3), np.float32) if self.opts.spread_weight > 0 else None
            rgb, depth, acc, _ = forward_cpu(self.field, o, d, mom)
            self._rays = [o, d, rgb, depth, acc, mom]
            return (torch.from_numpy(rgb).requires_grad_(True), torch.from_numpy(depth).requires_grad_(True),
                    torch.from_numpy(acc).requires_grad_(True))
        dev = self.field.data.device
        out = render_torch(self.field, torch.from_numpy(o).to(dev), torch.from_numpy(d).to(dev),
                           spread=self.opts.spread_weight > 0, spread_cap=self.opts.spread_cap)
        self.spread = out[3] if len(out) > 3 else None
        return out[:3]

    def prior(self) -> torch.Tensor | float:
        """The loss terms the torch path's autograd needs beside the caller's (the kernels add the spread's
        gradient themselves)."""
        if self.cpu or self.spread is None:
            return 0.0
        return self.opts.spread_weight * self.spread.mean()

    def composite(self, full: np.ndarray) -> None:
        """The rays' colours with the background at infinity added outside the kernel (its backward pass reads
        the whole composite: what lies behind each sample, background included)."""
        self._rays[2] = np.ascontiguousarray(full, np.float32)

    def step(self, rgb: torch.Tensor, depth: torch.Tensor, acc: torch.Tensor, lr_density: float, lr_color: float,
             it: int) -> None:
        o = self.opts
        if self.cpu:
            o_, d_, rgb_, depth_, acc_, mom = self._rays
            g_depth = depth.grad.numpy() if depth.grad is not None else None
            g_acc = acc.grad.numpy() if acc.grad is not None else None
            self.opt.backward(o_, d_, rgb_, rgb.grad.numpy(), depth_, g_depth, acc_, g_acc, mom,
                              o.spread_weight / len(o_), o.spread_cap)
            if o.tv_density > 0 or o.tv_color > 0:
                self.opt.tv(o.tv_density, o.tv_color, o.tv_stride, it % o.tv_stride)
            self.opt.step(lr_density, lr_color)
            return
        data = self.field.data
        if o.tv_density > 0 or o.tv_color > 0:  # the same Laplacian gradient as the kernel's
            with torch.no_grad():
                lap = torch.zeros_like(data)
                c = self.field.coords.long()
                for a in range(3):
                    for s in (-1, 1):
                        v = c.clone()
                        v[:, a] += s
                        ok = (v[:, a] >= 0) & (v[:, a] < self.field.R)
                        nb = torch.full((len(c),), -1, dtype=torch.long, device=data.device)
                        nb[ok] = self.field.idx[v[ok, 0], v[ok, 1], v[ok, 2]].long()
                        ok = nb >= 0
                        lap[ok] += data[ok] - data[nb[ok]]
                lap[:, 0] *= o.tv_density
                lap[:, 1:] *= o.tv_color
                data.grad = data.grad + lap if data.grad is not None else lap
        scale = torch.full((1, data.shape[1]), lr_color, device=data.device)
        scale[0, 0] = lr_density
        # one Adam with lr 1 and the per-channel rates applied to the gradient's step afterwards
        before = data.detach().clone()
        self.opt.step()
        with torch.no_grad():
            data.copy_(before + (data - before) * scale)
        self.opt.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        return self.opt.state_dict()

    def load_state_dict(self, d: dict) -> None:
        self.opt.load_state_dict(d)


def _train(views, train_idx, eval_idx, spec, opts, checkpoint, device, depths) -> NerfResult:
    from vid2model.progress import bar

    rng = np.random.default_rng(opts.seed)
    dev = torch.device(device)
    fp = _fingerprint(opts, spec, views)
    state = None
    if checkpoint is not None and Path(checkpoint).exists():
        try:
            state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        except Exception as exc:  # a damaged checkpoint only costs a restart
            log.warning("ignoring unreadable NeRF checkpoint %s (%s)", checkpoint, exc)
        if state is not None and state.get("fingerprint") != fp:
            log.info("NeRF checkpoint is from different settings; starting over")
            state = None
    start = 0
    if state is not None:
        field = Field.from_state_dict(state["field"], dev)
        exposure = state["exposure"].to(dev)
        start = int(state["iteration"])
        log.info("resuming NeRF training at iteration %d", start)
    else:
        field = Field.dense(spec, spec.vertices(opts.resolutions[0]), dev)
        exposure = torch.zeros((len(views), 6), device=dev)
    trainer = _Trainer(field, opts)
    if state is not None and state.get("optimizer") is not None:
        trainer.load_state_dict(state["optimizer"])
    exposure.requires_grad_(True)
    exp_opt = torch.optim.Adam([exposure], lr=opts.lr_exposure)
    if state is not None:
        exp_opt.load_state_dict(state["exp_optimizer"])
    env_opt = None
    if field.env is not None:
        field.env.requires_grad_(True)
        env_opt = torch.optim.Adam([field.env], lr=opts.lr_env)
        if state is not None and state.get("env_optimizer") is not None:
            env_opt.load_state_dict(state["env_optimizer"])
    rays = _Rays(field, views, train_idx, depths if opts.depth_weight > 0 else None)
    train_t = torch.as_tensor(train_idx, device=dev)
    recent: list[float] = []
    t0 = time.perf_counter()

    def save(it: int) -> None:
        # the last one only lets a rerun with the same settings find the training done: no grid optimizer
        # state (twice the grid's size), which only a continued training would read
        if checkpoint is not None:
            save_checkpoint(checkpoint, {"iteration": it, "field": field.state_dict(), "exposure": exposure.detach().cpu(),
                                         "optimizer": trainer.state_dict() if it < opts.iterations else None,
                                         "exp_optimizer": exp_opt.state_dict(), "fingerprint": fp,
                                         "env_optimizer": env_opt.state_dict() if env_opt is not None else None})

    with bar("training NeRF", total=opts.iterations) as b:
        b.advance(start)
        for it in range(start, opts.iterations):
            stage = _stage_of(it, opts)
            R = spec.vertices(opts.resolutions[stage])
            if R != field.R:
                field.resample(R, opts.occupancy_threshold, seen=trainer.seen())
                trainer.reset()
            if it >= opts.warmup and it % opts.occupancy_every == 0:
                share = field.update_occupancy(opts.occupancy_threshold)
                if it % (opts.occupancy_every * 8) == 0:
                    log.debug("NeRF it %d: %.1f s, PSNR %.2f, grid %d^3, %d rows, occupied %.3f", it,
                              time.perf_counter() - t0, np.mean(recent), field.R, len(field.data), share)
            o, d, gt, img, t_meas = rays.batch(rng, opts.batch_rays)
            rgb, depth, acc = trainer.forward(o, d)
            pred = rgb
            if field.env is not None and trainer.cpu:  # the torch path adds it inside render_torch
                pred = field.add_background(rgb, acc.detach(), torch.from_numpy(d).to(dev))
                trainer.composite(pred.detach().cpu().numpy())
            if opts.exposure:  # relative to the mean over training views: no drift of the colours as a whole
                ab = exposure[torch.from_numpy(img).to(dev).long()] - exposure[train_t].mean(0)
                pred = pred * torch.exp(ab[:, :3]) + ab[:, 3:]
            gt_t = torch.from_numpy(gt).to(dev)
            loss = torch.mean((pred - gt_t) ** 2)
            total = loss
            has = np.isfinite(t_meas) if t_meas is not None else None
            if has is not None and has.any():
                t_t = torch.from_numpy(np.where(has, t_meas, 1.0).astype(np.float32)).to(dev)
                m = torch.from_numpy(has).to(dev)
                total = total + opts.depth_weight * torch.sum(((depth - t_t) / t_t)[m] ** 2) / len(has)
            if field.env is not None and opts.sparsity > 0:
                total = total + opts.sparsity * acc.mean()
            total = total + trainer.prior()
            total.backward()
            decay = opts.lr_decay ** (it / max(opts.iterations - 1, 1))
            trainer.step(rgb, depth, acc, opts.lr_density * decay, opts.lr_color * decay, it)
            if opts.exposure:
                exp_opt.step()
                exp_opt.zero_grad(set_to_none=True)
            if env_opt is not None:
                env_opt.step()
                env_opt.zero_grad(set_to_none=True)
            recent = (recent + [-10 * float(torch.log10(loss.detach()))])[-20:]
            b.advance()
            if it % 10 == 0:
                b.info(f"PSNR {np.mean(recent):.2f} dB  {field.R}^3, {len(field.data)} rows")
            if opts.checkpoint_every and (it + 1) % opts.checkpoint_every == 0 and it + 1 < opts.iterations:
                save(it + 1)
    seconds = time.perf_counter() - t0
    seen = trainer.seen() if start < opts.iterations else None
    if seen is not None:  # what no training ray reaches is unconstrained: empty space costs nothing to keep
        field.keep_rows(seen.to(field.data.device))
    if start < opts.iterations or state is None:
        save(opts.iterations)
    field.data = field.data.detach()
    if field.env is not None:
        field.env = field.env.detach()
    ev = evaluate(field, [views[i] for i in eval_idx])
    return NerfResult(field=field, iterations=opts.iterations, resumed_from=start, seconds=seconds,
                      train_psnr=float(np.mean(recent)) if recent else float("nan"), eval_psnr=ev,
                      n_eval=len(eval_idx), rows=len(field.data))


def save_checkpoint(path: Path, state: dict) -> None:
    from vid2model.workspace import atomic_path

    with atomic_path(path) as tmp:
        torch.save(state, tmp)
