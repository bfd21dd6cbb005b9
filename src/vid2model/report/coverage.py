"""Where the cameras were: azimuth/elevation around the object, the arcs never filmed, SfM quality."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vid2model.workspace import Workspace, atomic_path


def camera_angles(centers: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0]),
                  ref: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth (deg, [0, 360)) and elevation (deg) of camera centres (N, 3) seen from ``target``.

    Azimuth 0 is the direction of ``ref`` (e.g. the first camera) projected on the ground plane,
    counter-clockwise seen from above; without ``ref`` it is the world X axis.
    """
    up = np.asarray(up, float) / np.linalg.norm(up)
    r = np.asarray(ref, float) - target if ref is not None else np.array([1.0, 0.0, 0.0])
    r = r - up * (r @ up)
    if np.linalg.norm(r) < 1e-9:
        r = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        r = r - up * (r @ up)
    e1 = r / np.linalg.norm(r)
    e2 = np.cross(up, e1)
    v = np.asarray(centers, float) - target
    az = np.degrees(np.arctan2(v @ e2, v @ e1)) % 360
    el = np.degrees(np.arctan2(v @ up, np.hypot(v @ e1, v @ e2)))
    return az, el


def _empty_arcs(az: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start [N] and width [N] (degrees, counter-clockwise) of the arcs between neighbouring cameras' azimuths
    [N] (N >= 1)."""
    s = np.sort(np.asarray(az, float) % 360)
    return s, np.diff(np.append(s, s[0] + 360))


def azimuth_gaps(az: np.ndarray, min_gap: float = 45.0) -> list[tuple[float, float]]:
    """Arcs (start, end) in degrees, counter-clockwise, wider than ``min_gap`` with no camera."""
    if len(az) == 0:
        return [(0.0, 360.0)]
    return [(round(float(a % 360), 1), round(float((a + w) % 360), 1)) for a, w in zip(*_empty_arcs(az))
            if w > min_gap]


def widest_gap(az: np.ndarray) -> float:
    """The widest arc (degrees) with no camera between the azimuths ``az`` [N]."""
    return float(_empty_arcs(az)[1].max()) if len(az) else 360.0


def _side_name(a: float, b: float) -> str:
    """Plain name of an arc relative to where filming started (azimuth 0 = first camera)."""
    mid = (a + ((b - a) % 360) / 2) % 360
    names = ["the side where filming started", "the left side", "the back of the object", "the right side"]
    return names[int(((mid + 45) % 360) // 90)]


def _plot(az: np.ndarray, el: np.ndarray, top: np.ndarray, capture: str, gaps: list, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(10, 4.2))
    ax = fig.add_subplot(1, 2, 1, projection="polar")
    ax.scatter(np.radians(az), 90 - el, s=16, c=np.arange(len(az)), cmap="viridis", zorder=3)
    for a, b in gaps:  # arcs never filmed, shaded red
        span = (b - a) % 360
        ax.bar(np.radians(a + span / 2), 90, width=np.radians(span), bottom=0, color="#e04040", alpha=0.15)
    ax.set_rmax(max(90.0, float(np.max(90 - el)) + 5 if len(el) else 90.0))
    ax.set_title("cameras around the object: azimuth (0° = first frame),\nradius = 90° − elevation "
                 "(centre = straight above)", fontsize=8)
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.plot(top[:, 0], top[:, 1], "-", lw=0.8, color="#9090c0")
    ax2.scatter(top[:, 0], top[:, 1], s=14, c=np.arange(len(top)), cmap="viridis", zorder=3)
    ax2.plot([0], [0], "k+", ms=12)
    ax2.set_aspect("equal", adjustable="datalim")
    ax2.set_title(f"top view of the camera path ({capture}; + = scene centre)", fontsize=8)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def coverage_section(ws: Workspace, n_keyframes: int) -> dict[str, Any] | None:
    """Coverage facts and advice once ``sparse/0`` exists; None before camera solving."""
    if not ws.has_cameras:
        return None
    from vid2model.io.colmap import load_views, read_model

    views = load_views(ws.sparse_dir)
    rec = read_model(ws.sparse_dir)
    scene = ws.read_json(ws.scene_json, default={}) or {}
    centers = np.array([v.center for v in views]).reshape(-1, 3)
    target = np.array(scene.get("center") or (centers.mean(0) if len(centers) else np.zeros(3)), float)
    up = np.array(scene.get("up") or [0, 0, 1], float)
    capture = scene.get("capture", "orbit")
    az, el = camera_angles(centers, target, up, ref=centers[0] if len(centers) else None)
    advice = []
    gaps = azimuth_gaps(az) if capture == "orbit" and len(az) else []
    for a, b in gaps:
        advice.append(f"{_side_name(a, b)}, {a:.0f}°–{b:.0f}° around from where filming started, has no "
                      f"usable view: it was never filmed, or only blurred ({(b - a) % 360:.0f}° of the object); "
                      f"film that side too, slowly")
    if capture == "orbit" and len(el) >= 3 and float(el.max() - el.min()) < 15:
        advice.append(f"all views are from about the same height ({el.min():.0f}°–{el.max():.0f}° elevation): "
                      f"add a pass from higher up so the top is seen")
    share = len(views) / max(n_keyframes, 1)
    if n_keyframes and share < 0.9:
        advice.append(f"only {len(views)} of {n_keyframes} keyframes could be placed ({100 * share:.0f}%): film "
                      f"slower, with more overlap and fewer blurred frames")
    mre = float(rec.compute_mean_reprojection_error()) if len(views) else float("nan")
    if np.isfinite(mre) and mre > 2.0:
        advice.append(f"camera solving is imprecise (mean reprojection error {mre:.1f} px): avoid blur, moving "
                      f"objects and zooming")
    stages = (ws.read_manifest() if ws.manifest_path.exists() else {}).get("stages", {})
    hull = ((stages.get("mesh") or {}).get("summary") or {}).get("hull") or {}
    if hull.get("added"):
        advice.append("the object's surface is plain (evenly coloured) and stereo could not measure it reliably: its "
                      "shape is the outline the views saw round it, so hollows and fine relief are not in the model; "
                      "a patterned sticker or cloth on it would let them be measured")
    texture = stages.get("texture") or {}
    completed = (texture.get("summary") or {}).get("completed_share")
    if completed and completed >= 0.005:
        advice.append(f"{100 * completed:.1f} % of the model's surface was never seen by any keyframe (an underside, "
                      f"a hidden side) and is coloured from the surface around it, not from a photo; film it from "
                      f"there too where it matters")
    plot = ws.coverage_png
    if len(centers):
        e1 = np.cross(up, np.cross(centers[0] - target, up))
        e1 = e1 / (np.linalg.norm(e1) or 1.0)
        rel = centers - target
        top = np.stack([rel @ e1, rel @ np.cross(up / np.linalg.norm(up), e1)], 1)
        _plot(az, el, top, capture, gaps, plot)
    return {"registered": len(views), "keyframes": n_keyframes, "registered_share": round(share, 4),
            "mean_reprojection_error_px": round(mre, 4) if np.isfinite(mre) else None,
            "n_points": int(rec.num_points3D()), "capture": capture, "azimuth_gaps_deg": gaps,
            "azimuth_deg": [round(float(a), 2) for a in az], "elevation_deg": [round(float(x), 2) for x in el],
            "elevation_range_deg": [float(el.min()), float(el.max())] if len(el) else None,
            "scale": scene.get("scale", "arbitrary"), "findings": advice, "texture_completed_share": completed,
            "plot": plot.name if len(centers) else None}
