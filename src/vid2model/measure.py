"""``vid2model measure``: the filmed object's dimensions (an orbit) or the room's walls, floor and ceiling (a
walk-through), in metres or relative units, each with its uncertainty and the scale it rests on; writes
``measure/measure.json`` (and a walk-through's floor plan with its doors and windows, ``measure/floorplan.svg``,
``.json`` and ``.dxf``).

The model is gravity-aligned (+Z up) with its origin at the point an orbit looks at (the SfM stage's scene
frame), so the object stands on the highest large horizontal level below the origin.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vid2model.errors import UserError
from vid2model.ops.close_object import standing_object
from vid2model.ops.measure import face_geometry, fit_level, girth_profile, upright_box
from vid2model.ops.openings import wall_openings
from vid2model.ops.room import floor_plan_svg, room_layout, write_floor_plan_dxf
from vid2model.workspace import Workspace

log = logging.getLogger("vid2model")

DIMENSIONS = ("height", "width", "depth")
_KNOWN = re.compile(r"^\s*(?:box\s+)?(height|width|depth)\s*=\s*([0-9.]+)\s*(m|cm|mm)?\s*$")
_UNIT = {"m": 1.0, "cm": 0.01, "mm": 0.001, None: 1.0}


def parse_known_size(text: str) -> tuple[str, float]:
    """``"box height=0.30"`` (metres; ``cm`` or ``mm`` may follow) -> ("height", 0.30)."""
    m = _KNOWN.match(text or "")
    if not m or float(m.group(2)) <= 0:
        raise UserError(f"--known-size must look like \"box height=0.30\" (height, width or depth, in metres, "
                        f"or with cm / mm after the number), not {text!r}")
    return m.group(1), float(m.group(2)) * _UNIT[m.group(3)]


_VIEW = re.compile(r"^\s*([^:/]+):\s*(-?[0-9.]+)\s*,\s*(-?[0-9.]+)\s*$")


def parse_point(text: str) -> list[tuple[str, float, float]]:
    """``"A.jpg:412,300/B.jpg:398,310"`` -> [(image, column, row), ...]: one spot marked in two or more
    keyframes, at the pixel's 0-based column and row as an image viewer shows them."""
    views = [_VIEW.match(part) for part in (text or "").split("/")]
    if len(views) < 2 or not all(views):
        raise UserError(f"--point must mark one spot in two or more keyframes, like \"A.jpg:412,300/B.jpg:398,310\" "
                        f"(column,row of the pixel in each image), not {text!r}")
    return [(m.group(1).strip(), float(m.group(2)), float(m.group(3))) for m in views]


def triangulate_point(rec, views: list[tuple[str, float, float]], max_px: float = 3.0,
                      click_px: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The 3D point [3] the marked pixels see, and its covariance [3, 3] for pixels marked to within
    ``click_px`` (each coordinate, independently). A spot whose pixels do not meet within ``max_px`` of
    reprojection in every view is refused: they do not mark the same spot."""
    from vid2model.camera import Camera, image_coords
    from vid2model.ops.marker import triangulate

    cams, uvs = [], []
    for name, x, y in views:
        img = rec.find_image_with_name(name)
        if img is None or not img.has_pose:
            raise UserError(f"--point names {name}, which is not among the solved keyframes (see the images/ folder)")
        cams.append(Camera.from_colmap(img, img.camera, lens=True))
        uvs.append(image_coords(np.array([[x, y]], float)))

    def solve(uv: list[np.ndarray]) -> np.ndarray:
        return triangulate([c.rays(u)[0, :2] for c, u in zip(cams, uv)], [c.R for c in cams], [c.t for c in cams])

    X = solve(uvs)
    for (name, _, _), cam, uv in zip(views, cams, uvs):
        proj, z = cam.project(X[None])
        err = float(np.linalg.norm(proj[0] - uv[0]))
        if z[0] <= 0 or err > max_px:
            raise UserError(f"the pixels given by --point do not mark one spot: it lands {err:.1f} px from the "
                            f"pixel given in {name}; mark the same spot in each image")
    cov = np.zeros((3, 3))
    for i in range(len(uvs)):
        for a in range(2):
            uv = [u.copy() for u in uvs]
            uv[i][0, a] += click_px
            d = solve(uv) - X
            cov += np.outer(d, d)
    return X, cov


def _surface_error(pts: np.ndarray | None, V: np.ndarray, F: np.ndarray, corners: np.ndarray,
                   pad: float) -> float | None:
    """Robust spread (1.4826 x median absolute distance) of the fused dense points [P, 3] (:func:`_dense_points`)
    about the object's mesh: how far the measured surface scatters around the one the figures are taken from."""
    import open3d as o3d

    if pts is None:
        return None
    lo, hi = corners.min(0) - pad, corners.max(0) + pad
    pts = pts[np.all((pts >= lo) & (pts <= hi), axis=1)]
    if len(pts) < 50:
        return None
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(V.astype(np.float32)), o3d.core.Tensor(F.astype(np.uint32)))
    d = scene.compute_distance(o3d.core.Tensor(pts.astype(np.float32))).numpy()
    d = d[d <= pad]  # points of other surfaces (the support, neighbours) are not this surface's noise
    return float(1.4826 * np.median(d)) if len(d) >= 50 else None


GIRTH_SLICES = 40


def _mesh(ws: Workspace) -> tuple[np.ndarray, np.ndarray] | None:
    """The cleaned mesh's vertices [N, 3] and triangles [M, 3], or None when there is none yet."""
    import trimesh

    if not ws.clean_mesh.exists():
        return None
    mesh = trimesh.load(ws.clean_mesh, process=False)
    V, F = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)
    if len(F) == 0:
        raise UserError("the mesh is empty; nothing to measure")
    return V, F


def _standing_box(ws: Workspace, scene: dict[str, Any], V: np.ndarray, F: np.ndarray) -> tuple[Any, Any, float | None]:
    """What stands at the orbit's centre (:func:`~vid2model.ops.close_object.standing_object`), its upright
    :class:`~vid2model.ops.measure.ObjectBox` and the surface noise about it."""
    radius = float(scene["radius"])
    st = standing_object(V, F, radius)
    if st is None:
        raise UserError("no object stands near the centre of the orbit; film around the object, keeping it in "
                        "the middle of the view")
    points = _dense_points(ws)
    box = upright_box(V, F[st.faces], st.base, st.cut, skirt=st.skirt, bin_size=0.004 * radius,
                      measured=_measured_faces(points, V, F[st.faces], reach=MEASURED_REACH * radius), points=points)
    return st, box, _surface_error(points, V, F[st.faces], box.corners, pad=0.02 * radius)


# A triangle with no dense point within this share of the scene's radius (the mesh's voxel) is surface Poisson
# drew where the cameras measured nothing
MEASURED_REACH = 0.005


def _measured_faces(pts: np.ndarray | None, V: np.ndarray, F: np.ndarray, reach: float) -> np.ndarray | None:
    """Which triangles [M] of ``F`` have a fused dense point within ``reach`` of each corner (None without points).

    Where the dense points thin out (the top of a box's side seen only at a grazing angle), screened Poisson
    bulges past the true surface by a centimetre or more, in as much surface as a flat side's edge holds; an
    extent taken from it is that much too large."""
    from scipy.spatial import cKDTree

    if pts is None or not len(F):
        return None
    used = np.unique(F)
    lo, hi = V[used].min(0) - reach, V[used].max(0) + reach
    near = pts[np.all((pts >= lo) & (pts <= hi), axis=1)]
    if len(near) < 50:
        return None
    ok = np.zeros(len(V), bool)
    ok[used] = np.isfinite(cKDTree(near).query(V[used], distance_upper_bound=reach)[0])
    return ok[F].all(1)


def _object(ws: Workspace, scene: dict[str, Any], V: np.ndarray, F: np.ndarray) -> tuple[Any, float | None, np.ndarray]:
    """The object's :class:`~vid2model.ops.measure.ObjectBox`, the surface noise about it and its girth profile
    [GIRTH_SLICES, 2] (height above its base, girth)."""
    st, box, noise = _standing_box(ws, scene, V, F)
    # slice centres over the height, clear of Poisson's flared join with the support at the foot
    z = st.base + st.skirt + (box.height - st.skirt) * (np.arange(GIRTH_SLICES) + 0.5) / GIRTH_SLICES
    return box, noise, np.c_[z - st.base, girth_profile(V, F[st.faces], z)]


def _body(ws: Workspace, scene: dict[str, Any], V: np.ndarray, F: np.ndarray) -> tuple[Any, Any, float | None]:
    """The :class:`~vid2model.ops.body.Body` standing at the orbit's centre, its upright box and the surface
    noise about it."""
    from vid2model.ops.body import body_measurements

    st, box, noise = _standing_box(ws, scene, V, F)
    body = body_measurements(V, F[st.faces], st.base)
    if body is None:
        raise UserError("no body standing on two legs at the centre of the orbit: film all round a person "
                        "standing feet apart, arms held away from the body (or measure it with --subject object)")
    return body, box, noise


def _garment(ws: Workspace, scene: dict[str, Any], V: np.ndarray, F: np.ndarray) -> tuple[Any, float | None]:
    """The :class:`~vid2model.ops.garment.FlatGarment` lying under the cameras and the surface noise about it."""
    from vid2model.ops.garment import flat_garment
    from vid2model.ops.measure import horizontal_levels

    radius = float(scene["radius"])
    bin_size = 0.004 * radius
    levels = horizontal_levels(V, F, bin_size, axis_xy=np.zeros(2), reach=1.5 * radius)
    if not levels:
        raise UserError("no table or floor under the cameras: film the garment from above, laid flat")
    big = max(a for _, a in levels)
    table_z = min(z for z, a in levels if a >= 0.25 * big)
    cen, area, nrm = face_geometry(V, F)
    plane = fit_level(cen, area, nrm[:, 2] > 0.95, table_z, 2 * bin_size)
    edges, read = _photo_edges(ws, radius)
    g = flat_garment(V, F, plane, np.zeros(2), reach=1.3 * radius, pixel=radius / 1000, edges=edges)
    if g is None:
        raise UserError("no garment lying flat under the cameras: lay it out flat on a table of another colour, "
                        "front up, and film it from above all round")
    lo, hi = g.outline.min(0), g.outline.max(0)
    corners = np.array([[lo[0], lo[1], plane[2] - g.thickness], [hi[0], hi[1], plane[2] + 2 * g.thickness]])
    g = replace(g, outline_read_share=read.get("share", 0.0))
    return g, _surface_error(_dense_points(ws), V, F, corners, pad=0.0)


def _photo_edges(ws: Workspace, radius: float) -> tuple[Any, dict[str, float]]:
    """The callable :func:`~vid2model.ops.garment.flat_garment` moves the mesh's outline with (onto the
    edges the undistorted keyframes show; None without them) and what it read ({"share": outline share})."""
    import cv2

    from vid2model.io.colmap import load_views
    from vid2model.ops.garment_edges import fit_edges

    read: dict[str, float] = {}
    if not ws.has_dense_cameras:
        return None, read
    held = set(ws.read_json(ws.holdout_json, default=[]) or [])
    views = [v for v in load_views(ws.dense_sparse_dir) if v.name not in held
             and ws.undistorted_image(v.name).exists()]
    if len(views) < 3:
        return None, read

    def photos():
        for v in views:
            img = cv2.imread(str(ws.undistorted_image(v.name)), cv2.IMREAD_COLOR)
            if img is not None and img.shape[:2] == (v.height, v.width):
                yield v, img

    def edges(ring, top_z, floor_z):
        moved, fit = fit_edges(ring, top_z, floor_z, photos(), search=0.012 * radius, reach=0.025 * radius,
                               step=radius / 2000)
        read["share"] = round(fit.read_share, 4)
        # a garment the photos cannot tell from its table keeps the mesh's outline
        return moved if fit.read_share >= 0.5 else None

    return edges, read


def _room(ws: Workspace, scene: dict[str, Any], V: np.ndarray, F: np.ndarray) -> tuple[Any, float | None, list]:
    """The :class:`~vid2model.ops.room.Room` a walk-through's mesh shows, the surface noise about it and the
    :class:`~vid2model.ops.openings.Opening` s in its walls (their edges read from the dense points)."""
    radius = float(scene["radius"])
    room = room_layout(V, F, bin_size=0.004 * radius)
    if room is None:
        raise UserError("no room in this model: it needs the floor and two facing walls in each direction; film "
                        "the walls all around, holding the camera level")
    lo, hi = room.corners.min(0), room.corners.max(0)
    box = np.array([lo, [hi[0], hi[1], room.ceiling if room.ceiling is not None else V[:, 2].max()]])
    points = _dense_points(ws)
    return room, _surface_error(points, V, F, box, pad=0.01 * radius), wall_openings(
        V, F, room, bin_size=0.004 * radius, points=points)


def _dense_points(ws: Workspace) -> np.ndarray | None:
    """The fused dense points [P, 3] the mesh was made from, or None when there are none."""
    from vid2model.io.colmap_dense import read_points_ply

    return read_points_ply(ws.fused_ply)["xyz"] if ws.fused_ply.exists() else None


SUBJECTS = ("auto", "object", "body", "garment", "room")


def measure(ws: Workspace, known_size: str | None = None, points: list[str] | tuple[str, ...] = (),
            subject: str = "auto") -> dict[str, Any]:
    """Measure what was filmed and the distances between ``points`` (pairs of ``--point`` strings, see
    :func:`parse_point`); ``known_size`` (``"box height=0.30"``) sets the scale. ``subject``: ``object`` (an
    orbit's upright box, girths, volume), ``body`` (a person standing in an orbit: height, chest, waist, hips,
    thigh), ``garment`` (a garment laid flat and filmed from above: its outline and flat measurements),
    ``room`` (a walk-through's walls, floor plan and ceiling) or ``auto`` (object for an orbit, room for a
    walk-through). Writes ``measure/measure.json`` and returns it (plus ``_human``, the table printed for the
    user)."""
    if subject not in SUBJECTS:
        raise UserError(f"--subject must be one of {', '.join(SUBJECTS)}, not {subject!r}")
    scene = ws.read_json(ws.scene_json, default=None)
    if not scene or scene.get("up") is None:
        raise UserError(f"{ws.root} has no solved cameras in a scene frame; run: vid2model sfm {ws.root}")
    if len(points) % 2:
        raise UserError("--point comes in pairs: each two give one distance")
    marked = [parse_point(p) for p in points]
    mesh = _mesh(ws)
    if mesh is None and not marked:
        raise UserError(f"{ws.root} has no mesh to measure; run: vid2model mesh {ws.root}")
    capture = scene.get("capture", "orbit")
    if subject == "auto":
        subject = "object" if capture == "orbit" else "room"
    if mesh is not None and (capture == "orbit") != (subject != "room"):
        raise UserError(f"this workspace is {'a walk-through' if capture == 'walk' else 'an orbit'}; --subject "
                        f"{subject} needs {'an orbit' if subject != 'room' else 'a walk-through'}")
    box = room = girths = noise = body = garment = None
    openings: list = []
    if mesh is not None and subject == "object":
        box, noise, girths = _object(ws, scene, *mesh)
    elif mesh is not None and subject == "body":
        body, box, noise = _body(ws, scene, *mesh)
    elif mesh is not None and subject == "garment":
        garment, noise = _garment(ws, scene, *mesh)
    elif mesh is not None:
        room, noise, openings = _room(ws, scene, *mesh)

    metric = scene.get("scale") == "metric"
    k, source = 1.0, scene.get("scale_source", "none") if metric else "none"
    rel = scene.get("scale_rel_uncertainty") if metric else None
    notes = []
    if known_size:
        dim, value = parse_known_size(known_size)
        if box is None:
            raise UserError("--known-size names a side of the object's box, and this workspace has no object to "
                            "measure (it needs a mesh of an orbit)")
        measured = getattr(box, dim)
        k = value / measured
        if metric:
            notes.append(f"the {source}'s scale makes the box {dim} {measured:.4f} m, {100 * (k - 1):+.1f} % from "
                         f"the known {value:.4f} m; the known size is used")
        source = f"known size (box {dim} = {value:g} m)"
        metric = True
        # the known side's own surface noise (two faces) is now the scale's uncertainty
        rel = (np.sqrt(2) * noise / measured) if noise is not None else None
    unit = "m" if metric else "relative units"
    fig = Figures(k, rel, unit)
    out: dict[str, Any] = {"units": unit, "scale_source": source,
                           "scale_rel_uncertainty": None if rel is None else round(float(rel), 5),
                           "surface_noise": None if noise is None else round(float(noise * k), 6), "object": None,
                           "room": None, "body": None, "garment": None, "distances": [], "notes": notes}
    if body is not None:
        out["body"] = _body_figures(fig, body, box, noise)
    elif box is not None:
        out["object"] = _object_figures(fig, box, noise, girths)
        if box.volume is None:
            notes.append("volume: the surface is open somewhere other than its base (a side or top no camera saw); "
                         "no volume is given")
    if garment is not None:
        out["garment"] = _garment_figures(fig, garment, noise)
        notes += _write_garment_outline(ws, garment, fig.k, unit)
    if room is not None:
        out["room"] = _room_figures(fig, room, noise, openings)
        if room.height is None:
            notes.append("ceiling: no ceiling in the model (the cameras did not look up at it); no height is given")
        if not openings:
            notes.append("openings: none found (a door or window is a hole in a wall through which the model shows "
                         "what lies beyond)")
        for i, o in enumerate(openings):
            if o.unseen_edges:
                notes.append(f"opening {i + 1}: the wall beside its {' and '.join(o.unseen_edges)} edge is not in the "
                             f"model (not filmed); that edge is where the unseen wall begins, so its size there is a "
                             f"guess")
        notes += _write_floor_plan(ws, replace(room, walls=[w["value"] for w in out["room"]["walls"]],
                                               corners=room.corners * k), out["room"], source, unit,
                                   [o.scaled(k) for o in openings])
    if marked:
        from vid2model.io.colmap import read_model

        rec = read_model(ws.sparse_dir)
        spots = [triangulate_point(rec, m) for m in marked]
        for (a, ca), (b, cb) in zip(spots[::2], spots[1::2]):
            u = (b - a) / max(float(np.linalg.norm(b - a)), 1e-12)
            out["distances"].append({"from": np.round(a * k, 6).tolist(), "to": np.round(b * k, 6).tolist(),
                                     **fig(float(np.linalg.norm(b - a)), [float(np.sqrt(u @ (ca + cb) @ u))])})
    if not metric:
        notes.append("no scale: the model is in relative units; film an ArUco marker (--marker-size) or give "
                     "--known-size \"box height=0.30\"")
    ws.write_json(ws.measure_json, out)
    return {**out, "_human": table(out)}


@dataclass(frozen=True)
class Figures:
    """Model-unit values as reported figures: times the scale ``k`` (to its power for areas and volumes), with
    an uncertainty from the scale's relative one (``rel``) and the value's own standard errors."""

    k: float
    rel: float | None
    unit: str

    def __call__(self, value: float, spread: list[float], power: int = 1) -> dict[str, Any]:
        v = value * self.k ** power
        parts = [power * self.rel * v] if self.rel is not None else []
        parts += [x * self.k ** power for x in spread]
        unc = float(np.hypot.reduce(parts)) if parts else None
        u = self.unit if power == 1 or self.unit != "m" else f"{self.unit}^{power}"
        return {"value": round(float(v), 6), "uncertainty": None if unc is None else round(unc, 6), "unit": u}


def _object_figures(fig: Figures, box, noise: float | None, girths: np.ndarray) -> dict[str, Any]:
    two = [np.sqrt(2) * noise] if noise is not None else []  # a size spans two surfaces
    return {
        **{d: fig(getattr(box, d), two) for d in DIMENSIONS},
        "footprint": fig(box.footprint, [], power=2),
        "surface_area": fig(box.surface, [], power=2),
        "volume": None if box.volume is None else fig(box.volume, [], power=3),
        "yaw_deg": round(box.yaw_deg, 2),
        "stands_on": round(box.base * fig.k, 6),
        # a surface offset by d changes a convex outline's perimeter by 2 pi d
        "girths": [{"height": round(float(h * fig.k), 6), "girth": fig(g, [2 * np.pi * noise] if noise else [])}
                   for h, g in girths if np.isfinite(g)],
        "corners": np.round(box.corners * fig.k, 6).tolist(),
        "faces": box.n_faces}


def _body_figures(fig: Figures, body, box, noise: float | None) -> dict[str, Any]:
    tape = [2 * np.pi * noise] if noise is not None else []  # a surface offset by d lengthens a girth by 2 pi d
    return {"height": fig(body.height, [noise] if noise is not None else []),
            **{k: fig(getattr(body, k), tape) for k in ("chest", "waist", "hips", "thigh")},
            "levels": {k: round(float(v * fig.k), 6) for k, v in body.levels.items()},
            "girths": [{"height": round(float(z * fig.k), 6),
                        "torso": None if not np.isfinite(t) else round(float(t * fig.k), 6),
                        "leg": None if not np.isfinite(g) else round(float(g * fig.k), 6)}
                       for z, t, g in body.profile[::4]],
            "box": {d: fig(getattr(box, d), [np.sqrt(2) * noise] if noise is not None else []) for d in DIMENSIONS},
            "definitions": "girths round the convex outline of horizontal sections (a tape); hips fullest within "
                           "0.12 of the height above the crotch, waist narrowest 0.09-0.24 above it, chest "
                           "fullest 0.20-0.33 above it, thigh fullest 0.02-0.08 below it"}


def _garment_figures(fig: Figures, g, noise: float | None) -> dict[str, Any]:
    # a width spans two edges; an edge's place is as good as the outline's wander about its course, or the
    # surface's noise where that is larger
    edge = max(g.edge_noise, noise or 0.0)
    two = [np.sqrt(2) * edge]
    # the sleeves of a garment laid out symmetric are one length read twice: where they disagree, the mean is
    # as uncertain as half their difference (a cuff's edge lost in one of them)
    sleeves = two + [0.5 * abs(g.sleeves[0] - g.sleeves[1])]
    return {**{k: fig(getattr(g, k), two) for k in ("length", "chest_width", "waist_width", "hem_width")},
            "sleeve_length": fig(g.sleeve_length, sleeves),
            "sleeves": [round(float(v * fig.k), 6) for v in g.sleeves],
            "thickness": round(float(g.thickness * fig.k), 6), "centre_line_deg": round(g.axis_deg, 2),
            "edge_noise": round(float(g.edge_noise * fig.k), 6),
            "symmetry": round(g.symmetry, 4),
            "outline_from_photos": g.outline_read_share,
            "definitions": "along the centre line: length from the shoulders' highest point to the hem; chest width "
                           "0.035 of the length below the armpits; waist width the narrowest between; hem width just "
                           "above the hem; sleeve length from the shoulder point along the sleeve's top edge"}


def _write_garment_outline(ws: Workspace, g, k: float, unit: str) -> list[str]:
    """``measure/garment.svg`` and ``garment.json``: the outline on the table, in output units."""
    pts = g.outline * k
    ws.write_json(ws.garment_json, {"units": unit, "outline": np.round(pts, 5).tolist()})
    lo, hi = pts.min(0), pts.max(0)
    pad = 0.05 * float(np.max(hi - lo))
    w, h = (hi - lo) + 2 * pad
    path = " ".join(f"{x - lo[0] + pad:.4f},{hi[1] - y + pad:.4f}" for x, y in pts[::2])
    ws.write_text(ws.garment_svg,
                  f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w:.4f} {h:.4f}" width="{w * 1000:.0f}" '
                  f'height="{h * 1000:.0f}"><polygon points="{path}" fill="#dde7f5" stroke="#234" '
                  f'stroke-width="{0.003 * max(w, h):.4f}"/></svg>\n')
    return []


def _opening_figures(fig: Figures, o) -> dict[str, Any]:
    """One opening's figures; its edges' uncertainty is how they scatter along their length (their position is
    read across the wall's surface, which the surface noise, normal to it, hardly moves)."""
    return {"wall": o.wall + 1, "kind": o.kind, "from_corner": fig(o.start, [o.start_se]),
            "width": fig(o.width, [o.width_se]), "height": fig(o.height, [o.height_se]),
            "sill": fig(o.sill, [o.sill_se]), "center": np.round(o.center * fig.k, 6).tolist(),
            "seen_through": o.seen_through, "unseen_edges": list(o.unseen_edges)}


def _room_figures(fig: Figures, room, noise: float | None, openings: list = ()) -> dict[str, Any]:
    two = [np.sqrt(2) * noise] if noise is not None else []  # a length between two measured surfaces
    sides = sorted(room.walls[:2])
    rel_area = np.hypot(*[np.sqrt(2) * noise / w for w in sides]) if noise is not None else None
    return {
        "walls": [fig(w, two) for w in room.walls], "width": fig(sides[0], two), "length": fig(sides[1], two),
        "ceiling_height": None if room.height is None else fig(room.height, two),
        "floor_area": fig(room.floor_area, [rel_area * room.floor_area] if rel_area is not None else [], power=2),
        "corners": np.round(room.corners * fig.k, 6).tolist(), "wall_direction_deg": round(room.angle_deg, 2),
        "wall_surface_seen": [fig(a, [], power=2)["value"] for a in room.wall_area],
        "shape": "rectangle (four walls at right angles)",
        # wall n runs from corner n to corner n + 1; from_corner is along it from corner n
        "openings": [_opening_figures(fig, o) for o in openings]}


def _write_floor_plan(ws: Workspace, room, figures: dict[str, Any], source: str, unit: str,
                      openings: list = ()) -> list[str]:
    """``measure/floorplan.svg``, ``.json`` and (with ezdxf) ``.dxf`` of ``room`` and its ``openings`` in output
    units; returns notes."""
    from vid2model.workspace import atomic_path

    ws.write_text(ws.floor_plan_svg, floor_plan_svg(room, unit, openings=openings))
    ws.write_json(ws.floor_plan_json, {"units": unit, "scale_source": source, **figures})
    try:
        with atomic_path(ws.floor_plan_dxf) as tmp:
            write_floor_plan_dxf(room, tmp, unit, openings=openings)
    except ImportError:
        return ["floor plan: no DXF (pip install ezdxf); SVG and JSON are written"]
    return []


def table(m: dict[str, Any]) -> str:
    """The measurements as printed: one line per figure, each with its unit and uncertainty."""
    def line(name: str, f: dict[str, Any] | None) -> str:
        if f is None:
            return f"  {name:16s} -"
        unc = f" ± {f['uncertainty']:.4g}" if f.get("uncertainty") is not None else " (uncertainty unknown)"
        return f"  {name:16s} {f['value']:.4g}{unc} {f['unit']}"

    o = m["object"]
    lines = [f"scale: {m['scale_source']}; units: {m['units']}"]
    if o is not None:
        lines.append("object")
        lines += [line(d, o[d]) for d in DIMENSIONS]
        lines += [line("footprint", o["footprint"]), line("surface area", o["surface_area"]),
                  line("volume", o["volume"])]
        if o["girths"]:
            g = max(o["girths"], key=lambda x: x["girth"]["value"])
            lines.append(line(f"girth at {g['height']:.3g}", g["girth"]))  # the largest; every level in the JSON
    b = m.get("body")
    if b is not None:
        lines.append("body")
        lines += [line(k, b[k]) for k in ("height", "chest", "waist", "hips", "thigh")]
    g = m.get("garment")
    if g is not None:
        lines.append("garment (laid flat)")
        lines += [line(k.replace("_", " "), g[k]) for k in ("length", "chest_width", "waist_width", "hem_width",
                                                           "sleeve_length")]
    r = m.get("room")
    if r is not None:
        lines.append("room")
        lines += [line("length", r["length"]), line("width", r["width"]), line("ceiling height", r["ceiling_height"]),
                  line("floor area", r["floor_area"])]
        lines += [line(f"wall {i + 1}", w) for i, w in enumerate(r["walls"])]
        for i, o in enumerate(r.get("openings", [])):
            lines.append(f"  opening {i + 1}: {o['kind']} in wall {o['wall']}")
            lines += [line(f"  {key}", o[key]) for key in ("width", "height", "sill", "from_corner")
                      if key != "sill" or o["kind"] == "window"]
    if m["distances"]:
        lines.append("between the marked points")
        lines += [line(f"distance {i + 1}", d) for i, d in enumerate(m["distances"])]
    lines += [f"note: {n}" for n in m["notes"]]
    return "\n".join(lines)
