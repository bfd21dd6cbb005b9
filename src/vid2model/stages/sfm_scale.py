"""Metric scale for the SfM stage: an ArUco marker of known size, or a known camera-to-camera distance."""

from __future__ import annotations

import logging

import numpy as np

from vid2model.camera import Camera, image_coords, index_coords
from vid2model.config import SfmConfig
from vid2model.errors import UserError
from vid2model.ops.marker import corners_on_plane, detect_aruco, fit_plane, fit_square, marker_edge_length, square_edge
from vid2model.workspace import Workspace

log = logging.getLogger("vid2model")

# a rigid square whose median corner reprojects worse than this is not what the detections saw (decodes of
# texture, a bent print)
_MAX_SQUARE_ERROR_PX = 1.0
# views too close together to fix the square's distance leave its size this uncertain or worse: the
# corners' own triangulation and the local plane decide as before
_MAX_SQUARE_REL = 0.01
# The fit holds the cameras fixed, so its standard error leaves out how far the solved cameras' own scale is
# from the truth round the marker: on synthetic captures with exactly known markers the fitted square and the
# cameras' similarity to the truth disagree by about this much (bench/results/marker-square-2026-12-06.md)
_CAMERAS_REL = 0.001
# a marker seen in fewer keyframes than this is looked for again in the others, more slowly
_FEW_VIEWS = 8


def _plane_near(rec, img, corners_px: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Plane of the sparse points this image sees around (and on) the marker; None if too few."""
    c = corners_px.mean(0)
    # A wide neighbourhood: markers are small; points off the marker's plane are dropped below.
    reach = max(4 * np.linalg.norm(corners_px - c, axis=1).max(), 0.1 * np.hypot(img.camera.width, img.camera.height))
    pts = [rec.point3D(p.point3D_id).xyz for p in img.points2D
           if p.has_point3D() and np.linalg.norm(index_coords(np.asarray(p.xy)) - c) < reach]
    if len(pts) < 6:
        return None
    pts = np.array(pts)
    n, d = fit_plane(pts)
    for _ in range(2):  # drop points off the plane (the object next to the marker), refit
        res = np.abs(pts @ n - d)
        keep = res <= max(3 * np.median(res), 1e-12)
        if keep.sum() < 6:
            return None
        n, d = fit_plane(pts[keep])
    return n, d


def _detections(ws: Workspace, rec):
    """(image, camera, {marker id: corners [4, 2]}) of each registered keyframe that shows a marker; where few
    do, the others are searched again the thorough way (:func:`detect_aruco`)."""
    import cv2

    seen, unseen = [], []
    for image_id in sorted(rec.reg_image_ids()):  # capture order (see fit_square)
        img = rec.image(image_id)
        gray = cv2.imread(str(ws.keyframe_image(img.name)), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            continue
        cam = Camera.from_colmap(img, img.camera, lens=True)
        found = detect_aruco(gray)
        (seen if found else unseen).append((img, cam, found))
    if len(seen) < _FEW_VIEWS:
        for img, cam, _ in unseen:
            gray = cv2.imread(str(ws.keyframe_image(img.name)), cv2.IMREAD_GRAYSCALE)
            found = detect_aruco(gray, thorough=True) if gray is not None else {}
            if found:
                seen.append((img, cam, found))
        seen.sort(key=lambda x: x[0].image_id)
    return seen


def _marker_scale(ws: Workspace, rec, size: float) -> tuple[float, float] | None:
    """Metres per model unit from each view's marker corners, and its relative uncertainty (from how far the
    corners' edges disagree, or the views' measures).

    Per view, the corner rays meet the plane of the sparse points around the marker (its support is
    measured by many features, so this holds for a marker seen in one view, small, or at a grazing
    angle). With several views a rigid square is fitted to all of its detections at once
    (:func:`vid2model.ops.marker.fit_square`), started from the corners triangulated one by one. Decodes that
    do not form a square are ignored.
    """
    per_view: dict[int, list[tuple[float, float]]] = {}
    obs: dict[int, list] = {}
    for img, cam, found in _detections(ws, rec):
        for mid, corners in found.items():
            uv = image_coords(corners.astype(np.float64))  # the detector's pixel centres are at integers
            focal = float(np.sqrt(cam.K[0, 0] * cam.K[1, 1]))
            obs.setdefault(mid, []).append((cam.rays(uv)[:, :2], cam.R, cam.t, focal))
            plane = _plane_near(rec, img, corners)
            if plane is not None:
                xyz = corners_on_plane(cam, uv, *plane)
                if xyz is not None:
                    edge, spread = square_edge(xyz)
                    if spread < 0.1:
                        per_view.setdefault(mid, []).append((edge, spread))
    # Several views measure the square directly where they agree on one; the per-view plane measure takes over
    # for markers seen once or from close views.
    best: tuple[int, float, float] | None = None
    for mid in set(obs) | set(per_view):
        views, edge = obs.get(mid, []), None
        if len(views) >= 2:
            tri, corners, spread = marker_edge_length([v[:3] for v in views])
            fit = fit_square(views, corners)
            if fit is not None and fit[3] < _MAX_SQUARE_ERROR_PX and fit[2] < _MAX_SQUARE_REL:
                edge, rel = fit[0], float(np.hypot(fit[2], _CAMERAS_REL))
                how = f"a square fitted to {len(views)} views ({fit[3]:.2f} px median error)"
            elif spread < (0.03 if len(views) >= 3 else 0.015):
                # the six edge and diagonal estimates rest on four corners
                edge, rel, how = tri, spread / 2, f"triangulated from {len(views)} views"
        if edge is None and per_view.get(mid):
            edges = np.array([e for e, _ in per_view[mid]])
            edge = float(np.median(edges))
            rel = (float(edges.std() / edge / np.sqrt(len(edges) - 1)) if len(edges) > 2
                   else max(sp for _, sp in per_view[mid]) / 2)
            how = f"on the local plane in {len(edges)} views"
        if edge is None:
            continue
        log.info("marker %d: edge %.4f model units (+-%.2f %%), %s", mid, edge, 100 * rel, how)
        n = max(len(views), len(per_view.get(mid, [])))
        if best is None or n > best[0]:
            best = (n, edge, rel)
    return None if best is None else (size / best[1], best[2])


def metric_scale(ws: Workspace, rec, cfg: SfmConfig) -> tuple[float | None, str, float | None]:
    """Scale factor model units -> metres, where it came from ('marker', 'known_distance' or 'none') and its
    relative uncertainty (None where unknown)."""
    if cfg.marker_size > 0:
        s = _marker_scale(ws, rec, cfg.marker_size)
        if s is None:
            raise UserError("--marker-size was given but no ArUco marker (DICT_4X4_50) could be measured in the "
                            "keyframes: print one, lay it flat and keep it in view, or drop --marker-size")
        return s[0], "marker", s[1]
    if cfg.known_distance > 0:
        names = [n.strip() for n in cfg.known_distance_images.split(",") if n.strip()]
        if len(names) != 2:
            raise UserError("a known distance needs two image names: --set sfm.known_distance_images=A.jpg,B.jpg")
        centers = []
        for n in names:
            img = rec.find_image_with_name(n)
            if img is None or not img.has_pose:
                raise UserError(f"image {n} is not among the solved cameras")
            centers.append(np.asarray(img.projection_center()))
        d = float(np.linalg.norm(centers[0] - centers[1]))
        if d <= 0:
            raise UserError("the two images for the known distance were taken from the same place")
        return cfg.known_distance / d, "known_distance", None
    return None, "none", None
