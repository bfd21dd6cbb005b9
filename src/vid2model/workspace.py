"""The on-disk layout of one reconstruction: the only place that builds paths.

Layout (COLMAP-compatible, so COLMAP, OpenMVS, gsplat and nerfstudio read it unchanged)::

    WORKSPACE/
      manifest.json        per-stage status, fingerprints, outputs, timings, config, versions; its
                           presence marks the folder as one vid2model made (nothing else is touched)
      .lock                held (flock) by the one process working in the workspace
      vid2model.log        log of every run in this workspace
      input.json           what the workspace was made from
      ingest/              per-frame scores (frames.json), keyframe choice (keyframes.json), probes/
                           (for video: one frame between each two keyframes, held out to test the cameras)
      images/              selected keyframes at working resolution (COLMAP image dir)
      images_full/         the same keyframes at full resolution (texturing)
      sfm/                 COLMAP database and scratch models
      sparse/0/            COLMAP binary model: the world frame of every artifact here
      transforms.json      nerfstudio-style cameras (same world frame)
      dense/               COLMAP dense workspace (images/, sparse/, stereo/{depth,normal}_maps/, fused.ply)
      mesh/                surface meshes (raw, clean, LODs)
      texture/             UV-mapped textured mesh (OBJ + PNG atlas)
      splat/               Gaussian splat PLY and training checkpoints
      nerf/                radiance field (optional stage): field.pt (trained grid), checkpoint.pt (resume)
      export/              files for other tools (GLB, USDZ, FBX, OBJ, PLY, splat formats)
      report/              capture/reconstruction report (index.html, report.json, plots)
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator, NamedTuple

from vid2model.errors import UserError

MANIFEST_KEYS = ("vid2model", "stages")


def holds_model(folder: Path) -> bool:
    """Whether ``folder`` holds a COLMAP model (binary or text)."""
    return (folder / "images.bin").exists() or (folder / "images.txt").exists()


def remove_database(path: Path) -> None:
    """Delete a SQLite database with its write-ahead log, shared-memory index and rollback journal.

    A stopped solve leaves ``database.db-wal`` beside the database; a new database of the same name could take
    that log's pages in as its own on first open, and a resumed solve would not be the uninterrupted one."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


class RescueScratch(NamedTuple):
    """The scratch folder of one rescue attempt and what it holds."""

    root: Path  # made afresh for each attempt
    database: Path  # a copy of the database, its focal priors changed
    models: Path  # the mapper's models
    merged: Path  # their pieces merged


class TextureFiles(NamedTuple):
    """The textured mesh's files: the OBJ, its material library and the atlas the library names."""

    obj: Path
    mtl: Path
    png: Path


class Workspace:
    """One reconstruction's folder. Stage code asks it for every path it reads or writes.

    Methods that name a file inside one of its folders take ``root``: a folder standing in for that one (the
    temporary folder ``atomic_dir`` fills and then swaps in), so a file gets the same name either way.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def relative(self, path: Path) -> str:
        """A workspace file as records and messages name it (``texture/model.obj``)."""
        return path.relative_to(self.root).as_posix()

    # ---- top level -------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def log_path(self) -> Path:
        return self.root / "vid2model.log"

    @property
    def input_path(self) -> Path:
        return self.root / "input.json"

    @property
    def lock_path(self) -> Path:
        return self.root / ".lock"

    # ---- ingest ----------------------------------------------------------------------------
    @property
    def ingest_dir(self) -> Path:
        return self.root / "ingest"

    @property
    def frames_json(self) -> Path:
        """Per-frame analysis scores of the whole input."""
        return self.ingest_dir / "frames.json"

    @property
    def keyframes_json(self) -> Path:
        """Chosen keyframes: source index, timestamp, image name, scores."""
        return self.ingest_dir / "keyframes.json"

    @property
    def probes_dir(self) -> Path:
        """Frames between consecutive keyframes (working resolution), held out of the solve to test it."""
        return self.ingest_dir / "probes"

    def probe_image(self, name: str, root: Path | None = None) -> Path:
        return (self.probes_dir if root is None else root) / name

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    def keyframe_image(self, name: str, root: Path | None = None) -> Path:
        """A keyframe at working resolution, as the camera solve saw it."""
        return (self.images_dir if root is None else root) / name

    def image_names(self) -> list[str]:
        """Names of the images in ``images/``, sorted; temp files of a killed run left out."""
        return sorted(p.name for p in self.images_dir.iterdir() if not p.name.startswith("."))

    @property
    def images_full_dir(self) -> Path:
        return self.root / "images_full"

    def full_image(self, name: str, root: Path | None = None) -> Path:
        """A keyframe at full resolution (kept only with ``ingest.keep_full_res``)."""
        return (self.images_full_dir if root is None else root) / name

    # ---- sfm -------------------------------------------------------------------------------
    @property
    def sfm_dir(self) -> Path:
        return self.root / "sfm"

    @property
    def database_path(self) -> Path:
        return self.sfm_dir / "database.db"

    @property
    def pairs_txt(self) -> Path:
        """The image pairs matched (COLMAP's match-list format), kept for inspection."""
        return self.sfm_dir / "pairs.txt"

    @property
    def mapping_dir(self) -> Path:
        """Scratch models of the mappers and the rescue (each attempt in a folder of its own)."""
        return self.sfm_dir / "models"

    def mapping_scratch(self, kind: str, merged: bool = False) -> Path:
        """One mapper's models (kind global, incremental or relaxed), or its pieces merged."""
        return self.mapping_dir / (f"{kind}_merged" if merged else kind)

    def scratch_models(self, kind: str) -> list[Path]:
        """The model folders the mapper of this kind wrote (numbered, in name order)."""
        out = self.mapping_scratch(kind)
        if not out.is_dir():
            return []
        return [d for d in sorted(out.iterdir()) if d.is_dir() and (d / "cameras.bin").exists()]

    def rescue_scratch(self, attempt: str) -> RescueScratch:
        """The folders of one rescue attempt (e.g. ``fixed_focal0``)."""
        root = self.mapping_dir / "rescue" / attempt
        return RescueScratch(root, root / "database.db", root / "models", root / "merged")

    @property
    def probe_database_path(self) -> Path:
        """A copy of the database with the probe frames' features and matches added."""
        return self.sfm_dir / "probes" / "database.db"

    @property
    def probe_pairs_txt(self) -> Path:
        return self.sfm_dir / "probes" / "pairs.txt"

    @property
    def sparse_root(self) -> Path:
        return self.root / "sparse"

    @property
    def sparse_dir(self) -> Path:
        """The reconstruction: COLMAP binary model ``sparse/0``."""
        return self.sparse_root / "0"

    @property
    def transforms_json(self) -> Path:
        return self.root / "transforms.json"

    @property
    def camera_check_json(self) -> Path:
        """The solved model's self-check: pairs judged, frames dropped and their spans, the verdict."""
        return self.sfm_dir / "camera_check.json"

    @property
    def scene_json(self) -> Path:
        """Scene-frame facts: up axis, scale (metric or arbitrary), centre, extent."""
        return self.sfm_dir / "scene.json"

    # ---- dense -----------------------------------------------------------------------------
    @property
    def dense_dir(self) -> Path:
        return self.root / "dense"

    @property
    def undistorted_dir(self) -> Path:
        """Keyframes undistorted to pinhole (written by sfm; read by dense, mesh, texture, splat)."""
        return self.dense_dir / "images"

    def undistorted_image(self, name: str) -> Path:
        return self.undistorted_dir / name

    @property
    def dense_sparse_dir(self) -> Path:
        """The pinhole copy of the model that goes with ``undistorted_dir``."""
        return self.dense_dir / "sparse"

    @property
    def depth_maps_dir(self) -> Path:
        return self.dense_dir / "stereo" / "depth_maps"

    @property
    def normal_maps_dir(self) -> Path:
        return self.dense_dir / "stereo" / "normal_maps"

    def depth_map(self, image: str, kind: str = "geometric") -> Path:
        """COLMAP's name for an image's depth map: ``<image>.<kind>.bin``, kind geometric or photometric."""
        return self.depth_maps_dir / f"{image}.{kind}.bin"

    def normal_map(self, image: str, kind: str = "geometric") -> Path:
        return self.normal_maps_dir / f"{image}.{kind}.bin"

    @property
    def has_cameras(self) -> bool:
        """Whether camera solving has written its model (``sparse/0``)."""
        return holds_model(self.sparse_dir)

    @property
    def has_dense_cameras(self) -> bool:
        """Whether the pinhole model beside the undistorted keyframes exists."""
        return holds_model(self.dense_sparse_dir)

    @property
    def fused_ply(self) -> Path:
        return self.dense_dir / "fused.ply"

    @property
    def holdout_json(self) -> Path:
        """Views held out of dense stereo and meshing (for evaluation), by image name."""
        return self.dense_dir / "holdout.json"

    # ---- mesh / texture / splat ------------------------------------------------------------
    @property
    def mesh_dir(self) -> Path:
        return self.root / "mesh"

    @property
    def raw_mesh(self) -> Path:
        return self.mesh_dir / "mesh_raw.ply"

    @property
    def clean_mesh(self) -> Path:
        return self.mesh_dir / "mesh.ply"

    def lod_mesh(self, faces: int) -> Path:
        return self.mesh_dir / f"mesh_lod_{faces}.ply"

    @property
    def texture_dir(self) -> Path:
        return self.root / "texture"

    def texture_files(self, root: Path | None = None) -> TextureFiles:
        """The textured mesh: ``model.obj``, ``model.mtl`` and the atlas ``texture.png``."""
        folder = self.texture_dir if root is None else root
        return TextureFiles(folder / "model.obj", folder / "model.mtl", folder / "texture.png")

    @property
    def textured_obj(self) -> Path:
        return self.texture_files().obj

    @property
    def texture_mtl(self) -> Path:
        return self.texture_files().mtl

    @property
    def texture_png(self) -> Path:
        """The atlas; the MTL's ``map_Kd`` names it, but older workspaces are read by this name too."""
        return self.texture_files().png

    @property
    def splat_dir(self) -> Path:
        return self.root / "splat"

    @property
    def splat_ply(self) -> Path:
        return self.splat_dir / "point_cloud.ply"

    @property
    def splat_checkpoint(self) -> Path:
        return self.splat_dir / "checkpoint.pt"

    @property
    def nerf_dir(self) -> Path:
        return self.root / "nerf"

    @property
    def nerf_field(self) -> Path:
        """The trained radiance field (grid, normalisation, exposure), what rendering reads."""
        return self.nerf_dir / "field.pt"

    @property
    def nerf_checkpoint(self) -> Path:
        """Training state (field, optimiser, iteration): a stopped run continues from it."""
        return self.nerf_dir / "checkpoint.pt"

    # ---- export / report -------------------------------------------------------------------
    @property
    def export_dir(self) -> Path:
        return self.root / "export"

    def export_path(self, fmt: str, stem: str = "model") -> Path:
        return self.export_dir / f"{stem}.{fmt}"

    def exported_models(self) -> list[Path]:
        """The model files export wrote (``model.*``), in name order."""
        return sorted(self.export_dir.glob("model.*")) if self.export_dir.exists() else []

    @property
    def export_json(self) -> Path:
        """What the export stage wrote: files, sizes, conventions, notes."""
        return self.export_dir / "export.json"

    @property
    def measure_json(self) -> Path:
        """The object's dimensions and what they rest on (``vid2model measure``)."""
        return self.root / "measure" / "measure.json"

    @property
    def floor_plan_svg(self) -> Path:
        return self.root / "measure" / "floorplan.svg"

    @property
    def floor_plan_json(self) -> Path:
        return self.root / "measure" / "floorplan.json"

    @property
    def floor_plan_dxf(self) -> Path:
        return self.root / "measure" / "floorplan.dxf"

    @property
    def garment_svg(self) -> Path:
        """A garment's outline laid flat, drawn (``vid2model measure --subject garment``)."""
        return self.root / "measure" / "garment.svg"

    @property
    def garment_json(self) -> Path:
        return self.root / "measure" / "garment.json"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def report_html(self) -> Path:
        return self.report_dir / "index.html"

    @property
    def report_json(self) -> Path:
        return self.report_dir / "report.json"

    @property
    def timeline_png(self) -> Path:
        return self.report_dir / "timeline.png"

    @property
    def coverage_png(self) -> Path:
        return self.report_dir / "coverage.png"

    @property
    def thumbs_dir(self) -> Path:
        """Small JPEGs of the keyframes for the report."""
        return self.report_dir / "thumbs"

    def thumb(self, image: str, root: Path | None = None) -> Path:
        """A keyframe's thumbnail: ``<image stem>.jpg``."""
        return (self.thumbs_dir if root is None else root) / f"{Path(image).stem}.jpg"

    @property
    def site_dir(self) -> Path:
        """Where the report expects the published site (``vid2model publish -o``), if it is published here."""
        return self.root / "site"

    @property
    def site_html(self) -> Path:
        return self.site_dir / "index.html"

    @property
    def folders(self) -> tuple[Path, ...]:
        """The workspace's own folders, which nothing else may replace."""
        return (self.images_dir, self.images_full_dir, self.sparse_root, self.dense_dir, self.mesh_dir,
                self.texture_dir, self.splat_dir, self.nerf_dir, self.export_dir, self.report_dir, self.sfm_dir, self.ingest_dir)

    # ---- ownership ---------------------------------------------------------------------------
    def create(self) -> "Workspace":
        """Make the folder and mark it as ours; refuse a file, or a folder of someone else's files.

        A user's own folder given as ``-o`` is left byte-for-byte as it was.
        """
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"{self.root} is a file, not a folder: give a new folder as the workspace (-o)")
        if self.manifest_path.exists() or self.manifest_path.is_symlink():
            self.read_manifest()  # ours, or a one-line refusal
            return self
        if self.root.is_dir() and any(self.root.iterdir()):
            raise UserError(f"{self.root} already holds files that are not a vid2model workspace; "
                            "give a new or empty folder as the workspace (-o); nothing was changed")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.write_json(self.manifest_path, new_manifest())
        except OSError as exc:
            raise UserError(f"cannot create the workspace {self.root}: {exc.strerror or exc}; "
                            "choose a writable location (-o)") from exc
        return self

    def exists(self) -> bool:
        return self.manifest_path.exists()

    def read_manifest(self) -> dict[str, Any]:
        """The manifest, checked: a corrupt, foreign or unreadable one is a one-line error, not a traceback."""
        path = self.manifest_path
        hint = "it is not a vid2model workspace; give a new folder as the workspace"
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise UserError(f"not a vid2model workspace: {self.root} (create one with: "
                            f"vid2model run INPUT -o {self.root})") from None
        except IsADirectoryError:
            raise UserError(f"{path} is a folder, not a vid2model manifest: {hint}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{path} is damaged ({type(exc).__name__}), so this workspace cannot be resumed; "
                            "start afresh in a new folder: vid2model run INPUT -o NEW_FOLDER") from None
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
        if not (isinstance(data, dict) and all(k in data for k in MANIFEST_KEYS)
                and isinstance(data["stages"], dict)):
            raise UserError(f"{path} was not written by vid2model: {hint}; nothing was changed")
        return data

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the workspace for this process; a second process is refused with one line.

        The kernel drops the lock when a process dies, so a killed run leaves no stale lock. Nested
        use in one process is allowed (the CLI and the pipeline both take it).
        """
        with _LOCKS_GUARD:
            held = _LOCKS.get(self.root)
            if held is not None:
                held[1] += 1
        if held is not None:
            try:
                yield
            finally:
                with _LOCKS_GUARD:
                    held[1] -= 1
            return
        fd = _acquire(self.lock_path)
        with _LOCKS_GUARD:
            _LOCKS[self.root] = [fd, 1]
        try:
            yield
        finally:
            with _LOCKS_GUARD:
                _LOCKS.pop(self.root, None)
            os.close(fd)

    def is_busy(self) -> bool:
        """True when another process holds the workspace's lock."""
        if self.root in _LOCKS or not self.lock_path.exists():
            return self.root in _LOCKS
        try:
            fd = _acquire(self.lock_path, write_pid=False)
        except UserError:
            return True
        os.close(fd)
        return False

    # ---- helpers ---------------------------------------------------------------------------

    def read_json(self, path: Path, default: Any = None) -> Any:
        if not path.exists():
            return default
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def write_json(self, path: Path, data: Any) -> None:
        """Write JSON atomically (temp file, then rename)."""
        with atomic_path(path) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2, default=_json_default)

    def write_text(self, path: Path, text: str) -> None:
        """Write a text file atomically (temp file, then rename)."""
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")


_LOCKS: dict[Path, list[int]] = {}
_LOCKS_GUARD = threading.Lock()


def new_manifest() -> dict[str, Any]:
    from datetime import datetime, timezone

    from vid2model._version import __version__

    return {"vid2model": __version__, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "stages": {}}


def _acquire(path: Path, write_pid: bool = True) -> int:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock (Windows): no protection, but no failure either
        return os.open(os.devnull, os.O_RDONLY)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"cannot write in the workspace {path.parent}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise UserError(f"another vid2model process (pid {pid}) is working in {path.parent}; "
                            "wait for it to finish or stop it, then run again") from None
        raise
    if write_pid:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path next to ``path``; rename it onto ``path`` only if the block succeeds.

    A killed process leaves at worst a ``.tmp-*`` file, never a half-written ``path``. The temp
    name keeps the final suffix so writers that infer the format from it still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sfx = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.stem}-", suffix=sfx, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes 0600 files; give the usual permissions
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp folder; swap it in for ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists():
            old = path.with_name(f".old-{path.name}-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def clean_temps(root: Path) -> None:
    """Remove temp files/folders a killed run left behind."""
    if not root.exists():
        return
    for p in root.rglob(".tmp-*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    for p in root.rglob(".old-*"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
