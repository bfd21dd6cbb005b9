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
    into the per-voxel sums every ``flush_points`` additions. A fold reduces the new points to their own
    voxels first and then merges two sorted sets, so it holds the sums about twice, not the points and the
    sums together; positions are summed in float64, colours, normals and counts in float32 (exact for
    integer colours up to 2^24 / 255 points in one voxel).
    """

    def __init__(self, voxel: float, flush_points: int = 2_000_000):
        self.voxel = float(voxel)
        self.flush_points = flush_points
        self._keys = np.zeros((0, 3), np.int64)  # [K, 3] unique voxel keys
        self._xyz = np.zeros((0, 3))  # [K, 3] sums of positions
        self._rest = np.zeros((0, 7), np.float32)  # [K, 7] sums of colour, normal, and the count
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._n_pending = 0

    def add(self, xyz: np.ndarray, rgb: np.ndarray, normals: np.ndarray) -> None:
        """Add points (M, 3) float, colours (M, 3) uint8 and unit normals (M, 3)."""
        if len(xyz) == 0:
            return
        xyz = np.asarray(xyz, np.float64)
        self._pending.append((np.floor(xyz / self.voxel).astype(np.int64), xyz, np.asarray(rgb),
                              np.asarray(normals, np.float32)))
        self._n_pending += len(xyz)
        if self._n_pending >= self.flush_points:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        keys, xyz, rgb, nrm = (np.concatenate(a) for a in zip(*self._pending))
        self._pending, self._n_pending = [], 0
        uniq, inv = _unique_rows(keys)
        del keys
        n = len(uniq)
        sums = np.stack([np.bincount(inv, weights=xyz[:, c], minlength=n) for c in range(3)], 1)
        rest = np.empty((n, 7), np.float32)
        for c in range(3):
            rest[:, c] = np.bincount(inv, weights=rgb[:, c], minlength=n)
            rest[:, 3 + c] = np.bincount(inv, weights=nrm[:, c], minlength=n)
        rest[:, 6] = np.bincount(inv, minlength=n)
        del xyz, rgb, nrm, inv
        if not len(self._keys):
            self._keys, self._xyz, self._rest = uniq, sums, rest
            return
        m = len(self._keys)
        merged, where = _unique_rows(np.concatenate([self._keys, uniq]))
        new_xyz = np.zeros((len(merged), 3))
        new_rest = np.zeros((len(merged), 7), np.float32)
        new_xyz[where[:m]] = self._xyz  # each side's keys are unique: plain assignment, then addition
        new_rest[where[:m]] = self._rest
        self._keys, self._xyz, self._rest = merged, None, None  # the old sums go before the new are summed
        new_xyz[where[m:]] += sums
        new_rest[where[m:]] += rest
        self._xyz, self._rest = new_xyz, new_rest

    def result(self, min_count: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Averaged points (K, 3), colours (K, 3) uint8 and unit normals (K, 3) of voxels with >= min_count points."""
        self._flush()
        keep = self._rest[:, 6] >= min_count
        c = self._rest[keep, 6:7].astype(np.float64)
        n = self._rest[keep, 3:6].astype(np.float64)
        n = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        rgb = np.clip(self._rest[keep, 0:3] / c + 0.5, 0, 255).astype(np.uint8)
        return self._xyz[keep] / c, rgb, n
