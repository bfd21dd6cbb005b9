"""``vid2model publish``: a self-contained static site (product viewer, splat viewer, report).

SITE/
  index.html        product view: <model-viewer> on model-web.glb (orbit/zoom, AR; model.usdz for iOS Quick
                    Look); a button swaps in model.glb, the full model, when the viewer asks for it
  splat.html        Gaussian splat view (three.js + Spark)
  style.css, product.js
  model-web.glb     the page's model: model.glb simplified to a level of detail for the page, its geometry
                    quantized and meshopt-compressed, its texture WebP (see :func:`web_glb`): a page of a
                    few MB for a shop or a phone
  model.glb, model.usdz, model.<spz|splat|ply>    the assets, copied from the workspace
  <asset>.js        base64 copies used only when a page is opened from disk (browsers block file:// fetches)
  report/           the capture/reconstruction report, with links back to both viewers
  vendor/           pinned JavaScript libraries (see :mod:`vid2model.viewer.vendor`) and their licences
  site.json         what was published

Works from any static host and offline; nothing is fetched from the internet at view time.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import numpy as np

from vid2model.errors import UserError
from vid2model.viewer.vendor import GLTFPACK, WEB_DIR, copy_vendor, ensure_web_libs
from vid2model.workspace import Workspace, atomic_dir

log = logging.getLogger("vid2model")

_MARKER = "site.json"
_BACKGROUND = "#f4f4f4"
_EXPOSURE = 1.8  # the studio environment is low dynamic range: this matches the default lighting's brightness


def find_splat(ws: Workspace) -> tuple[Path, str] | None:
    """The splat to publish and its Spark file type: compressed web formats first, the training PLY last."""
    for path, kind in ((ws.export_path("spz"), "spz"), (ws.export_path("splat"), "splat"),
                       (ws.export_path("ply", "splat"), "ply"), (ws.splat_ply, "ply")):
        if path.exists() and path.stat().st_size > 0:
            return path, kind
    return None


def splat_frame(ws: Workspace) -> dict[str, Any] | None:
    """Centre and radius (world units) to frame the splat: robust extent of the splat centres, else scene.json."""
    if ws.splat_ply.exists():
        try:
            from plyfile import PlyData

            v = PlyData.read(str(ws.splat_ply))["vertex"]
            xyz = np.stack([np.asarray(v[k], np.float64) for k in "xyz"], axis=1)
            xyz = xyz[np.isfinite(xyz).all(axis=1)]
            if len(xyz) >= 8:
                lo, hi = np.percentile(xyz, [5, 95], axis=0)
                center = np.median(xyz, axis=0)
                return {"center": center.tolist(), "radius": float(max(np.linalg.norm(hi - lo) / 2, 1e-6))}
        except Exception as exc:  # an unreadable PLY must not stop the page: the browser frames it instead
            log.warning("could not read %s for framing: %s", ws.splat_ply, exc)
    scene = ws.read_json(ws.scene_json, default=None) or {}
    if scene.get("center") is not None and scene.get("radius"):
        return {"center": [float(c) for c in scene["center"]], "radius": float(scene["radius"])}
    return None


def publish(ws: Workspace, out_dir: str | Path, *, embed_max_mb: float = 100.0, title: str | None = None) -> dict:
    """Write the static site for a workspace.

    Args:
        ws: the workspace (reads export/model.glb, export/model.usdz, the splat, report/).
        out_dir: site folder; replaced atomically (only an earlier vid2model site or an empty folder).
        embed_max_mb: assets up to this size also get a base64 copy so the pages work from ``file://``.
        title: page title (default: the workspace folder name).

    Returns:
        Summary: site index path, published assets, the page's copy of the model (:func:`web_glb`'s counts),
        file count and total bytes.

    Raises:
        UserError: nothing to publish, an unsafe output folder, or the viewer libraries cannot be installed.
    """
    out = Path(out_dir).expanduser().resolve()
    _check_out_dir(ws, out)
    glb, usdz = ws.export_path("glb"), ws.export_path("usdz")
    glb = glb if glb.exists() else None
    usdz = usdz if usdz.exists() and glb else None
    splat = find_splat(ws)
    if glb is None and splat is None:
        raise UserError(f"nothing to publish in {ws.root}: make the model first "
                        f"(vid2model export {ws.root}, or vid2model run)")
    title = title or ws.root.name
    has_report = ws.report_html.exists()

    with atomic_dir(out) as tmp:
        copy_vendor(tmp)
        assets: list[str] = []
        embedded: list[str] = []
        light, page_model = None, None
        if glb is not None:
            try:
                page_model = web_glb(glb, tmp / "model-web.glb")
                light = tmp / "model-web.glb"
            except (ValueError, KeyError, OSError) as exc:  # a GLB from elsewhere: ship it as is
                log.warning("no light copy of %s for the page (%s); the page loads the full model", glb, exc)
        for src, name in ((light, "model-web.glb"), (glb, "model.glb"),
                          (usdz, "model.usdz"),
                          (splat[0] if splat else None, f"model.{splat[1]}" if splat else None)):
            if src is None:
                continue
            if src != tmp / name:
                shutil.copy(src, tmp / name)
            assets.append(name)
            if name != "model.usdz" and src.stat().st_size <= embed_max_mb * 1e6:
                _write_embedded(tmp / name)
                embedded.append(name)
        for name in ("style.css", "product.js"):
            shutil.copy(WEB_DIR / name, tmp / name)
        tour = tour_config(ws, ("model-web.glb" if light else "model.glb"), embedded) if glb else None
        pages = {"index.html": bool(glb), "splat.html": bool(splat), "tour.html": tour is not None,
                 "report/index.html": has_report}
        if has_report:
            shutil.copytree(ws.report_dir, tmp / "report")
            _link_report(tmp / "report" / "index.html", pages, assets)
        config = {"model": ("model-web.glb" if light else "model.glb") if glb else None,
                  "full": {"file": "model.glb", "bytes": glb.stat().st_size} if light else None,
                  "splat": {"file": f"model.{splat[1]}", "type": splat[1]} if splat else None,
                  "frame": splat_frame(ws) if splat else None, "embedded": embedded, "background": _BACKGROUND,
                  "view": {"azimuth_deg": -60.0, "elevation_deg": 25.0, "distance": 2.6}}
        footer = "Made with vid2model. Drag to orbit, scroll to zoom, right-drag to pan."
        if tour is not None:
            text = Template((WEB_DIR / "tour.html").read_text(encoding="utf-8")).substitute(
                title=html.escape(f"{title} - walk through - vid2model"), nav=_nav(title, "tour.html", pages),
                footer="Made with vid2model. W / S or the arrow keys walk, A / D step aside, drag to look.",
                config=_script_json({**tour, "background": _BACKGROUND}))
            (tmp / "tour.html").write_text(text, encoding="utf-8")
        for page, template in (("index.html", "index.html"), ("splat.html", "splat.html")):
            main = (_product_main(glb is not None, usdz is not None, title)
                    + dimensions_line(ws.read_json(ws.measure_json, default=None))) if page == "index.html" else ""
            text = Template((WEB_DIR / template).read_text(encoding="utf-8")).substitute(
                title=html.escape(f"{title} - vid2model"), nav=_nav(title, page, pages),
                main=main, footer=footer, config=_script_json(config))
            (tmp / page).write_text(text, encoding="utf-8")
        files = [p for p in tmp.rglob("*") if p.is_file()]
        summary = {"site": str(out / "index.html"), "assets": assets, "embedded": embedded,
                   "page_model": page_model, "splat_type": splat[1] if splat else None, "report": has_report,
                   "n_files": len(files) + 1, "bytes": int(sum(p.stat().st_size for p in files))}
        (tmp / _MARKER).write_text(json.dumps({"workspace": str(ws.root), **summary}, indent=2), encoding="utf-8")
    log.info("published %s (%d files, %.1f MB)", out, summary["n_files"], summary["bytes"] / 1e6)
    summary["_human"] = (f"site: {out / 'index.html'} ({', '.join(assets)}; {summary['bytes'] / 1e6:.1f} MB)\n"
                         f"serve it with: python3 -m http.server -d {out} 8000   "
                         f"(then open http://127.0.0.1:8000)")
    return summary


@dataclass(frozen=True)
class WebCopy:
    """How the page's copy of the model is made (:func:`web_glb`). The page's budget is a few MB (a shop page,
    a phone on a mobile network): model-viewer's script is 1.1 MB, the copy at most texture_bytes plus the
    geometry, which meshopt compression keeps to about 6 bytes a triangle."""

    max_faces: int = 50_000  # the page's level of detail; the full model is one click away
    # simplification stops short of max_faces where it would move the surface by more than this share of the
    # model's size: a flat wall simplifies much further than a detailed object
    max_error: float = 0.005
    max_texture: int = 2048  # px, longer side
    texture_bytes: int = 2_000_000  # the texture is shrunk until it fits
    quality: int = 80  # WebP quality


def web_glb(src: Path, dst: Path, opts: WebCopy = WebCopy()) -> dict[str, Any]:
    """The page's copy of a GLB: simplified to ``opts.max_faces``, geometry quantized and meshopt-compressed
    (EXT_meshopt_compression, by gltfpack; model-viewer and three.js decode it), texture as WebP within
    ``opts.texture_bytes``. Without Node.js (needed only here) the geometry is quantized but kept whole.

    Returns byte and triangle counts of source and copy, and whether the geometry was compressed.
    """
    import tempfile

    from vid2model.io.gltf import glb_triangles, read_glb, write_gltf

    m = read_glb(src)
    texture = _web_texture(m["texture"], opts) if m["texture"] is not None else None
    compressed = False
    with tempfile.TemporaryDirectory(prefix="v2m-web-") as tmp:
        whole = Path(tmp) / "whole.glb"  # gltfpack's input: the model as it is, with the page's texture
        write_gltf(whole, m["vertices"], m["faces"], m["normals"], m["uvs"], texture, m["colors"])
        try:
            _gltfpack(whole, dst, min(1.0, opts.max_faces / max(1, len(m["faces"]))), opts.max_error)
            compressed = True
        except (OSError, subprocess.SubprocessError, UserError) as exc:
            log.warning("the page's model is not compressed (%s): it keeps every triangle", exc)
            write_gltf(dst, m["vertices"], m["faces"], m["normals"], m["uvs"], texture, m["colors"], quantize=True)
    return {"bytes": dst.stat().st_size, "source_bytes": src.stat().st_size, "faces": glb_triangles(dst),
            "source_faces": len(m["faces"]), "compressed": compressed}


def _web_texture(data: bytes, opts: WebCopy) -> bytes:
    """The texture as WebP, at most ``opts.max_texture`` px and ``opts.texture_bytes`` (shrunk by steps of
    3/4 until it fits: for a fixed budget a smaller image reads better than a lower quality)."""
    import io

    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("RGB")
    side = min(max(img.size), opts.max_texture)
    while True:
        f = side / max(img.size)
        small = img if f >= 1 else img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))),
                                              Image.LANCZOS)
        buf = io.BytesIO()
        small.save(buf, "WEBP", quality=opts.quality, method=4)
        if buf.tell() <= opts.texture_bytes or side <= 64:
            return buf.getvalue()
        side = int(side * 0.75)


def _gltfpack(src: Path, dst: Path, ratio: float, max_error: float, timeout_s: float = 300.0) -> None:
    """gltfpack (pinned with the viewer libraries) on ``src``: simplified to ``ratio`` of its triangles (seams
    of the texture atlas kept), quantized, meshopt-compressed; written to ``dst``."""
    node = shutil.which("node")
    if node is None:
        raise UserError("Node.js is not installed")
    args = [node, str(ensure_web_libs() / GLTFPACK), "-i", str(src), "-o", str(dst), "-cc"]
    if ratio < 1.0:
        args += ["-si", f"{ratio:.6f}", "-se", f"{max_error:g}"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0 or not dst.exists():
        raise UserError(f"gltfpack failed: {(proc.stderr or proc.stdout).strip()[-300:]}")


def _check_out_dir(ws: Workspace, out: Path) -> None:
    """Refuse output folders whose replacement would destroy something that is not an earlier site."""
    if out == ws.root or ws.root.is_relative_to(out):
        raise UserError(f"the site folder {out} would replace the workspace; choose another folder (-o SITE)")
    if out in ws.folders:
        raise UserError(f"{out} is a workspace folder; choose another site folder (e.g. {ws.site_dir})")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / _MARKER).exists())):
        raise UserError(f"{out} exists and is not a vid2model site; choose an empty or new folder")


def _product_main(has_glb: bool, has_usdz: bool, title: str) -> str:
    if not has_glb:
        return ("<div class='status'>No 3D model was exported for this capture; see the "
                "<a href='splat.html'>splat view</a>.</div>")
    ios = ' ios-src="model.usdz"' if has_usdz else ""
    # src is set by product.js (from the file, or from its embedded copy on file:// pages)
    return (f'<model-viewer id="product" alt="{html.escape(title)}: 3D model"{ios} camera-controls ar '
            f'ar-modes="webxr scene-viewer quick-look" shadow-intensity="0.8" '
            f'environment-image="{studio_environment()}" exposure="{_EXPOSURE}" '
            'touch-action="pan-y" interaction-prompt="none">'
            '<button slot="ar-button" class="ar-button">View in your space</button></model-viewer>'
            '<button id="full-detail" class="full-detail" hidden>Full detail</button>')


def studio_environment(width: int = 128) -> str:
    """The product view's lighting: a small studio environment (bright overhead, light walls, a soft key light
    in front, a darker floor) as an inline PNG (a data: URL also works on file:// pages).

    model-viewer's default lighting is a room scene rendered and prefiltered on the GPU as the page starts:
    seconds where WebGL runs on the CPU or a weak phone's GPU, more than the model itself takes to arrive and
    draw. vid2model's models are matte (roughness 1), lit by the environment's broad light alone, so a map this
    small lights them as the default does; :data:`_EXPOSURE` brings its mean brightness to the default's.
    """
    import io

    from PIL import Image

    h = width // 2
    lat = (0.5 - (np.arange(h) + 0.5) / h) * np.pi  # equirectangular: +90 deg (up) on the top row
    lon = ((np.arange(width) + 0.5) / width) * 2 * np.pi - np.pi
    lon, lat = np.meshgrid(lon, lat)
    up = np.sin(lat)
    v = np.where(up > 0, 0.95 + 0.05 * up ** 2, 0.95 - 0.45 * np.minimum(1.0, -3 * up))
    key = np.arccos(np.clip(np.cos(lat) * np.cos(lon) * np.cos(0.6) + up * np.sin(0.6), -1, 1))
    v = v + 0.4 * np.exp(-(key / 0.35) ** 2)
    buf = io.BytesIO()
    Image.fromarray(np.repeat((np.clip(v, 0, 1) * 255 + 0.5).astype(np.uint8)[..., None], 3, 2)).save(
        buf, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def tour_config(ws: Workspace, model: str, embedded: list[str]) -> dict[str, Any] | None:
    """What the walk-through page needs, for a walk-through capture with an exported mesh (else None): the
    model, the export's scale (workspace units to the GLB's), where to start (the first keyframe's place and
    heading), a walking speed and the floor plan from ``vid2model measure``, with its doors and windows, when there
    is one."""
    from vid2model.io.colmap import load_views

    scene = ws.read_json(ws.scene_json, default=None) or {}
    if scene.get("capture") != "walk" or not ws.has_cameras:
        return None
    views = sorted(load_views(ws.sparse_dir), key=lambda v: v.name)
    if not views:
        return None
    first = views[0]
    look = first.R[2]  # viewing direction in the world
    scale = float((ws.read_json(ws.export_json, default=None) or {}).get("scale_to_metres") or 1.0)
    room = ((ws.read_json(ws.measure_json, default=None) or {}).get("room") or {})
    metres_per_unit = 1.0 if scene.get("scale") == "metric" else None
    # a walking pace: 1 m/s in a metric model, else a twentieth of the scene's size
    speed = 1.0 / (metres_per_unit or 1.0) if metres_per_unit else 0.1 * float(scene.get("radius") or 1.0)
    return {"model": model, "embedded": embedded, "scale": scale, "speed": speed,
            "start": {"position": [float(c) for c in first.center], "yaw": float(np.arctan2(look[1], look[0]))},
            "plan": {"corners": room["corners"], "openings": [
                {"wall": o["wall"], "kind": o["kind"], "from": o["from_corner"]["value"], "width": o["width"]["value"]}
                for o in room.get("openings") or []]} if room.get("corners") else None}


def dimensions_line(measured: dict[str, Any] | None) -> str:
    """The object's size under the product viewer (``vid2model measure``'s figures), or nothing."""
    obj = (measured or {}).get("object")
    if not obj:
        return ""
    unit = measured["units"]
    metric = unit == "m"

    def one(name: str) -> str:
        f = obj[name]
        if metric:
            v = f"{100 * f['value']:.1f} cm"
            unc = f" ± {100 * f['uncertainty']:.1f}" if f.get("uncertainty") is not None else ""
            return f"{name} {v[:-3]}{unc} cm" if unc else f"{name} {v}"
        return f"{name} {f['value']:.3g}"
    sizes = " × ".join(one(d) for d in ("height", "width", "depth"))
    tail = f" (scale: {measured['scale_source']})" if metric else " (relative units: the capture had no scale)"
    return f"<p class='dimensions' id='dimensions'>{html.escape(sizes + tail)}</p>"


def _nav(title: str, page: str, pages: dict[str, bool]) -> str:
    labels = {"index.html": "3D model", "splat.html": "Gaussian splat", "tour.html": "Walk through",
              "report/index.html": "Capture report"}
    links = [f"<a href='{p}'{' class=here' if p == page else ''}>{labels[p]}</a>"
             for p, present in pages.items() if present]
    return f"<h1>{html.escape(title)}</h1>" + "".join(links)


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _write_embedded(path: Path) -> None:
    """``<asset>.js``: a classic script holding the asset as base64 (readable from file:// pages)."""
    with open(path.with_name(path.name + ".js"), "w", encoding="ascii") as f:
        f.write(f"window.V2M_EMBED=window.V2M_EMBED||{{}};window.V2M_EMBED[{json.dumps(path.name)}]=\"")
        with open(path, "rb") as src:
            while chunk := src.read(3 * 1024 * 1024):  # multiple of 3: base64 chunks concatenate cleanly
                f.write(base64.b64encode(chunk).decode("ascii"))
        f.write('";\n')


def _link_report(report: Path, pages: dict[str, bool], assets: list[str]) -> None:
    """Point the copied report at the site: a viewer bar on top, export links to the copied assets."""
    text = report.read_text(encoding="utf-8")
    bar = ("<nav style='margin:0 0 1em;padding:.5em 0;border-bottom:1px solid #ddd'>"
           + " · ".join(f"<a href='../{p}'>{label}</a>" for p, label in
                        (("index.html", "3D model viewer"), ("splat.html", "Gaussian splat viewer")) if pages[p])
           + "</nav>")
    text = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + bar, text, count=1)
    text = text.replace("'../site/index.html'", "'../index.html'")
    for name in assets:
        text = text.replace(f"'../export/{name}'", f"'../{name}'")
    report.write_text(text, encoding="utf-8")
