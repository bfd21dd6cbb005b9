"""The radiance field: a sparse voxel grid of raw density and SH colour coefficients on grid vertices.

Space is normalised so the region of interest is the cube [-1, 1]^3; an unbounded scene is contracted
beyond it into a shell of width ``w`` (``u -> (B - w |u|^-q) u/|u|`` in the max-norm, B = 1 + w, q = 1/w, so
the grid covers [-B, B]^3 and reaches infinity; w = 1 is the usual ``2 - 1/|u|``). A wider shell spends more
vertices on what lies outside the cube, its world voxel growing as ``|u|^(1 + q)`` instead of ``|u|^2``.
Vertex ``(i, j, k)`` holds row ``idx[i, j, k]`` of ``data`` (channel 0: raw density, then 3 x K SH
coefficients, colour-major), or -1 when empty. A coarse occupancy grid (one byte per ``cell`` voxels a
side) marks where density can be: rays skip the rest without touching vertex data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

EMPTY_RAW = -20.0  # raw density of an empty vertex (no row): nothing there


@dataclass(frozen=True, kw_only=True)
class FieldSpec:
    """What does not change while training (besides the resolution, which grows)."""

    contract: bool  # unbounded scene: contract space beyond the unit cube
    sh_degree: int = 1
    center: tuple[float, float, float] = (0.0, 0.0, 0.0)  # world point at the normalised origin
    scale: float = 1.0  # world length of one normalised unit
    step_vox: float = 0.5  # march step in voxels
    alpha_init: float = 1e-4  # opacity of one voxel at raw density 0
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    t_stop: float = 1e-4  # transmittance at which a ray stops
    far: float = 1e3  # unbounded: normalised distance where marching stops
    cell: int = 2  # occupancy cell size in voxels
    # rays start this far from the camera (normalised units): space only the camera itself sees right in front
    # of it otherwise fills with colour that fits that view and floats in front of every other
    near: float = 0.0
    # unbounded scenes: what a ray that leaves the grid shows, learned per direction on a latitude-longitude
    # grid of this size (rows, columns; (0, 0): the constant ``background``). Without it the sky had to be
    # density somewhere, and the views across an orbit painted it on the ring the cameras move on, in front of
    # every view from there (bench/results/nerf-2026-12-06-orbit-floaters.md)
    env_size: tuple[int, int] = (0, 0)
    # unbounded scenes: the contracted shell's width in units of the cube's half size; the grid's vertices grow
    # with it (see ``vertices``) so the cube keeps its resolution
    shell: float = 1.0

    @property
    def half(self) -> float:
        return 1.0 + self.shell if self.contract else 1.0

    @property
    def shell_exponent(self) -> float:
        return 1.0 / self.shell

    def vertices(self, resolution: int) -> int:
        """Vertices a side for a nominal ``resolution`` (that of the usual [-2, 2] grid of an unbounded scene,
        or of the cube): a wider shell adds vertices at the same voxel."""
        if not self.contract or self.shell == 1.0:
            return resolution
        return int(round((resolution - 1) * self.half / 2.0)) + 1

    @property
    def K(self) -> int:
        return (self.sh_degree + 1) ** 2

    @property
    def shift(self) -> float:
        # softplus(shift) * 1 voxel = -log(1 - alpha_init)
        s = -math.log(1 - self.alpha_init)
        return math.log(math.expm1(s))


class Field:
    """The grid's tensors (CPU or CUDA) and its resolution ``R`` (vertices a side)."""

    def __init__(self, spec: FieldSpec, R: int, data: torch.Tensor, idx: torch.Tensor, coords: torch.Tensor):
        self.spec, self.R = spec, R
        self.data, self.idx, self.coords = data, idx, coords
        self.occ = torch.ones(((R - 2) // spec.cell + 1,) * 3, dtype=torch.uint8, device=data.device)
        h, w = spec.env_size
        # logits of the background colour [3, h, w], rows from straight down to straight up
        self.env = torch.zeros((3, h, w), device=data.device) if h and w else None

    @property
    def C(self) -> int:
        return 1 + 3 * self.spec.K

    @property
    def voxel(self) -> float:
        """Voxel edge in (contracted) normalised units."""
        return 2 * self.spec.half / (self.R - 1)

    @classmethod
    def dense(cls, spec: FieldSpec, R: int, device="cpu") -> "Field":
        n = R ** 3
        coords = torch.stack(torch.meshgrid(*(torch.arange(R, dtype=torch.int32),) * 3, indexing="ij"), -1)
        data = torch.zeros((n, 1 + 3 * spec.K), dtype=torch.float32)
        return cls(spec, R, data.to(device), torch.arange(n, dtype=torch.int32).reshape(R, R, R).to(device),
                   coords.reshape(-1, 3).to(device))

    def params(self) -> dict:
        """The kernel parameter blocks (ints, floats), see :mod:`vid2model.nerf.kernel_src`."""
        s = self.spec
        ip = np.array([self.R, s.cell, int(s.contract), self.C, s.K, self.max_steps()], np.int32)
        bg = (0.0, 0.0, 0.0) if self.env is not None else s.background  # a learned one is added outside
        fp = np.array([s.half, self.voxel * s.step_vox, s.shift, EMPTY_RAW, s.t_stop, *bg, s.near, s.far,
                       s.step_vox], np.float32)
        return {"ip": ip, "fp": fp}

    def max_steps(self) -> int:
        # the cube's diagonal in steps, and as much again for the contracted shell
        return int(math.ceil(2 * math.sqrt(3) * (self.R - 1) / self.spec.step_vox)) * (2 if self.spec.contract else 1)

    # ---- occupancy, pruning and growth ------------------------------------------------------------------
    def vertex_alpha(self) -> torch.Tensor:
        """(N,) opacity of one march step at each row's own density."""
        sig = F.softplus(self.data[:, 0] + self.spec.shift)
        return 1 - torch.exp(-sig * self.spec.step_vox)

    def dense_alpha(self, seen: torch.Tensor | None = None) -> torch.Tensor:
        """(R, R, R) per-vertex step opacity (0 where empty, and at rows not ``seen`` [N] bool when given)."""
        a = torch.zeros(self.R ** 3, device=self.data.device)
        c = self.coords.long()
        va = self.vertex_alpha()
        a[(c[:, 0] * self.R + c[:, 1]) * self.R + c[:, 2]] = va if seen is None else torch.where(seen, va, 0.0)
        return a.reshape(self.R, self.R, self.R)

    @torch.no_grad()
    def update_occupancy(self, threshold: float) -> float:
        """Mark the cells holding a voxel with a corner within one vertex of step opacity above ``threshold``
        (the margin lets surfaces grow); returns the occupied share."""
        a = self.dense_alpha()[None, None]
        a = F.max_pool3d(a, 3, 1, 1)
        cs, n = self.spec.cell, self.occ.shape[0]
        pad = n * cs + 1 - self.R  # cell c's voxels have corners c*cs .. c*cs + cs
        a = F.pad(a, (0, pad, 0, pad, 0, pad))
        occ = F.max_pool3d(a, cs + 1, cs)[0, 0] > threshold
        self.occ = occ.to(torch.uint8).contiguous()
        return float(occ.float().mean())

    @torch.no_grad()
    def sample(self, g: torch.Tensor) -> torch.Tensor:
        """(M, C) trilinear interpolation of the raw channels at grid coordinates g (M, 3)."""
        R = self.R
        i0 = g.floor().long().clamp(0, R - 2)
        f = (g - i0).clamp(0, 1)
        out = torch.zeros((len(g), self.C), device=g.device)
        empty = torch.zeros(self.C, device=g.device)
        empty[0] = EMPTY_RAW
        for c in range(8):
            o = torch.tensor([c >> 2, (c >> 1) & 1, c & 1], device=g.device)
            v = i0 + o
            rows = self.idx[v[:, 0], v[:, 1], v[:, 2]].long()
            w = torch.where(o.bool(), f, 1 - f).prod(-1, keepdim=True)
            vals = torch.where((rows >= 0)[:, None], self.data[rows.clamp(min=0)], empty)
            out += w * vals
        return out

    @torch.no_grad()
    def resample(self, R_new: int, threshold: float, chunk: int = 1 << 20, seen: torch.Tensor | None = None) -> None:
        """Regrid to ``R_new`` vertices a side, keeping only vertices near opacity above ``threshold``
        (pruning empty space, and growing resolution where there is something); ``seen`` [N] bool: the rows
        any training ray reached, when known (density no ray reaches, behind surfaces, is pruned too)."""
        keep_old = F.max_pool3d(self.dense_alpha(seen)[None, None], 3, 1, 1)[0, 0] > threshold
        dev = self.data.device
        ax = torch.arange(R_new, device=dev, dtype=torch.float32) * ((self.R - 1) / (R_new - 1))
        rows, vals = [], []
        flat = torch.arange(R_new ** 3, device=dev)
        for s in range(0, R_new ** 3, chunk):
            q = flat[s:s + chunk]
            ijk = torch.stack([q // (R_new * R_new), (q // R_new) % R_new, q % R_new], -1)
            g = ax[ijk]
            n = g.round().long().clamp(0, self.R - 1)  # keep where the nearest old vertex is kept
            k = keep_old[n[:, 0], n[:, 1], n[:, 2]]
            if k.any():
                rows.append(ijk[k])
                vals.append(self.sample(g[k]))
        coords = torch.cat(rows).to(torch.int32) if rows else torch.zeros((0, 3), dtype=torch.int32, device=dev)
        data = torch.cat(vals) if vals else torch.zeros((0, self.C), device=dev)
        idx = torch.full((R_new,) * 3, -1, dtype=torch.int32, device=dev)
        c = coords.long()
        idx[c[:, 0], c[:, 1], c[:, 2]] = torch.arange(len(c), dtype=torch.int32, device=dev)
        self.R, self.data, self.idx, self.coords = R_new, data.contiguous(), idx, coords.contiguous()
        self.occ = torch.ones(((R_new - 2) // self.spec.cell + 1,) * 3, dtype=torch.uint8, device=dev)

    @torch.no_grad()
    def keep_rows(self, keep: torch.Tensor) -> None:
        """Drop the rows not in ``keep`` [N] bool (their vertices read as empty space)."""
        self.data, self.coords = self.data[keep].contiguous(), self.coords[keep].contiguous()
        self.idx.fill_(-1)
        c = self.coords.long()
        self.idx[c[:, 0], c[:, 1], c[:, 2]] = torch.arange(len(c), dtype=torch.int32, device=self.data.device)

    def env_color(self, d: torch.Tensor, env: torch.Tensor | None = None) -> torch.Tensor:
        """[n, 3] background colour in [0, 1] for unit world directions ``d`` [n, 3] (differentiable in ``env``,
        default the field's); the constant ``background`` when the field learns none."""
        env = self.env if env is None else env
        if env is None:
            return torch.tensor(self.spec.background, device=d.device, dtype=torch.float32).expand(len(d), 3)
        lon = torch.atan2(d[:, 1], d[:, 0]) / torch.pi  # [-1, 1]
        lat = torch.asin(d[:, 2].clamp(-1, 1)) / (torch.pi / 2)  # -1 down .. 1 up
        g = torch.stack([lon, lat], -1).to(env.dtype)[None, None]  # [1, 1, n, 2]
        return torch.sigmoid(F.grid_sample(env[None], g, mode="bilinear", padding_mode="border",
                                           align_corners=False)[0, :, 0].T)

    def add_background(self, rgb: torch.Tensor, acc: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """[n, 3] the rays' colours ``rgb`` with what shows past the grid added: ``(1 - acc) x env_color(d)``."""
        return rgb + (1 - acc)[:, None] * self.env_color(d)

    # ---- saving ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        from dataclasses import asdict

        return {"spec": asdict(self.spec), "R": self.R, "data": self.data.cpu(), "coords": self.coords.cpu(),
                "occ": self.occ.cpu(), "env": None if self.env is None else self.env.detach().cpu()}

    @classmethod
    def from_state_dict(cls, d: dict, device="cpu") -> "Field":
        spec = d["spec"]
        spec = FieldSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})
        R, coords = int(d["R"]), d["coords"].to(device)
        idx = torch.full((R,) * 3, -1, dtype=torch.int32, device=device)
        c = coords.long()
        idx[c[:, 0], c[:, 1], c[:, 2]] = torch.arange(len(c), dtype=torch.int32, device=device)
        f = cls(spec, R, d["data"].to(device).contiguous(), idx, coords.contiguous())
        f.occ = d["occ"].to(device).contiguous()
        if d.get("env") is not None:
            f.env = d["env"].to(device)
        return f

    @classmethod
    def load(cls, path, device="cpu") -> "Field":
        """The field a finished ``nerf`` stage wrote (``Workspace.nerf_field``)."""
        return cls.from_state_dict(torch.load(path, map_location="cpu", weights_only=False)["field"], device)

    # ---- world <-> normalised ----------------------------------------------------------------------------
    def normalise_rays(self, origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World ray origins and directions -> normalised origins and unit directions (float32)."""
        o = (np.asarray(origins, np.float64) - np.asarray(self.spec.center)) / self.spec.scale
        d = np.asarray(dirs, np.float64)
        d = d / np.linalg.norm(d, axis=-1, keepdims=True)
        return o.astype(np.float32), d.astype(np.float32)
