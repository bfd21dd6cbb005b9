"""Gaussian splat files: standard 3DGS PLY, antimatter15 ``.splat``, Niantic ``.spz`` and a web-pruned variant.

3DGS PLY (what SuperSplat, gsplat, nerfstudio and the Inria viewers read): one ``vertex`` element with
float properties ``x y z nx ny nz f_dc_0..2 f_rest_0..(3(K-1)-1) opacity scale_0..2 rot_0..3``;
``f_rest`` is channel-major (all R coefficients, then G, then B), opacity is a logit, scales are
logs, ``rot`` is a (w, x, y, z) quaternion. The PLY stays in the workspace world frame (+Z up).

``.splat``: 32 bytes per splat (position 3 x f32, linear scale 3 x f32, RGBA u8, quaternion wxyz u8
as ``q*128+128``), sorted by size x opacity; same frame as the PLY.

``.spz`` (gzip, header ``NGSP``, version 2 or 3): positions 24-bit fixed point (12 fractional bits),
alphas, DC colours (scale 0.15), log scales ``(s+10)*16``, rotations (v2: xyz with w >= 0; v3:
smallest-three 10-bit), SH (5 bits degree 1, 4 bits above). SPZ is defined in RUB axes (y up), so
the +Z-up world is rotated into it (x, y, z) -> (x, z, -y), SH coefficients included.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vid2model.workspace import atomic_path

SH_C0 = 0.28209479177387814
SPZ_MAGIC = 0x5053474E
SPZ_COLOR_SCALE = 0.15
# Z-up world -> SPZ RUB (y up): x' = x, y' = z, z' = -y
ZUP_TO_RUB = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])


@dataclass
class SplatData:
    """Raw splat parameters as stored in a 3DGS PLY (numpy, float32).

    means (N, 3); log_scales (N, 3); quats (N, 4) wxyz; opacity_logits (N,); sh0 (N, 3);
    shN (N, K-1, 3) coefficient-major.
    """

    means: np.ndarray
    log_scales: np.ndarray
    quats: np.ndarray
    opacity_logits: np.ndarray
    sh0: np.ndarray
    shN: np.ndarray

    def __len__(self) -> int:
        return len(self.means)

    @property
    def sh_degree(self) -> int:
        return int(round(np.sqrt(self.shN.shape[1] + 1))) - 1

    def subset(self, idx) -> "SplatData":
        return SplatData(*(a[idx] for a in (self.means, self.log_scales, self.quats, self.opacity_logits,
                                            self.sh0, self.shN)))

    @classmethod
    def from_model(cls, model) -> "SplatData":
        """From a :class:`vid2model.splat.model.GaussianModel`."""
        p = {k: v.detach().cpu().float().numpy() for k, v in model.params.items()}
        return cls(p["means"], p["log_scales"], p["quats"], p["opacity_logits"], p["sh0"][:, 0], p["shN"])


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# ---- 3DGS PLY ----------------------------------------------------------------------------------
def ply_property_names(sh_degree: int) -> list[str]:
    n_rest = 3 * ((sh_degree + 1) ** 2 - 1)
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
            + [f"f_rest_{i}" for i in range(n_rest)]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def write_ply(data: SplatData, path: str | Path) -> Path:
    """Write the standard 3DGS PLY (binary little endian), atomically."""
    from plyfile import PlyData, PlyElement

    n = len(data)
    names = ply_property_names(data.sh_degree)
    arr = np.empty(n, dtype=[(nm, "f4") for nm in names])
    cols = [data.means, np.zeros((n, 3)), data.sh0,
            np.transpose(data.shN, (0, 2, 1)).reshape(n, -1),  # channel-major f_rest
            data.opacity_logits[:, None], data.log_scales, data.quats]
    flat = np.concatenate([np.asarray(c, np.float32).reshape(n, -1) for c in cols], 1)
    for i, nm in enumerate(names):
        arr[nm] = flat[:, i]
    path = Path(path)
    with atomic_path(path) as tmp:
        PlyData([PlyElement.describe(arr, "vertex")], byte_order="<").write(str(tmp))
    return path


def read_ply(path: str | Path) -> SplatData:
    """Read a 3DGS PLY (any SH degree 0-3)."""
    from plyfile import PlyData

    v = PlyData.read(str(path))["vertex"].data
    names = v.dtype.names
    g = lambda *ks: np.stack([np.asarray(v[k], np.float32) for k in ks], 1)  # noqa: E731
    rest = sorted((k for k in names if k.startswith("f_rest_")), key=lambda k: int(k[7:]))
    n = len(v)
    k1 = len(rest) // 3
    shN = g(*rest).reshape(n, 3, k1).transpose(0, 2, 1) if rest else np.zeros((n, 0, 3), np.float32)
    return SplatData(means=g("x", "y", "z"), log_scales=g("scale_0", "scale_1", "scale_2"),
                     quats=g("rot_0", "rot_1", "rot_2", "rot_3"), opacity_logits=np.asarray(v["opacity"], np.float32),
                     sh0=g("f_dc_0", "f_dc_1", "f_dc_2"), shN=np.ascontiguousarray(shN))


def _load(ply_in) -> SplatData:
    return ply_in if isinstance(ply_in, SplatData) else read_ply(ply_in)


# ---- .splat ------------------------------------------------------------------------------------
def _splat_bytes(d: SplatData) -> bytes:
    scales = np.exp(d.log_scales)
    alpha = _sigmoid(d.opacity_logits)
    order = np.argsort(-(scales.prod(1) * alpha), kind="stable")
    q = d.quats / np.linalg.norm(d.quats, axis=1, keepdims=True).clip(1e-12)
    rgba = np.concatenate([0.5 + SH_C0 * d.sh0, alpha[:, None]], 1)
    rec = np.zeros(len(d), dtype=[("p", "<f4", 3), ("s", "<f4", 3), ("c", "u1", 4), ("r", "u1", 4)])
    rec["p"] = d.means
    rec["s"] = scales
    rec["c"] = np.clip(np.round(rgba * 255), 0, 255)
    rec["r"] = np.clip(np.round(q * 128 + 128), 0, 255)
    return rec[order].tobytes()


def write_splat(ply_in, path: str | Path) -> Path:
    """Convert a 3DGS PLY (path or :class:`SplatData`) to the antimatter15 ``.splat`` format."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(_splat_bytes(_load(ply_in)))
    return path


def read_splat(path: str | Path) -> dict[str, np.ndarray]:
    """Decode a ``.splat`` file: means, scales (linear), rgba (0-1), quats (wxyz, normalised)."""
    rec = np.frombuffer(Path(path).read_bytes(), dtype=[("p", "<f4", 3), ("s", "<f4", 3), ("c", "u1", 4),
                                                       ("r", "u1", 4)])
    q = (rec["r"].astype(np.float32) - 128) / 128
    return {"means": rec["p"].copy(), "scales": rec["s"].copy(), "rgba": rec["c"] / 255.0,
            "quats": q / np.linalg.norm(q, axis=1, keepdims=True).clip(1e-12)}


def write_web_splat(ply_in, path: str | Path, max_splats: int = 500_000, min_opacity: float = 0.05) -> Path:
    """A pruned ``.splat`` for web viewers: drop faint splats, keep the ``max_splats`` most visible.

    Visibility is opacity x projected-area proxy (product of the two largest scales); view-dependent
    colour (SH above degree 0) is dropped by the format itself (32 bytes per splat).
    """
    d = _load(ply_in)
    alpha = _sigmoid(d.opacity_logits)
    s = np.sort(np.exp(d.log_scales), 1)
    score = alpha * s[:, 1] * s[:, 2]
    keep = np.nonzero(alpha >= min_opacity)[0]
    if len(keep) > max_splats:
        keep = keep[np.argsort(-score[keep], kind="stable")[:max_splats]]
    return write_splat(d.subset(np.sort(keep)), path)


# ---- .spz --------------------------------------------------------------------------------------
def _sh_rotation(R: np.ndarray, degree: int) -> list[np.ndarray]:
    """Per-degree matrices M_l with coeffs' = coeffs @ M_l for directions rotated by R (3, 3)."""
    import torch

    from vid2model.ops.sh import sh_basis

    rng = np.random.default_rng(0)
    d = rng.normal(size=(200, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    B = sh_basis(torch.as_tensor(d), degree).numpy()  # basis in the new frame: f'(d) = f(R^T d)
    Bo = sh_basis(torch.as_tensor(d @ R), degree).numpy()
    mats = []
    for lvl in range(1, degree + 1):
        sl = slice(lvl * lvl, (lvl + 1) ** 2)
        # f'(d) = sum_j c'_j B_j(d) = sum_i c_i Bo_i(d)  =>  c' = M^T c with B M = Bo
        M, *_ = np.linalg.lstsq(B[:, sl], Bo[:, sl], rcond=None)
        mats.append(M)
    return mats


def _rotate(d: SplatData, R: np.ndarray) -> SplatData:
    """Apply a rotation R (3, 3) to every splat (positions, orientations, SH)."""
    from scipy.spatial.transform import Rotation

    q = d.quats / np.linalg.norm(d.quats, axis=1, keepdims=True).clip(1e-12)
    rot = Rotation.from_matrix(R) * Rotation.from_quat(q[:, [1, 2, 3, 0]])
    qn = rot.as_quat()[:, [3, 0, 1, 2]]
    shN = d.shN.copy()
    for lvl, M in enumerate(_sh_rotation(R, d.sh_degree), start=1):
        sl = slice(lvl * lvl - 1, (lvl + 1) ** 2 - 1)
        shN[:, sl] = np.einsum("ij,njc->nic", M, d.shN[:, sl])
    return SplatData(d.means @ R.T, d.log_scales, qn.astype(np.float32), d.opacity_logits, d.sh0,
                     shN.astype(np.float32))


def _u8(x) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def write_spz(ply_in, path: str | Path, version: int = 3) -> Path:
    """Convert a 3DGS PLY (path or :class:`SplatData`, +Z-up world) to Niantic ``.spz`` (v2 or v3)."""
    if version not in (2, 3):
        raise ValueError("spz version must be 2 or 3")
    d = _rotate(_load(ply_in), ZUP_TO_RUB)
    n, deg = len(d), min(d.sh_degree, 3)
    frac = 12
    fixed = np.round(d.means.astype(np.float64) * (1 << frac)).astype(np.int64)
    fixed = np.clip(fixed, -(1 << 23), (1 << 23) - 1).astype(np.int32)
    pos = fixed.reshape(-1).view(np.uint8).reshape(-1, 4)[:, :3]  # little-endian low 3 bytes
    alphas = _u8(_sigmoid(d.opacity_logits) * 255)
    colors = _u8(d.sh0 * (SPZ_COLOR_SCALE * 255) + 127.5)
    scales = _u8((d.log_scales + 10.0) * 16.0)
    q = d.quats / np.linalg.norm(d.quats, axis=1, keepdims=True).clip(1e-12)
    qx = q[:, [1, 2, 3, 0]]  # spz stores xyzw
    if version == 2:
        qx = qx * np.where(qx[:, 3:] < 0, -1.0, 1.0)
        rots = _u8(qx[:, :3] * 127.5 + 127.5)
    else:
        rots = _smallest_three(qx)
    shN = d.shN[:, :(deg + 1) ** 2 - 1]
    sh = np.zeros(shN.shape, np.uint8)
    for j in range(shN.shape[1]):
        bucket = 8 if j < 3 else 16  # 5 bits for degree 1, 4 bits above
        qv = np.round(shN[:, j] * 128.0) + 128.0
        qv = np.floor((qv + bucket // 2) / bucket) * bucket
        sh[:, j] = np.clip(qv, 0, 255).astype(np.uint8)
    header = struct.pack("<IIIBBBB", SPZ_MAGIC, version, n, deg, frac, 0, 0)
    body = b"".join([header, pos.tobytes(), alphas.tobytes(), colors.tobytes(), scales.tobytes(), rots.tobytes(),
                     sh.reshape(n, -1).tobytes()])
    path = Path(path)
    with atomic_path(path) as tmp:
        with gzip.open(tmp, "wb", compresslevel=9) as f:
            f.write(body)
    return path


def _smallest_three(q: np.ndarray) -> np.ndarray:
    """(N, 4) xyzw unit quaternions -> (N, 4) uint8: largest index (2 bits) + 3 x (sign + 9 bits)."""
    big = np.argmax(np.abs(q), 1)
    neg = q[np.arange(len(q)), big] < 0
    comp = big.astype(np.uint64)
    for i in range(4):
        m = big != i
        negbit = ((q[:, i] < 0) ^ neg).astype(np.uint64)
        mag = np.floor(511.0 * np.abs(q[:, i]) / np.sqrt(0.5) + 0.5).astype(np.uint64)
        comp = np.where(m, (comp << np.uint64(10)) | (negbit << np.uint64(9)) | mag, comp)
    return comp.astype(np.uint32).view(np.uint8).reshape(-1, 4)


def read_spz(path: str | Path) -> SplatData:
    """Decode an ``.spz`` (v2/v3, gzip) back to raw PLY-style parameters in the +Z-up world."""
    raw = gzip.decompress(Path(path).read_bytes())
    magic, version, n, deg, frac, flags, _ = struct.unpack_from("<IIIBBBB", raw, 0)
    if magic != SPZ_MAGIC or version not in (2, 3):
        raise ValueError(f"not an spz v2/v3 file: {path}")
    if flags & 0x2:
        raise ValueError("spz extensions are not supported")
    o = 16
    take = lambda k: np.frombuffer(raw, np.uint8, k, o)  # noqa: E731
    p = take(n * 9).reshape(n, 3, 3).astype(np.int32); o += n * 9
    fixed = p[..., 0] | (p[..., 1] << 8) | (p[..., 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    means = fixed.astype(np.float32) / (1 << frac)
    alphas = take(n).astype(np.float32) / 255; o += n
    colors = take(n * 3).reshape(n, 3).astype(np.float32); o += n * 3
    scales = take(n * 3).reshape(n, 3).astype(np.float32) / 16 - 10; o += n * 3
    rb = 3 if version == 2 else 4
    r = take(n * rb).reshape(n, rb); o += n * rb
    dim = (deg + 1) ** 2 - 1
    sh = take(n * dim * 3).reshape(n, dim, 3).astype(np.float32)
    if version == 2:
        xyz = r.astype(np.float32) / 127.5 - 1
        qx = np.concatenate([xyz, np.sqrt(np.clip(1 - (xyz ** 2).sum(1, keepdims=True), 0, None))], 1)
    else:
        comp = r.copy().view(np.uint32)[:, 0].astype(np.uint64)
        big = (comp >> np.uint64(30)).astype(np.int64)
        qx = np.zeros((n, 4), np.float32)
        for i in (3, 2, 1, 0):
            m = big != i
            mag = (comp & np.uint64(511)).astype(np.float32)
            neg = ((comp >> np.uint64(9)) & np.uint64(1)).astype(bool)
            val = np.sqrt(0.5) * mag / 511.0 * np.where(neg, -1, 1)
            qx[:, i] = np.where(m, val, qx[:, i])
            comp = np.where(m, comp >> np.uint64(10), comp)
        qx[np.arange(n), big] = np.sqrt(np.clip(1 - (qx ** 2).sum(1), 0, None))
    a = np.clip(alphas, 1e-6, 1 - 1e-6)
    d = SplatData(means=means, log_scales=scales, quats=qx[:, [3, 0, 1, 2]].astype(np.float32),
                  opacity_logits=np.log(a / (1 - a)).astype(np.float32),
                  sh0=((colors / 255 - 0.5) / SPZ_COLOR_SCALE).astype(np.float32),
                  shN=((sh - 128) / 128).astype(np.float32))
    return _rotate(d, ZUP_TO_RUB.T)
