"""``vid2model measure``: the filmed object's dimensions in metres (or relative units), each with its
uncertainty and the scale it rests on; writes ``measure/measure.json``.

The model is gravity-aligned (+Z up) with its origin at the point an orbit looks at (the SfM stage's scene
frame), so the object stands on the highest large horizontal level below the origin.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np

from vid2model.errors import UserError
from vid2model.ops.measure import object_faces, support_level, upright_box
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


def _surface_error(ws: Workspace, V: np.ndarray, F: np.ndarray, corners: np.ndarray, pad: float) -> float | None:
    """Robust spread (1.4826 x median absolute distance) of the fused dense points about the object's mesh:
    how far the measured surface scatters around the one the figures are taken from."""
    import open3d as o3d

    from vid2model.io.colmap_dense import read_points_ply

    if not ws.fused_ply.exists():
        return None
    pts = read_points_ply(ws.fused_ply)["xyz"]
    lo, hi = corners.min(0) - pad, corners.max(0) + pad
    pts = pts[np.all((pts >= lo) & (pts <= hi), axis=1)]
    if len(pts) < 50:
        return None
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(V.astype(np.float32)), o3d.core.Tensor(F.astype(np.uint32)))
    d = scene.compute_distance(o3d.core.Tensor(pts.astype(np.float32))).numpy()
    d = d[d <= pad]  # points of other surfaces (the support, neighbours) are not this surface's noise
    return float(1.4826 * np.median(d)) if len(d) >= 50 else None


def measure_object(ws: Workspace, known_size: str | None = None) -> dict[str, Any]:
    """Measure the object an orbit films; writes ``measure/measure.json`` and returns it (plus ``_human``,
    the table printed for the user)."""
    import trimesh

    if not ws.clean_mesh.exists():
        raise UserError(f"{ws.root} has no mesh to measure; run: vid2model mesh {ws.root}")
    scene = ws.read_json(ws.scene_json, default=None)
    if not scene or scene.get("up") is None:
        raise UserError("the workspace has no gravity-aligned scene frame (scene.json); rerun: vid2model sfm WS --force")
    if scene.get("capture", "orbit") != "orbit":
        raise UserError("object measurements need an orbit around the object; this capture is a walk-through")
    mesh = trimesh.load(ws.clean_mesh, process=False)
    V, F = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)
    if len(F) == 0:
        raise UserError("the mesh is empty; nothing to measure")
    radius = float(scene["radius"])
    # the mesh's voxel is about radius / 200: levels are binned finer, and three voxels of Poisson's rounded
    # join between object and support are left out of the object
    cut = 0.015 * radius
    base = support_level(V, F, top=0.0, bin_size=0.004 * radius)
    stands = base is not None
    if base is None:
        base, cut = float(V[:, 2].min()), 0.0
    obj = object_faces(V, F, np.zeros(2), base, cut, reach=0.5 * radius)
    if not obj.any():
        raise UserError("no object stands near the centre of the orbit; film around the object, keeping it in "
                        "the middle of the view")
    box = upright_box(V, F[obj], base, cut)
    noise = _surface_error(ws, V, F[obj], box.corners, pad=0.02 * radius)

    metric = scene.get("scale") == "metric"
    k, source, rel = 1.0, scene.get("scale_source", "none") if metric else "none", scene.get("scale_rel_uncertainty")
    if not metric:
        rel = None
    note = ""
    if known_size:
        dim, value = parse_known_size(known_size)
        measured = getattr(box, dim)
        k = value / measured
        if metric:
            note = (f"the {source}'s scale makes the box {dim} {measured:.4f} m, {100 * (k - 1):+.1f} % from the "
                    f"known {value:.4f} m; the known size is used")
        source = f"known size (box {dim} = {value:g} m)"
        metric = True
        # the known side's own surface noise (two faces) is now the scale's uncertainty
        rel = (np.sqrt(2) * noise / measured) if noise is not None else None
    unit = "m" if metric else "relative units"

    def fig(value: float, faces: int = 2, power: int = 1) -> dict[str, Any]:
        v = value * k ** power
        parts = []
        if rel is not None:
            parts.append(power * rel * v)
        if noise is not None and power == 1:
            parts.append(np.sqrt(faces) * noise * k)
        unc = float(np.hypot.reduce(parts)) if parts else None
        u = unit if power == 1 else (f"{unit}^{power}" if metric else "relative units")
        return {"value": round(float(v), 6), "uncertainty": None if unc is None else round(unc, 6), "unit": u}

    out = {
        "units": unit,
        "scale_source": source,
        "scale_rel_uncertainty": None if rel is None else round(float(rel), 5),
        "surface_noise": None if noise is None else round(float(noise * k), 6),
        "object": {
            **{d: fig(getattr(box, d)) for d in DIMENSIONS},
            "footprint": fig(box.footprint, power=2),
            "surface_area": fig(box.surface, power=2),
            "volume": None if box.volume is None else fig(box.volume, power=3),
            "yaw_deg": round(box.yaw_deg, 2),
            "stands_on": {"height": round(box.base * k, 6), "found": stands},
            "corners": np.round(box.corners * k, 6).tolist(),
            "faces": box.n_faces,
        },
        "notes": [n for n in (note, "" if box.volume is not None else
                              "volume: the surface is open somewhere other than its base (a side or top no camera "
                              "saw); no volume is given") if n],
    }
    if not metric:
        out["notes"].append("no scale: the model is in relative units; film an ArUco marker (--marker-size) or give "
                            "--known-size \"box height=0.30\"")
    ws.write_json(ws.measure_json, out)
    return {**out, "_human": table(out)}


def table(m: dict[str, Any]) -> str:
    """The measurements as printed: one line per figure, each with its unit and uncertainty."""
    def line(name: str, f: dict[str, Any] | None) -> str:
        if f is None:
            return f"  {name:13s} -"
        unc = f" ± {f['uncertainty']:.4g}" if f.get("uncertainty") is not None else " (uncertainty unknown)"
        return f"  {name:13s} {f['value']:.4g}{unc} {f['unit']}"

    o = m["object"]
    lines = [f"object (scale: {m['scale_source']}; units: {m['units']})"]
    lines += [line(d, o[d]) for d in DIMENSIONS]
    lines += [line("footprint", o["footprint"]), line("surface area", o["surface_area"]), line("volume", o["volume"])]
    lines += [f"note: {n}" for n in m["notes"]]
    return "\n".join(lines)
