"""Viewer/publish figures: publish time and site size, page load and first-frame times in headless Chromium
(SwiftShader software WebGL, so these are worst-case CPU figures), model coverage, and local viewer start time.

    .venv/bin/python bench/bench_viewer.py [WORKSPACE ...]      (default: a synthetic GLB + 3DGS workspace)

Writes bench/work/bench_viewer.json.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "bench" / "work" / "viewer_shots"
sys.path.insert(0, str(REPO / "tests"))

from test_publish import Browser, _QuietHandler, coverage, write_glb, write_splat_ply  # noqa: E402

from vid2model.viewer.local import serve  # noqa: E402
from vid2model.viewer.publish import publish  # noqa: E402
from vid2model.workspace import Workspace  # noqa: E402


def synthetic_ws(root: Path) -> Workspace:
    ws = Workspace(root / "synthetic_ws").create()
    write_glb(ws.export_path("glb"))
    write_splat_ply(ws.splat_ply, n=100_000)
    return ws


def page_times(browser: Browser, url: str, selector: str, visible: str, shot: Path) -> dict:
    t0 = time.time()
    browser.goto(url)
    browser.wait_for("document.body.dataset.loaded === '1' || document.body.dataset.error === '1'", 180)
    t_load = time.time() - t0
    if browser.eval("document.body.dataset.error"):
        return {"error": browser.console[-5:]}
    browser.wait_for(visible, 120)
    img = browser.screenshot(browser.rect(selector))
    from PIL import Image

    Image.fromarray(img).save(shot)
    # what the visitor's browser fetched until the first frame: page, scripts, styles and the model
    fetched = browser.eval("[...performance.getEntriesByType('navigation'), ...performance.getEntriesByType("
                           "'resource')].map(e => [e.name.split('/').pop(), e.transferSize || e.encodedBodySize])")
    return {"load_s": round(t_load, 2), "first_frame_s": round(time.time() - t0, 2), "coverage": round(coverage(img), 3),
            "page_mb": round(sum(b for _, b in fetched) / 1e6, 2),
            "largest": sorted(fetched, key=lambda x: -x[1])[:3]}


def bench_workspace(ws: Workspace, browser: Browser, tmp: Path) -> dict:
    out: dict = {"workspace": str(ws.root)}
    site = tmp / f"site_{ws.root.name}"
    t0 = time.time()
    try:
        res = publish(ws, site)
    except Exception as exc:  # e.g. nothing exported yet
        out["publish_error"] = str(exc)
        res = None
    if res:
        out.update(publish_s=round(time.time() - t0, 2), site_mb=round(res["bytes"] / 1e6, 2), assets=res["assets"])
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site)))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        if "model.glb" in res["assets"]:
            out["web_glb_mb"] = round((site / "model-web.glb").stat().st_size / 1e6, 2) \
                if "model-web.glb" in res["assets"] else None
            out["full_glb_mb"] = round((site / "model.glb").stat().st_size / 1e6, 2)
            out["product"] = page_times(browser, base + "/index.html", "#product",
                                        "document.getElementById('product').modelIsVisible",
                                        SHOTS / f"{ws.root.name}_product.png")
        if res["splat_type"]:
            out["splat"] = page_times(browser, base + "/splat.html", "#splat-canvas", "true",
                                      SHOTS / f"{ws.root.name}_splat.png")
        httpd.shutdown()
        httpd.server_close()
    t0 = time.time()
    try:
        r = serve(ws, port=0, block=False)
        out["view"] = {"start_s": round(time.time() - t0, 2), "layers": r["layers"]}
        r["viewer"].stop()
    except Exception as exc:
        out["view"] = {"error": str(exc)}
    return out


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench_viewer_"))
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        wss = [Workspace(p) for p in sys.argv[1:]] or [synthetic_ws(tmp)]
        browser = Browser(shutil.which("chromium"), tmp / "profile", 800, 600)
        try:
            results = [bench_workspace(ws, browser, tmp) for ws in wss]
        finally:
            browser.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for r in results:
        print(json.dumps(r))
    dst = REPO / "bench" / "work" / "bench_viewer.json"
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(results, indent=2))
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
