"""Mapper strategy for the SfM stage: global first, incremental fallback, relaxed retry, piece merging.

A split model is never returned silently: pieces that share registered frames are merged (similarity
from the shared frames, then re-triangulation and bundle adjustment); what stays apart is reported.
Each model is checked for false links (ops.covisibility: cameras placed side by side that lack the
points their poses promise to share, as look-alike views of a symmetric object are); their image
pairs are dropped, their images matched against all others (to find the true neighbours retrieval
missed), and the mapper runs again.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vid2model.config import SfmConfig
from vid2model.errors import UserError
from vid2model.io.colmap import SEED
from vid2model.signals import interruptible
from vid2model.stages.sfm_models import incremental_options, merge_pieces, model_score, names_of, prune_weak_images
from vid2model.stages.sfm_rescue import needs_rescue, only_strays_missing, read_models, rescue_into
from vid2model.workspace import Workspace

log = logging.getLogger("vid2model")

LONG_CAPTURE = 60  # keyframes from which one mapper run takes minutes on 2 cores


def run_mapper(kind: str, database: Path, images: Path, out: Path) -> list:
    """One mapper run; the models it produced, largest first (empty when it failed)."""
    import pycolmap

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    try:
        if kind == "global":
            gopts = pycolmap.GlobalPipelineOptions()
            gopts.random_seed = SEED
            gopts.num_threads = 1
            models = interruptible(pycolmap.global_mapping, database, images, out, gopts)
        else:
            models = interruptible(pycolmap.incremental_mapping, database, images, out,
                                    incremental_options(kind == "relaxed"))
    except Exception as exc:  # noqa: BLE001 - a mapper failing is a result; another may succeed
        log.warning("%s mapping failed: %s", kind, exc)
        return []
    models = [m for m in models.values() if m.num_reg_images() >= 3]
    for m in models:
        prune_weak_images(m)
    return sorted(models, key=model_score, reverse=True)


def _covisibility_views(rec) -> tuple[np.ndarray, dict[int, Any]]:
    from vid2model.camera import Camera
    from vid2model.ops.covisibility import View

    pids = list(rec.point3D_ids())
    xyz = np.array([rec.point3D(p).xyz for p in pids], float).reshape(-1, 3)
    index = {p: k for k, p in enumerate(pids)}
    views = {}
    for i in rec.reg_image_ids():
        img = rec.image(i)
        pts = np.array(sorted({index[p.point3D_id] for p in img.points2D if p.has_point3D()}), int)
        views[i] = View(Camera.from_colmap(img, rec.camera(img.camera_id), lens=True), pts)
    return xyz, views


def find_false_links(rec, database: Path, min_inliers: int = 15) -> list[tuple[int, int]]:
    """Verified image pairs (image ids) that the model places together but that lack shared points."""
    import pycolmap

    from vid2model.ops.covisibility import conflicting_pairs, pair_covisibility

    db = pycolmap.Database.open(database)
    try:
        pair_ids, counts = db.read_two_view_geometry_num_inliers()
    finally:
        db.close()
    inliers = {tuple(int(i) for i in pycolmap.pair_id_to_image_pair(p)): int(c)
               for p, c in zip(pair_ids, counts) if c >= min_inliers}
    xyz, views = _covisibility_views(rec)
    return conflicting_pairs(pair_covisibility(xyz, views, list(inliers)), inliers)


def drop_pairs(database: Path, pairs: list[tuple[int, int]]) -> None:
    """Delete the verified geometry of these image pairs: no mapper uses them afterwards."""
    import pycolmap

    db = pycolmap.Database.open(database)
    try:
        for a, b in pairs:
            db.delete_two_view_geometry(a, b)
    finally:
        db.close()


def _map(kind: str, database: Path, images: Path, ws: Workspace) -> tuple[list, int, float]:
    """One mapper run with its pieces merged: (models largest first, pieces merged, seconds)."""
    t0 = time.perf_counter()
    models = run_mapper(kind, database, images, ws.mapping_scratch(kind))
    n_merged = 0
    if len(models) > 1:
        rec, n_merged, apart = merge_pieces(models, database, images, ws.mapping_scratch(kind, merged=True))
        if n_merged:
            log.info("%s mapping: merged %d pieces through shared frames", kind, n_merged)
            models = sorted([rec] + apart, key=model_score, reverse=True)
    return models, n_merged, round(time.perf_counter() - t0, 2)


def _without_false_links(kind: str, models: list, n_merged: int, database: Path, images: Path, ws: Workspace,
                         names: list[str], add_pairs: Callable[[list[str]], int],
                         rounds: int = 2) -> tuple[list, int, dict[str, Any]]:
    """Drop the false links of a model and map again while that places at least as many images.

    The images of the dropped pairs are first matched against every other image (``add_pairs``):
    a misplaced image's true neighbours were often never paired, and without them its remaining weak
    look-alike links would place it wrong again. Images still unplaced after mapping are widened too.
    """
    info: dict[str, Any] = {"false_links_dropped": 0, "s": 0.0}
    for _ in range(rounds):
        t0 = time.perf_counter()
        bad = find_false_links(models[0], database)
        if not bad:
            info["s"] += time.perf_counter() - t0
            break
        rec = models[0]
        involved = sorted({rec.image(i).name for pair in bad for i in pair})
        log.info("%s mapping: %d image pairs share far fewer points than their poses predict (false links); "
                 "mapping again without them, %d images matched more widely: %s", kind, len(bad), len(involved),
                 ", ".join(involved[:8]))
        drop_pairs(database, bad)
        info["false_links_dropped"] += len(bad)
        info.setdefault("dropped", set()).update(tuple(sorted((rec.image(a).name, rec.image(b).name)))
                                                 for a, b in bad)
        add_pairs(involved)
        info["s"] += time.perf_counter() - t0
        new, merged, dt = _map(kind, database, images, ws)
        info["s"] += dt
        missing = [n for n in names if not new or n not in names_of(new[0])]
        if missing and len(missing) < len(names):
            t0 = time.perf_counter()
            added = add_pairs(missing)
            info["s"] += time.perf_counter() - t0
            log.info("%s mapping: %d images not placed, %d pairs added for them", kind, len(missing), added)
            if added:
                new, merged, dt = _map(kind, database, images, ws)
                info["s"] += dt
        if not new or new[0].num_reg_images() < rec.num_reg_images():
            log.info("%s mapping without the false links placed fewer images: keeping the first model", kind)
            break
        models, n_merged = new, merged
    info["s"] = round(info["s"], 2)
    return models, n_merged, info


def solve(database: Path, images: Path, names: list[str], ws: Workspace, cfg: SfmConfig,
          add_pairs: Callable[[list[str]], int],
          densify: Callable[[set[tuple[str, str]]], bool] | None = None) -> tuple[Any, dict[str, Any]]:
    """Run the mappers until every image is placed in one model or all options are spent.

    Args:
        names: all image names to place.
        ws: the workspace, for the mappers' scratch folders.
        add_pairs: callback matching the given unplaced images more widely; returns pairs added.
        densify: callback for the rescue (sfm_rescue): denser features and guided matching of the pairs
            tried so far less the given (name, name) pairs (false links dropped here).

    Returns:
        (best reconstruction, info: mapper, n_models, pieces_merged, false_links_dropped, unregistered,
        timings).
    """
    # On small sets incremental mapping is as fast as global and places weakly connected images more
    # reliably; on large ones global wins on time (bench/bench_sfm.py; the crossover: incremental_max_images).
    auto = ["incremental", "global"] if len(names) <= cfg.incremental_max_images else ["global", "incremental"]
    order = {"global": ["global"], "incremental": ["incremental"]}.get(cfg.mapper, auto) + ["relaxed"]
    best, best_info, tried = None, {}, []
    dropped = 0
    false_links: set[tuple[str, str]] = set()
    mapped: set[str] = set()
    for kind in order:
        mapped.add(kind)
        if kind == "relaxed":
            missing = [n for n in names if best is None or n not in names_of(best)]
            added = add_pairs(missing)
            log.info("retrying with relaxed incremental mapping (%d extra pairs)", added)
        models, n_merged, dt = _map(kind, database, images, ws)
        if models:
            models, n_merged, fix = _without_false_links(kind, models, n_merged, database, images, ws, names,
                                                         add_pairs)
            dt = round(dt + fix["s"], 2)
            dropped += fix["false_links_dropped"]
            false_links |= fix.get("dropped", set())
        if not models:
            tried.append({"mapper": kind, "registered": 0, "s": dt})
            continue
        rec = models[0]
        n_reg, neg_err = model_score(rec)
        tried.append({"mapper": kind, "registered": n_reg, "models": len(models), "reproj_px": round(-neg_err, 3),
                      "s": dt})
        log.info("%s mapping: %d/%d images in the largest of %d models, %.2f px", kind, n_reg, len(names),
                 len(models), -neg_err)
        if best is None or model_score(rec) > model_score(best):
            best = rec
            best_info = {"mapper": kind, "n_models": len(models), "pieces_merged": n_merged}
        # a stray frame or two of a long capture left out: each further mapper takes minutes there and would
        # not place them either; on a short one a retry costs seconds
        if best.num_reg_images() == len(names) or (len(names) >= LONG_CAPTURE and only_strays_missing(best, names)):
            break
    # The rescue is seeded and judged by the models as the mappers wrote them (before pruning), of the
    # kinds this solve ran: a folder left by an earlier run may hold another set of images.
    pieces = read_models([d for k in ("incremental", "relaxed") if k in mapped for d in ws.scratch_models(k)])
    if needs_rescue(best, names, pieces):  # frames missing or a block placed wrong: fixed-focal mapping
        before, before_info = best, best_info
        seen = (read_models(ws.scratch_models("global")) if "global" in mapped else []) + pieces
        best, best_info = rescue_into(best, best_info, tried, database, images, names, ws, seen, pieces,
                                      (lambda: densify(false_links)) if densify else None)
        # the rescue maps with fewer safeguards: a model it places on false links (look-alike views put
        # cameras on the wrong side of the object) is not an improvement
        if best is not before and before is not None and find_false_links(best, database):
            log.info("the rescue's model rests on false links: keeping the mappers' model")
            best, best_info = before, before_info
    if best is None:
        raise UserError("no camera could be placed: the images share too few features. Film with more overlap "
                        "(move slower) and more texture in view")
    registered = names_of(best)
    missing = [n for n in names if n not in registered]
    if len(registered) < max(3, 0.3 * len(names)):
        raise UserError(f"only {len(registered)} of {len(names)} frames could be placed: the views overlap too "
                        f"little or the camera barely moved; move slowly around the object with overlap")
    if missing:
        log.warning("%d of %d images could not be joined to the model: %s", len(missing), len(names),
                    ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
    return best, {**best_info, "false_links_dropped": dropped, "unregistered": missing, "mapper_attempts": tried,
                  "mapping_s": round(sum(t["s"] for t in tried), 2)}
