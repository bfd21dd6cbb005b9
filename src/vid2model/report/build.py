"""Build the report from whatever the workspace holds (ingest always; coverage after SfM)."""

from __future__ import annotations

import html
import logging
from pathlib import Path

from vid2model.report.coverage import azimuth_gaps, camera_angles
from typing import Any

import numpy as np

from vid2model.workspace import Workspace, atomic_path

log = logging.getLogger("vid2model")


def _plot_timeline(ws: Workspace, frames: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([f["timestamp"] for f in frames], float)
    key = np.array([f.get("keyframe", False) for f in frames])
    fig, axes = plt.subplots(3, 1, figsize=(10, 6), sharex=True)
    series = [("relative sharpness", [f.get("rel_sharpness", 1.0) for f in frames]),
              ("exposure (EV)", [f["ev"] for f in frames]),
              ("motion (% of diagonal)", [100 * (f["motion"] or 0) for f in frames])]
    for ax, (label, y) in zip(axes, series):
        y = np.asarray(y, float)
        ax.plot(t, y, lw=1.2, color="#3060c0")
        ax.scatter(t[key], y[key], s=14, color="#e04040", zorder=3, label="keyframe")
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("time (s)" if len(t) and t[-1] != len(t) - 1 else "frame")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def _plot_coverage(az: np.ndarray, el: np.ndarray, centers: np.ndarray, capture: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(9, 4))
    ax = fig.add_subplot(1, 2, 1, projection="polar")
    ax.scatter(np.radians(az), 90 - el, s=12, color="#e04040")
    ax.set_rmax(90)
    ax.set_title("cameras around the object\n(azimuth; centre = straight above)", fontsize=9)
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.plot(centers[:, 0], centers[:, 1], "-o", ms=3, color="#3060c0")
    ax2.plot([0], [0], "k+", ms=12)
    ax2.set_aspect("equal")
    ax2.set_title("top view of the camera path", fontsize=9)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def _thumbnails(ws: Workspace, names: list[str], folder: Path, limit: int = 60) -> list[str]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    step = max(1, len(names) // limit)
    out = []
    for name in names[::step]:
        src = ws.images_dir / name
        if not src.exists():
            continue
        dst = folder / (Path(name).stem + ".jpg")
        if not dst.exists():
            with Image.open(src) as im:
                im.thumbnail((160, 160))
                im.convert("RGB").save(dst, quality=80)
        out.append(dst.name)
    return out


def _coverage(ws: Workspace, n_keyframes: int) -> dict[str, Any] | None:
    if not (ws.sparse_dir / "images.bin").exists():
        return None
    from vid2model.io.colmap import load_views, read_model

    views = load_views(ws.sparse_dir)
    rec = read_model(ws.sparse_dir)
    scene = ws.read_json(ws.scene_json, default={}) or {}
    centers = np.array([v.center for v in views])
    target = np.array(scene.get("center", centers.mean(0) if len(centers) else [0, 0, 0]), float)
    up = np.array(scene.get("up", [0, 0, 1]), float)
    az, el = camera_angles(centers, target, up)
    capture = scene.get("capture", "orbit")
    gaps = azimuth_gaps(az) if capture == "orbit" else []
    plot = ws.report_dir / "coverage.png"
    if len(centers):
        _plot_coverage(az, el, centers - target, capture, plot)
    advice = []
    for a, b in gaps:
        width = (b - a) % 360
        advice.append(f"the object was never filmed from {a:.0f}° to {b:.0f}° ({width:.0f}° of its sides): "
                      f"film that side too")
    share = len(views) / max(n_keyframes, 1)
    if share < 0.95:
        advice.append(f"only {len(views)} of {n_keyframes} keyframes could be placed: film slower with more overlap")
    return {"registered": len(views), "keyframes": n_keyframes, "registered_share": round(share, 4),
            "mean_reprojection_error_px": round(float(rec.compute_mean_reprojection_error()), 4),
            "n_points": int(rec.num_points3D()), "capture": capture, "azimuth_gaps_deg": gaps,
            "elevation_range_deg": [float(el.min()), float(el.max())] if len(el) else None,
            "scale": scene.get("scale", "arbitrary"), "findings": advice,
            "plot": plot.name if plot.exists() else None}


def build_report(ws: Workspace) -> dict[str, Any]:
    """(Re)build ``report/index.html`` and ``report/report.json`` from the workspace's data."""
    frames = ws.read_json(ws.frames_json, default=None)
    keyframes = ws.read_json(ws.keyframes_json, default={}) or {}
    ws.report_dir.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"workspace": str(ws.root)}
    if frames:
        data["source"] = frames.get("source")
        data["n_frames"] = len(frames["frames"])
        data["findings"] = frames.get("findings", [])
        _plot_timeline(ws, frames["frames"], ws.report_dir / "timeline.png")
        data["timeline_plot"] = "timeline.png"
    names = [k["name"] for k in keyframes.get("keyframes", [])]
    data["keyframes"] = [{"name": k["name"], "timestamp": k.get("timestamp")} for k in keyframes.get("keyframes", [])]
    data["thumbnails"] = _thumbnails(ws, names, ws.report_dir / "thumbs") if names else []
    data["coverage"] = _coverage(ws, len(names))
    exports = sorted(p.name for p in ws.export_dir.glob("model.*")) if ws.export_dir.exists() else []
    data["exports"] = exports
    ws.write_json(ws.report_json, data)
    with atomic_path(ws.report_html) as tmp:
        tmp.write_text(_html(data), encoding="utf-8")
    return {"report": str(ws.report_html), "_human": f"report: {ws.report_html}"}


def _html(d: dict[str, Any]) -> str:
    e = html.escape
    items = d.get("findings", []) + [{"message": m, "kind": "coverage"} for m in
                                      (d.get("coverage") or {}).get("findings", [])]
    finding_html = "".join(f"<li class='{e(f['kind'])}'>{e(f['message'])}</li>" for f in items) or \
        "<li class='ok'>No capture problems found.</li>"
    src = d.get("source") or {}
    meta = ", ".join(f"{k}: {e(str(v))}" for k, v in src.items() if k in ("codec", "width", "height", "fps",
                                                                           "duration", "rotation", "n_images"))
    thumbs = "".join(f"<figure><img src='thumbs/{e(t)}'><figcaption>{e(t)}</figcaption></figure>"
                     for t in d.get("thumbnails", []))
    cov = d.get("coverage")
    cov_html = "<p>Cameras not solved yet (run <code>vid2model sfm</code>).</p>"
    if cov:
        cov_html = (f"<p>{cov['registered']} of {cov['keyframes']} keyframes placed "
                    f"({100 * cov['registered_share']:.0f}%), mean reprojection error "
                    f"{cov['mean_reprojection_error_px']:.2f} px, {cov['n_points']} points, scale: {e(cov['scale'])}.</p>")
        if cov.get("plot"):
            cov_html += f"<img class='plot' src='{e(cov['plot'])}' alt='coverage'>"
    links = []
    if "model.glb" in d.get("exports", []):
        links.append("<a href='../export/model.glb'>model.glb</a>")
    links.append("<a href='../site/index.html'>product viewer</a> · <a href='../site/splat.html'>splat viewer</a> "
                 "(after <code>vid2model publish WORKSPACE -o WORKSPACE/site</code>)")
    timeline = f"<img class='plot' src='{e(d['timeline_plot'])}' alt='timeline'>" if d.get("timeline_plot") else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>vid2model report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}}
li.blur,li.too_fast,li.exposure_jump,li.too_dark,li.static,li.too_short,li.coverage{{color:#a02020}}
img.plot{{max-width:100%;border:1px solid #ddd}} .strip{{display:flex;flex-wrap:wrap;gap:6px}}
figure{{margin:0;font-size:10px;text-align:center}} figure img{{height:90px}}</style></head><body>
<h1>Capture report</h1><p>{meta}</p>
<h2>Findings</h2><ul id="findings">{finding_html}</ul>
<h2>Timeline</h2>{timeline}
<h2>Keyframes ({len(d.get('keyframes', []))})</h2><div class="strip">{thumbs}</div>
<h2>Coverage</h2>{cov_html}
<h2>Results</h2><p>{' · '.join(links)}</p>
</body></html>"""
