"""Splat training loop: Adam with schedules, densify/split/prune, opacity reset, exposure, checkpoints.

Follows 3DGS (Kerbl et al. 2023) with the schedule expressed as fractions of the iteration count so
short CPU runs keep the same shape, a hard cap on the number of splats (memory and time bound), and a
per-image affine colour correction (gain, bias per channel) for phone-video exposure changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vid2model.camera import Camera
from vid2model.splat.losses import photometric_loss, psnr, ssim
from vid2model.splat.model import GaussianModel

log = logging.getLogger("vid2model")


@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    iterations: int = 3000
    sh_degree: int = 3
    max_gaussians: int = 300_000
    ssim_weight: float = 0.2
    lr_means: float = 1.6e-4  # times the scene extent, decays to 1% by the end
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacity: float = 5e-2
    lr_sh0: float = 2.5e-3
    lr_shN: float = 2.5e-3 / 20
    lr_exposure: float = 1e-3
    densify_from: float = 0.1  # fraction of iterations
    densify_until: float = 0.6
    densify_every: int = 0  # 0: about 30 rounds over the densification window (at least every 20 its)
    densify_grad: float = 2e-4  # mean 2D-position gradient (NDC units) that triggers clone/split
    opacity_resets: int = 1  # resets spread over the densification window
    prune_opacity: float = 0.005
    exposure: bool = True
    init_opacity: float = 0.1
    far_points: int = 2000  # splats on a sphere around everything: sky / far background no SfM point covers
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    checkpoint_every: int = 500
    seed: int = 0
    threads: int = 0  # CPU threads; 0: all cores, or 1 when other processes already load every core


@dataclass(frozen=True, kw_only=True)
class TrainView:
    """One training/eval view: its camera at training resolution and a lazy image loader."""

    name: str
    camera: Camera
    load: Callable[[], np.ndarray]  # -> (H, W, 3) uint8


@dataclass(kw_only=True)
class TrainResult:
    model: GaussianModel
    iterations: int
    seconds: float
    sec_per_iter: float
    train_psnr: float
    eval_psnr: float | None
    eval_ssim: float | None
    n_eval: int
    resumed_from: int = 0


class ImageCache:
    """Training images as uint8, loaded on demand, least recently used dropped beyond a byte budget."""

    def __init__(self, views: list[TrainView], budget_mb: float = 1024):
        self.views, self.budget = views, budget_mb * 2 ** 20
        self._c: OrderedDict[int, np.ndarray] = OrderedDict()
        self._bytes = 0

    def get(self, i: int) -> np.ndarray:
        if i in self._c:
            self._c.move_to_end(i)
            return self._c[i]
        img = np.ascontiguousarray(self.views[i].load())
        v, c = self.views[i], self.views[i].camera
        if img.shape[:2] != (c.height, c.width):
            raise ValueError(f"image {v.name} is {img.shape[1]}x{img.shape[0]}, expected {c.width}x{c.height}")
        self._c[i] = img
        self._bytes += img.nbytes
        while self._bytes > self.budget and len(self._c) > 1:
            _, old = self._c.popitem(last=False)
            self._bytes -= old.nbytes
        return img


def split_views(n: int, eval_every: int) -> tuple[list[int], list[int]]:
    """Training and held-out view indices: every ``eval_every``-th view (0, n, 2n, ...) is held out.

    Nothing is held out when ``eval_every`` <= 1 or fewer than 3 views remain for training.
    """
    test = [i for i in range(n) if eval_every > 1 and i % eval_every == 0]
    if n - len(test) < 3:
        test = []
    return [i for i in range(n) if i not in test], test


def scene_extent(views: list[TrainView]) -> float:
    """Radius of the camera centres around their mean, times 1.1 (3DGS ``cameras_extent``)."""
    c = np.array([v.camera.center for v in views])
    r = float(np.linalg.norm(c - c.mean(0), axis=1).max()) * 1.1
    return r if r > 1e-6 else 1.0


def add_far_points(xyz: np.ndarray, rgb: np.ndarray, views: list[TrainView], n: int, rng
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Append ``n`` grey points on a sphere enclosing the cameras and (most) points.

    Backgrounds that reconstruction never triangulates (sky, far walls, plain studio backdrops) would
    otherwise be painted by stretched foreground splats; these give them their own splats.
    """
    if n <= 0:
        return xyz, rgb
    xyz = np.asarray(xyz, np.float64)
    c = np.array([v.camera.center for v in views])
    center = c.mean(0)
    r_cam = float(np.linalg.norm(c - center, axis=1).max()) if len(c) else 1.0
    r_pts = float(np.percentile(np.linalg.norm(xyz - center, axis=1), 98)) if len(xyz) else 0.0
    radius = 2.0 * max(r_cam, r_pts, 1e-3)
    i = np.arange(n) + 0.5  # Fibonacci sphere: even coverage
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5 ** 0.5) * i
    d = np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)
    far = center + radius * d
    rgb = np.asarray(rgb)
    grey = np.full((n, 3), 128 if rgb.dtype == np.uint8 else 0.5, dtype=rgb.dtype)
    return np.concatenate([xyz, far]), np.concatenate([rgb, grey])


def _fingerprint(opts: TrainOptions, views: list[TrainView], n_init: int) -> str:
    o = {k: v for k, v in asdict(opts).items() if k not in ("threads", "checkpoint_every")}  # no effect on results
    data = json.dumps([o, [v.name for v in views], n_init], sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def _make_optimizer(model: GaussianModel, exposure: torch.Tensor, opts: TrainOptions, extent: float):
    p = model.params
    groups = [
        {"params": [p["means"]], "lr": opts.lr_means * extent, "name": "means"},
        {"params": [p["log_scales"]], "lr": opts.lr_scales, "name": "log_scales"},
        {"params": [p["quats"]], "lr": opts.lr_quats, "name": "quats"},
        {"params": [p["opacity_logits"]], "lr": opts.lr_opacity, "name": "opacity_logits"},
        {"params": [p["sh0"]], "lr": opts.lr_sh0, "name": "sh0"},
        {"params": [p["shN"]], "lr": opts.lr_shN, "name": "shN"},
    ]
    opt = torch.optim.Adam(groups, lr=0.0, eps=1e-15, fused=exposure.device.type in ("cpu", "cuda"))
    exp_opt = torch.optim.Adam([exposure], lr=opts.lr_exposure)
    return opt, exp_opt


def _to_t(img: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(img).to(device, torch.float32) / 255.0


def apply_exposure(img: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Per-channel affine colour: img * exp(gain) + bias; ab (6,) = gains then biases."""
    return img * torch.exp(ab[:3]) + ab[3:]


def train(views: list[TrainView], train_idx: list[int], eval_idx: list[int], init_xyz: np.ndarray,
          init_rgb: np.ndarray, opts: TrainOptions, *, checkpoint: Path | None = None,
          device: str | torch.device = "cpu", progress: bool = True, cache_mb: float = 1024) -> TrainResult:
    """Train splats on ``views[train_idx]``; report PSNR/SSIM on ``views[eval_idx]``.

    Resumes from ``checkpoint`` when it holds a run with the same options, views and init points.
    """
    old_threads = torch.get_num_threads()
    torch.set_num_threads(_pick_threads(opts.threads))
    try:
        return _train(views, train_idx, eval_idx, init_xyz, init_rgb, opts, checkpoint, device, progress, cache_mb)
    finally:
        torch.set_num_threads(old_threads)


def _pick_threads(requested: int) -> int:
    """Threads for training. On an oversubscribed machine one thread is much faster: every parallel
    torch/OpenMP region waits for its slowest thread, and a descheduled thread costs a time slice."""
    import os

    if requested > 0:
        return requested
    n = torch.get_num_threads()
    try:
        busy = os.getloadavg()[0] > (os.cpu_count() or 1) + 0.5
    except OSError:
        busy = False
    return 1 if busy else n


def _train(views, train_idx, eval_idx, init_xyz, init_rgb, opts, checkpoint, device, progress, cache_mb):
    from vid2model.progress import bar
    from vid2model.splat.densify import Densifier

    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    dev = torch.device(device)
    cache = ImageCache(views, cache_mb)
    extent = scene_extent([views[i] for i in train_idx])
    fp = _fingerprint(opts, views, len(init_xyz))
    bg = torch.tensor(opts.background, dtype=torch.float32, device=dev)

    start = 0
    state = None
    if checkpoint is not None and Path(checkpoint).exists():
        try:
            state = torch.load(checkpoint, map_location=dev, weights_only=False)
        except Exception as exc:  # a corrupt checkpoint only costs a restart
            log.warning("ignoring unreadable splat checkpoint %s (%s)", checkpoint, exc)
            state = None
        if state is not None and state.get("fingerprint") != fp:
            log.info("splat checkpoint is from different settings; starting over")
            state = None
    if state is not None:
        model = GaussianModel.from_state_dict(state["model"], dev)
        exposure = state["exposure"].to(dev).requires_grad_(True)
        start = int(state["iteration"])
        log.info("resuming splat training at iteration %d", start)
    else:
        xyz, rgb = add_far_points(init_xyz, init_rgb, [views[i] for i in train_idx], opts.far_points, rng)
        model = GaussianModel.from_points(xyz, rgb, opts.sh_degree, opts.init_opacity, dev)
        exposure = torch.zeros((len(views), 6), device=dev, requires_grad=True)
    opt, exp_opt = _make_optimizer(model, exposure, opts, extent)
    cams = np.array([views[i].camera.center for i in train_idx])
    dens = Densifier(opts, extent, dev, center=cams.mean(0))
    if state is not None:
        if state.get("optimizer") is not None:  # None once training finished (see save_checkpoint)
            opt.load_state_dict(state["optimizer"])
        exp_opt.load_state_dict(state["exp_optimizer"])
        dens.load_state_dict(state["densifier"], len(model))

    n_iter = opts.iterations
    train_t = torch.as_tensor(train_idx, device=dev)
    sh_up = max(1, int(n_iter * 0.5 / max(opts.sh_degree, 1)))
    recent: list[float] = []
    t0 = time.perf_counter()
    order: list[int] = []
    with bar("training splats", total=n_iter) as b:
        b.advance(start)
        for it in range(start, n_iter):
            if not order:
                order = list(rng.permutation(train_idx))
            i = order.pop()
            cam = views[i].camera
            for g in opt.param_groups:  # exponential decay of the position learning rate to 1%
                if g["name"] == "means":
                    g["lr"] = opts.lr_means * extent * (0.01 ** (it / max(n_iter - 1, 1)))
            deg = min(opts.sh_degree, it // sh_up)
            out = model.render(cam.world_to_cam, cam.K, cam.width, cam.height, sh_degree=deg, bg=bg)
            means2d = out["means2d"]
            means2d.retain_grad()
            img = out["image"]
            if opts.exposure:  # relative to the mean over training views: no global drift vs. the colours
                img = apply_exposure(img, exposure[i] - exposure[train_t].mean(0))
            gt = _to_t(cache.get(i), dev)
            loss = photometric_loss(img, gt, opts.ssim_weight)
            loss.backward()
            with torch.no_grad():
                dens.accumulate(means2d.grad, out["visible"], cam.width, cam.height)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if opts.exposure:
                exp_opt.step()
                exp_opt.zero_grad(set_to_none=True)
            dens.step(it, model, opt)
            recent.append(psnr(img.detach(), gt))
            if len(recent) > 20:
                recent.pop(0)
            b.advance()
            if it % 10 == 0:
                b.info(f"PSNR {np.mean(recent):.2f} dB  {len(model)} splats")
            if checkpoint is not None and opts.checkpoint_every and (it + 1) % opts.checkpoint_every == 0 \
                    and it + 1 < n_iter:
                save_checkpoint(checkpoint, it + 1, model, exposure, opt, exp_opt, dens, fp)
    seconds = time.perf_counter() - t0
    done = n_iter - start
    if checkpoint is not None:
        save_checkpoint(checkpoint, n_iter, model, exposure, opt, exp_opt, dens, fp, final=True)
    ev_psnr, ev_ssim = evaluate(model, [views[i] for i in eval_idx], bg) if eval_idx else (None, None)
    return TrainResult(model=model, iterations=n_iter, seconds=seconds, sec_per_iter=seconds / max(done, 1),
                       train_psnr=float(np.mean(recent)) if recent else float("nan"), eval_psnr=ev_psnr,
                       eval_ssim=ev_ssim, n_eval=len(eval_idx), resumed_from=start)


@torch.no_grad()
def evaluate(model: GaussianModel, views: list[TrainView], bg=None) -> tuple[float, float]:
    """Mean PSNR (dB) and SSIM over views, rendered with no exposure correction."""
    ps, ss = [], []
    for v in views:
        c = v.camera
        img = model.render(c.world_to_cam, c.K, c.width, c.height, bg=bg)["image"]
        gt = _to_t(np.ascontiguousarray(v.load()), img.device)
        ps.append(psnr(img, gt))
        ss.append(float(ssim(img.clamp(0, 1), gt)))
    return float(np.mean(ps)), float(np.mean(ss))


def save_checkpoint(path: Path, iteration: int, model: GaussianModel, exposure, opt, exp_opt, dens, fp: str,
                    final: bool = False):
    """A resumable state. The ``final`` one, written when training ends, leaves out the splats' optimizer state
    (twice the model's size): it only lets a rerun with the same settings find the training done."""
    from vid2model.workspace import atomic_path

    with atomic_path(path) as tmp:
        torch.save({"iteration": iteration, "model": model.state_dict(), "exposure": exposure.detach().cpu(),
                    "optimizer": None if final else opt.state_dict(), "exp_optimizer": exp_opt.state_dict(),
                    "densifier": dens.state_dict(), "fingerprint": fp}, tmp)
