"""``vid2model serve``: the job store, the API of a real server process, its rules on uploads and tokens, and a
job uploaded from the browser page that survives the server's SIGKILL and finishes after a restart."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pytest

from vid2model.service.store import JobStore

pytest.importorskip("fastapi", reason="the service needs the 'service' extra (pip install 'vid2model[service]')")


def test_store_gives_each_job_to_one_worker_and_requeues_what_a_dead_server_ran(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    ids = [store.create(f"job {i}", {"preset": "fast"}, "video") for i in range(30)]
    store.create("half an upload", {}, "video", state="uploading")
    got: list[str] = []

    def worker() -> None:
        while (job := store.claim()) is not None:
            got.append(job["id"])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(ids)  # every queued job once; the one still uploading never
    store.finish(ids[0], "done")
    assert store.request_cancel(ids[1])
    assert store.requeue_interrupted() == 28  # running, not cancelled: back in the queue
    assert store.get(ids[1])["state"] == "cancelled" and store.get(ids[0])["state"] == "done"
    assert [j["state"] for j in store.list() if j["name"] == "half an upload"] == ["failed"]
    assert store.claim()["attempts"] == 2


# ---- a real server process ---------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data: Path, *args: str, port: int | None = None):
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "vid2model.cli", "serve", "--data", str(data),
                                      "--port", str(self.port), *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        t0 = time.time()
        while time.time() - t0 < 60:
            try:
                urllib.request.urlopen(self.url + "/", timeout=2)
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(self.proc.stdout.read())
                time.sleep(0.2)
        raise RuntimeError("the server did not start")

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(60)


def request(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) of an HTTP request; error statuses are returned, not raised."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def upload(url: str, name: str, data: bytes, headers: dict | None = None, **fields: str):
    """POST /api/jobs as multipart form data."""
    b = uuid.uuid4().hex
    parts = [f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    parts.append(f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{b}--\r\n".encode()
    return request(url + "/api/jobs", "POST", body, {"Content-Type": f"multipart/form-data; boundary={b}",
                                                      **(headers or {})})


def _jpeg(seed: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (48, 64, 3), np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    """A server with a 2 MB upload limit and no job left to run for long (every job here is cancelled)."""
    data = tmp_path_factory.mktemp("svc-small")
    s = Server(data, "--max-upload-mb", "2")
    yield s, data
    s.kill()


def test_uploads_are_judged_by_content_and_bounded(small_server):
    s, data = small_server
    status, _, body = upload(s.url, "holiday.mp4", b"this is not a video" * 100)
    assert status == 415 and b"neither a video nor a zip" in body
    status, _, body = upload(s.url, "big.mp4", os.urandom(2_100_000))
    assert status == 413 and b"larger than 2 MB" in body
    status, _, body = upload(s.url, "x.mp4", b"x", preset="turbo")
    assert status == 422
    # a zip whose member names try to leave the job's folder: only its photos are kept, under names made here
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("../../../evil.jpg", _jpeg(0))
        z.writestr("/abs/b.jpg", _jpeg(1))
        z.writestr("deep/c.jpg", _jpeg(2))
        z.writestr("notes.txt", "not a photo")
    status, _, body = upload(s.url, "photos.zip", buf.getvalue(), preset="fast")
    assert status == 201, body
    job = json.loads(body)
    assert job["input"] == "zip" and len(job["id"]) == 32
    request(f"{s.url}/api/jobs/{job['id']}/cancel", "POST")
    folder = data / "jobs" / job["id"] / "input"
    assert sorted(p.name for p in folder.iterdir()) == ["photo_00001.jpg", "photo_00002.jpg", "photo_00003.jpg"]
    assert not list(data.rglob("evil.jpg")) and not Path("/abs/b.jpg").exists()
    # no path out of a job's folders, no job by a made-up id
    status, _, _ = request(f"{s.url}/jobs/{job['id']}/site/..%2F..%2F..%2Fjobs.sqlite")
    assert status == 404
    assert request(f"{s.url}/api/jobs/{'0' * 32}")[0] == 404 and request(f"{s.url}/api/jobs/..%2Fjobs")[0] == 404
    t0 = time.time()
    while request(f"{s.url}/api/jobs/{job['id']}")[2] and time.time() - t0 < 60:
        if json.loads(request(f"{s.url}/api/jobs/{job['id']}")[2])["state"] == "cancelled":
            break
        time.sleep(0.5)
    assert json.loads(request(f"{s.url}/api/jobs/{job['id']}")[2])["state"] == "cancelled"
    assert request(f"{s.url}/api/jobs/{job['id']}", "DELETE")[0] == 204
    assert not (data / "jobs" / job["id"]).exists()
    # the page carries the security headers; the API is documented
    status, headers, _ = request(s.url + "/")
    assert status == 200 and headers["x-content-type-options"] == "nosniff" and "default-src 'self'" in \
        headers["content-security-policy"]
    status, _, body = request(s.url + "/openapi.json")
    assert status == 200 and "/api/jobs/{job_id}/files/{name}" in json.loads(body)["paths"]


def test_a_token_guards_every_api_call(tmp_path):
    s = Server(tmp_path, "--token", "s3cret-token")
    try:
        assert request(s.url + "/api/jobs")[0] == 401
        assert request(s.url + "/api/jobs", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert request(s.url + "/api/jobs", headers={"Authorization": "Bearer s3cret-token"})[0] == 200
        status, headers, _ = request(s.url + "/api/jobs?token=s3cret-token")
        assert status == 200 and "vid2model_token=s3cret-token" in headers.get("set-cookie", "")
        assert request(s.url + "/")[0] == 200  # the page holds no data; its calls carry the token
    finally:
        s.kill()


# ---- a whole job from the browser page, through a SIGKILL of the server --------------------------------
def _wait(fn, timeout: float, what: str):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = fn()
        if v:
            return v
        time.sleep(0.5)
    raise TimeoutError(f"waited {timeout} s for {what}")


def _children_running(workspace: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", str(workspace)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def test_page_upload_survives_a_killed_server_and_finishes(tmp_path, synth_orbit):
    from test_export import _validate_gltf
    from test_publish import Browser

    exe = os.environ.get("CHROMIUM") or __import__("shutil").which("chromium")
    if not exe:
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    data = tmp_path / "data"
    s = Server(data)
    browser = Browser(exe, tmp_path / "profile", width=900, height=700)
    try:
        browser.send("Page.enable")
        browser.goto(s.url + "/")
        browser.wait_for("document.body.dataset.ready === '1'", 30)
        browser.eval("document.querySelector('select[name=preset]').value = 'fast';"
                     "document.querySelector('input[name=splat]').checked = false;"
                     "document.querySelector('input[name=formats]').value = 'glb'; true")
        doc = browser.send("DOM.getDocument")
        node = browser.send("DOM.querySelector", {"nodeId": doc["root"]["nodeId"], "selector": "#file"})
        browser.send("DOM.setFileInputFiles", {"nodeId": node["nodeId"], "files": [str(synth_orbit.video_path)]})
        browser.wait_for("document.querySelector('#jobs tbody tr') !== null", 60)
        job_id = browser.eval("document.querySelector('#jobs tbody tr').dataset.id")
        ws = data / "jobs" / job_id / "ws"

        def stage_running() -> bool:
            job = json.loads(request(f"{s.url}/api/jobs/{job_id}")[2])
            return job["progress"]["stages"].get("sfm") == "done"

        cpu0, t0 = browser.cpu_seconds(), time.time()
        _wait(stage_running, 180, "the camera stage to finish")
        # the page that watches a job must leave the machine to the job (it polls; it must not spin)
        browser_load = (browser.cpu_seconds() - cpu0) / (time.time() - t0)
        print(f"browser while the job ran: {browser_load:.3f} of a core over {time.time() - t0:.0f} s")
        assert browser_load < 0.4, browser_load  # measured 0.04
        assert _children_running(ws), "the job's run is not a child process"
        sfm_done_at = json.loads((ws / "manifest.json").read_text())["stages"]["sfm"]["finished"]
        s.kill(signal.SIGKILL)
        # the run dies with its server (it stops where it can resume)
        _wait(lambda: not _children_running(ws), 60, "the job's run to stop after its server died")
        s2 = Server(data, port=s.port)  # same data, same address: the page keeps polling it
        try:
            browser.wait_for("document.querySelector(`#jobs tr[data-id='" + job_id + "']`).dataset.state === 'done'"
                             " || document.querySelector(`#jobs tr[data-id='" + job_id + "']`).dataset.state === "
                             "'failed'", 600)
            job = json.loads(request(f"{s2.url}/api/jobs/{job_id}")[2])
            assert job["state"] == "done", job
            assert job["attempts"] == 2 and job["downloads"] == ["model.glb"] and job["page"]
            manifest = json.loads((ws / "manifest.json").read_text())
            assert manifest["stages"]["sfm"]["finished"] == sfm_done_at  # resumed, not started over
            status, _, glb = request(f"{s2.url}/api/jobs/{job_id}/files/model.glb")
            assert status == 200 and glb[:4] == b"glTF"
            (tmp_path / "got.glb").write_bytes(glb)
            report = _validate_gltf(tmp_path / "got.glb")
            assert report["issues"]["numErrors"] == 0, report["issues"]
            links = browser.eval("[...document.querySelectorAll(`#jobs tr[data-id='" + job_id + "'] a`)]"
                                 ".map(a => a.textContent)")
            assert links[:3] == ["model page", "report", "model.glb"], links
            assert request(s2.url + job["page"])[0] == 200
        finally:
            s2.kill()
    finally:
        browser.close()
        s.kill(signal.SIGKILL)


def test_a_running_job_is_cancelled_and_its_events_say_so(small_server, synth_orbit):
    s, data = small_server
    status, _, body = upload(s.url, "orbit.mp4", synth_orbit.video_path.read_bytes(), preset="fast", splat="false")
    assert status == 201, body
    job_id = json.loads(body)["id"]
    ws = data / "jobs" / job_id / "ws"
    _wait(lambda: json.loads(request(f"{s.url}/api/jobs/{job_id}")[2])["state"] == "running", 60, "the job to start")
    _wait(lambda: _children_running(ws), 60, "the job's run to start")
    states = []

    def listen() -> None:
        with urllib.request.urlopen(f"{s.url}/api/jobs/{job_id}/events", timeout=120) as r:
            for raw in r:
                line = raw.decode().strip()
                if line.startswith("data: "):
                    states.append(json.loads(line[6:])["state"])

    t = threading.Thread(target=listen)
    t.start()
    _wait(lambda: states, 30, "the first event")
    assert request(f"{s.url}/api/jobs/{job_id}/cancel", "POST")[0] == 200
    t.join(120)
    assert states[0] == "running" and states[-1] == "cancelled", states  # the stream ends with the job
    _wait(lambda: not _children_running(ws), 60, "the cancelled run to stop")
    log = request(f"{s.url}/api/jobs/{job_id}/log")[2].decode()
    assert "attempt 1" in log


def test_a_killed_run_is_run_again(small_server, synth_orbit):
    """The OOM killer (or anyone) SIGKILLs a job's run: the worker queues it again and it resumes."""
    s, data = small_server
    status, _, body = upload(s.url, "orbit.mp4", synth_orbit.video_path.read_bytes(), preset="fast", splat="false")
    job_id = json.loads(body)["id"]
    ws = data / "jobs" / job_id / "ws"
    first = _wait(lambda: _children_running(ws), 60, "the job's run to start")
    for pid in first:
        os.kill(pid, signal.SIGKILL)
    _wait(lambda: json.loads(request(f"{s.url}/api/jobs/{job_id}")[2])["attempts"] == 2, 60, "a second attempt")
    second = _wait(lambda: _children_running(ws), 60, "the second run to start")
    assert not set(second) & set(first)
    assert json.loads(request(f"{s.url}/api/jobs/{job_id}")[2])["state"] == "running"
    request(f"{s.url}/api/jobs/{job_id}/cancel", "POST")
    _wait(lambda: json.loads(request(f"{s.url}/api/jobs/{job_id}")[2])["state"] == "cancelled", 60, "the cancel")
