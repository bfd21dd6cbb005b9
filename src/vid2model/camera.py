"""The package's one camera: pinhole intrinsics, an OpenCV world-to-camera pose, projection both ways.

Pixel convention (COLMAP's, used everywhere): pixel (row i, column j) covers [j, j + 1) x [i, i + 1) of the
continuous image coordinates ``K`` maps to, so its centre is at (j + 0.5, i + 0.5). A COLMAP ``K`` is then
used unchanged, and the camera of an image resized by ``s`` is ``K``'s first two rows times ``s``, with no
half-pixel correction. Libraries that put pixel centres at integers (OpenCV's ``remap``, Open3D's TSDF
integration) get their coordinates from :func:`index_coords` and :attr:`Camera.K_index`, never by a silent
offset of their own.

Axes are OpenCV's: x right, y down, z forward; ``x_cam = R @ x_world + t``.
Lens distortion is not modelled here: stages read undistorted (PINHOLE) models. The one exception, sampling
original frames through the distorted SfM camera, passes the pycolmap camera as ``lens``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch is imported only where a torch function runs: this module sits below torch users
    import torch

PIXEL_CENTRE = 0.5  # offset of a pixel's centre from its integer corner, in both axes
# The EWA Jacobian is linearised at the projection clamped to this box, in fractions of the image size (3DGS):
# far off-screen a splat's footprint would otherwise blow up.
JACOBIAN_BOX = (-0.15, 1.15)


def index_coords(uv: np.ndarray) -> np.ndarray:
    """[..., 2] image coordinates -> continuous array-index coordinates (pixel (i, j) centred at (j, i)),
    the coordinates OpenCV's ``remap`` samples at."""
    return uv - PIXEL_CENTRE


def image_coords(xy: np.ndarray) -> np.ndarray:
    """[..., 2] continuous array-index coordinates (OpenCV detectors' corners) -> image coordinates; the
    inverse of :func:`index_coords`."""
    return xy + PIXEL_CENTRE


def pixel_index(uv: np.ndarray) -> np.ndarray:
    """[..., 2] image coordinates -> int64 (column, row) of the pixel they fall in (no bounds check)."""
    return np.floor(uv).astype(np.int64)


def pixel_grid(height: int, width: int) -> np.ndarray:
    """[H, W, 3] homogeneous image coordinates (u, v, 1) of every pixel centre."""
    u, v = np.meshgrid(np.arange(width) + PIXEL_CENTRE, np.arange(height) + PIXEL_CENTRE)
    return np.stack([u, v, np.ones_like(u)], -1)


def grid_sample_coords(u, v, width: int, height: int):
    """Image coordinates (numpy or torch) -> the normalised coordinates of torch's ``grid_sample`` with
    ``align_corners=False``, whose -1 and 1 are the image's outer edges, i.e. pixel corners at integers as here."""
    return u * (2.0 / width) - 1, v * (2.0 / height) - 1


def pinhole(K):
    """(fx, fy, cx, cy) of a [3, 3] ``K`` (numpy or torch), skew dropped."""
    return K[0, 0], K[1, 1], K[0, 2], K[1, 2]


def scale_intrinsics(K: np.ndarray, f: float) -> np.ndarray:
    """``K`` of the image scaled by ``f`` about its corner: the first two rows times ``f`` (no half-pixel term)."""
    K = np.array(K, np.float64)
    K[:2] *= f
    return K


def center_of(world_to_cam):
    """[3] camera centre of a [3, 4] or [4, 4] world-to-camera matrix (numpy or torch)."""
    return -world_to_cam[:3, :3].T @ world_to_cam[:3, 3]


def project_with_jacobian(points: "torch.Tensor", world_to_cam: "torch.Tensor", K: "torch.Tensor", width: int,
                          height: int, near: float) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """Differentiable pinhole projection for EWA splatting (torch): world points -> image coordinates, and the
    Jacobian of that map for projecting 3D covariances.

    Args:
        points: [N, 3] world points; world_to_cam: [4, 4] (or [3, 4]); K: [3, 3] (its skew is ignored, as
            the compiled splat kernels and gsplat do); width, height: image size in pixels.
        near: depths are clamped to at least this before the division (points behind stay finite).

    Returns:
        uv [N, 2] image coordinates (COLMAP pixel centres, as :meth:`Camera.project`), z [N] depth along the
        optical axis (unclamped), J [N, 2, 3] d uv / d world point, linearised at the projection clamped to
        :data:`JACOBIAN_BOX` (only J's direction is clamped; uv is not).
    """
    import torch

    R, t = world_to_cam[:3, :3], world_to_cam[:3, 3]
    fx, fy, cx, cy = pinhole(K)
    pc = points @ R.T + t
    z = pc[:, 2]
    zs = z.clamp_min(near)
    u, v = pc[:, 0] / zs, pc[:, 1] / zs
    lo, hi = JACOBIAN_BOX
    tu = u.clamp((lo * width - cx) / fx, (hi * width - cx) / fx)
    tv = v.clamp((lo * height - cy) / fy, (hi * height - cy) / fy)
    row0 = (fx / zs)[:, None] * (R[0][None] - tu[:, None] * R[2][None])  # (N, 3) = J_cam[0] @ R
    row1 = (fy / zs)[:, None] * (R[1][None] - tv[:, None] * R[2][None])
    uv = torch.stack([fx * u + cx, fy * v + cy], -1)
    return uv, z, torch.stack([row0, row1], 1)


@dataclass(frozen=True, eq=False)
class Camera:
    """A posed pinhole camera.

    Attributes:
        K: [3, 3] intrinsics (COLMAP pixel convention, see the module docstring).
        R: [3, 3] world-to-camera rotation.
        t: [3] world-to-camera translation.
        width, height: image size in pixels.
        lens: optional pycolmap camera whose full model (distortion included) replaces ``K`` in
            :meth:`project_cam`, scaled to ``width`` x ``height``; None for a plain pinhole.
    """

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    width: int
    height: int
    lens: Any = field(default=None, kw_only=True)

    @classmethod
    def from_world_to_cam(cls, K: np.ndarray, world_to_cam: np.ndarray, width: int, height: int) -> "Camera":
        """From K [3, 3] and a [3, 4] or [4, 4] world-to-camera matrix."""
        M = np.asarray(world_to_cam, np.float64)
        return cls(np.asarray(K, np.float64), M[:3, :3].copy(), M[:3, 3].copy(), int(width), int(height))

    @classmethod
    def from_cam_to_world(cls, K: np.ndarray, cam_to_world: np.ndarray, width: int, height: int) -> "Camera":
        """From K [3, 3] and a [4, 4] camera-to-world matrix (OpenCV axes)."""
        return cls.from_world_to_cam(K, np.linalg.inv(np.asarray(cam_to_world, np.float64)), width, height)

    @classmethod
    def from_colmap(cls, image, camera, lens: bool = False) -> "Camera":
        """The camera of a pycolmap ``image`` taken with pycolmap ``camera``.

        ``K`` is the pinhole part of the camera model; pass ``lens=True`` to project through its full
        model (a copy is kept: a camera borrowed from a reconstruction dangles once that is freed).
        """
        m = np.asarray(image.cam_from_world().matrix())
        own = None
        if lens:
            import pycolmap

            own = pycolmap.Camera(model=camera.model, width=camera.width, height=camera.height,
                                  params=np.asarray(camera.params))
        return cls(np.asarray(camera.calibration_matrix(), np.float64), m[:, :3].copy(), m[:, 3].copy(),
                   int(camera.width), int(camera.height), lens=own)

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    @property
    def center(self) -> np.ndarray:
        """[3] camera centre in world coordinates."""
        return -self.R.T @ self.t

    @property
    def world_to_cam(self) -> np.ndarray:
        """[4, 4] world-to-camera matrix."""
        m = np.eye(4)
        m[:3, :3] = self.R
        m[:3, 3] = self.t
        return m

    @property
    def cam_to_world(self) -> np.ndarray:
        """[4, 4] camera-to-world matrix, OpenCV axes."""
        m = np.eye(4)
        m[:3, :3] = self.R.T
        m[:3, 3] = self.center
        return m

    @property
    def P(self) -> np.ndarray:
        """[3, 4] projection matrix ``K [R | t]``."""
        return self.K @ np.hstack([self.R, self.t[:, None]])

    @property
    def K_index(self) -> np.ndarray:
        """[3, 3] intrinsics for libraries that put pixel centres at integers (see :func:`index_coords`)."""
        K = np.array(self.K, np.float64)
        K[:2, 2] -= PIXEL_CENTRE
        return K

    def to_cam(self, X: np.ndarray) -> np.ndarray:
        """[..., 3] world points -> camera frame."""
        return X @ self.R.T + self.t

    def to_world(self, Xc: np.ndarray) -> np.ndarray:
        """[..., 3] camera-frame points -> world."""
        return (Xc - self.t) @ self.R

    def project_cam(self, Xc: np.ndarray) -> np.ndarray:
        """[N, 3] camera-frame points -> [N, 2] image coordinates (points at z ~ 0 get huge, finite ones)."""
        if self.lens is not None:
            uv = np.asarray(self.lens.img_from_cam(np.asarray(Xc, np.float64), False)).reshape(-1, 2)
            return uv * np.array([self.width / self.lens.width, self.height / self.lens.height])
        z = Xc[..., 2]
        zs = np.where(np.abs(z) > 1e-12, z, 1e-12)
        x, y = Xc[..., 0] / zs, Xc[..., 1] / zs
        K = self.K
        return np.stack([K[0, 0] * x + K[0, 1] * y + K[0, 2], K[1, 1] * y + K[1, 2]], -1)

    def project(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N, 3] world points -> ([N, 2] image coordinates, [N] depth z along the optical axis)."""
        Xc = self.to_cam(X)
        return self.project_cam(Xc), Xc[..., 2]

    def in_frame(self, uv: np.ndarray, z: np.ndarray) -> np.ndarray:
        """[N] whether projections ``uv`` [N, 2] at depths ``z`` [N] (:meth:`project`) lie in front of the camera
        and inside the image, [0, width) x [0, height)."""
        return (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < self.width) & (uv[:, 1] >= 0) & (uv[:, 1] < self.height)

    def rays(self, uv: np.ndarray) -> np.ndarray:
        """[N, 2] image coordinates -> [N, 3] camera-frame rays with z = 1 (through the lens when there is one)."""
        if self.lens is not None:
            s = np.array([self.lens.width / self.width, self.lens.height / self.height])
            xy = np.asarray(self.lens.cam_from_img(np.asarray(uv, np.float64) * s)).reshape(-1, 2)
            return np.concatenate([xy, np.ones_like(xy[:, :1])], -1)
        return np.concatenate([uv, np.ones_like(uv[..., :1])], -1) @ np.linalg.inv(self.K).T

    def unproject(self, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """[N, 2] image coordinates and [N] z-depths -> [N, 3] world points."""
        return self.to_world(self.rays(uv) * depth[..., None])

    def pixel_rays(self, height: int | None = None, width: int | None = None) -> np.ndarray:
        """[H, W, 3] camera-frame rays with z = 1 through every pixel centre (of the camera's own size unless
        given)."""
        H, W = (self.height, self.width) if height is None else (height, width)
        return pixel_grid(H, W) @ np.linalg.inv(self.K).T

    def backproject(self, depth: np.ndarray) -> np.ndarray:
        """[H, W, 3] world points of a z-depth map [H, W] at this camera's resolution."""
        return self.to_world(self.pixel_rays(*depth.shape) * depth[..., None])

    def scaled(self, f: float, width: int | None = None, height: int | None = None) -> "Camera":
        """The camera of the image scaled by ``f`` about its corner (K's first two rows times ``f``),
        ``width`` x ``height`` pixels (default: the scaled size rounded)."""
        K = scale_intrinsics(self.K, f)
        w = round(self.width * f) if width is None else int(width)
        h = round(self.height * f) if height is None else int(height)
        return Camera(K, self.R, self.t, w, h, lens=self.lens)

    def resized(self, width: int, height: int) -> "Camera":
        """The camera of the image resized to ``width`` x ``height`` (each axis stretched to fit)."""
        K = np.array(self.K, np.float64)
        K[0] *= width / self.width
        K[1] *= height / self.height
        return Camera(K, self.R, self.t, int(width), int(height), lens=self.lens)

    def depth_warp(self, src: "Camera") -> tuple[np.ndarray, np.ndarray]:
        """Plane-sweep warp to ``src``: a pixel (u, v) of this camera at depth z lands at
        ``A @ (u, v, 1) * z + b`` (homogeneous) in ``src``. Returns A [3, 3], b [3]."""
        R_rel = src.R @ self.R.T
        A = src.K @ R_rel @ np.linalg.inv(self.K)
        b = src.K @ (src.t - R_rel @ self.t)
        return A, b
