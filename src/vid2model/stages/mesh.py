"""Mesh stage: TSDF fusion of the depth maps (open3d VoxelBlockGrid) or screened Poisson (carved to the
points' silhouettes), then cleanup.

Reads cameras from ``dense/sparse`` (less the views in ``dense/holdout.json``), colours from ``dense/images``,
depth maps from ``dense/stereo/depth_maps/<image>.geometric.bin`` (or ``dense/fused.ply`` for Poisson).
Writes ``mesh/mesh_raw.ply``, ``mesh/mesh.ply`` (clean) and ``mesh/mesh_lod_<faces>.ply``, all with
vertex colours, in the world frame of ``sparse/0``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from vid2model.camera import pixel_index
from vid2model.config import MeshConfig
from vid2model.errors import UserError
from vid2model.io.colmap import View, load_views
from vid2model.io.colmap_dense import read_array
from vid2model.ops import mesh_cleanup as C
from vid2model.ops.close_object import is_closed
from vid2model.progress import bar
from vid2model.workspace import Workspace, atomic_path

log = logging.getLogger("vid2model")


def _depth_path(ws: Workspace, v: View) -> Path | None:
    for kind in ("geometric", "photometric"):
        p = ws.depth_map(v.name, kind)
        if p.exists():
            return p
    return None


def _depth_stats(ws: Workspace, views: list[View]) -> tuple[float, float, float]:
    """(median depth, 98th-percentile depth, median focal length in depth-map pixels) over a few maps."""
    meds, highs, focals = [], [], []
    for v in views[:: max(1, len(views) // 8)]:
        p = _depth_path(ws, v)
        if p is None:
            continue
        d = read_array(p)
        ok = d[np.isfinite(d) & (d > 0)]
        if len(ok) < 16:
            continue
        meds.append(np.median(ok))
        highs.append(np.percentile(ok, 98))
        focals.append(v.fx * d.shape[1] / v.width)
    if not meds:
        raise UserError("no usable depth maps: run vid2model dense WORKSPACE first")
    return float(np.median(meds)), float(np.max(highs)), float(np.median(focals))


def choose_voxel(cfg: MeshConfig, radius: float, median_depth: float, focal_px: float) -> float:
    """Voxel size: fine enough for the scene (radius / divisions) but no finer than what the depth maps
    resolve (a pixel's footprint at the median depth), which also bounds memory by the input resolution."""
    if cfg.voxel_size > 0:
        return float(cfg.voxel_size)
    return float(max(radius / cfg.voxel_divisions, cfg.voxel_footprint * median_depth / focal_px))


def _tsdf(ws: Workspace, views: list[View], voxel: float, depth_max: float, trunc: float):
    import cv2
    import open3d as o3d
    import open3d.core as o3c

    dev = o3c.Device("CPU:0")
    grid = o3d.t.geometry.VoxelBlockGrid(attr_names=("tsdf", "weight", "color"),
                                         attr_dtypes=(o3c.float32, o3c.float32, o3c.float32),
                                         attr_channels=((1), (1), (3)), voxel_size=voxel,
                                         block_resolution=8, block_count=20000, device=dev)
    used = 0
    with bar("TSDF fusion", len(views)) as b:
        for v in views:
            b.advance()
            path = _depth_path(ws, v)
            if path is None:
                continue
            depth = np.nan_to_num(read_array(path).astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
            depth[depth < 0] = 0
            h, w = depth.shape
            color = cv2.imread(str(ws.undistorted_image(v.name)), cv2.IMREAD_COLOR)
            if color is None:
                raise UserError(f"missing undistorted image {v.name}: rerun vid2model sfm WORKSPACE --force")
            color = cv2.resize(color[:, :, ::-1], (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
            # Open3D's TSDF samples pixel i at coordinate i: it takes the integer-centred K
            intr = o3c.Tensor(v.resized(w, h).K_index, o3c.float64)
            extr = o3c.Tensor(v.world_to_cam, o3c.float64)
            d = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(depth)))
            c = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(color)))
            blocks = grid.compute_unique_block_coordinates(d, intr, extr, 1.0, depth_max, trunc_voxel_multiplier=trunc)
            grid.integrate(blocks, d, c, intr, extr, 1.0, depth_max, trunc_voxel_multiplier=trunc)
            used += 1
    if used == 0:
        raise UserError("no depth maps to fuse: run vid2model dense WORKSPACE first")
    # a surface needs two agreeing views: single-view fringes at silhouettes are dropped
    mesh = grid.extract_triangle_mesh(weight_threshold=min(1.5, used - 0.5)).to_legacy()
    return mesh, used


def _poisson(ws: Workspace, voxel: float, cfg: MeshConfig, views: list[View], scene: dict[str, Any]):
    import open3d as o3d

    if not ws.fused_ply.exists():
        raise UserError("no dense point cloud (dense/fused.ply): run vid2model dense WORKSPACE first")
    pcd = o3d.io.read_point_cloud(str(ws.fused_ply))
    if len(pcd.points) < 100:
        raise UserError("the dense point cloud is almost empty: check the capture, then rerun vid2model dense")
    if not pcd.has_normals():
        pcd.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=4 * voxel, max_nn=30))
    hull: dict[str, Any] = {}
    if cfg.complete_hull and views:
        pcd = _with_hull(views, pcd, cfg, scene, lambda: _depth_views(ws, views), ws.undistorted_image, hull)
    extent = float(np.max(pcd.get_max_bound() - pcd.get_min_bound()))
    depth = cfg.poisson_depth or int(np.clip(np.ceil(np.log2(extent * 1.1 / voxel)), 6, cfg.poisson_max_depth))
    from vid2model.ops.native import quiet_stderr

    with quiet_stderr():
        mesh, dens = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(pcd, depth=depth, scale=1.1)
    dens = np.asarray(dens)
    if cfg.poisson_trim > 0:
        mesh.remove_vertices_by_mask(dens < np.quantile(dens, cfg.poisson_trim))
    # Poisson closes the surface far beyond the data: keep what lies near the points' bounding box
    box = pcd.get_axis_aligned_bounding_box()
    box = box.scale(1.05, box.get_center())
    mesh = C.crop_to_box(mesh, box.get_min_bound(), box.get_max_bound())
    if cfg.carve_close > 0 and views:  # ... and inside the cameras' view of the points
        mesh = C.carve_outside_points(mesh, np.asarray(pcd.points), views, cfg.carve_close, cfg.carve_min_views)
    if cfg.carve_free_space and views:
        mesh = C.carve_free_space(mesh, _depth_views(ws, views), cfg.free_space_margin, 2 * voxel, cfg.carve_min_views)
    return mesh, depth, hull


def _with_hull(views: list[View], pcd, cfg: MeshConfig, scene: dict[str, Any], depth_views, image_path=None,
               info: dict | None = None):
    """``pcd`` and, where the orbit's object has no measured points, points on the volume no depth map of
    ``depth_views`` ((view, depth map) pairs, or a function giving them afresh; read lazily) saw through
    (:mod:`vid2model.ops.free_space_hull`), facing out of it: its sides (flat ones on the chords between their
    corners, down to the support), and a flat lid on a plain top (``image_path``: image name -> file, to tell a
    flat top by its even light, and to put a plain object's outline back where its image has it before the hull is
    carved); less the measured points the depth maps saw through. ``pcd`` unchanged unless
    the views circle the object and stereo missed half its sides or most points round it are seen through.
    ``info`` gets, when the object is completed, the points ``added`` and ``dropped`` and the share of its sides
    stereo ``missed``."""
    import open3d as o3d
    from scipy.spatial import cKDTree

    from vid2model.ops.free_space_hull import carve
    from vid2model.ops.mvs.filtering import claim_far_rims, release_near_rims
    from vid2model.report.coverage import azimuth_gaps, camera_angles, widest_gap
    from vid2model.stages.dense_steps import read_image

    if scene.get("capture", "orbit") != "orbit":
        return pcd
    P = np.asarray(pcd.points)
    # the box: round the orbit's centre, half as far out as the cameras, and below them (looking up, a view
    # sees the sky behind, which carves nothing)
    centre = _object_center(views, scene)
    cams = np.array([v.center for v in views])
    azimuths = camera_angles(cams, centre)[0]
    gaps = azimuth_gaps(azimuths, cfg.hull_max_gap_deg)
    if gaps:  # the sides no view looked at stay uncarved: a hull would invent them
        log.info("no free-space hull: no view in the arc %.0f-%.0f degrees round the object", *gaps[0])
        return pcd
    half = cfg.hull_reach * float(np.median(np.linalg.norm(cams[:, :2] - centre[:2], axis=1)))
    step = 2 * half / cfg.hull_divisions
    column = np.linalg.norm(P[:, :2] - centre[:2], axis=1) <= half
    if column.sum() < 100:
        return pcd
    z = P[column, 2]
    count, edges = np.histogram(z, bins=max(8, int(np.ptp(z) / step)))
    k = np.argmax(count)  # the level most points lie on: the floor or table top, up to its points' noise
    support = float(np.percentile(z[(z >= edges[k]) & (z <= edges[k + 1])], 90))
    top = min(float(np.median(cams[:, 2])), centre[2] + half)
    if top <= support + 4 * step:
        return pcd
    lo = np.r_[centre[:2] - half, support + 3 * step]  # nothing is carved just above the support
    hi = np.r_[centre[:2] + half, top]

    if not callable(depth_views) and iter(depth_views) is depth_views:
        depth_views = list(depth_views)  # read twice below

    def depth_cams(rims: bool = False):
        """(camera, depth map) of every view; ``rims``: the depth edges of a plain object's outline put back where
        its image has them (the hull's settings say which sides)."""
        for v, d in (depth_views() if callable(depth_views) else depth_views):
            path = Path(image_path(v.name)) if rims and image_path is not None else None
            if path is not None and path.exists():
                img = read_image(path, (d.shape[1], d.shape[0]))
                if cfg.hull_claim_rims:
                    d = claim_far_rims(img, d)
                if cfg.hull_release_rims:
                    d = release_near_rims(img, d)
            yield v.resized(d.shape[1], d.shape[0]), d

    # the measured points in the hull's box; bounded queries: a kd-tree's nearest neighbour far from all its
    # points visits most of the tree
    in_box = column & (P[:, 2] >= lo[2] - 2 * step) & (P[:, 2] <= hi[2] + 2 * step)
    tree = cKDTree(P[in_box])

    def unmeasured(voxel: float, scale: float, past_object: bool = False):
        """The hull at ``voxel`` and its sides stereo has not measured, or None when stereo measured the object:
        its sides are measured (under ``scale`` times hull_min_missed missed) and the measured points round it
        agree with the depth maps (under ``scale`` times hull_min_contradicted lie where a depth map saw
        through). ``past_object``: the hull completed is the one the background seen past the object carves (the
        decision is the whole carving's)."""
        carved = carve(depth_cams(), lo, hi, voxel, margin=cfg.hull_margin)
        hull = carved.standing(centre)
        share = float(hull.solid.mean())
        X, N = hull.surface()
        if len(X) == 0 or share > cfg.hull_max_share:
            log.info("no free-space hull to complete the object with (solid share %.2f)", share)
            return None
        d = tree.query(X, distance_upper_bound=cfg.hull_gap * voxel, workers=-1)[0]
        # An orbit's ring of views bounds an object sideways closely (every azimuth sees a silhouette) but its
        # top loosely: above a plain top a roof stays that no view saw past. Sides from the hull; a top only as a
        # flat lid, where one is plainly there (else Poisson closes the top from its measured rim).
        side = np.abs(N[:, 2]) < cfg.hull_max_up
        add = ~np.isfinite(d) & side
        missed = float(add.sum() / max(side.sum(), 1))
        # stereo matching a plain object's shading puts points where other views see through (a plain
        # cylinder: 37-81 % of the measured points round it; textured objects 7-12 %)
        seen = carved.seen_through(P)
        contradicted = float(seen[in_box].mean()) if in_box.any() else 0.0
        if missed < scale * cfg.hull_min_missed and contradicted < scale * cfg.hull_min_contradicted:
            # stereo measured the object: what it left is mostly concavities the hull spans (between a body's
            # arms and its chest), where the hull would add a membrane
            log.info("no free-space hull: stereo measured the object (%.0f %% of its sides missed, %.0f %% of "
                     "the points round it seen through)", 100 * missed, 100 * contradicted)
            return None
        if not past_object:
            return hull, X, N, side, add, seen, tree, missed
        # the visual hull of the depths that passed the object (the object's foot, under the hull's box, is the
        # object's too, but not the floor's points just over its support level: a quarter voxel of the floor's
        # noise), carved hull_refine times finer in a box round the hull just found: its corners and the lid's
        # height are where its voxels put them
        k = cfg.hull_refine
        ijk = np.argwhere(hull.solid)
        blo = np.maximum(hull.lo + (ijk.min(0) - 3) * voxel, lo)
        bhi = np.minimum(hull.lo + (ijk.max(0) + 4) * voxel, hi)
        blo[2] = lo[2]
        carved = carve(depth_cams(rims=cfg.hull_claim_rims or cfg.hull_release_rims), blo, bhi, voxel / k,
                       margin=cfg.hull_margin, past=(np.r_[lo[:2], support + step / 4], hi), closing=k)
        hull = carved.standing(centre, off_sides=False)
        X, N = hull.surface()
        if len(X) == 0:
            return None
        # the object's measured points are stereo's wrong matches where they lie off that hull's surface
        seen = carved.seen_through(P, clearance=k) | hull.buried(P, depth=2 * k)
        kept = tree if not seen[in_box].any() else cKDTree(P[in_box & ~seen])
        side = np.abs(N[:, 2]) < cfg.hull_max_up
        add = ~np.isfinite(kept.query(X, distance_upper_bound=cfg.hull_gap * voxel, workers=-1)[0]) & side
        return hull, X, N, side, add, seen, kept, missed

    # a textured object is measured: a hull a third as fine (a 27th of the carving) tells so; its coarser
    # surface lies farther from the measured points, which it then counts as its own, and sees through fewer,
    # so it decides only where the object is plainly measured (a plain cylinder: 32 % missed coarse, 57 % fine)
    if unmeasured(3 * step, 0.5) is None:
        return pcd
    found = unmeasured(step, 1.0, past_object=cfg.hull_past_object)
    if found is None:
        return pcd
    hull, X, N, side, add, seen, tree, missed = found
    faces = _faces_by_layer(hull, X[side], widest_gap(azimuths), cfg) if cfg.hull_flat_faces else {}
    if faces and cfg.hull_inset_px > 0:
        # a flat side is carved by the few views that graze it, and the background pixel next to an object's
        # outline has no depth about half the time (a curved side has many views near its outline, one of
        # which carves that pixel's width)
        inset = cfg.hull_inset_px * _footprint(views, depth_cams(), centre)
        faces = {k: [replace(f, start=f.start - inset * f.normal, end=f.end - inset * f.normal) for f in fs]
                 for k, fs in faces.items()}
    if faces:
        X, N = X.copy(), N.copy()
        X[side], N[side], flat = _onto_faces(hull, X[side], N[side], faces)
        Xc, Nc, cut = _sharp_corners(hull, X, side, faces, 4.0 * cfg.hull_refine * hull.voxel)
        X, N, side = np.r_[X[~cut], Xc], np.r_[N[~cut], Nc], np.r_[side[~cut], np.ones(len(Xc), bool)]
        log.info("flat faces: %d sides' points onto the chords between their corners", flat)
    rounded = 0
    if cfg.hull_round_tents:
        X, rounded = _round_tents(hull, X, side, faces, cfg)
        if rounded:
            log.info("curved sides: %d points off the tents between silhouette lines", rounded)
    if faces or rounded:  # the sides moved: which of them stereo measured, again
        add = ~np.isfinite(tree.query(X, distance_upper_bound=cfg.hull_gap * step, workers=-1)[0]) & side
    lid = _plain_lid(hull, X[side], tree, views, image_path, cfg, step, faces)
    # nothing is carved just above the support, where the hull's box starts: an object stands on its
    # footprint, so its lowest sides go on straight down to the support (Poisson would round them inwards);
    # the measured points there are the support's and stereo's fattening of the object's foot, not its sides
    foot = side & (_layer(hull, X) == _layer(hull, X[side]).min())
    down = np.arange(1, int(round((lo[2] - support) / hull.voxel)) + 1)
    X = np.r_[X[add], *(X[foot] - [0.0, 0.0, j * hull.voxel] for j in down), lid]
    N = np.r_[N[add], *(N[foot] for _ in down), np.tile([0.0, 0.0, 1.0], (len(lid), 1))]
    log.info("completing the object: %d points of the free-space hull where stereo measured none", len(X))
    # measured points that depth maps saw through: stereo's fattening at the plain object's shading edges (one
    # pixel off, out into the free space round the object), which Poisson would follow out
    keep = ~seen
    log.info("completing the object: %d measured points in the space the depth maps saw through dropped",
             int((~keep).sum()))
    if info is not None:
        info.update({"added": len(X), "dropped": int((~keep).sum()), "sides_missed": round(missed, 3)})
    out = o3d.geometry.PointCloud(pcd)
    out.points = o3d.utility.Vector3dVector(np.r_[P[keep], X])
    out.normals = o3d.utility.Vector3dVector(np.r_[np.asarray(pcd.normals)[keep], N])
    if pcd.has_colors():  # the colour of the nearest measured point of the object's column
        C = np.asarray(pcd.colors)
        near = np.flatnonzero(column & keep)
        nearest = near[cKDTree(P[near]).query(X, workers=-1)[1]]
        out.colors = o3d.utility.Vector3dVector(np.r_[C[keep], C[nearest]])
    return out


def _footprint(views: list[View], depth_cams, centre: np.ndarray) -> float:
    """A depth map pixel's width at ``centre`` [3] (median over ``views``), the depth maps' focal length read from
    the first of the (camera at its depth map's size, depth map) pairs ``depth_cams`` only: a video's views share
    one lens and one depth map size."""
    cam, _ = next(iter(depth_cams))
    return float(np.median([np.linalg.norm(v.center - centre) for v in views])) / cam.K[0, 0]


def _layer(hull, X: np.ndarray) -> np.ndarray:
    """[N] the hull's layer of each point [N, 3]."""
    return np.floor((X[:, 2] - hull.lo[2]) / hull.voxel).astype(np.int64)


def _faces_by_layer(hull, sides: np.ndarray, gap: float, cfg: MeshConfig) -> dict:
    """Each layer's flat faces (:func:`vid2model.ops.free_space_hull.flat_faces`) from the hull's side points
    [N, 3] in it; the tents they allow from ``gap``, the widest turn (degrees) between neighbouring views."""
    from vid2model.ops.free_space_hull import flat_faces, steady_faces

    layer = _layer(hull, sides)
    out = {}
    for k in np.unique(layer):
        xy = sides[layer == k, :2]
        if len(xy) >= 8:
            f = flat_faces(xy, hull.voxel, gap, corner_deg=cfg.hull_corner_deg,
                           face_turn_deg=cfg.hull_face_turn_deg, corner_reach=4.0 * cfg.hull_refine,
                           slack=cfg.hull_face_slack)
            if f:
                out[int(k)] = f
    return steady_faces(out, layers=3 * cfg.hull_refine)


def _onto_faces(hull, X: np.ndarray, N: np.ndarray, faces: dict) -> tuple[np.ndarray, np.ndarray, int]:
    """The points [N, 3] standing over a flat face of their layer moved onto it, facing out of it, with their
    normals [N, 3]; and how many moved."""
    X, N = X.copy(), N.copy()
    layer = _layer(hull, X)
    moved = 0
    for k, fs in faces.items():
        m = np.flatnonzero(layer == k)
        for f in fs:
            out = f.over(X[m, :2])
            on = np.isfinite(out)
            X[m[on], :2] -= out[on, None] * f.normal
            N[m[on]] = np.r_[f.normal, 0.0]
            moved += int(on.sum())
    return X, N, moved


def _sharp_corners(hull, X: np.ndarray, side: np.ndarray, faces: dict, reach: float):
    """Where two flat faces of a layer meet at a corner: points [M, 3] (and normals [M, 3]) on the two faces'
    lines from where they cross back along each face over the corner's rounding, and the mask [N] of the side
    points of ``X`` [N, 3] (``side`` [N]) in that rounding, which the voxels and the closing cut off. A
    corner's lines must cross within ``reach`` of both chords' ends."""
    layer = _layer(hull, X)
    cut = np.zeros(len(X), bool)
    pts, nrm = [], []
    for k, fs in faces.items():
        if len(fs) < 2:
            continue
        m = np.flatnonzero(side & (layer == k))
        z = hull.lo[2] + (k + 0.5) * hull.voxel
        for f, g in zip(fs, fs[1:] + fs[:1]):
            df, dg = f.end - f.start, g.end - g.start
            df, dg = df / np.linalg.norm(df), dg / np.linalg.norm(dg)
            if abs(f.normal @ g.normal) > np.cos(np.radians(45.0)):  # no corner, or a sliver
                continue
            s, t = np.linalg.solve(np.c_[df, dg], g.start - f.end)  # f.end + s df = g.start - t dg
            if not (0 <= s <= reach and 0 <= t <= reach):
                continue
            c = f.end + s * df
            r = max(s, t) + hull.voxel
            cut[m[np.linalg.norm(X[m, :2] - c, axis=1) <= r]] = True
            for d, n in ((-df, f.normal), (dg, g.normal)):
                a = np.arange(0.0, r, hull.voxel / 2)[:, None]
                pts.append(np.c_[c + a * d, np.full(len(a), z)])
                nrm.append(np.tile(np.r_[n, 0.0], (len(a), 1)))
    if not pts:
        return np.zeros((0, 3)), np.zeros((0, 3)), cut
    return np.concatenate(pts), np.concatenate(nrm), cut


def _round_tents(hull, X: np.ndarray, side: np.ndarray, faces: dict, cfg: MeshConfig) -> tuple[np.ndarray, int]:
    """The side points of ``X`` [N, 3] (``side`` [N]) in each layer without flat faces moved in off the tents
    between the views' silhouette lines (:func:`vid2model.ops.free_space_hull.round_tents`); how many moved."""
    from vid2model.ops.free_space_hull import round_tents

    X = X.copy()
    layer = _layer(hull, X)
    moved = 0
    for k in np.unique(layer[side]):
        if int(k) in faces:
            continue
        m = np.flatnonzero(side & (layer == k))
        if len(m) < 8:
            continue
        xy, on = round_tents(X[m, :2], hull.voxel, max_turn_deg=cfg.hull_tent_turn_deg)
        X[m, :2] = xy
        moved += int(on.sum())
    return X, moved


def _plain_lid(hull, sides: np.ndarray, tree, views: list[View], images, cfg: MeshConfig, step: float,
               faces: dict | None = None) -> np.ndarray:
    """Points [M, 3] of a flat lid on the hull (:meth:`Hull.lid`) where stereo left it unmeasured (``tree``: the
    measured points), when that is at least ``cfg.hull_lid_unmeasured`` of it, no side of the hull (``sides``
    [K, 3]) stands above it (a ball's or a wedge's solid narrows from below its top) and the images are evenly
    lit over it (a rounded top is shaded): the top of a plain box, within the flat faces of the layers round it
    (``faces``, by layer). Empty otherwise."""
    L, inner = hull.lid()
    if not inner.any():
        return np.zeros((0, 3))
    # the lid is the section of the layer two below its height; its tents stand past the sides that layer's
    # faces (or the nearest below's) found: no lid over them
    section = int(round((L[0, 2] - hull.lo[2]) / hull.voxel)) - 2
    k = next((k for k in range(section, section - 4, -1) if k in (faces or {})), None)
    if k is not None:
        over = np.zeros(len(L), bool)
        for f in faces[k]:
            over |= np.isfinite(f.over(L[:, :2]))
        L, inner = L[~over], inner[~over]
        if not inner.any():
            return np.zeros((0, 3))
    unmeasured = ~np.isfinite(tree.query(L, distance_upper_bound=cfg.hull_gap * step, workers=-1)[0])
    if unmeasured[inner].mean() < cfg.hull_lid_unmeasured or (sides[:, 2] > L[0, 2] + step).mean() > 0.02:
        return np.zeros((0, 3))
    spread = _image_spread(images, views, L[inner & unmeasured])
    if spread is None or spread > cfg.hull_lid_spread:
        return np.zeros((0, 3))
    log.info("a plain flat top at %.3f: grey spread %.3f over it", float(L[0, 2]), spread)
    return L[unmeasured]


def _image_spread(image_path, views: list[View], X: np.ndarray, n_views: int = 12) -> float | None:
    """Median over up to ``n_views`` views of the grey spread (0-1) of the image at the points ``X`` [M, 3]
    in front of them: a flat top of one colour is evenly lit, a ball's shading changes over it. None when
    nothing can tell (no images, too few points)."""
    import cv2

    if image_path is None or len(X) < 20:
        return None
    spreads = []
    for v in views[:: max(1, len(views) // n_views)]:
        path = image_path(v.name)
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path.exists() else None
        if img is None:
            continue
        cam = v.resized(img.shape[1], img.shape[0])
        uv, z = cam.project(X)
        col, row = pixel_index(uv).T
        ok = (z > 0) & (col >= 0) & (row >= 0) & (col < img.shape[1]) & (row < img.shape[0])
        if ok.sum() >= 20:
            q1, q3 = np.percentile(img[row[ok], col[ok]] / 255.0, [25, 75])
            spreads.append(float(q3 - q1) / 1.349)  # a std that the few points over the outline do not sway
    return float(np.median(spreads)) if spreads else None


def _depth_views(ws: Workspace, views: list[View]):
    """(camera, depth map) of each view with a depth map, read one at a time."""
    for v in views:
        path = _depth_path(ws, v)
        if path is not None:
            yield v, np.nan_to_num(read_array(path), nan=0.0, posinf=0.0)


def _write(mesh, path: Path) -> None:
    import open3d as o3d

    with atomic_path(path) as tmp:
        if not o3d.io.write_triangle_mesh(str(tmp), mesh, write_ascii=False, print_progress=False):
            raise OSError(f"could not write {path}")


def _object_center(views: list[View], scene: dict[str, Any]) -> np.ndarray:
    """What the cameras circle: their look-at point when they converge, else the scene centre."""
    centers = np.array([v.center for v in views])
    forward = np.array([v.R[2] for v in views])  # camera +z in world coordinates
    c = C.look_at_center(centers, forward) if len(views) >= 3 else None
    return c if c is not None else np.asarray(scene.get("center") or [0.0, 0.0, 0.0], float)


def cleanup(mesh, cfg: MeshConfig, *, voxel: float, radius: float, center: np.ndarray, orbit: bool,
            up: np.ndarray, views: list[View] | None = None) -> tuple[Any, dict[str, Any]]:
    """The cleanup chain of the stage (floaters, isolation, floor, holes, smoothing, decimation).

    Isolation keeps what most cameras see when ``views`` are given (objects larger than the scene
    radius, or cut by the frame, stay whole), else what lies within ``isolate_radius`` scene radii.
    """
    info: dict[str, Any] = {}
    n0 = len(mesh.triangles)
    mesh = C.remove_small_components(mesh, cfg.min_component_share)
    info["floater_faces_removed"] = n0 - len(mesh.triangles)
    if cfg.isolate:
        if orbit and views:
            share = C.view_share(np.asarray(mesh.vertices), views)
            mesh = C.isolate_by_views(mesh, share, cfg.isolate_view_share * share.max(), center,
                                      cfg.isolate_grow_share * share.max())
        elif orbit:
            mesh = C.isolate_object(mesh, center, cfg.isolate_radius * radius)
        else:
            log.warning("--isolate applies to orbit captures; this capture is a walk-through, keeping everything")
    if cfg.drop_floor:
        mesh = C.drop_floor(mesh, up=up, distance=2 * voxel)
    if cfg.fill_holes or (cfg.watertight and not orbit):
        mesh = C.fill_holes(mesh, 1e9 if cfg.watertight else cfg.max_hole_size * radius)
    mesh = C.smooth(mesh, cfg.smooth_iterations)
    if cfg.watertight and orbit:
        mesh, info["closed"] = close_product(mesh, radius, voxel)
    mesh = C.decimate(mesh, cfg.target_faces)
    mesh = C.tidy(mesh)
    mesh.compute_vertex_normals()
    return mesh, info


def close_product(mesh, radius: float, voxel: float) -> tuple[Any, dict[str, Any]]:
    """The orbit's object as a closed solid standing on its support (see :mod:`vid2model.ops.close_object`),
    coloured from the nearest surface the cameras saw; what it adds (its bottom) is reported."""
    from scipy.spatial import cKDTree

    from vid2model.ops.close_object import close_on_support, crossing_faces, standing_object

    V, F = C.arrays(mesh)
    st = standing_object(V, F, radius)
    closed = close_on_support(V, F, st, voxel) if st is not None else None
    if closed is None:
        raise UserError("--watertight closes an object standing on a floor or table, and no support was found "
                        "under the object in the middle of the orbit: film it standing on a table, with the "
                        "table top in view, or drop --watertight")
    Vc, Fc = closed
    colors = None
    if mesh.has_vertex_colors():
        colors = np.asarray(mesh.vertex_colors)[cKDTree(V).query(Vc)[1]]
    out = C.to_o3d(Vc, Fc, colors)
    for _ in range(3):  # Poisson's surface can fold through itself by a hair where it turns sharply
        bad = crossing_faces(*C.arrays(out))
        if not len(bad):
            break
        out.remove_triangles_by_index(bad.tolist())
        out.remove_unreferenced_vertices()
        out = C.fill_holes(out, 1e9)
    Vc, Fc = C.arrays(out)
    seen = np.abs(Vc[:, 2] - st.base) > 2 * voxel
    a, b, c = Vc[Fc[:, 0]], Vc[Fc[:, 1]], Vc[Fc[:, 2]]
    volume = float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6)
    info = {"support_height": round(st.base, 6), "volume": round(volume, 9),
            "vertices_on_the_added_bottom": int((~seen).sum())}
    log.info("closed the object on its support at z=%.4f: volume %.6g", st.base, info["volume"])
    return out, info


def run(ws: Workspace, cfg: MeshConfig) -> dict[str, Any]:
    """Surface extraction and cleanup; see the module docstring."""
    held = set(ws.read_json(ws.holdout_json, default=[]) or [])  # views kept out for evaluation
    views = [v for v in load_views(ws.dense_sparse_dir) if v.name not in held]
    scene = ws.read_json(ws.scene_json, default={}) or {}
    radius = float(scene.get("radius") or 1.0)
    up = np.asarray(scene.get("up") or [0.0, 0.0, 1.0], float)
    summary: dict[str, Any] = {"method": cfg.method}
    t0 = time.perf_counter()
    if cfg.method == "tsdf":
        med, high, focal = _depth_stats(ws, views)
        voxel = choose_voxel(cfg, radius, med, focal)
        mesh, summary["views_fused"] = _tsdf(ws, views, voxel, depth_max=high * 1.05, trunc=cfg.sdf_trunc_voxels)
    elif cfg.method == "poisson":
        voxel = cfg.voxel_size or radius / cfg.voxel_divisions
        mesh, summary["poisson_depth"], hull = _poisson(ws, voxel, cfg, views, scene)
        if cfg.complete_hull:
            summary["hull_points"] = hull.get("added", 0)
            summary["hull"] = hull
    else:
        raise UserError(f"unknown mesh method {cfg.method!r}: use tsdf or poisson")
    mesh = C.tidy(mesh)
    if len(mesh.triangles) == 0:
        raise UserError("surface extraction produced no triangles: the depth maps are too sparse")
    _write(mesh, ws.raw_mesh)
    n_raw = len(mesh.triangles)
    summary["surface_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    center = _object_center(views, scene)
    mesh, info = cleanup(mesh, cfg, voxel=voxel, radius=radius, center=center,
                         orbit=scene.get("capture", "orbit") == "orbit", up=up, views=views)
    if len(mesh.triangles) == 0:
        raise UserError("cleanup removed the whole mesh: rerun without --isolate / drop_floor")
    _write(mesh, ws.clean_mesh)
    summary["cleanup_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    written = {}
    for faces, lod in C.lods(mesh, cfg.lods).items():
        _write(lod, ws.lod_mesh(faces))
        written[faces] = len(lod.triangles)
    summary["lods_s"] = round(time.perf_counter() - t0, 2)
    summary.update(info)
    summary.update({"voxel_size": voxel, "raw_faces": n_raw, "faces": len(mesh.triangles),
                    "vertices": len(mesh.vertices), "lods": written, "watertight": is_closed(*C.arrays(mesh)),
                    "object_center": [float(x) for x in center]})
    return summary
