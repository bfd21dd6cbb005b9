"""SfM rescue for weakly linked captures: incremental mapping with the focal length held fixed, pieces
joined through the poses of the frames they share, and a check of any model against those pieces.

Why: on narrow-field-of-view captures of texture-poor objects (few, short tracks), bundle adjustment
over the first two or three views trades focal length for depth almost freely; the focal drifts, the
next views no longer fit, and incremental mapping stops at 3-image pieces. Global mapping places
every view, but its rotation averaging over unreliable two-view rotations can glue whole blocks of
views on with a wrong rotation while the reprojection error still looks acceptable.

* :func:`fixed_focal_mapping` runs relaxed incremental mapping with the shared focal length fixed (at
  the focal length the mappers' own models reached), merges the pieces through shared frames
  (:func:`align_by_poses` when they share no points), and only then refines the focal length.
* :func:`piece_disagreement` names the frames of a model whose rotation disagrees with an incremental
  piece (built from multi-view tracks, so locally reliable): a wrong-but-registered block shows up
  there even when the model registered everything.
* :func:`centre_disagreement` does the same for camera centres (rotations right, positions wrong).
* :func:`rescue` drives both, with an optional callback for denser features and guided matching.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vid2model.io.colmap import bundle_adjust
from vid2model.ops.similarity import mean_rotation, rotation_angle_deg, similarity_residuals
from vid2model.signals import interruptible
from vid2model.stages.sfm_models import (centres, incremental_options, merge_pieces, model_score, prune_weak_images,
                                         rotations)
from vid2model.workspace import RescueScratch, Workspace

log = logging.getLogger("vid2model")


def model_focals(models: list) -> list[tuple[float, int]]:
    """(focal length / long image side, registered images) of each model's cameras."""
    out = []
    for m in models:
        for cam in m.cameras.values():
            n = sum(m.image(i).camera_id == cam.camera_id for i in m.reg_image_ids())
            if n >= 3:
                out.append((float(cam.mean_focal_length()) / max(cam.width, cam.height), n))
    return out


def _set_focal(database: Path, ratio: float) -> None:
    import pycolmap

    db = pycolmap.Database.open(database)
    try:
        for cam in db.read_all_cameras():
            f = ratio * max(cam.width, cam.height)
            params = np.asarray(cam.params, np.float64).copy()
            for k in cam.focal_length_idxs():
                params[k] = f
            cam.params = params
            cam.has_prior_focal_length = True
            db.update_camera(cam)
    finally:
        db.close()


def _fixed_focal_options():
    """The relaxed incremental options with the intrinsics held fixed and a smaller initial pair."""
    opts = incremental_options(relaxed=True)
    opts.ba_refine_focal_length = False
    opts.ba_refine_extra_params = False
    opts.mapper.init_min_num_inliers = 30
    return opts


def fixed_focal_mapping(database: Path, images: Path, scratch: RescueScratch, ratio: float) -> tuple[list, list]:
    """Relaxed incremental mapping with every camera's focal length fixed at ``ratio`` x its long
    side (on a copy of the database), pieces merged through shared frames, then one bundle adjustment
    that refines the focal length too.

    Returns:
        (models best first, the pieces before merging as {name: world-to-camera rotation}).
    """
    import pycolmap

    shutil.rmtree(scratch.root, ignore_errors=True)
    scratch.root.mkdir(parents=True)
    db = scratch.database
    shutil.copyfile(database, db)
    _set_focal(db, ratio)
    try:
        models = interruptible(pycolmap.incremental_mapping, db, images, scratch.models, _fixed_focal_options())
    except Exception as exc:  # noqa: BLE001 - a failed attempt is a result
        log.warning("fixed-focal mapping failed: %s", exc)
        return [], []
    # Weakly held frames are pruned only after merging: they are often the very frames two pieces share.
    models = sorted([m for m in models.values() if m.num_reg_images() >= 3], key=model_score, reverse=True)
    if not models:
        return [], []
    pieces = [rotations(m) for m in models]
    merged = 0
    if len(models) > 1:
        rec, merged, apart = merge_pieces(models, db, images, scratch.merged)
        models = [rec] + apart
    if not merged:  # merge_pieces bundle-adjusts (focal included) only what it merged
        bundle_adjust(models[0])
    # No further retriangulation + robust BA here: on a ring joined at two weak frames it can slide the
    # block between them along the hinge by degrees at an unchanged reprojection error.
    for m in models:  # every frame was placed from >= 15 inliers: only drop the nearly empty ones
        prune_weak_images(m, min_points=12, rel=0.03)
    return sorted([m for m in models if m.num_reg_images() >= 3], key=model_score, reverse=True), pieces


def piece_disagreement(rec, pieces: list[dict[str, np.ndarray]], max_deg: float = 5.0) -> set[str]:
    """Frames of ``rec`` whose rotation disagrees by more than ``max_deg`` with a piece's, once the
    piece is rotated onto ``rec`` by the (robust) mean over the frames both have (at least 3, most of
    which must agree for the piece to judge)."""
    mine = rotations(rec)
    bad: set[str] = set()
    for piece in pieces:
        shared = sorted(set(piece) & set(mine))
        if len(shared) < 3:
            continue
        Rs = np.array([mine[n].T @ piece[n] for n in shared])
        R = mean_rotation(Rs)
        dev = np.array([rotation_angle_deg(R, r) for r in Rs])
        if np.mean(dev <= max_deg) > 0.5:
            bad |= {n for n, d in zip(shared, dev) if d > max_deg}
    return bad


def centre_disagreement(rec, pieces: list[dict[str, np.ndarray]], max_rel: float = 0.05,
                        min_shared: int = 6) -> set[str]:
    """Frames of ``rec`` whose centre lies more than ``max_rel`` of a piece's extent from the piece's
    centre, once the piece is aligned onto ``rec`` by a robust similarity over the frames both have (at
    least ``min_shared``: a 4-frame piece of a sparse ring was itself off by 20 %; most must agree). Global mapping can place every rotation
    right and the positions wrong (Middlebury temple, now and then: centres 44 % of the ring off)."""
    mine = centres(rec)
    bad: set[str] = set()
    for piece in pieces:
        shared = sorted(set(piece) & set(mine))
        if len(shared) < min_shared:
            continue
        src = np.array([piece[n] for n in shared])
        dst = np.array([mine[n] for n in shared])
        extent = float(np.max(np.linalg.norm(dst[:, None] - dst[None], axis=-1)))
        if extent <= 0:
            continue
        res = similarity_residuals(src, dst) / extent
        if np.mean(res <= max_rel) > 0.5:
            bad |= {n for n, r in zip(shared, res) if r > max_rel}
        else:  # the shapes differ as a whole: every shared frame is in question
            bad |= set(shared)
    return bad


def rescue(database: Path, images: Path, ws: Workspace, names: list[str], seen: list, best,
           densify: Callable[[], bool] | None = None, judges: list | None = None) -> tuple[Any, dict[str, Any]]:
    """Try fixed-focal incremental mapping (then denser features, when ``densify`` is given and the
    first try still leaves frames out) for a model better than ``best``.

    Args:
        seen: models the mappers produced so far (their focal lengths seed the fixed focal length).
        best: the best model so far (may be None).
        judges: incremental pieces of the mappers whose camera centres both models must agree with.
        densify: callback re-extracting denser features and re-matching with guidance; False when
            it did nothing.

    Returns:
        (the better model or None, info: attempts, frames that disagree with the pieces).
    """
    f = model_focals(seen)
    ratio = _weighted_median(f) if f else 1.2
    attempts: list[dict[str, Any]] = []
    found, pieces = None, []
    for step in ("fixed_focal", "dense_fixed_focal"):
        if step == "dense_fixed_focal":
            if densify is None or not densify():
                break
        for r in range(2):
            t0 = time.perf_counter()
            models, pcs = fixed_focal_mapping(database, images, ws.rescue_scratch(f"{step}{r}"), ratio)
            rec = models[0] if models else None
            n = rec.num_reg_images() if rec is not None else 0
            attempts.append({"mapper": step, "focal_ratio": round(ratio, 3), "registered": n, "models": len(models),
                             "s": round(time.perf_counter() - t0, 2)})
            log.info("%s mapping at focal %.2f x image side: %d/%d images, %d models", step, ratio, n, len(names),
                     len(models))
            if rec is None:
                break
            if found is None or model_score(rec) > model_score(found):
                found, pieces = rec, pcs
            new = model_focals([rec])
            if not new or abs(np.log(new[0][0] / ratio)) < np.log(1.25):
                break
            ratio = new[0][0]  # the focal drifted far from the start: map again at the refined one
        if found is not None and found.num_reg_images() == len(names):
            break
    if found is None:
        return None, {"rescue_attempts": attempts}
    judged = [centres(m) for m in judges or []]
    bad_found = piece_disagreement(found, pieces) | centre_disagreement(found, judged)
    bad_best = (piece_disagreement(best, pieces) | centre_disagreement(best, judged)) if best is not None else set()
    info = {"rescue_attempts": attempts}
    if best is None or (found.num_reg_images() - len(bad_found), model_score(found)[1]) > (
            best.num_reg_images() - len(bad_best), model_score(best)[1]):
        info["disagreeing"] = sorted(bad_found)
        return found, info
    info["disagreeing"] = sorted(bad_best)
    return None, info


def _weighted_median(values: list[tuple[float, int]]) -> float:
    v = sorted(values)
    w = np.cumsum([n for _, n in v])
    return float(v[int(np.searchsorted(w, w[-1] / 2))][0])


def read_models(folders: list[Path]) -> list:
    """The models of at least 3 images in these folders (as a mapper wrote them), in the order given."""
    import pycolmap

    out = []
    for d in folders:
        try:
            out.append(pycolmap.Reconstruction(str(d)))
        except Exception:  # noqa: BLE001 - an unreadable model is just not a focal estimate
            continue
    return [m for m in out if m.num_reg_images() >= 3]


def rescue_into(best, best_info: dict[str, Any], tried: list[dict[str, Any]], database: Path, images: Path,
                names: list[str], ws: Workspace, seen: list, judges: list,
                densify: Callable[[], bool] | None) -> tuple[Any, dict[str, Any]]:
    """:func:`rescue` as a last step of ``sfm_mapping.solve``: its attempts appended to ``tried``;
    (best model, its info)."""
    t0 = time.perf_counter()
    rec, info = rescue(database, images, ws, names, seen, best, densify, judges=judges)
    attempts = info.pop("rescue_attempts")
    if attempts:  # time outside the mapping runs (densify: extraction, matching) counted in the last
        attempts[-1]["s"] = round(time.perf_counter() - t0 - sum(a["s"] for a in attempts[:-1]), 2)
    tried.extend(attempts)
    if rec is not None:
        best, best_info = rec, {"mapper": "fixed_focal", "n_models": 1, "pieces_merged": 0}
    return best, {**best_info, "disagreeing_frames": info.get("disagreeing", [])}


def only_strays_missing(best, names: list[str], share: float = 0.05) -> bool:
    """Whether ``best`` places every one of ``names`` but a stray one or two of a large capture (under
    ``share`` of them): frames that another mapper or the rescue would not place either."""
    return best is not None and len(names) - best.num_reg_images() < max(1.0, share * len(names))


def needs_rescue(best, names: list[str], pieces: list) -> bool:
    """Whether ``sfm_mapping.solve``'s model should be rescued: more than stray frames missing
    (:func:`only_strays_missing`), or frames whose rotation or centre disagrees with an incremental piece (a
    wrong-but-registered block)."""
    if not only_strays_missing(best, names):
        return True
    bad = piece_disagreement(best, [rotations(m) for m in pieces])
    bad |= centre_disagreement(best, [centres(m) for m in pieces])
    if bad:
        log.info("%d frames disagree with the incremental pieces: %s", len(bad), ", ".join(sorted(bad)[:10]))
    return bool(bad)
