"""``vid2model publish``: the static site opened in headless Chromium (software WebGL), as a visitor sees it.

Needs Debian's ``chromium`` (apt-get install chromium) and ``npm`` (the first publish installs the pinned
viewer libraries into ~/.cache/vid2model); tests skip with the reason when either is absent.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import io
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from vid2model.errors import UserError
from vid2model.viewer.publish import publish
from vid2model.viewer.vendor import cache_root, web_hash
from vid2model.workspace import Workspace

BACKGROUND = np.array([244, 244, 244])  # the site's page background (#f4f4f4)
SH_C0 = 0.28209479177387814


# ---- test inputs -------------------------------------------------------------------------------------
def colour_of(xyz: np.ndarray) -> np.ndarray:
    """(N, 3) -> (N, 3) in [0, 1]: a colour that changes around the object, so orbiting changes the image."""
    ang = np.arctan2(xyz[:, 1], xyz[:, 0])
    return np.clip(np.stack([0.5 + 0.45 * np.cos(ang), 0.5 + 0.45 * np.sin(ang), 0.3 + 0.4 * (xyz[:, 2] > 0)],
                            axis=1), 0, 1)


def write_glb(path: Path) -> None:
    """A vertex-coloured ellipsoid (not rotationally symmetric) as GLB, written by trimesh."""
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    m.vertices *= [1.0, 0.55, 0.4]
    rgb = (colour_of(m.vertices) * 255).astype(np.uint8)
    m.visual = trimesh.visual.ColorVisuals(m, vertex_colors=np.hstack([rgb, np.full((len(rgb), 1), 255, np.uint8)]))
    path.parent.mkdir(parents=True, exist_ok=True)
    m.export(path)


def write_splat_ply(path: Path, n: int = 4000, seed: int = 0) -> None:
    """Standard 3DGS PLY: gaussians on an ellipsoid shell (+Z up), colours varying around it."""
    from plyfile import PlyData, PlyElement

    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    xyz = (d * [1.0, 0.6, 0.45]).astype(np.float32)
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2",
             *[f"f_rest_{i}" for i in range(9)], "opacity", "scale_0", "scale_1", "scale_2",
             "rot_0", "rot_1", "rot_2", "rot_3"]
    arr = np.zeros(n, dtype=[(k, "f4") for k in names])
    for i, k in enumerate("xyz"):
        arr[k] = xyz[:, i]
    dc = (colour_of(xyz) - 0.5) / SH_C0
    for i in range(3):
        arr[f"f_dc_{i}"] = dc[:, i]
        arr[f"scale_{i}"] = np.log(0.05)
    arr["opacity"] = 4.0  # logit: ~0.98
    arr["rot_0"] = 1.0
    path.parent.mkdir(parents=True, exist_ok=True)
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(path))


@pytest.fixture(scope="module")
def npm_ready():
    if not (cache_root() / f"web-{web_hash()}" / ".complete").exists() and shutil.which("npm") is None:
        pytest.skip("npm is absent and the viewer libraries are not cached (apt-get install npm)")


@pytest.fixture(scope="module")
def site(tmp_path_factory, npm_ready) -> tuple[Path, dict]:
    ws = Workspace(tmp_path_factory.mktemp("pub") / "ws").create()
    write_glb(ws.export_path("glb"))
    write_splat_ply(ws.splat_ply)
    ws.report_dir.mkdir(parents=True)
    ws.report_html.write_text("<!doctype html><html><body><h1>Capture report</h1>"
                              "<a href='../export/model.glb'>model.glb</a></body></html>", encoding="utf-8")
    size = {d: {"value": v, "uncertainty": 0.0012, "unit": "m"} for d, v in (("height", 0.25), ("width", 0.3),
                                                                                ("depth", 0.2))}
    ws.write_json(ws.measure_json, {"units": "m", "scale_source": "marker", "object": size})  # measure's layout
    out = ws.root.parent / "site"
    return out, publish(ws, out)


# ---- a minimal DevTools-protocol driver for Debian's chromium ------------------------------------------
class Browser:
    """Headless Chromium with SwiftShader WebGL, driven over the DevTools protocol (one page)."""

    def __init__(self, exe: str, profile: Path, width: int = 480, height: int = 360):
        from websockets.sync.client import connect

        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--no-first-run", "--no-default-browser-check",
             "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
             "--disable-dev-shm-usage", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True)  # its renderers and GPU process share the session: close() ends them all
        port = self._devtools_port(profile)
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        url = next(p["webSocketDebuggerUrl"] for p in pages if p["type"] == "page")
        self.ws = connect(url, max_size=None, open_timeout=10)
        self._id = 0
        self.console: list[str] = []
        self._urls: dict[str, str] = {}
        self.received: dict[str, int] = {}  # URL -> bytes over the wire, once Network is enabled
        self.send("Runtime.enable")
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                         "deviceScaleFactor": 1, "mobile": False})

    def _devtools_port(self, profile: Path, timeout: float = 30) -> int:
        t0 = time.time()
        port_file = profile / "DevToolsActivePort"
        while time.time() - t0 < timeout:
            if port_file.exists() and port_file.read_text().strip():
                return int(port_file.read_text().split()[0])
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited: {self.proc.stderr.read()[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError("chromium did not open its DevTools port")

    def send(self, method: str, params: dict | None = None, timeout: float = 180) -> dict:
        self._id += 1
        my_id = self._id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params or {}}))
        t0 = time.time()
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, timeout - (time.time() - t0))))
            if msg.get("method") == "Runtime.consoleAPICalled":
                self.console.append(" ".join(str(a.get("value", a.get("description", "")))
                                             for a in msg["params"]["args"]))
            elif msg.get("method") == "Runtime.exceptionThrown":
                self.console.append(str(msg["params"]["exceptionDetails"].get("exception", {}).get("description")))
            elif msg.get("method") == "Network.responseReceived":
                self._urls[msg["params"]["requestId"]] = msg["params"]["response"]["url"]
            elif msg.get("method") == "Network.loadingFinished":
                url = self._urls.get(msg["params"]["requestId"], msg["params"]["requestId"])
                self.received[url] = self.received.get(url, 0) + int(msg["params"]["encodedDataLength"])
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def eval(self, expr: str, timeout: float = 60):
        res = self.send("Runtime.evaluate", {"expression": expr, "awaitPromise": True, "returnByValue": True},
                        timeout=timeout)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expr}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def goto(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete'", 30)

    def wait_for(self, expr: str, timeout: float) -> None:
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.eval(f"!!({expr})"):
                return
            time.sleep(0.2)
        raise TimeoutError(f"waited {timeout} s for {expr}; console: {self.console[-10:]}")

    def rect(self, selector: str) -> dict:
        return self.eval(f"JSON.parse(JSON.stringify(document.querySelector({json.dumps(selector)})"
                         ".getBoundingClientRect()))")

    def screenshot(self, r: dict) -> np.ndarray:
        from PIL import Image

        clip = {"x": r["x"], "y": r["y"], "width": r["width"], "height": r["height"], "scale": 1}
        data = self.send("Page.captureScreenshot", {"format": "png", "clip": clip})["data"]
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))

    def drag(self, r: dict, dx: float, dy: float = 0.0, steps: int = 12) -> None:
        x0, y0 = r["x"] + r["width"] / 2, r["y"] + r["height"] / 2
        mouse = functools.partial(self.send, "Input.dispatchMouseEvent")
        mouse({"type": "mouseMoved", "x": x0, "y": y0})
        mouse({"type": "mousePressed", "x": x0, "y": y0, "button": "left", "buttons": 1, "clickCount": 1})
        for i in range(1, steps + 1):
            mouse({"type": "mouseMoved", "x": x0 + dx * i / steps, "y": y0 + dy * i / steps,
                   "button": "left", "buttons": 1})
            time.sleep(0.03)
        mouse({"type": "mouseReleased", "x": x0 + dx, "y": y0 + dy, "button": "left", "buttons": 0,
               "clickCount": 1})

    def cpu_seconds(self) -> float:
        """CPU time used so far by every process of this browser (renderers, GPU process, the browser)."""
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) == self.proc.pid:  # session id
                    total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
        return total / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        # a renderer left behind keeps drawing and starves whatever the machine runs next
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def _assert_idle(browser: Browser, what: str, settle: float = 0.0, seconds: float = 3.0) -> None:
    """A shown page nobody touches must not keep drawing: in software GL that takes whole cores from the
    machine (the test suite's own jobs, or a laptop's battery)."""
    time.sleep(settle)
    cpu0, t0 = browser.cpu_seconds(), time.time()
    time.sleep(seconds)
    load = (browser.cpu_seconds() - cpu0) / (time.time() - t0)
    print(f"{what} idle: {load:.3f} of a core")
    # idle pages measured 0.06-0.13 of a core (0.2 at worst on a loaded machine); a page that keeps
    # drawing in software GL takes a whole one
    assert load < 0.4, f"{what} keeps {load:.2f} of a core busy while nobody touches it"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    pytest.importorskip("websockets", reason="the DevTools driver uses websockets (installed with viser)")
    exe = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    b = Browser(exe, tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


@pytest.fixture(scope="module")
def server(site):
    """The site served by Python's http.server on a free 127.0.0.1 port (any static host)."""
    handler = functools.partial(_QuietHandler, directory=str(site[0]))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


def coverage(img: np.ndarray) -> float:
    """Share of pixels that differ clearly from the page background."""
    return float((np.abs(img.astype(int) - BACKGROUND).max(axis=2) > 24).mean())


# ---- tests -----------------------------------------------------------------------------------------------
def test_site_layout(site):
    out, res = site
    for name in ("index.html", "splat.html", "model-web.glb", "model-web.glb.js", "model.glb", "model.ply",
                 "model.glb.js", "style.css", "product.js",
                 "vendor/model-viewer/model-viewer-umd.min.js", "vendor/splat-view.js", "report/index.html",
                 "site.json"):
        assert (out / name).is_file(), name
    assert res["splat_type"] == "ply" and res["report"] and "model.usdz" not in res["assets"]
    index = (out / "index.html").read_text()
    assert "<model-viewer" in index and "ios-src" not in index  # no USDZ: no dangling iOS link
    # nothing is fetched from another host at view time
    for page in ("index.html", "splat.html", "report/index.html"):
        assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", (out / page).read_text()), page
    report = (out / "report" / "index.html").read_text()
    assert "href='../index.html'" in report and "href='../splat.html'" in report and "'../model.glb'" in report
    # the base64 copy decodes to the very GLB (used by pages opened from disk)
    js = (out / "model.glb.js").read_text()
    assert base64.b64decode(js.split('="', 1)[1].rsplit('"', 1)[0]) == (out / "model.glb").read_bytes()


def test_publish_errors(tmp_path, site):
    ws = Workspace(tmp_path / "empty").create()
    with pytest.raises(UserError, match="nothing to publish"):
        publish(ws, tmp_path / "s")
    write_glb(ws.export_path("glb"))
    with pytest.raises(UserError, match="replace the workspace"):
        publish(ws, ws.root)
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a vid2model site"):
        publish(ws, tmp_path / "precious")
    assert (tmp_path / "precious" / "thesis.txt").read_text() == "keep me"
    ws.export_path("usdz").write_bytes(b"PK\x03\x04 stand-in usdz")
    res = publish(ws, tmp_path / "s")  # mesh only, no splat, no report; republishing replaces it
    res = publish(ws, tmp_path / "s")
    assert res["assets"] == ["model-web.glb", "model.glb", "model.usdz"] and not res["report"]
    assert res["splat_type"] is None
    assert 'ios-src="model.usdz"' in (tmp_path / "s" / "index.html").read_text()
    assert "Gaussian splat" not in (tmp_path / "s" / "index.html").read_text()


def test_product_view_loads_and_orbits(browser, server):
    browser.goto(server + "/index.html")
    browser.wait_for("document.body.dataset.loaded === '1' || document.body.dataset.error === '1'", 60)
    assert browser.eval("document.body.dataset.error") is None, browser.console
    browser.wait_for("document.getElementById('product').modelIsVisible", 30)
    # the page opens on the light copy: the full GLB is not fetched until asked for
    fetched = browser.eval("performance.getEntriesByType('resource').map(e => e.name.split('/').pop())")
    assert "model-web.glb" in fetched and "model.glb" not in fetched, fetched
    assert browser.eval("document.getElementById('dimensions').innerText") == \
        "height 25.0 ± 0.1 cm × width 30.0 ± 0.1 cm × depth 20.0 ± 0.1 cm (scale: marker)"
    time.sleep(1.0)
    r = browser.rect("#product")
    before = browser.screenshot(r)
    cov = coverage(before)
    assert 0.05 < cov < 0.9, f"model covers {cov:.1%} of the canvas"
    _assert_idle(browser, "product page")
    theta0 = browser.eval("document.getElementById('product').getCameraOrbit().theta")
    browser.drag(r, dx=r["width"] * 0.25)
    time.sleep(1.5)  # model-viewer eases the camera towards the dragged orbit
    theta1 = browser.eval("document.getElementById('product').getCameraOrbit().theta")
    after = browser.screenshot(r)
    assert abs(theta1 - theta0) > 0.3, (theta0, theta1)
    changed = float((np.abs(after.astype(int) - before.astype(int)).max(axis=2) > 24).mean())
    assert changed > 0.02, f"only {changed:.1%} of the pixels changed after orbiting"
    assert coverage(after) > 0.05


def test_full_detail_on_request(browser, server):
    browser.goto(server + "/index.html")
    browser.wait_for("document.body.dataset.loaded === '1' || document.body.dataset.error === '1'", 60)
    assert browser.eval("document.getElementById('full-detail').textContent").startswith("Full detail (")
    browser.eval("document.getElementById('full-detail').click()")
    browser.wait_for("document.body.dataset.full === '1' || document.body.dataset.error === '1'", 60)
    assert browser.eval("document.body.dataset.error") is None, browser.console
    assert browser.eval("document.getElementById('product').src") == "model.glb"
    fetched = browser.eval("performance.getEntriesByType('resource').map(e => e.name.split('/').pop())")
    assert "model.glb" in fetched
    assert browser.eval("document.getElementById('full-detail').hidden") is True


def test_splat_view_loads_and_orbits(browser, server):
    browser.goto(server + "/splat.html")
    browser.wait_for("document.body.dataset.loaded === '1' || document.body.dataset.error === '1'", 90)
    assert browser.eval("document.body.dataset.error") is None, browser.console
    assert browser.eval("window.v2mSplat.numSplats") == 4000
    time.sleep(1.0)
    r = browser.rect("#splat-canvas")
    before = browser.screenshot(r)
    cov = coverage(before)
    assert 0.05 < cov < 0.9, f"splat covers {cov:.1%} of the canvas"
    _assert_idle(browser, "splat page", settle=3.0)  # its worker sorts the splats for the first view first
    p0 = np.array(browser.eval("window.v2mSplat.camera.position.toArray()"))
    browser.drag(r, dx=r["width"] * 0.25)
    time.sleep(1.5)
    p1 = np.array(browser.eval("window.v2mSplat.camera.position.toArray()"))
    after = browser.screenshot(r)
    assert np.linalg.norm(p1 - p0) > 0.2 * np.linalg.norm(p0), (p0, p1)
    changed = float((np.abs(after.astype(int) - before.astype(int)).max(axis=2) > 24).mean())
    assert changed > 0.02, f"only {changed:.1%} of the pixels changed after orbiting"


def test_splat_view_from_disk(browser, site):
    """Opened by double-click (file://, where browsers refuse fetches): the splat comes from its embedded copy."""
    browser.goto((site[0] / "splat.html").as_uri())
    browser.wait_for("document.body.dataset.loaded === '1' || document.body.dataset.error === '1'", 90)
    assert browser.eval("document.body.dataset.error") is None, browser.console
    assert browser.eval("window.v2mSplat.numSplats") == 4000
    assert coverage(browser.screenshot(browser.rect("#splat-canvas"))) > 0.05


@pytest.mark.slow  # a second first-render of model-viewer in software GL: ~20 s
def test_product_view_from_disk(browser, site):
    browser.goto((site[0] / "index.html").as_uri())
    browser.wait_for("document.body.dataset.loaded === '1' || document.body.dataset.error === '1'", 60)
    assert browser.eval("document.body.dataset.error") is None, browser.console
    assert browser.eval("document.getElementById('product').src").startswith("blob:")
    browser.wait_for("document.getElementById('product').modelIsVisible", 30)
    assert coverage(browser.screenshot(browser.rect("#product"))) > 0.05


def _walk_workspace(root: Path) -> Workspace:
    """A walk-through's workspace as publish reads it: a 4 x 6 x 2.5 room's mesh exported as GLB (+Y up,
    vertex colours), one camera at (0, -1.5, 1.5) looking along +y, the scene frame and the measured plan."""
    import pycolmap
    import trimesh

    from vid2model.stages.export import Z_UP_TO_Y_UP

    ws = Workspace(root).create()
    room = trimesh.creation.box(extents=(4, 6, 2.5))
    room.invert()
    for _ in range(4):
        room = room.subdivide()
    room.apply_translation([0, 0, 1.25])
    rgb = (colour_of(room.vertices / [2, 3, 1.25]) * 255).astype(np.uint8)
    room.vertices = room.vertices @ Z_UP_TO_Y_UP.T
    room.visual = trimesh.visual.ColorVisuals(room, vertex_colors=np.hstack([rgb, np.full((len(rgb), 1), 255, np.uint8)]))
    ws.export_path("glb").parent.mkdir(parents=True, exist_ok=True)
    room.export(ws.export_path("glb"))
    ws.write_json(ws.export_json, {"scale_to_metres": 1.0})
    rec = pycolmap.Reconstruction()
    rec.add_camera_with_trivial_rig(pycolmap.Camera(camera_id=1, model="PINHOLE", width=64, height=48,
                                                    params=[60.0, 60.0, 32.0, 24.0]))
    R = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # rows: camera x right, y down, z = +y of the world
    c = np.array([0.0, -1.5, 1.5])
    rec.add_image_with_trivial_frame(pycolmap.Image(name="frame_000.jpg", camera_id=1, image_id=1),
                                     pycolmap.Rigid3d(np.hstack([R, (-R @ c)[:, None]])))
    ws.sparse_dir.mkdir(parents=True, exist_ok=True)
    rec.write(str(ws.sparse_dir))
    ws.write_json(ws.scene_json, {"up": [0, 0, 1], "scale": "metric", "metres_per_unit": 1.0, "capture": "walk",
                                  "center": [0, 0, 0], "radius": 3.0})
    door = {"wall": 1, "kind": "door", "from_corner": {"value": 1.0}, "width": {"value": 0.9}}
    ws.write_json(ws.measure_json, {"units": "m", "room": {"corners": [[-2, -3, 0], [2, -3, 0], [2, 3, 0], [-2, 3, 0]],
                                                            "openings": [door]}})
    return ws


def test_walk_through_page_walks_and_shows_where_you_are(browser, tmp_path, npm_ready):
    ws = _walk_workspace(tmp_path / "walk")
    out = tmp_path / "site"
    publish(ws, out)
    assert (out / "tour.html").is_file() and (out / "vendor" / "tour-view.js").is_file()
    assert "href='tour.html'" in (out / "index.html").read_text()
    handler = functools.partial(_QuietHandler, directory=str(out))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        browser.goto(f"http://127.0.0.1:{httpd.server_address[1]}/tour.html")
        browser.wait_for("document.body.dataset.loaded === '1' || document.body.dataset.error === '1'", 60)
        assert browser.eval("document.body.dataset.error") is None, browser.console
        r = browser.rect("#tour-canvas")
        before = browser.screenshot(r)
        assert coverage(before) > 0.5  # the room's walls fill the view
        _assert_idle(browser, "tour page")
        x0, y0 = browser.eval("[v2mTour.state.x, v2mTour.state.y]")
        assert (x0, y0) == pytest.approx((0.0, -1.5), abs=1e-6)
        # the door on the map: a gap in wall 1 (y = -3) from x = -1 to -0.1, in the map's 150 px per 6 m
        gap = browser.eval("[...document.querySelectorAll('#map line.opening.door')].map(l => "
                           "['x1', 'y1', 'x2', 'y2'].map(k => +l.getAttribute(k)))")
        assert gap == [pytest.approx([30.0, 155.0, 52.5, 155.0], abs=0.1)]
        dot0 = browser.eval("document.getElementById('map-me').getAttribute('cy')")
        browser.send("Input.dispatchKeyEvent", {"type": "keyDown", "key": "w", "code": "KeyW",
                                                "windowsVirtualKeyCode": 87})
        time.sleep(1.0)
        browser.send("Input.dispatchKeyEvent", {"type": "keyUp", "key": "w", "code": "KeyW",
                                                "windowsVirtualKeyCode": 87})
        x1, y1 = browser.eval("[v2mTour.state.x, v2mTour.state.y]")
        assert abs(x1 - x0) < 0.05 and 0.3 < y1 - y0 < 2.0, (x1, y1)  # walked forward, along +y, at ~1 m/s
        assert float(browser.eval("document.getElementById('map-me').getAttribute('cy')")) < float(dot0)
        time.sleep(0.3)
        after = browser.screenshot(r)
        changed = float((np.abs(after.astype(int) - before.astype(int)).max(axis=2) > 24).mean())
        assert changed > 0.02, f"only {changed:.1%} of the view changed after walking"
    finally:
        browser.goto("about:blank")  # nothing left drawing in software GL for the tests after this one
        httpd.shutdown()
        httpd.server_close()


# ---- the page of a capture-sized model: 100k textured faces ----------------------------------------------
PAGE_BUDGET = 5_000_000  # bytes the product page may fetch before the visitor asks for more (issue #22)
DRAW_BUDGET_S = 5.0  # from navigation to the model on the canvas


def write_textured_glb(path: Path, n_u: int = 316, n_v: int = 158, texture_px: int = 2048, seed: int = 0) -> int:
    """A capture-sized textured model in export's layout: a bumpy ellipsoid band of 2 n_u n_v (~100k) faces
    with a lat-long UV map (its seam split) and a photo-like texture (blotches and grain); returns its faces."""
    from PIL import Image

    from vid2model.io.gltf import write_gltf

    rng = np.random.default_rng(seed)
    u, v = np.meshgrid(np.linspace(0, 1, n_u + 1), np.linspace(0.03, 0.97, n_v + 1))
    lon, lat = 2 * np.pi * u, np.pi * (v - 0.5)
    r = 1 + 0.06 * np.sin(7 * lon) * np.cos(5 * lat) + 0.01 * np.sin(41 * lon) * np.sin(29 * lat)
    xyz = np.stack([np.cos(lat) * np.cos(lon), np.sin(lat), -np.cos(lat) * np.sin(lon)], -1) * r[..., None]
    V = (xyz * [0.5, 0.3, 0.35]).reshape(-1, 3)  # Y up, half a metre wide
    N = xyz.reshape(-1, 3) / np.linalg.norm(xyz.reshape(-1, 3), axis=1, keepdims=True)
    i = (np.arange(n_v)[:, None] * (n_u + 1) + np.arange(n_u)[None, :]).ravel()
    F = np.concatenate([np.stack([i, i + 1, i + n_u + 2], 1), np.stack([i, i + n_u + 2, i + n_u + 1], 1)])
    blotches = Image.fromarray(rng.integers(30, 225, (24, 24, 3), dtype=np.uint8)).resize(
        (texture_px, texture_px), Image.BICUBIC)
    img = np.clip(np.asarray(blotches, np.float32) + rng.normal(0, 6, (texture_px, texture_px, 1)), 0, 255)
    buf = io.BytesIO()
    Image.fromarray(img.astype(np.uint8)).save(buf, "JPEG", quality=92)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_gltf(path, V, F, N, np.stack([u, v], -1).reshape(-1, 2), buf.getvalue())
    return len(F)


@pytest.fixture(scope="module")
def big_site(tmp_path_factory, npm_ready) -> tuple[Path, dict, int]:
    ws = Workspace(tmp_path_factory.mktemp("big") / "ws").create()
    faces = write_textured_glb(ws.export_path("glb"))
    out = ws.root.parent / "site"
    return out, publish(ws, out), faces


def test_light_copy_of_a_100k_face_model_is_valid(big_site):
    from test_export import _validate_gltf

    from vid2model.viewer.publish import WebCopy

    out, res, faces = big_site
    assert 95_000 <= faces <= 105_000
    assert res["page_model"]["compressed"] and res["page_model"]["source_faces"] == faces
    report = _validate_gltf(out / "model-web.glb")
    assert report["issues"]["numErrors"] == 0, report["issues"]["messages"][:5]
    # compressed geometry: the validator reads the file's structure, not inside the meshopt stream
    assert {"EXT_meshopt_compression", "EXT_texture_webp"} <= set(report["info"]["extensionsRequired"])
    assert WebCopy().max_faces // 2 <= report["info"]["totalTriangleCount"] <= WebCopy().max_faces
    assert report["info"]["hasTextures"] and _validate_gltf(out / "model.glb")["info"]["totalTriangleCount"] == faces


def test_page_of_a_100k_face_model_is_light_and_draws_fast(browser, big_site):
    """What a visitor's browser fetches for the product page before asking for more, counted by Chromium
    (bytes over the wire, cache off), and the time until the model is on the canvas."""
    out, res, _ = big_site
    handler = functools.partial(_QuietHandler, directory=str(out))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        browser.send("Network.enable")
        browser.send("Network.setCacheDisabled", {"cacheDisabled": True})
        browser.received.clear()
        t0 = time.time()
        browser.goto(base + "/index.html")
        browser.wait_for("document.body.dataset.loaded === '1' || document.body.dataset.error === '1'", 30)
        assert browser.eval("document.body.dataset.error") is None, browser.console
        browser.wait_for("document.getElementById('product').modelIsVisible", 30)
        r = browser.rect("#product")
        while coverage(browser.screenshot(r)) < 0.05 and time.time() - t0 < 30:
            time.sleep(0.1)
        drawn_s = time.time() - t0
        first = dict(browser.received)
        names = {url.rsplit("/", 1)[-1] for url in first}
        assert "model-web.glb" in names and "model.glb" not in names, names
        assert not any(n.endswith(".glb.js") for n in names), names  # embedded copies are for file:// only
        total = sum(first.values())
        print(f"first load {total} bytes ({len(first)} requests), drawn in {drawn_s:.2f} s")
        assert total <= PAGE_BUDGET, sorted(first.items(), key=lambda kv: -kv[1])[:4]
        assert drawn_s <= DRAW_BUDGET_S, f"the model took {drawn_s:.2f} s to draw"
        # the full model is one click away
        browser.eval("document.getElementById('full-detail').click()")
        browser.wait_for("document.body.dataset.full === '1' || document.body.dataset.error === '1'", 60)
        assert browser.eval("document.body.dataset.error") is None, browser.console
        assert any(url.endswith("/model.glb") for url in browser.received)
        assert coverage(browser.screenshot(r)) > 0.05
    finally:
        browser.send("Network.setCacheDisabled", {"cacheDisabled": False})
        browser.send("Network.disable")
        browser.goto("about:blank")  # nothing left drawing in software GL for the tests after this one
        httpd.shutdown()
        httpd.server_close()
