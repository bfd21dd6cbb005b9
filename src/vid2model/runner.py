"""The stage runner: skip what is finished and unchanged, resume after a crash, record the manifest.

A stage is *finished* only when ``manifest.json`` says ``done`` with the fingerprint of its current
config and inputs, and its output files are still the ones it wrote (size and content hash of each,
recorded when it finished): a deleted or truncated artifact makes the stage, and through the
fingerprints everything after it, run again instead of being read as garbage. The manifest is written
atomically after the stage's own atomic writes, so a process killed at any moment leaves either a
finished stage or one that reruns. One process at a time works in a workspace (its lock).

Stages never build the report: the runner rebuilds it after every stage that ran, whether it finished,
refused (:class:`UserError`) or failed, so a refusal's reasons are in the report before the error reaches
the user. A stop (Ctrl-C, SIGTERM) ends the run at once instead. A report that cannot be built logs one
warning and is never raised: the stage's own result or error is what the caller gets.
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
import importlib
import importlib.metadata
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from vid2model._version import __version__
from vid2model.config import PipelineConfig, config_to_dict, fingerprint_dict
from vid2model.errors import UserError
from vid2model.signals import stop_requested
from vid2model.workspace import Workspace, clean_temps, new_manifest

log = logging.getLogger("vid2model")

KEY_PACKAGES = ("numpy", "opencv-python-headless", "av", "pycolmap", "open3d-cpu", "open3d", "torch",
                "trimesh", "xatlas", "usd-core")


@dataclass(frozen=True, kw_only=True)
class Stage:
    """A pipeline stage: ``target`` is ``"module:function"`` taking ``(ws, cfg)`` and returning a summary dict."""

    name: str
    target: str
    needs: tuple[str, ...] = ()
    optional_needs: tuple[str, ...] = ()  # used when present (their fingerprints count), not required
    outputs: tuple[str, ...] = ()  # Workspace attributes naming the files/folders later stages read
    help: str = ""

    def load(self) -> Callable[[Workspace, Any], dict | None]:
        module, _, func = self.target.partition(":")
        return getattr(importlib.import_module(module), func)


def package_versions() -> dict[str, str]:
    out = {"vid2model": __version__}
    for name in KEY_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


class Manifest:
    """``manifest.json``: per-stage status, fingerprint, timings, config; saved atomically."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self.data: dict[str, Any] = ws.read_manifest() if ws.manifest_path.exists() else new_manifest()

    def stage(self, name: str) -> dict[str, Any]:
        return self.data["stages"].get(name, {})

    def is_done(self, name: str) -> bool:
        return self.stage(name).get("status") == "done"

    def set_stage(self, name: str, **entry: Any) -> None:
        self.data["stages"][name] = entry
        self.save()

    def save(self) -> None:
        self.data["updated"] = _now()
        self.ws.write_json(self.ws.manifest_path, self.data)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def scan_outputs(ws: Workspace, stage: Stage, known: dict[str, list] | None = None) -> dict[str, list]:
    """``{"attr/relative path": [size, mtime_ns, sha256[:16]]}`` of a stage's output files.

    A file whose size and modification time match ``known`` keeps its recorded hash (no reading); any
    other is hashed, so a copied workspace (new mtimes, same bytes) still counts as intact.
    """
    known = known or {}
    out: dict[str, list] = {}
    for attr in stage.outputs:
        path = getattr(ws, attr)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else \
            [path] if path.is_file() else []
        for p in files:
            key = attr if p == path else f"{attr}/{p.relative_to(path).as_posix()}"
            st = p.stat()
            old = known.get(key)
            if old and old[0] == st.st_size and old[1] == st.st_mtime_ns:
                out[key] = list(old)
            else:
                out[key] = [st.st_size, st.st_mtime_ns, _sha16(p)]
    return out


def outputs_id(files: dict[str, list] | None) -> str | None:
    """Identity of recorded outputs by name, size and content (not mtime)."""
    if not isinstance(files, dict):
        return None
    return hashlib.sha256(json.dumps(sorted((k, v[0], v[2]) for k, v in files.items())).encode()).hexdigest()[:16]


def _sha16(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def is_intact(ws: Workspace, stage: Stage, manifest: Manifest) -> bool:
    """Done, and its outputs the bytes it wrote (none deleted, truncated or changed since)."""
    entry = manifest.stage(stage.name)
    if entry.get("status") != "done":
        return False
    if not stage.outputs:
        return True
    recorded = entry.get("outputs")
    if not isinstance(recorded, dict):  # finished by a version that did not record its outputs
        return True
    return outputs_id(scan_outputs(ws, stage, recorded)) == outputs_id(recorded)


MIN_FREE_BYTES = 256 * 2**20  # native writers (COLMAP's database, image undistortion) abort on a full disk


def _check_free_space(ws: Workspace, stage: str) -> None:
    """Refuse to start a stage on a nearly full disk: COLMAP dies there with a native stack dump."""
    import shutil

    free = shutil.disk_usage(ws.root).free
    if free < MIN_FREE_BYTES:
        raise UserError(f"only {free / 2**20:.0f} MB free on the disk holding {ws.root}; the {stage} stage needs "
                        f"at least {MIN_FREE_BYTES / 2**20:.0f} MB: free some space, then run the same command again")


def input_fingerprint(ws: Workspace) -> dict[str, Any]:
    """Identity of the workspace's input (path, sizes, mtimes) without reading it all."""
    info = ws.read_json(ws.input_path)
    if info is None:
        raise UserError(f"{ws.root} has no input; start with: vid2model run INPUT -o {ws.root}")
    path = info["path"]
    if not os.path.exists(path):
        raise UserError(f"the workspace's input is gone: {path}")
    if os.path.isdir(path):
        entries = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(path) if e.is_file())
        return {"path": path, "files": hashlib.sha256(json.dumps(entries).encode()).hexdigest()}
    st = os.stat(path)
    return {"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def fingerprint(stage: Stage, cfg: Any, manifest: Manifest, ws: Workspace) -> str:
    parts: dict[str, Any] = {"stage": stage.name, "config": fingerprint_dict(cfg) if cfg is not None else None}
    for dep in stage.needs + stage.optional_needs:
        e = manifest.stage(dep)
        parts[dep] = [e.get("fingerprint"), outputs_id(e.get("outputs"))] if manifest.is_done(dep) else None
    if not stage.needs:
        parts["input"] = input_fingerprint(ws)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _refresh_report(ws: Workspace) -> None:
    """Rebuild the report; on failure log one warning and return (the policy in the module docstring)."""
    try:
        from vid2model.report import build_report  # here: the CLI starts without numpy

        build_report(ws)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not build the report: %s", exc)


class PeakMemory:
    """Samples resident memory of this process and its children while a stage runs."""

    def __init__(self, interval: float = 0.2):
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        try:
            import psutil
        except ImportError:  # pragma: no cover
            import resource
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        proc = psutil.Process()
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self.peak = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


def release_memory() -> None:
    """Hand the memory a finished stage freed back to the system. One process runs every stage, and what a
    stage frees stays in the C heap's free lists (glibc keeps large freed blocks once it has raised its
    mmap threshold), so the next stage's peak would sit on top of the last one's."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim this way
        pass


def run_stages(ws: Workspace, stages: list[Stage], cfg: PipelineConfig, *, force: bool = False,
               from_stage: str | None = None, all_stages: list[Stage] | None = None) -> dict[str, Any]:
    """Run ``stages`` in order, skipping those finished with an unchanged fingerprint.

    Args:
        ws: the workspace.
        stages: stages to run, in pipeline order.
        cfg: configs of all stages.
        force: rerun every selected stage.
        from_stage: rerun this stage and every selected stage after it.
        all_stages: the full pipeline, to name a missing upstream stage in errors.

    Returns:
        ``{stage: {"status": "done"|"skipped", "wall_s": ..., ...}}`` for the selected stages.
    """
    with ws.locked():
        return _run_locked(ws, stages, cfg, force=force, from_stage=from_stage,
                           known={s.name: s for s in (all_stages or stages)})


def _run_locked(ws: Workspace, stages: list[Stage], cfg: PipelineConfig, *, force: bool,
                from_stage: str | None, known: dict[str, Stage]) -> dict[str, Any]:
    clean_temps(ws.root)  # only under the lock: another run's temps are never ours to remove
    manifest = Manifest(ws)
    manifest.data["versions"] = package_versions()
    names = [s.name for s in stages]
    if from_stage is not None and from_stage not in names:
        raise UserError(f"--from {from_stage}: not among the stages of this run ({', '.join(names)})")
    forced = set(names) if force else set(names[names.index(from_stage):]) if from_stage else set()
    by_name = {s.name: s for s in stages}
    results: dict[str, Any] = {}
    for stage in stages:
        for dep in stage.needs:
            if not manifest.is_done(dep):
                raise UserError(f"stage '{stage.name}' needs '{dep}' first: vid2model {dep} {ws.root}")
            if dep not in by_name and dep in known and not is_intact(ws, known[dep], manifest):
                raise UserError(f"stage '{stage.name}' needs '{dep}' again: its files changed after it "
                                f"finished: vid2model {dep} {ws.root}")
        scfg = getattr(cfg, stage.name, None)
        fp = fingerprint(stage, scfg, manifest, ws)
        entry = manifest.stage(stage.name)
        if (stage.name not in forced and entry.get("status") == "done" and entry.get("fingerprint") == fp
                and is_intact(ws, stage, manifest)):
            log.info("%s: up to date, skipped", stage.name)
            results[stage.name] = {**entry, "status": "skipped"}
            continue
        if entry.get("status") == "done" and entry.get("fingerprint") == fp and stage.name not in forced:
            log.warning("%s: its files changed after it finished; running it again", stage.name)
        _check_free_space(ws, stage.name)
        log.info("%s: running", stage.name)
        manifest.set_stage(stage.name, status="running", fingerprint=fp, started=_now(), pid=os.getpid(),
                           config=config_to_dict(scfg) if scfg is not None else None)
        release_memory()
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            func = stage.load()
            with PeakMemory() as mem:
                summary = func(ws, scfg) or {}
        except BaseException as exc:
            stopped = isinstance(exc, KeyboardInterrupt) or stop_requested()
            manifest.set_stage(stage.name, status="interrupted" if stopped else "failed", fingerprint=fp,
                               finished=_now(),
                               error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                               config=config_to_dict(scfg) if scfg is not None else None)
            if not stopped:
                _refresh_report(ws)
            raise
        entry = dict(status="done", fingerprint=fp, finished=_now(),
                     wall_s=round(time.perf_counter() - t0, 3), cpu_s=round(time.process_time() - c0, 3),
                     peak_mem_mb=round(mem.peak / 2**20, 1),
                     config=config_to_dict(scfg) if scfg is not None else None,
                     versions=manifest.data["versions"], summary=summary,
                     outputs=scan_outputs(ws, stage) if stage.outputs else None)
        # Downstream stages that were done on the old output are stale now; their fingerprints
        # already differ, so they rerun when asked for. Nothing to delete here.
        manifest.set_stage(stage.name, **entry)
        log.info("%s: done in %.1f s (peak %.0f MB)", stage.name, entry["wall_s"], entry["peak_mem_mb"])
        _refresh_report(ws)
        results[stage.name] = entry
        if stop_requested():  # the stop came while the stage was finishing: keep it, start nothing new
            raise KeyboardInterrupt
    return results

