"""Splat files: the standard 3DGS PLY layout, .splat, .spz (v2/v3) and the web-pruned variant."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from vid2model.io import splat_formats as sf
from vid2model.splat.losses import psnr
from vid2model.splat.model import model_from_data


def _data(n=300, seed=0) -> sf.SplatData:
    rng = np.random.default_rng(seed)
    f = lambda a: np.asarray(a, np.float32)  # noqa: E731
    return sf.SplatData(means=f(rng.normal(size=(n, 3)) * [0.6, 0.6, 0.3]), log_scales=f(rng.normal(-3.2, 0.4, (n, 3))),
                        quats=f(rng.normal(size=(n, 4))), opacity_logits=f(rng.normal(1.0, 1.5, n)),
                        sh0=f(rng.normal(size=(n, 3)) * 0.8), shN=f(rng.normal(size=(n, 15, 3)) * 0.1))


def _render(d: sf.SplatData) -> torch.Tensor:
    from vid2model.render import look_at

    c2w = look_at(np.array([0.5, -2.5, 1.2]), np.zeros(3))
    K = np.array([[90.0, 0, 64], [0, 90.0, 48], [0, 0, 1]])
    with torch.no_grad():
        return model_from_data(d).render(np.linalg.inv(c2w), K, 128, 96)["image"]


def test_ply_standard_layout_and_roundtrip(tmp_path):
    from plyfile import PlyData

    d = _data()
    path = sf.write_ply(d, tmp_path / "point_cloud.ply")
    ply = PlyData.read(str(path))
    v = ply["vertex"]
    names = [p.name for p in v.properties]
    assert names[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert names[9:54] == [f"f_rest_{i}" for i in range(45)]
    assert names[54:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert all(p.val_dtype in ("f4", "float32", "float") for p in v.properties)
    assert not ply.text and ply.byte_order == "<"
    assert len(v.data) == len(d)
    # f_rest is channel-major: f_rest_0..14 are the red coefficients
    assert np.allclose(v.data["f_rest_1"], d.shN[:, 1, 0]) and np.allclose(v.data["f_rest_15"], d.shN[:, 0, 1])
    back = sf.read_ply(path)
    for k in ("means", "log_scales", "quats", "opacity_logits", "sh0", "shN"):
        assert np.array_equal(getattr(back, k), getattr(d, k)), k
    img, img2 = _render(d), _render(back)
    assert float(img.mean()) > 0.02
    assert torch.equal(img, img2)  # renders identically after reload


def test_splat_file(tmp_path):
    d = _data()
    path = sf.write_splat(d, tmp_path / "m.splat")
    assert path.stat().st_size == 32 * len(d)
    s = sf.read_splat(path)
    order = np.argsort(-(np.exp(d.log_scales).prod(1) / (1 + np.exp(-d.opacity_logits))), kind="stable")
    assert np.allclose(s["means"], d.means[order])
    assert np.allclose(s["scales"], np.exp(d.log_scales[order]), rtol=1e-6)
    rgb = np.clip(0.5 + sf.SH_C0 * d.sh0[order], 0, 1)
    assert np.abs(s["rgba"][:, :3] - rgb).max() <= 0.5 / 255 + 1e-6
    q = d.quats[order] / np.linalg.norm(d.quats[order], axis=1, keepdims=True)
    assert np.abs(np.abs((s["quats"] * q).sum(1)) - 1).max() < 0.01


@pytest.mark.parametrize("version", [2, 3])
def test_spz_roundtrip(tmp_path, version):
    d = _data()
    path = sf.write_spz(d, tmp_path / "m.spz", version=version)
    raw = gzip.decompress(path.read_bytes())
    magic, ver, n, deg, frac, flags, _ = struct.unpack_from("<IIIBBBB", raw)
    assert (magic, ver, n, deg, frac) == (0x5053474E, version, len(d), 3, 12)
    rot_bytes = 3 if version == 2 else 4
    assert len(raw) == 16 + len(d) * (9 + 1 + 3 + 3 + rot_bytes + 45)
    # positions are stored in SPZ's RUB axes: world +Z (up) becomes +Y
    p = np.frombuffer(raw, np.uint8, 9, 16).reshape(3, 3).astype(np.int32)
    fixed = p[:, 0] | (p[:, 1] << 8) | (p[:, 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed) / 4096.0
    assert np.allclose(fixed, [d.means[0, 0], d.means[0, 2], -d.means[0, 1]], atol=2 / 4096)
    back = sf.read_spz(path)
    assert np.abs(back.means - d.means).max() < 2 / 4096
    assert np.abs(back.log_scales - d.log_scales).max() < 1 / 32 + 1e-5
    assert psnr(_render(back), _render(d)) > 30.0  # visually the same splats


def test_web_splat_prunes(tmp_path):
    d = _data(1000)
    path = sf.write_web_splat(d, tmp_path / "web.splat", max_splats=200, min_opacity=0.3)
    n = path.stat().st_size // 32
    assert n == 200
    keep_all = sf.write_web_splat(d, tmp_path / "all.splat", max_splats=10_000, min_opacity=0.3)
    alpha = 1 / (1 + np.exp(-d.opacity_logits))
    assert keep_all.stat().st_size // 32 == int((alpha >= 0.3).sum())
