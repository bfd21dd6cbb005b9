"""Adaptive density control (3DGS): clone small / split large splats with large screen-space
position gradients, prune transparent and oversized ones, reset opacities periodically."""

from __future__ import annotations

import math

import torch

from vid2model.splat.rasterize import quat_to_rotmat


class Densifier:
    """Gradient statistics and the densification schedule of one training run."""

    def __init__(self, opts, extent: float, device, center=(0.0, 0.0, 0.0)):
        self.o, self.extent, self.dev = opts, extent, torch.device(device)
        self.center = torch.as_tensor(center, dtype=torch.float32, device=self.dev)
        n = opts.iterations
        self.start = int(opts.densify_from * n)
        self.stop = int(opts.densify_until * n)
        k = max(opts.opacity_resets, 0)
        span = self.stop - self.start
        self.every = opts.densify_every if opts.densify_every > 0 else max(20, span // 30)
        self.resets = {self.start + int(span * (j + 1) / (k + 1)) for j in range(k)} if k and span > 0 else set()
        self.grad = torch.zeros(0, device=self.dev)
        self.count = torch.zeros(0, device=self.dev)
        self.reset_done = False

    def _ensure(self, n: int) -> None:
        if self.grad.shape[0] != n:
            self.grad = torch.zeros(n, device=self.dev)
            self.count = torch.zeros(n, device=self.dev)

    def accumulate(self, g2d: torch.Tensor | None, visible: torch.Tensor, width: int, height: int) -> None:
        """Add the NDC-scaled norm of each visible splat's 2D position gradient."""
        if g2d is None:
            return
        self._ensure(g2d.shape[0])
        g = g2d * torch.tensor([0.5 * width, 0.5 * height], device=g2d.device)
        vis = visible.to(g.dtype)  # dense multiply-adds: boolean indexing costs more at 100k+ splats
        self.grad += g.norm(dim=-1) * vis
        self.count += vis

    @torch.no_grad()
    def step(self, it: int, model, opt) -> None:
        """Run densification / pruning / opacity reset when the schedule says so (after ``it``)."""
        done = it + 1
        if self.start <= done <= self.stop and done % self.every == 0 and done > self.start:
            self.densify_and_prune(model, opt)
        if done in self.resets:
            self.reset_opacity(model, opt)

    def densify_and_prune(self, model, opt) -> None:
        o = self.o
        n = len(model)
        self._ensure(n)
        avg = self.grad / self.count.clamp_min(1)
        scales = model.scales.detach()
        max_scale = scales.max(-1).values
        cand = avg >= o.densify_grad
        room = max(o.max_gaussians - n, 0)
        if int(cand.sum()) > room:  # keep the strongest gradients within the splat budget
            idx = torch.nonzero(cand).squeeze(1)
            top = idx[torch.argsort(avg[idx], descending=True)[:room]]
            cand = torch.zeros_like(cand)
            cand[top] = True
        small = max_scale <= 0.01 * self.extent
        clone, split = cand & small, cand & ~small
        p = model.params
        extra = {k: v.detach()[clone] for k, v in p.items()}
        if split.any():
            s = scales[split]
            rot = quat_to_rotmat(p["quats"].detach()[split])
            new = []
            for _ in range(2):
                offs = (rot @ (torch.randn_like(s) * s)[..., None])[..., 0]
                d = {k: v.detach()[split] for k, v in p.items()}
                d["means"] = d["means"] + offs
                d["log_scales"] = torch.log(s / 1.6)
                new.append(d)
            extra = {k: torch.cat([extra[k], new[0][k], new[1][k]], 0) for k in extra}
        model.append(extra, opt)
        n2 = len(model)
        keep = torch.ones(n2, dtype=torch.bool, device=self.dev)
        keep[:n][split] = False  # split originals are replaced by their two children
        op = model.opacities.detach()
        keep &= op >= o.prune_opacity
        if self.reset_done:  # 3DGS prunes world-space giants only once opacities were reset,
            # but only near the cameras: far background splats (sky) are legitimately huge
            near = (model.means.detach() - self.center).norm(dim=-1) < self.extent
            keep &= ~near | (model.scales.detach().max(-1).values <= 0.1 * self.extent)
        if keep.sum() < 4:
            keep[:] = True
        model.keep(keep, opt)
        self.grad = torch.zeros(len(model), device=self.dev)
        self.count = torch.zeros(len(model), device=self.dev)

    def reset_opacity(self, model, opt) -> None:
        p = model.params["opacity_logits"]
        cap = math.log(0.01 / 0.99)
        with torch.no_grad():
            p.clamp_(max=cap)
        st = opt.state.get(p)
        if st:
            for key in ("exp_avg", "exp_avg_sq"):
                if key in st:
                    st[key].zero_()
        self.reset_done = True

    def state_dict(self) -> dict:
        return {"grad": self.grad.cpu(), "count": self.count.cpu(), "reset_done": self.reset_done}

    def load_state_dict(self, sd: dict, n: int) -> None:
        self.grad = sd["grad"].to(self.dev)
        self.count = sd["count"].to(self.dev)
        self.reset_done = bool(sd["reset_done"])
        self._ensure(n)
