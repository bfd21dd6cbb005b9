"""Fusing per-view points into one cloud with bounded memory: a running per-voxel average."""

from __future__ import annotations

import numpy as np


_BITS = 21  # per axis: voxel keys within +-2^20 pack into one int64
_OFF = 1 << (_BITS - 1)


def _unique_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique rows of integer keys (N, 3) and the inverse index (N,).

    Rows are packed into one int64 each when they fit (far faster than ``np.unique(axis=0)``, which sorts
    structured rows); keys beyond +-2^20 voxels fall back to the row-wise unique.
    """
    if len(keys) and np.abs(keys).max() < _OFF:
        k = keys + _OFF
        packed = (k[:, 0] << (2 * _BITS)) | (k[:, 1] << _BITS) | k[:, 2]
        upacked, inv = np.unique(packed, return_inverse=True)
        mask = (1 << _BITS) - 1
        uniq = np.stack([upacked >> (2 * _BITS), (upacked >> _BITS) & mask, upacked & mask], 1) - _OFF
        return uniq, inv.ravel()
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    return uniq, inv.ravel()


class VoxelFusion:
    """Accumulates points (with colours and normals) and averages them per voxel.

    Memory grows with the number of occupied voxels, not with the number of views: points are folded
    into the per-voxel sums every ``flush_points`` additions.
    """

    def __init__(self, voxel: float, flush_points: int = 2_000_000):
        self.voxel = float(voxel)
        self.flush_points = flush_points
        self._keys = np.zeros((0, 3), np.int64)
        self._sums = np.zeros((0, 10))  # xyz, rgb, normal, count
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._n_pending = 0

    def add(self, xyz: np.ndarray, rgb: np.ndarray, normals: np.ndarray) -> None:
        """Add points (M, 3) float, colours (M, 3) uint8 and unit normals (M, 3)."""
        if len(xyz) == 0:
            return
        keys = np.floor(xyz / self.voxel).astype(np.int64)
        vals = np.hstack([xyz, rgb.astype(np.float64), normals, np.ones((len(xyz), 1))])
        self._pending.append((keys, vals))
        self._n_pending += len(xyz)
        if self._n_pending >= self.flush_points:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        keys = np.concatenate([self._keys] + [k for k, _ in self._pending])
        vals = np.concatenate([self._sums] + [v for _, v in self._pending])
        self._pending, self._n_pending = [], 0
        uniq, inv = _unique_rows(keys)
        sums = np.stack([np.bincount(inv, weights=vals[:, c], minlength=len(uniq)) for c in range(vals.shape[1])], 1)
        self._keys, self._sums = uniq, sums

    def result(self, min_count: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Averaged points (K, 3), colours (K, 3) uint8 and unit normals (K, 3) of voxels with >= min_count points."""
        self._flush()
        s = self._sums[self._sums[:, 9] >= min_count]
        c = s[:, 9:10]
        n = s[:, 6:9]
        n = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        return s[:, :3] / c, np.clip(s[:, 3:6] / c + 0.5, 0, 255).astype(np.uint8), n
