"""Build the report from whatever the workspace holds (ingest always; coverage after SfM)."""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any

import numpy as np

from vid2model.report.coverage import coverage_section
from vid2model.workspace import Workspace, atomic_dir, atomic_path

log = logging.getLogger("vid2model")
SHADE = {"blur": "#f0a0a0", "too_fast": "#f0c080", "too_slow": "#c0c0f0", "too_dark": "#b0b0b0",
         "overexposed": "#f0f0a0"}


def _plot_timeline(frames: list[dict[str, Any]], findings: list[dict[str, Any]], video: bool, out: Path) -> None:
    """Sharpness, exposure and motion over time, keyframes as red dots, problems shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([f["timestamp"] for f in frames], float)
    key = np.array([bool(f.get("keyframe", False)) for f in frames])
    fig, axes = plt.subplots(3, 1, figsize=(10, 6.5), sharex=True)
    series = [("relative sharpness", [f.get("rel_sharpness", 1.0) for f in frames]),
              ("exposure (EV)", [f["ev"] for f in frames]),
              ("motion (% of diagonal\nper frame)", [100 * (f.get("motion") or 0) for f in frames])]
    for ax, (label, y) in zip(axes, series):
        y = np.asarray(y, float)
        for f in findings:
            if f["kind"] in SHADE and f.get("end") is not None:
                ax.axvspan(f["start"] - 0.02, f["end"] + 0.02, color=SHADE[f["kind"]], alpha=0.5, lw=0)
            elif f["kind"] == "exposure_jump":
                ax.axvline(f["start"], color="#d08000", lw=1.5, ls="--")
        ax.plot(t, y, lw=1.2, color="#3060c0")
        ax.scatter(t[key], y[key], s=16, color="#e04040", zorder=3, label="keyframe")
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    axes[-1].set_xlabel("time (s)" if video else "image number")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def _thumbnails(ws: Workspace, names: list[str], limit: int = 60) -> list[str]:
    """Small JPEGs of (at most ``limit``, evenly spaced) keyframes in report/thumbs/."""
    from PIL import Image

    step = max(1, int(np.ceil(len(names) / limit)))
    out = []
    with atomic_dir(ws.thumbs_dir) as tmp:
        for name in names[::step]:
            src = ws.keyframe_image(name)
            if not src.exists():
                continue
            dst = ws.thumb(name, root=tmp)
            with Image.open(src) as im:
                im.thumbnail((200, 160))
                im.convert("RGB").save(dst, quality=80)
            out.append(dst.name)
    return out


def build_report(ws: Workspace) -> dict[str, Any]:
    """(Re)build ``report/index.html`` and ``report/report.json`` from the workspace's data.

    Safe to call at any point: sections whose inputs are missing (or unreadable) are left out.
    """
    frames = ws.read_json(ws.frames_json, default=None) or {}
    keyframes = ws.read_json(ws.keyframes_json, default={}) or {}
    ws.report_dir.mkdir(parents=True, exist_ok=True)
    video = keyframes.get("video", bool(frames.get("source", {}).get("codec")))
    data: dict[str, Any] = {"workspace": str(ws.root), "video": video, "source": frames.get("source"),
                            "n_frames": len(frames.get("frames", [])), "findings": frames.get("findings", [])}
    for k in ("fps", "duration", "rotation", "source_size", "working_size", "focal_prior_px"):
        if k in keyframes:
            data[k] = keyframes[k]
    if frames.get("frames"):
        try:
            _plot_timeline(frames["frames"], data["findings"], video, ws.timeline_png)
            data["timeline_plot"] = ws.timeline_png.name
        except Exception as exc:  # a plot must never sink the report
            log.warning("timeline plot failed: %s", exc)
    kf = keyframes.get("keyframes", [])
    data["keyframes"] = [{"name": k["name"], "index": k.get("index"), "timestamp": k.get("timestamp"),
                          "sharpness": k.get("sharpness")} for k in kf]
    data["thumbnails"] = _thumbnails(ws, [k["name"] for k in kf]) if kf else []
    try:
        data["coverage"] = coverage_section(ws, len(kf))
    except Exception as exc:  # e.g. a model being written right now
        log.warning("coverage section skipped: %s", exc)
        data["coverage"] = None
    check = ws.read_json(ws.camera_check_json, default=None)
    data["camera_check"] = None
    if isinstance(check, dict):
        data["camera_check"] = {k: check.get(k) for k in ("verdict", "pairs_judged", "pairs_disagreeing",
                                                         "unplaced_spans", "focal_std_rel", "reason", "broken_links",
                                                         "focal_warning")}
        probes = check.get("probes") or {}
        data["camera_check"].update(probes_tested=probes.get("tested"), probes_agreeing=probes.get("agreeing"),
                                    bridges=len(check.get("bridges") or []))
    data["view_checks"] = _view_checks(ws)
    data["exports"] = [p.name for p in ws.exported_models()]
    data["viewer"] = "../site/index.html" if ws.site_html.exists() else None
    ws.write_json(ws.report_json, data)
    with atomic_path(ws.report_html) as tmp:
        tmp.write_text(_html(data), encoding="utf-8")
    n_find = len(data["findings"]) + len((data["coverage"] or {}).get("findings", []))
    return {"report": str(ws.report_html), "findings": n_find,
            "_human": f"report: {ws.report_html} ({n_find} findings)"}


def _view_checks(ws: Workspace) -> dict[str, Any]:
    """Per trained view model (splat, nerf): held-out and training PSNR and the stage's verdict on them."""
    try:
        stages = ws.read_manifest().get("stages", {}) if ws.manifest_path.exists() else {}
    except Exception as exc:  # a manifest being rewritten right now: the next refresh has it
        log.warning("view checks skipped: %s", exc)
        return {}
    out = {}
    for name in ("splat", "nerf"):
        s = (stages.get(name) or {}).get("summary") or {}
        if stages.get(name, {}).get("status") == "done" and s.get("held_out_check"):
            out[name] = {"eval_psnr": s.get("eval_psnr"), "train_psnr": s.get("train_psnr"),
                         "eval_views": s.get("eval_views"), **s["held_out_check"]}
    return out


def _view_check_html(checks: dict[str, Any]) -> str:
    e = html.escape
    label = {"splat": "Splats", "nerf": "Radiance field"}
    out = []
    for name, c in checks.items():
        psnr = f"held-out PSNR {c['eval_psnr']:.1f} dB on {c['eval_views']} views" if c.get("eval_psnr") is not None \
            else "no views held out"
        tail = f": {e(c['reason'])}" if c.get("reason") else ""
        out.append(f"<p id='view-check-{name}' class='{e(str(c.get('verdict')))}'>{label[name]}: {psnr} "
                   f"({e(str(c.get('verdict')))}){tail}.</p>")
    return "".join(out)


def _html(d: dict[str, Any]) -> str:
    e = html.escape
    items = d.get("findings", []) + [{"message": m, "kind": "coverage"} for m in
                                      (d.get("coverage") or {}).get("findings", [])]
    finding_html = "".join(f"<li class='bad {e(f['kind'])}'>{e(f['message'])}</li>" for f in items) or \
        "<li class='ok'>No capture problems found.</li>"
    src = d.get("source") or {}
    facts = {"codec": src.get("codec"), "pixel format": src.get("pix_fmt"),
             "size": "×".join(map(str, d["source_size"])) if d.get("source_size") else None,
             "working size": "×".join(map(str, d["working_size"])) if d.get("working_size") else None,
             "frame rate": f"{d['fps']:.2f} fps" if d.get("fps") else None,
             "duration": f"{d['duration']:.1f} s" if d.get("duration") else None,
             "rotation": f"{d['rotation']}°" if d.get("rotation") else None,
             "images": src.get("n_images"), "frames analysed": d.get("n_frames") or None,
             "focal prior": f"{d['focal_prior_px']:.0f} px" if d.get("focal_prior_px") else None}
    meta = " · ".join(f"{k}: {e(str(v))}" for k, v in facts.items() if v)
    thumbs = "".join(
        f"<figure><img src='thumbs/{e(t)}' alt='{e(t)}'><figcaption>{e(k)}</figcaption></figure>"
        for t, k in zip(d.get("thumbnails", []), _thumb_captions(d)))
    cov = d.get("coverage")
    cov_html = "<p>Cameras not solved yet (run <code>vid2model sfm WORKSPACE</code>).</p>"
    if cov:
        cov_html = (f"<p>{cov['registered']} of {cov['keyframes']} keyframes placed "
                    f"({100 * cov['registered_share']:.0f}%), mean reprojection error "
                    f"{cov['mean_reprojection_error_px'] or float('nan'):.2f} px, {cov['n_points']} points, "
                    f"scale: {e(str(cov['scale']))}, capture: {e(str(cov['capture']))}.</p>")
        if cov.get("plot"):
            cov_html += f"<img class='plot' src='{e(cov['plot'])}' alt='camera coverage'>"
    chk = d.get("camera_check")
    if chk:
        spans = "; ".join(chk.get("unplaced_spans") or [])
        verdict = {"ok": "every placed camera is confirmed by its own image pairs",
                   "partial": f"the largest verified part was kept; left out: {spans}",
                   "refused": f"refused: {chk.get('reason') or 'the cameras cannot be trusted'}"}
        cov_html += (f"<p id='camera-check' class='{e(str(chk.get('verdict')))}'>Camera check: "
                     f"{e(verdict.get(chk.get('verdict'), str(chk.get('verdict'))))} "
                     f"({chk.get('pairs_judged')} image pairs judged, {chk.get('pairs_disagreeing')} disagree).</p>")
        if chk.get("focal_warning"):
            cov_html += f"<p id='focal-warning'>Warning: {e(chk['focal_warning'])}.</p>"
        if chk.get("probes_tested"):
            broken = "; ".join(chk.get("broken_links") or [])
            cov_html += (f"<p id='held-out'>Frames held out of the solve: {chk['probes_agreeing']} of "
                         f"{chk['probes_tested']} sit where the cameras say"
                         + (f"; the link between keyframes is contradicted at {e(broken)}" if broken else "")
                         + ".</p>")
        if chk.get("bridges"):
            cov_html += (f"<p id='bridges'>{chk['bridges']} frames between keyframes that shared few matches "
                         "joined the solve (film more slowly where views change fast).</p>")
    links = [f"<a href='../export/{e(x)}'>{e(x)}</a>" for x in d.get("exports", [])]
    if d.get("viewer"):
        links.insert(0, f"<a href='{e(d['viewer'])}'>interactive viewer</a>")
    results = " · ".join(links) or ("No model exported yet (<code>vid2model run</code> finishes with "
                                   "<code>export/model.glb</code>; <code>vid2model publish</code> makes a viewer).")
    timeline = (f"<img class='plot' src='{e(d['timeline_plot'])}' alt='timeline'>"
                "<p class='legend'>Red dots: keyframes. Shaded: blur (red), too fast (orange), too slow (blue), "
                "too dark (grey), overexposed (yellow); dashed: lighting jump.</p>") if d.get("timeline_plot") else \
        "<p>No frames analysed yet.</p>"
    n_t, n_k = len(d.get("thumbnails", [])), len(d.get("keyframes", []))
    shown = f", {n_t} shown" if 0 < n_t < n_k else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>vid2model capture report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
li.bad{{color:#a02020;margin:.3em 0}} li.ok{{color:#207020}} p.legend{{font-size:12px;color:#555}}
img.plot{{max-width:100%;border:1px solid #ddd}} .strip{{display:flex;flex-wrap:wrap;gap:6px}}
figure{{margin:0;font-size:10px;text-align:center}} figure img{{height:90px}} .meta{{color:#555}}</style></head>
<body><h1>Capture report</h1><p class="meta">{meta}</p>
<h2>Findings</h2><ul id="findings">{finding_html}</ul>
<h2>Timeline</h2>{timeline}
<h2>Keyframes ({len(d.get('keyframes', []))}{shown})</h2><div class="strip">{thumbs}</div>
<h2>Coverage</h2>{cov_html}
<h2>Results</h2><p>{results}</p>{_view_check_html(d.get("view_checks") or {})}
</body></html>"""


def _thumb_captions(d: dict[str, Any]) -> list[str]:
    by_stem = {Path(k["name"]).stem: k for k in d.get("keyframes", [])}
    out = []
    for t in d.get("thumbnails", []):
        k = by_stem.get(Path(t).stem, {})
        out.append(f"{k['timestamp']:.2f} s" if k.get("timestamp") is not None else k.get("name", t))
    return out
