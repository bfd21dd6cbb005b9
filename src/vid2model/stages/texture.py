"""Texture stage: xatlas UV atlas, occlusion-aware and photo-consistent per-face view choice, exposure
levelling, baking from the original frames.

Writes ``texture/model.obj`` + ``model.mtl`` + ``texture.png`` in the workspace's world frame.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from vid2model.camera import Camera, index_coords
from vid2model.config import TextureConfig
from vid2model.errors import UserError
from vid2model.io.colmap import load_views, read_model
from vid2model.ops import texture_bake as T
from vid2model.ops.measure import face_geometry
from vid2model.progress import bar
from vid2model.workspace import Workspace, atomic_dir

log = logging.getLogger("vid2model")


def _ray_scene(mesh_v: np.ndarray, mesh_f: np.ndarray):
    """An open3d ray-casting scene (a bounding-volume tree) of the mesh's triangles."""
    import open3d as o3d
    import open3d.core as o3c

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3c.Tensor(mesh_v.astype(np.float32)), o3c.Tensor(mesh_f.astype(np.uint32)))
    return scene


def _raycast(scene, views, scale: float):
    """Per view: the face id seen at each pixel (H*W,) (-1 = none) in ``scene`` (:func:`_ray_scene`), at
    ``scale`` x image size."""
    import open3d.core as o3c

    out = []
    for v in views:
        cam = v.resized(max(8, int(v.width * scale)), max(8, int(v.height * scale)))
        # Open3D's pinhole rays pass through pixel centres at +0.5, as our K has them
        rays = scene.create_rays_pinhole(o3c.Tensor(cam.K, o3c.float64), o3c.Tensor(cam.world_to_cam, o3c.float64),
                                         cam.width, cam.height)
        ids = scene.cast_rays(rays)["primitive_ids"].numpy().astype(np.int64).ravel()
        ids[ids == scene.INVALID_ID] = -1
        out.append(ids)
    return out


_MAX_SOURCE_SCALE = 2.0  # beyond twice the working size a 2-4k texel atlas cannot use the pixels (aliasing)


class _Source:
    """Where one view's colours come from: an image file and the camera that projects into it.

    With ``images_full/`` the original frames are sampled through the distorted SfM camera (``camera``, a
    pycolmap camera, at ``scale`` x its size): this skips the undistorted copy, whose resampling (a
    half-pixel shift, bilinear) blurs every edge, and uses the full resolution where ingest kept one
    (area-averaged down to ``_MAX_SOURCE_SCALE`` x the working size).
    """

    def __init__(self, v, path, camera=None, scale: float = 1.0):
        self.path, self.camera = path, camera
        self.scale = min(scale, _MAX_SOURCE_SCALE)
        self.cam = v
        if camera is not None:
            lens = Camera(np.asarray(camera.calibration_matrix()), v.R, v.t, camera.width, camera.height, lens=camera)
            self.cam = lens.scaled(self.scale)

    def project(self, X: np.ndarray) -> np.ndarray:
        """[N, 2] OpenCV (``remap``) coordinates of world points [N, 3] in :meth:`image`."""
        return index_coords(self.cam.project(X)[0])

    def image(self) -> np.ndarray:
        """(H, W, 3) float32 RGB in [0, 1] (read on demand: full-resolution frames add up)."""
        import cv2

        img = cv2.imread(str(self.path))
        if img is None:
            raise UserError(f"missing keyframe image {self.path}: rerun vid2model sfm WORKSPACE --force")
        if self.camera is not None:
            size = (self.cam.width, self.cam.height)
            if (img.shape[1], img.shape[0]) != size:
                img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        return img[:, :, ::-1].astype(np.float32) / 255.0


def _sources(ws: Workspace, views, use_full: bool) -> list[_Source]:
    """Colour sources per view: the original frames when available (see :class:`_Source`), else dense/images."""
    out = [_Source(v, ws.undistorted_image(v.name)) for v in views]
    if not use_full:
        return out
    try:
        rec = read_model(ws.sparse_dir)
    except UserError:
        return out
    import pycolmap

    # own copies: cameras borrowed from the reconstruction dangle once it is freed
    cams = {img.name: pycolmap.Camera(model=img.camera.model, width=img.camera.width, height=img.camera.height,
                                      params=np.asarray(img.camera.params)) for img in rec.images.values()}
    for k, v in enumerate(views):
        path = ws.full_image(v.name)
        cam = cams.get(v.name)
        size = _image_size(path) if cam is not None and path.exists() else None
        if size is None:
            continue
        sx, sy = size[0] / cam.width, size[1] / cam.height
        if sx >= 1 and abs(sx - sy) <= 0.01 * sx:  # same framing, only larger (else keep the undistorted copy)
            out[k] = _Source(v, path, cam, sx)
    return out


def _image_size(path) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except OSError:
        return None


def _sample(img: np.ndarray, uv: np.ndarray) -> np.ndarray:
    import cv2

    # remap wants maps under 32767 on each side: lay the N samples out as rows of 1024
    n = len(uv)
    rows = max(1, -(-n // 1024))
    m = np.zeros((rows * 1024, 2), np.float32)
    m[:n] = uv
    m = m.reshape(rows, 1024, 2)
    out = cv2.remap(img, m[..., 0], m[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out.reshape(-1, img.shape[2])[:n]


def _hidden(scene, V: np.ndarray, F: np.ndarray, centers: np.ndarray, normals: np.ndarray, faces: np.ndarray,
            labels: np.ndarray, views) -> np.ndarray:
    """Which of ``faces`` [K] (ids) the view their label names [K] cannot see (behind the camera, outside its
    frame, turned away, or behind other surface in ``scene``, :func:`_ray_scene`): bool [K]. Faces too small
    for the visibility raster that the view does see are not hidden."""
    import open3d.core as o3c

    hidden = np.ones(len(faces), bool)
    for i in np.unique(labels):
        sel = np.flatnonzero(labels == i)
        c = centers[faces[sel]]
        v = views[i]
        uv, z = v.project(c)
        inside = v.in_frame(uv, z)
        to_cam = v.center - c
        dist = np.linalg.norm(to_cam, axis=1)
        facing = np.einsum("ij,ij->i", normals[faces[sel]], to_cam) > 0
        rays = np.c_[np.tile(v.center, (len(sel), 1)), -to_cam / dist[:, None]].astype(np.float32)
        t = scene.cast_rays(o3c.Tensor(rays))["t_hit"].numpy()
        edge = np.linalg.norm(V[F[faces[sel], 0]] - V[F[faces[sel], 1]], axis=1)
        clear = np.abs(t - dist) <= np.maximum(2 * edge, 1e-3 * dist)
        hidden[sel] = ~(inside & facing & clear)
    return hidden


def _adjacency(faces: np.ndarray) -> np.ndarray:
    import trimesh

    return T.neighbour_table(trimesh.graph.face_adjacency(faces), len(faces))


def _decimate(V: np.ndarray, F: np.ndarray, max_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """A lighter mesh to texture: the texture carries the fine detail."""
    if len(F) <= max_faces:
        return V, F
    from vid2model.ops.decimation import quadric

    V, F, _ = quadric(V, F, max_faces)
    return V, F


def _chunks(centers: np.ndarray, ids: np.ndarray, size: int) -> list[np.ndarray]:
    """Split faces into spatially compact groups of at most ``size`` (k-d splits on the longest axis)."""
    if len(ids) <= size:
        return [ids]
    c = centers[ids]
    axis = int(np.argmax(np.ptp(c, axis=0)))
    order = ids[np.argsort(c[:, axis])]
    half = len(order) // 2
    return _chunks(centers, order[:half], size) + _chunks(centers, order[half:], size)


def _atlas(V: np.ndarray, F: np.ndarray, cfg: TextureConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UV atlas with xatlas: charts computed per spatial chunk (xatlas slows down badly on big meshes),
    packed together into one atlas.

    Returns:
        vmapping (V',) original vertex of each atlas vertex, faces (F, 3) into atlas vertices,
        uvs (V', 2) in [0, 1].
    """
    import xatlas

    groups = _chunks(V[F].mean(1), np.arange(len(F)), cfg.chunk_faces)
    atlas = xatlas.Atlas()
    for g in groups:
        atlas.add_mesh(V.astype(np.float32), F[g].astype(np.uint32))
    co = xatlas.ChartOptions()
    co.max_iterations = 1
    po = xatlas.PackOptions()
    po.resolution = cfg.size
    po.padding = 2
    po.bilinear = True
    atlas.generate(co, po)
    vmaps, faces, uvs = [], np.zeros((len(F), 3), np.int64), []
    offset = 0
    for k, g in enumerate(groups):
        vm, ix, uv = atlas[k]
        vmaps.append(vm)
        uvs.append(uv)
        faces[g] = ix.astype(np.int64) + offset
        offset += len(vm)
    return np.concatenate(vmaps), faces, np.concatenate(uvs)


def run(ws: Workspace, cfg: TextureConfig) -> dict[str, Any]:
    """Bake a texture atlas for ``mesh/mesh.ply`` from the keyframes (see :class:`_Source`)."""
    import trimesh

    if not ws.clean_mesh.exists():
        raise UserError("no mesh to texture: run vid2model mesh WORKSPACE first")
    mesh = trimesh.load(ws.clean_mesh, process=False)
    V, F = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    views = load_views(ws.dense_sparse_dir)
    kf = {k["name"]: k.get("sharpness", 1.0) for k in (ws.read_json(ws.keyframes_json, default={}) or {}).get(
        "keyframes", [])}
    sources = _sources(ws, views, cfg.use_full_res)
    with bar("texturing", 4) as b:
        V, F = _decimate(V, F, cfg.max_faces)
        vmap, idx, uvs = _atlas(V, F, cfg)
        b.advance()
        rays = _ray_scene(V, F)
        prim = _raycast(rays, views, cfg.visibility_scale)
        tri = V[F]
        centers, areas, normals = face_geometry(V, F)
        sharp = np.array([min(1.0, kf.get(v.name, 1.0)) for v in views])
        scores = T.face_view_scores(prim, len(F), normals, centers, np.array([v.center for v in views]), sharp)
        valid = scores > 0
        samples = np.zeros((len(views), len(F), 3), np.float32)
        for i, src in enumerate(sources):
            vis = np.flatnonzero(valid[i])
            if len(vis):
                samples[i, vis] = _sample(src.image(), src.project(centers[vis]))
        gains = T.exposure_gains(samples, valid) if cfg.level_exposure else np.ones((len(views), 3))
        if cfg.consistency_sigma > 0:
            levelled = samples * gains[:, None, :].astype(np.float32)
            scores = scores * T.consistency_weights(levelled, valid, cfg.consistency_sigma)
        labels = scores.argmax(0)
        seen = scores.max(0) > 0
        adjacency = _adjacency(F)
        labels = T.smooth_labels(T.fill_labels(labels, seen, adjacency), scores, adjacency)
        # a face no view sees is never painted from a view that cannot see it (a product's underside would take
        # the floor's colours): it is completed from the surface around it instead
        completed = np.zeros(len(F), bool)
        unseen = np.flatnonzero(~seen)
        if len(unseen):
            completed[unseen[_hidden(rays, V, F, centers, normals, unseen, labels[unseen], views)]] = True
        b.advance()
        size = cfg.size
        uv_faces = uvs[idx]
        rows, cols, face, bary = T.rasterize_uv(uv_faces, size)
        X = np.einsum("ij,ijk->ik", bary, tri[face])
        atlas = np.zeros((size, size, 3), np.float32)
        mask = np.zeros((size, size), bool)
        lab = np.where(completed[face], -1, labels[face])
        painted = np.zeros((len(V), 3))
        count = np.zeros(len(V))
        for i, src in enumerate(sources):
            sel = np.flatnonzero(lab == i)
            if len(sel):
                img = src.image()
                atlas[rows[sel], cols[sel]] = _sample(img, src.project(X[sel])) * gains[i]
                mask[rows[sel], cols[sel]] = True
                if completed.any():  # the colours at the corners of what it paints, to carry over
                    fs = np.flatnonzero((labels == i) & ~completed)
                    # a little inside each face: a corner on a silhouette would pick up what lies behind it
                    inner = 0.7 * V[F[fs]] + 0.3 * centers[fs, None, :]
                    c = _sample(img, src.project(inner.reshape(-1, 3))) * gains[i]
                    np.add.at(painted, F[fs].ravel(), c)
                    np.add.at(count, F[fs].ravel(), 1)
        if completed.any():
            sel = np.flatnonzero(lab < 0)
            # the photos' colours two rings of faces away from the completed region: at its rim the views see
            # the support or the background beside the surface within a pixel
            near = np.zeros(len(V), bool)
            near[F[completed]] = True
            for _ in range(2):
                near[F[near[F].any(1)]] = True
            known = (count > 0) & ~near
            painted[known] /= count[known, None]
            colours = T.harmonic_fill(len(V), F, known, painted)
            atlas[rows[sel], cols[sel]] = np.einsum("ij,ijk->ik", bary[sel], colours[F[face[sel]]])
            mask[rows[sel], cols[sel]] = True
        b.advance()
        atlas = T.dilate(np.clip(atlas, 0, 1), mask, cfg.padding)
        b.advance()
    tex = (atlas * 255 + 0.5).astype(np.uint8)
    out_mesh = trimesh.Trimesh(V[vmap], idx, process=False)
    from PIL import Image

    out_mesh.visual = trimesh.visual.TextureVisuals(
        uv=uvs, material=trimesh.visual.material.SimpleMaterial(image=Image.fromarray(tex), name="material0"))
    with atomic_dir(ws.texture_dir) as tmp:
        out = ws.texture_files(root=tmp)
        text, files = trimesh.exchange.obj.export_obj(out_mesh, include_texture=True, mtl_name=out.mtl.name,
                                                      return_texture=True)
        out.obj.write_text(text)
        # trimesh names the atlas after the material: it takes the workspace's name, in the MTL too
        atlases = [name for name in files if name.lower().endswith(".png")]
        for name in atlases:
            out.png.write_bytes(files[name])
        if out.mtl.name in files:
            m = files[out.mtl.name].decode()
            for name in atlases:
                m = m.replace(name, out.png.name)
            out.mtl.write_text(m)
    return {"faces": int(len(idx)), "atlas": size, "full_res_views": sum(s.camera is not None for s in sources),
            "faces_unseen": int((~seen).sum()), "faces_completed": int(completed.sum()),
            "completed_share": round(float(areas[completed].sum() / max(areas.sum(), 1e-30)), 5),
            "views_used": int(len(np.unique(labels[seen]))), "gain_range": [float(gains.min()), float(gains.max())]}
