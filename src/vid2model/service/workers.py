"""Local workers: each runs one job at a time as a ``vid2model run`` child process in the job's workspace.

A child is a process of its own so that a job can be cancelled (SIGTERM: the stage stops where it can resume)
and cannot take the server down. Children get SIGTERM when the server dies (Linux's parent-death signal),
and a restarted server requeues what was running: the stage runner resumes each workspace where it stopped.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from vid2model.service.store import JobStore
from vid2model.workspace import Workspace

log = logging.getLogger("vid2model")

FORMATS = ("glb", "gltf", "obj", "usdz", "fbx", "ply", "splat_ply", "spz")
MAX_ATTEMPTS = 3  # runs of a job killed from outside before it is given up
PRESETS = ("fast", "default", "quality")


def job_dir(data: Path, job_id: str) -> Path:
    return data / "jobs" / job_id


def job_paths(data: Path, job_id: str) -> dict[str, Path]:
    """Where a job keeps its input, workspace, published site and log (all under its own folder)."""
    d = job_dir(data, job_id)
    return {"input": d / "input", "workspace": d / "ws", "site": d / "site", "log": d / "job.log"}


def command(job: dict[str, Any], paths: dict[str, Path]) -> list[str]:
    """The ``vid2model run`` command line of a job's settings (only the fixed fields the API accepts)."""
    s = job["settings"]
    src = paths["input"]
    if job["input_kind"] == "video":
        src = next(src.iterdir())
    cmd = [sys.executable, "-m", "vid2model.cli", "run", str(src), "-o", str(paths["workspace"]), "-q",
           "--preset", s.get("preset", "default"), "--formats", ",".join(s.get("formats") or ["glb", "usdz"])]
    if s.get("marker_size"):
        cmd += ["--marker-size", str(float(s["marker_size"]))]
    if s.get("isolate"):
        cmd.append("--isolate")
    if not s.get("splat", True):
        cmd += ["--skip", "splat"]
    return cmd


def _die_with_parent() -> None:  # pragma: no cover (runs in the child between fork and exec)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setsid()


def _spawn(cmd: list[str], logf) -> subprocess.Popen:
    """A job's command as a child that dies with its parent, its output appended to ``logf``."""
    return subprocess.Popen(cmd, stdout=logf, stderr=subprocess.PIPE, text=True, preexec_fn=_die_with_parent,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def run_child(cmd: list[str], log_path: str) -> tuple[int, str]:
    """Run a job's command to its end: (exit code, its stderr); what a Ray task does on the node that takes
    the job."""
    with open(log_path, "a", encoding="utf-8") as logf:
        p = _spawn(cmd, logf)
        _, err = p.communicate()
        logf.write(err)
    return p.returncode, err


class Workers:
    """``n`` threads taking queued jobs from the store and running them: here as child processes, or with
    ``ray_address`` as Ray tasks on a cluster (the data folder must then be shared by every node, at the same
    path). Ray runs a task again when its node dies; the job's workspace resumes where the lost run stopped."""

    def __init__(self, store: JobStore, data: Path, n: int = 1, poll_s: float = 0.5, ray_address: str | None = None):
        self.store, self.data, self.n, self.poll_s = store, data, max(1, n), poll_s
        self.ray_address = ray_address
        self._remote = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        if self.ray_address is not None:
            from vid2model.errors import require

            ray = require("ray", "running the service's jobs on a Ray cluster", extra="cluster")
            ray.init(address=None if self.ray_address == "local" else self.ray_address, ignore_reinit_error=True,
                     log_to_driver=False)
            self._remote = ray.remote(num_cpus=1, max_retries=3)(run_child)
        requeued = self.store.requeue_interrupted()
        if requeued:
            log.info("service: %d unfinished job(s) requeued; they resume where they stopped", requeued)
        for i in range(self.n):
            t = threading.Thread(target=self._loop, name=f"vid2model-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking jobs and stop the running ones (they stay queued and resume on the next start)."""
        self._stop.set()
        with self._lock:
            procs = list(self._procs.values())
        for p in procs:
            _terminate(p)
        for t in self._threads:
            t.join(timeout)

    def cancel(self, job_id: str) -> None:
        with self._lock:
            p = self._procs.get(job_id)
        if p is not None:
            _terminate(p)

    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self.store.claim()
            if job is None:
                self._stop.wait(self.poll_s)
                continue
            try:
                self._run(job)
            except Exception as exc:  # a worker outlives any one job
                log.exception("service: job %s", job["id"])
                self.store.finish(job["id"], "failed", f"internal error: {type(exc).__name__}: {exc}")

    def _run(self, job: dict[str, Any]) -> None:
        paths = job_paths(self.data, job["id"])
        ws = Workspace(paths["workspace"])
        deadline = time.time() + 60
        while ws.root.exists() and ws.is_busy() and time.time() < deadline:  # a killed server's child winding down
            time.sleep(0.5)
        paths["log"].parent.mkdir(parents=True, exist_ok=True)
        with open(paths["log"], "a", encoding="utf-8") as logf:
            logf.write(f"--- attempt {job['attempts']} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        if self._remote is not None:
            code, err = self._on_ray(job, command(job, paths), str(paths["log"]))
        else:
            code, err = self._here(job, command(job, paths), paths["log"])
        if self._stop.is_set() and code != 0:
            self.store.finish(job["id"], "queued")  # the server is stopping: resume on its next start
            return
        current = self.store.get(job["id"])
        if current is None:  # deleted while running
            return
        if current["cancel"]:
            self.store.finish(job["id"], "cancelled")
            return
        if code < 0 and job["attempts"] < MAX_ATTEMPTS:
            # the run was killed from outside (the OOM killer, an operator): it resumes where it stopped
            log.warning("service: job %s's run was killed (signal %d); running it again", job["id"], -code)
            self.store.finish(job["id"], "queued")
            return
        if code != 0:
            lines = [ln for ln in err.strip().splitlines() if ln.strip()]
            reason = lines[-1] if lines else f"exit code {code}"
            if code < 0:
                reason = f"the run was killed (signal {-code}) {MAX_ATTEMPTS} times; see the job's log"
            self.store.finish(job["id"], "failed", reason)
            return
        self._publish(job, paths)
        self.store.finish(job["id"], "done")

    def _here(self, job: dict[str, Any], cmd: list[str], log_path: Path) -> tuple[int, str]:
        with open(log_path, "a", encoding="utf-8") as logf:
            p = _spawn(cmd, logf)
            with self._lock:
                self._procs[job["id"]] = p
            try:
                _, err = p.communicate()
            finally:
                with self._lock:
                    self._procs.pop(job["id"], None)
            logf.write(err)
        return p.returncode, err

    def _on_ray(self, job: dict[str, Any], cmd: list[str], log_path: str) -> tuple[int, str]:
        """The job as a Ray task; cancelling it (or stopping the server) kills the task's worker, and with it
        the run (its parent-death signal)."""
        import ray

        ref = self._remote.remote(cmd, log_path)
        cancelled = False
        while True:
            done, _ = ray.wait([ref], timeout=self.poll_s)
            if done:
                try:
                    return ray.get(ref)
                except (ray.exceptions.TaskCancelledError, ray.exceptions.WorkerCrashedError) as exc:
                    return 143, f"vid2model: the job's task ended: {type(exc).__name__}"
                except ray.exceptions.RayError as exc:
                    return 1, f"vid2model: error: the cluster lost the job: {str(exc).splitlines()[0]}"
            current = self.store.get(job["id"])
            if not cancelled and (self._stop.is_set() or current is None or current["cancel"]):
                ray.cancel(ref, force=True)
                cancelled = True

    def _publish(self, job: dict[str, Any], paths: dict[str, Path]) -> None:
        """The job's product page (a failure to publish leaves the models downloadable: logged, not fatal)."""
        p = subprocess.run([sys.executable, "-m", "vid2model.cli", "publish", str(paths["workspace"]), "-o",
                            str(paths["site"]), "-q"], capture_output=True, text=True, preexec_fn=_die_with_parent)
        if p.returncode != 0:
            with open(paths["log"], "a", encoding="utf-8") as logf:
                logf.write(f"publish failed: {p.stderr}")


def _terminate(p: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM to the child's process group (the stage stops resumably), SIGKILL if it lingers past ``grace_s``;
    returns at once."""
    def kill() -> None:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    t = threading.Timer(grace_s, kill)
    t.daemon = True
    t.start()
