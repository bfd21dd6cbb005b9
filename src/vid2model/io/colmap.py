"""Reading COLMAP models into plain numpy camera views (the contract between stages)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vid2model.camera import Camera
from vid2model.errors import UserError
from vid2model.signals import interruptible
from vid2model.workspace import holds_model


@dataclass(frozen=True, eq=False, kw_only=True)
class View(Camera):
    """One registered image: its :class:`Camera` (K of the pinhole part, OpenCV world-to-camera pose,
    image size) and where it comes from.

    Attributes:
        name: image file name (relative to the model's image folder).
        image_id: COLMAP image id.
        model: COLMAP camera model name (PINHOLE after undistortion).
        params: COLMAP camera parameters.
    """

    name: str
    image_id: int
    model: str
    params: np.ndarray


def read_model(sparse_dir: str | Path):
    """Load a COLMAP model folder with pycolmap, or raise a clear :class:`UserError`."""
    import pycolmap

    sparse_dir = Path(sparse_dir)
    if not holds_model(sparse_dir):
        raise UserError(f"no COLMAP model in {sparse_dir}; run camera solving first (vid2model sfm WORKSPACE)")
    return pycolmap.Reconstruction(str(sparse_dir))


def load_views(sparse_dir: str | Path) -> list[View]:
    """All registered images of a COLMAP model, sorted by name."""
    rec = read_model(sparse_dir)
    views = []
    for image_id in rec.reg_image_ids():
        img = rec.image(image_id)
        cam = img.camera
        pose = img.cam_from_world()
        mat = np.asarray(pose.matrix())
        views.append(View(name=img.name, image_id=int(image_id), K=np.asarray(cam.calibration_matrix()),
                          R=mat[:, :3].copy(), t=mat[:, 3].copy(), width=int(cam.width), height=int(cam.height),
                          model=str(cam.model_name), params=np.array(cam.params, float)))
    return sorted(views, key=lambda v: v.name)


def load_points(sparse_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Sparse 3D points: (N, 3) float64 xyz and (N, 3) uint8 rgb."""
    rec = read_model(sparse_dir)
    pts = rec.points3D
    if len(pts) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), np.uint8)
    xyz = np.array([p.xyz for p in pts.values()])
    rgb = np.array([p.color for p in pts.values()], dtype=np.uint8)
    return xyz, rgb


# Every COLMAP call that draws random numbers gets this seed: the same capture solves the same way every run.
SEED = 0


def quiet_colmap(verbose: bool = False) -> None:
    """Keep COLMAP's own (glog) chatter out of the terminal unless debugging.

    Its ERROR lines too: we report failures ourselves in one line, and a stop signal makes pycolmap
    log "Stopping thread..." at ERROR level.
    """
    import pycolmap

    pycolmap.logging.minloglevel = 0 if verbose else 3


def bundle_adjust(rec, options=None) -> None:
    """pycolmap's global bundle adjustment, quietly.

    pycolmap (4.2) lowers glog's ``minloglevel`` to 0 inside ``bundle_adjustment`` and leaves it there,
    so its banner and every later COLMAP line (undistortion, ...) reached the user's terminal. The
    call's own lines go to /dev/null (file descriptor 2, where glog writes) and the level is put back.
    Adjustments may run on several threads at once (:func:`vid2model.signals.interruptible_all`).
    """
    import pycolmap

    if options is None:
        options = pycolmap.BundleAdjustmentOptions()
    options.print_summary = False
    # Ceres' threaded Schur elimination sums in whatever order its threads finish, so the same capture came out
    # a little different between runs on a loaded machine. One thread gives the same cameras every run.
    options.ceres.solver_options.num_threads = 1
    with _glog_quiet():
        interruptible(pycolmap.bundle_adjustment, rec, options)


_QUIET = {"lock": threading.Lock(), "depth": 0, "saved_fd": -1, "level": 0}


@contextmanager
def _glog_quiet():
    """fd 2 on /dev/null and glog's level kept, from the first of any overlapping adjustments to the last:
    each saving and restoring on its own would leave the one that ends last restoring another's /dev/null."""
    import os
    import sys

    import pycolmap

    q = _QUIET
    with q["lock"]:
        if q["depth"] == 0:
            q["level"] = pycolmap.logging.minloglevel
            if q["level"] >= 2:
                sys.stderr.flush()
                q["saved_fd"] = os.dup(2)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
        q["depth"] += 1
    try:
        yield
    finally:
        with q["lock"]:
            q["depth"] -= 1
            if q["depth"] == 0:
                if q["saved_fd"] >= 0:
                    os.dup2(q["saved_fd"], 2)
                    os.close(q["saved_fd"])
                    q["saved_fd"] = -1
                pycolmap.logging.minloglevel = q["level"]
