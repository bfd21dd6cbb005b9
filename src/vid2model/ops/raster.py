"""CPU triangle rasteriser (numba): depth, face-id and barycentric buffers, and textured-mesh rendering.

Camera conventions are those of the whole project: OpenCV axes (x right, y down, z forward),
``x_cam = R @ x_world + t``, pinhole ``K`` with pixel centres at +0.5 (COLMAP), so pixel (row, col)
samples the image point (col + 0.5, row + 0.5).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

from vid2model.camera import Camera


@dataclass(frozen=True)
class Raster:
    """Per-pixel rasterisation result.

    Attributes:
        depth: (H, W) float32 z-depth, inf where no triangle covers the pixel.
        face: (H, W) int32 index of the visible triangle, -1 where none.
        bary: (H, W, 3) float32 perspective-correct barycentrics of the pixel centre in that triangle.
    """

    depth: np.ndarray
    face: np.ndarray
    bary: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool, pixels covered by the mesh."""
        return self.face >= 0


@njit(cache=True, nogil=True)
def _raster_kernel(px, z, faces, W, H, near, cull, depth, fid, b0, b1):  # pragma: no cover - compiled
    for f in range(faces.shape[0]):
        i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
        z0, z1, z2 = z[i0], z[i1], z[i2]
        # Triangles reaching behind the near plane would need clipping; meshes from fusion are finely
        # tessellated, so dropping them costs at most a few pixels at the image border.
        if z0 <= near or z1 <= near or z2 <= near:
            continue
        x0, y0 = px[i0, 0], px[i0, 1]
        x1, y1 = px[i1, 0], px[i1, 1]
        x2, y2 = px[i2, 0], px[i2, 1]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if abs(area) < 1e-12:
            continue
        if cull and area < 0:  # clockwise on screen (y down) = facing away for CCW meshes
            continue
        # pixels whose centre (vid2model.camera.pixel_grid: index + 0.5) lies in the triangle's box
        xmin = max(int(np.floor(min(x0, x1, x2) - 0.5)), 0)
        xmax = min(int(np.ceil(max(x0, x1, x2) - 0.5)), W - 1)
        ymin = max(int(np.floor(min(y0, y1, y2) - 0.5)), 0)
        ymax = min(int(np.ceil(max(y0, y1, y2) - 0.5)), H - 1)
        if xmin > xmax or ymin > ymax:
            continue
        inv_area = 1.0 / area
        iz0, iz1, iz2 = 1.0 / z0, 1.0 / z1, 1.0 / z2
        # pixel centres (col + 0.5, row + 0.5): the rule of vid2model.camera.pixel_grid
        for row in range(ymin, ymax + 1):
            py = row + 0.5
            for col in range(xmin, xmax + 1):
                qx = col + 0.5
                w0 = ((x1 - qx) * (y2 - py) - (x2 - qx) * (y1 - py)) * inv_area
                w1 = ((x2 - qx) * (y0 - py) - (x0 - qx) * (y2 - py)) * inv_area
                w2 = 1.0 - w0 - w1
                if w0 < 0.0 or w1 < 0.0 or w2 < 0.0:
                    continue
                # screen-space weights interpolate 1/z linearly: perspective-correct depth and barycentrics
                iz = w0 * iz0 + w1 * iz1 + w2 * iz2
                zz = 1.0 / iz
                if zz < depth[row, col]:
                    depth[row, col] = zz
                    fid[row, col] = f
                    b0[row, col] = w0 * iz0 * zz
                    b1[row, col] = w1 * iz1 * zz


def rasterize(vertices: np.ndarray, faces: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray, width: int,
              height: int, *, near: float = 1e-4, cull_backfaces: bool = False) -> Raster:
    """Z-buffer rasterisation of a triangle mesh seen by a pinhole camera.

    Args:
        vertices: (V, 3) world coordinates.
        faces: (F, 3) vertex indices.
        K: (3, 3) intrinsics, pixel centres at +0.5.
        world_to_cam: (4, 4) or (3, 4) OpenCV world-to-camera matrix.
        width, height: image size in pixels.
        near: triangles with a vertex closer than this (world units along z) are skipped.
        cull_backfaces: drop triangles whose counter-clockwise side faces away from the camera.

    Returns:
        A :class:`Raster` with depth, face id and barycentric buffers.
    """
    V = np.asarray(vertices, np.float64)
    F = np.ascontiguousarray(np.asarray(faces, np.int64))
    px, z = Camera.from_world_to_cam(K, world_to_cam, width, height).project(V)
    z = z.copy()
    depth = np.full((height, width), np.inf, np.float64)
    fid = np.full((height, width), -1, np.int32)
    b0 = np.zeros((height, width), np.float64)
    b1 = np.zeros((height, width), np.float64)
    if len(F):
        _raster_kernel(np.ascontiguousarray(px), z, F, int(width), int(height), float(near), bool(cull_backfaces),
                       depth, fid, b0, b1)
    bary = np.stack([b0, b1, 1.0 - b0 - b1], -1).astype(np.float32)
    bary[fid < 0] = 0
    return Raster(depth=depth.astype(np.float32), face=fid, bary=bary)


@dataclass(frozen=True)
class RenderMesh:
    """A mesh ready to render: either UV-textured or vertex-coloured.

    Attributes:
        vertices: (V, 3); faces: (F, 3).
        uv: (V, 2) per-vertex UVs (OBJ convention, v up) or None.
        texture: (Ht, Wt, 3) uint8 image or None.
        colors: (V, 3) uint8 vertex colours or None (grey when neither texture nor colours).
    """

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None
    colors: np.ndarray | None = None


def load_render_mesh(path: str | Path) -> RenderMesh:
    """Read a textured OBJ (``map_Kd``) or a vertex-coloured PLY/OBJ into a :class:`RenderMesh`."""
    path = Path(path)
    st = path.stat()
    return _load_cached(str(path.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=2)
def _load_cached(path: str, _mtime: int, _size: int) -> RenderMesh:
    import trimesh

    m = trimesh.load(path, process=False, force="mesh")
    V, F = np.asarray(m.vertices, np.float64), np.asarray(m.faces, np.int64)
    vis = m.visual
    if getattr(vis, "kind", None) == "texture" and getattr(vis, "uv", None) is not None:
        img = getattr(vis.material, "image", None) or getattr(vis.material, "baseColorTexture", None)
        if img is not None:
            return RenderMesh(V, F, uv=np.asarray(vis.uv, np.float64), texture=np.asarray(img.convert("RGB")))
    if getattr(vis, "kind", None) == "vertex":
        return RenderMesh(V, F, colors=np.asarray(vis.vertex_colors)[:, :3].astype(np.uint8))
    return RenderMesh(V, F)


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear texture lookup with clamped edges.

    Args:
        texture: (Ht, Wt, C) image, row 0 at the top.
        uv: (N, 2) coordinates in [0, 1], v up (texel centres at (i + 0.5) / size).

    Returns:
        (N, C) float32 samples.
    """
    h, w = texture.shape[:2]
    x = np.clip(uv[:, 0] * w - 0.5, 0, w - 1)
    y = np.clip((1.0 - uv[:, 1]) * h - 0.5, 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2 if w > 1 else 0)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2 if h > 1 else 0)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    t = texture.astype(np.float32)
    top = t[y0, x0] * (1 - fx) + t[y0, x1] * fx
    bot = t[y1, x0] * (1 - fx) + t[y1, x1] * fx
    return top * (1 - fy) + bot * fy


def render_textured_mesh(mesh: str | Path | RenderMesh, K: np.ndarray, cam_to_world: np.ndarray, W: int, H: int,
                         background: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """Render a textured (or vertex-coloured) mesh at a camera pose, without lighting.

    Args:
        mesh: path to ``model.obj`` / a coloured PLY, or a :class:`RenderMesh`.
        K: (3, 3) intrinsics (pixel centres at +0.5).
        cam_to_world: (4, 4) OpenCV camera-to-world pose.
        W, H: output size.
        background: RGB in [0, 1] for empty pixels.

    Returns:
        (H, W, 3) uint8 image.
    """
    m = mesh if isinstance(mesh, RenderMesh) else load_render_mesh(mesh)
    r = rasterize(m.vertices, m.faces, np.asarray(K, np.float64), np.linalg.inv(np.asarray(cam_to_world, float)),
                  int(W), int(H))
    out = np.empty((H, W, 3), np.float32)
    out[:] = np.asarray(background, np.float32) * 255
    rows, cols = np.nonzero(r.mask)
    if len(rows):
        f = m.faces[r.face[rows, cols]]
        b = r.bary[rows, cols][:, :, None]
        if m.texture is not None and m.uv is not None:
            uv = (m.uv[f] * b).sum(1)
            out[rows, cols] = sample_texture(m.texture, uv)[:, :3]
        elif m.colors is not None:
            out[rows, cols] = (m.colors[f].astype(np.float32) * b).sum(1)
        else:
            out[rows, cols] = 180.0
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
