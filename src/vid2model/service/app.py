"""The web service: a REST API (OpenAPI at ``/docs``) and a browser page for uploading captures and collecting
models. ``create_app`` builds the FastAPI app; :func:`serve` runs it with uvicorn and the local workers.

Security: loopback by default; bound elsewhere, every API call needs the token (``Authorization: Bearer`` or
``?token=``). Uploads are capped in size and count, their content (not their name) decides what they are,
and every job id and path is made by the server.
"""

# no ``from __future__ import annotations``: FastAPI reads the route functions' annotations, and the fastapi
# names they use are imported inside create_app (the service is an optional extra)
import asyncio
import hmac
import json
import logging
import secrets
import shutil
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

from vid2model.errors import UserError, require
from vid2model.service.store import JobStore
from vid2model.service.workers import FORMATS, PRESETS, Workers, job_dir, job_paths
from vid2model.workspace import Workspace

log = logging.getLogger("vid2model")

WEB = Path(__file__).resolve().parent / "web"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
COOKIE = "vid2model_token"
IMAGE_MAGIC = {b"\xff\xd8\xff": ".jpg", b"\x89PNG\r\n\x1a\n": ".png"}
# rough shares of a default-preset run's time per stage (bench figures), for the ETA
STAGE_WEIGHT = {"ingest": 2, "sfm": 15, "dense": 28, "mesh": 14, "texture": 8, "export": 3, "splat": 30}
HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "SAMEORIGIN", "Referrer-Policy": "no-referrer"}
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
            "connect-src 'self'; frame-src 'self'")


def sniff(path: Path) -> str:
    """What an upload is by its content: ``zip`` (photos), ``video``, or raise UserError."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    try:
        import av

        with av.open(str(path)) as c:
            if c.streams.video:
                return "video"
    except Exception:  # PyAV raises many kinds for non-media bytes
        pass
    raise UserError("the upload is neither a video nor a zip of photos")


def unpack_photos(zip_path: Path, dst: Path, max_bytes: int, max_files: int = 5000) -> int:
    """The JPEG and PNG photos of a zip, by content, into ``dst`` under names made here (no path from the zip
    is used); other members are skipped. Refuses archives that unpack past ``max_bytes`` or ``max_files``."""
    dst.mkdir(parents=True, exist_ok=True)
    n, total = 0, 0
    with zipfile.ZipFile(zip_path) as z:
        members = [m for m in z.infolist() if not m.is_dir()]
        if len(members) > max_files:
            raise UserError(f"the zip holds {len(members)} files; at most {max_files} are accepted")
        for m in sorted(members, key=lambda m: m.filename):
            total += m.file_size
            if total > max_bytes:
                raise UserError("the zip unpacks to more than the upload limit")
            with z.open(m) as f:
                data = f.read(max_bytes + 1)
            ext = next((e for magic, e in IMAGE_MAGIC.items() if data.startswith(magic)), None)
            if ext is None:
                continue
            n += 1
            (dst / f"photo_{n:05d}{ext}").write_bytes(data)
    if n < 3:
        raise UserError(f"the zip holds {n} JPEG or PNG photos; a model needs at least 3")
    return n


def progress(data: Path, job: dict[str, Any]) -> dict[str, Any]:
    """Per-stage state of a job's workspace, the share done (weighted by typical stage cost) and an ETA."""
    ws = Workspace(job_paths(data, job["id"])["workspace"])
    stages: dict[str, str] = {}
    if ws.manifest_path.exists():
        try:
            stages = {k: v.get("status", "") for k, v in ws.read_manifest().get("stages", {}).items()}
        except UserError:
            stages = {}
    wanted = [s for s in STAGE_WEIGHT if s != "splat" or job["settings"].get("splat", True)]
    total = sum(STAGE_WEIGHT[s] for s in wanted)
    done = sum(STAGE_WEIGHT[s] for s in wanted if stages.get(s) in ("done", "skipped"))
    share = 1.0 if job["state"] == "done" else done / total
    eta = None
    if job["state"] == "running" and job["started"] and 0 < share < 1:
        elapsed = time.time() - job["started"]
        eta = round(elapsed * (1 - share) / share)
    return {"stages": {s: stages.get(s, "pending") for s in wanted}, "share": round(share, 3), "eta_s": eta}


def job_view(data: Path, job: dict[str, Any]) -> dict[str, Any]:
    """A job as the API shows it."""
    paths = job_paths(data, job["id"])
    ws = Workspace(paths["workspace"])
    files = [p.name for p in ws.exported_models()] if job["state"] == "done" else []
    return {"id": job["id"], "name": job["name"], "state": job["state"], "error": job["error"],
            "settings": job["settings"], "input": job["input_kind"], "created": job["created"],
            "started": job["started"], "finished": job["finished"], "attempts": job["attempts"],
            "progress": progress(data, job), "downloads": files,
            "page": f"/jobs/{job['id']}/site/index.html" if (paths["site"] / "index.html").exists() else None,
            "report": f"/jobs/{job['id']}/report/index.html" if ws.report_html.exists() else None}


def _inside(root: Path, rel: str) -> Path | None:
    """``root / rel`` if it is a file inside ``root`` (no way out by .. or links), else None."""
    p = (root / rel).resolve()
    return p if p.is_file() and p.is_relative_to(root.resolve()) else None


def create_app(data: Path, *, workers: Workers | None = None, token: str | None = None,
               max_upload_mb: float = 2048.0, max_jobs: int = 200, max_uploads: int = 4):
    """The FastAPI app over the job store in ``data`` (``workers`` run the jobs; none: jobs only queue)."""
    require("fastapi", "the service", package="fastapi", extra="service")
    from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse

    data = Path(data)
    store = workers.store if workers is not None else JobStore(data / "jobs.sqlite")
    app = FastAPI(title="vid2model service", version="1",
                  description="Upload a video or a zip of photos; collect the model, its report and its page.")
    uploads = threading.BoundedSemaphore(max_uploads)
    limit = int(max_upload_mb * 1e6)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        path = request.url.path
        from_query = request.query_params.get("token", "")
        if token is not None and (path.startswith("/api/") or path.startswith("/jobs/")):
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip() or from_query or \
                request.cookies.get(COOKIE, "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"detail": "a valid token is required (Authorization: Bearer TOKEN)"}, 401)
        response = await call_next(request)
        if token is not None and from_query and hmac.compare_digest(from_query.encode(), token.encode()):
            # a job's pages fetch their models by relative links, which carry no token: the cookie does
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/jobs/")
        for k, v in HEADERS.items():
            response.headers.setdefault(k, v)
        if path == "/" or path.startswith("/static/"):
            response.headers["Content-Security-Policy"] = PAGE_CSP
        return response

    def get_job(job_id: str) -> dict[str, Any]:
        job = store.get(job_id) if len(job_id) == 32 and job_id.isalnum() else None
        if job is None:
            raise HTTPException(404, "no such job")
        return job

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return (WEB / "service.html").read_text(encoding="utf-8")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str):
        if name not in ("service.js", "service.css"):
            raise HTTPException(404)
        return FileResponse(WEB / name, media_type="text/javascript" if name.endswith(".js") else "text/css")

    @app.post("/api/jobs", status_code=201)
    async def create_job(file: UploadFile = File(...), name: str = Form(""), preset: str = Form("default"),
                         marker_size: float = Form(0.0), isolate: bool = Form(False), formats: str = Form("glb,usdz"),
                         splat: bool = Form(True)) -> dict[str, Any]:
        """Upload a video or a zip of photos with its settings; returns the new job."""
        fmts = [f.strip() for f in formats.split(",") if f.strip()]
        if preset not in PRESETS or any(f not in FORMATS for f in fmts) or not fmts or not 0 <= marker_size < 10:
            raise HTTPException(422, f"preset must be one of {', '.join(PRESETS)}; formats from "
                                     f"{', '.join(FORMATS)}; marker_size in metres")
        if store.count("queued", "running") >= max_jobs:
            raise HTTPException(429, f"{max_jobs} jobs are waiting or running; try again later")
        if not uploads.acquire(blocking=False):
            raise HTTPException(429, "too many uploads at once; try again shortly")
        tmp = data / "uploads" / f"{secrets.token_hex(16)}.part"
        try:
            tmp.parent.mkdir(parents=True, exist_ok=True)
            size = 0
            with open(tmp, "wb") as f:
                while chunk := await file.read(1 << 20):
                    size += len(chunk)
                    if size > limit:
                        raise HTTPException(413, f"the upload is larger than {max_upload_mb:g} MB")
                    f.write(chunk)
            try:
                kind = await asyncio.to_thread(sniff, tmp)
            except UserError as exc:
                raise HTTPException(415, str(exc)) from None
            settings = {"preset": preset, "marker_size": marker_size or None, "isolate": isolate, "formats": fmts,
                        "splat": splat}
            title = (name or Path(file.filename or "capture").stem)[:80]
            # queued only once its input is in place: a worker never sees half an upload
            job_id = store.create(title, settings, kind, state="uploading")
            paths = job_paths(data, job_id)
            paths["input"].mkdir(parents=True, exist_ok=True)
            try:
                if kind == "zip":
                    await asyncio.to_thread(unpack_photos, tmp, paths["input"], limit)
                else:
                    shutil.move(str(tmp), paths["input"] / "video.mp4")
            except (UserError, zipfile.BadZipFile) as exc:
                store.delete(job_id)
                shutil.rmtree(job_dir(data, job_id), ignore_errors=True)
                raise HTTPException(415, str(exc)) from None
            store.finish(job_id, "queued")
            return job_view(data, store.get(job_id))
        finally:
            tmp.unlink(missing_ok=True)
            uploads.release()

    @app.get("/api/jobs")
    def list_jobs() -> list[dict[str, Any]]:
        return [job_view(data, j) for j in store.list()]

    @app.get("/api/jobs/{job_id}")
    def job(job_id: str) -> dict[str, Any]:
        return job_view(data, get_job(job_id))

    @app.get("/api/jobs/{job_id}/events")
    async def events(job_id: str, request: Request):
        """Server-sent events: the job as ``GET /api/jobs/{id}`` shows it, whenever it changes, until it ends."""
        get_job(job_id)

        async def stream():
            last = None
            while not await request.is_disconnected():
                j = store.get(job_id)
                if j is None:
                    return
                view = json.dumps(job_view(data, j))
                if view != last:
                    yield f"data: {view}\n\n"
                    last = view
                if j["state"] in ("done", "failed", "cancelled"):
                    return
                await asyncio.sleep(1.0)

        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: str) -> dict[str, Any]:
        get_job(job_id)
        store.request_cancel(job_id)
        if workers is not None:
            workers.cancel(job_id)
        return job_view(data, store.get(job_id))

    @app.delete("/api/jobs/{job_id}", status_code=204)
    def delete(job_id: str) -> None:
        j = get_job(job_id)
        if j["state"] in ("queued", "running"):
            raise HTTPException(409, "the job is still queued or running; cancel it first")
        store.delete(job_id)
        shutil.rmtree(job_dir(data, job_id), ignore_errors=True)

    @app.get("/api/jobs/{job_id}/files/{name}")
    def download(job_id: str, name: str):
        """An exported model file (the names a job lists under ``downloads``)."""
        get_job(job_id)
        ws = Workspace(job_paths(data, job_id)["workspace"])
        match = next((p for p in ws.exported_models() if p.name == name), None)
        if match is None:
            raise HTTPException(404, "no such file; see the job's downloads")
        return FileResponse(match, filename=f"{get_job(job_id)['name']}{match.suffix}")

    @app.get("/api/jobs/{job_id}/log", response_class=HTMLResponse)
    def job_log(job_id: str):
        get_job(job_id)
        p = job_paths(data, job_id)["log"]
        return FileResponse(p, media_type="text/plain") if p.exists() else HTMLResponse("", media_type="text/plain")

    @app.get("/jobs/{job_id}/{kind}/{rel:path}", include_in_schema=False)
    def job_pages(job_id: str, kind: str, rel: str):
        """The job's published product page and its report (static files under its own folders)."""
        get_job(job_id)
        paths = job_paths(data, job_id)
        root = {"site": paths["site"], "report": Workspace(paths["workspace"]).report_dir}.get(kind)
        f = _inside(root, rel) if root is not None else None
        if f is None:
            raise HTTPException(404)
        return FileResponse(f)

    return app


def serve(data: str | Path, host: str = "127.0.0.1", port: int = 8000, n_workers: int = 1,
          token: str | None = None, max_upload_mb: float = 2048.0, ray_address: str | None = None) -> dict[str, Any]:
    """Run the service until interrupted: the API and page on ``host:port``, ``n_workers`` jobs at once (here,
    or as Ray tasks on the cluster at ``ray_address``, with ``data`` on a folder every node shares)."""
    import os

    require("uvicorn", "the service", package="uvicorn", extra="service")
    import uvicorn

    data = Path(data).expanduser().resolve()
    data.mkdir(parents=True, exist_ok=True)
    token = token or os.environ.get("VID2MODEL_TOKEN") or None
    if host not in LOOPBACK and token is None:
        token = secrets.token_urlsafe(24)
        print(f"vid2model service: API token (needed by every client): {token}", flush=True)
    store = JobStore(data / "jobs.sqlite")
    workers = Workers(store, data, n_workers, ray_address=ray_address)
    workers.start()
    app = create_app(data, workers=workers, token=token, max_upload_mb=max_upload_mb)
    shown = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
    print(f"vid2model service: {shown}{'?token=' + token if token else ''}  (data in {data}; Ctrl-C to stop)",
          flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        workers.stop()
        store.close()
    return {"data": str(data)}
