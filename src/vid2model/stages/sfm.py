"""Camera solving: SIFT features, video-aware pairing with loop closure, global/incremental mapping.

Steps: SIFT (pycolmap; one shared camera for video frames and same-size photo sets, SIMPLE_RADIAL or
OPENCV; EXIF/ingest focal as a prior; re-extraction with a lower contrast threshold for dark or
texture-poor views) -> pairs (exhaustive for small sets; else sequential neighbours + loop closures
from a bag of words learned on the capture's own descriptors; pairs added where the verified graph is
weak) -> pure-rotation check -> mappers chosen by result (sfm_mapping: incremental/global, pieces
merged through shared frames, relaxed retry; sfm_rescue: fixed-focal incremental mapping, then denser
features with guided matching, when frames stay out or disagree with the incremental pieces) ->
parallax check -> scene frame (+Z up, the first view looking along +Y, origin at the object or scene
centre, metric scale from an ArUco marker or a known distance).

Outputs ``sparse/0`` in the scene frame, ``transforms.json``, ``sfm/scene.json`` and the
undistorted COLMAP dense workspace ``dense/{images,sparse}`` that later stages read.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np

from vid2model.config import SfmConfig
from vid2model.errors import UserError
from vid2model.features.colmap_db import renumber_images
from vid2model.io.colmap import SEED
from vid2model.ops import pairs as P
from vid2model.ops.scene_frame import capture_kind, estimate_up, heading_to_y, look_at_point, rotation_to_z
from vid2model.progress import bar
from vid2model.stages import sfm_features as F
from vid2model.stages.sfm_checks import check_motion, check_pairs, check_solution
from vid2model.stages.sfm_mapping import solve
from vid2model.workspace import Workspace, atomic_dir, remove_database

log = logging.getLogger("vid2model")
MIN_INLIERS = 15


def _image_order(ws: Workspace) -> tuple[list[str], dict[str, Any]]:
    kf = ws.read_json(ws.keyframes_json, default=None)
    if kf and kf.get("keyframes"):
        names = [k["name"] for k in kf["keyframes"]]
    else:
        names = ws.image_names()
        kf = {"video": False}
    names = [n for n in names if ws.keyframe_image(n).exists()]
    if len(names) < 3:
        raise UserError(f"only {len(names)} images to solve: at least 3 (better 20+) views are needed")
    return names, kf


def _image_sizes(ws: Workspace, names: list[str], kf: dict[str, Any]) -> set[tuple[int, int]]:
    sizes = {(k["width"], k["height"]) for k in kf.get("keyframes", []) if "width" in k}
    if sizes:
        return sizes
    from PIL import Image

    out = set()
    for n in names:
        with Image.open(ws.keyframe_image(n)) as im:  # reads the header only
            out.add(im.size)
    return out


def choose_camera_model(cfg: SfmConfig, n_images: int, shared: bool, video: bool = False) -> str:
    """Phones and cameras have square pixels: never a model whose fx and fy can drift apart (OPENCV let
    them drift on a photo orbit, and every rotation inherited the error). Many views of one camera (a
    video, or a same-size photo set) get RADIAL's two distortion terms, others SIMPLE_RADIAL."""
    if cfg.camera_model != "auto":
        return cfg.camera_model
    return "RADIAL" if (video or shared) and n_images >= cfg.opencv_min_images else "SIMPLE_RADIAL"


def _extract(ws: Workspace, names: list[str], kf: dict[str, Any], cfg: SfmConfig,
             peak_scale: float = 1.0, bridges: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Features into a fresh database; ``peak_scale`` scales SIFT's contrast threshold (the rescue's
    denser features). ``bridges``: those of ``names`` that are held-out frames (sfm_bridges)."""
    import pycolmap

    from vid2model.stages import sfm_bridges

    if cfg.features != "sift":
        from vid2model.features import check_learned_features

        check_learned_features(cfg)
    sizes = _image_sizes(ws, names, kf)
    # Video frames and same-size photo sets share one camera: far better constrained intrinsics.
    one_camera = bool(kf.get("video")) or len(sizes) == 1
    model = choose_camera_model(cfg, len(names), one_camera, bool(kf.get("video")))
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = model
    focal = kf.get("focal_prior_px")
    if focal and len(sizes) == 1:
        w, h = next(iter(sizes))
        n_extra = {"SIMPLE_RADIAL": 1, "RADIAL": 2, "OPENCV": 4, "SIMPLE_PINHOLE": 0, "PINHOLE": 0}.get(model, 1)
        simple = model.startswith("SIMPLE") or model == "RADIAL"
        params = [focal, w / 2, h / 2] if simple else [focal, focal, w / 2, h / 2]
        reader.camera_params = ",".join(str(v) for v in params + [0.0] * n_extra)
    mode = pycolmap.CameraMode.SINGLE if one_camera else pycolmap.CameraMode.AUTO
    info = {"camera_model": model, "shared_camera": one_camera, "focal_prior_px": focal}
    keyframes = [n for n in names if n not in bridges]

    def features(scale: float) -> None:
        F.extract(ws.database_path, ws.images_dir, keyframes, cfg, mode, reader, scale)
        if bridges:
            sfm_bridges.extract(ws.database_path, ws.probes_dir, [n for n in names if n in bridges], cfg, scale)

    features(peak_scale)
    if cfg.features != "sift":
        return {**info, "features_per_image": _median_keypoints(ws), "low_contrast_features": False,
                "sift_peak_scale": 1.0}
    renumber_images(ws.database_path, names)
    n_kp = _median_keypoints(ws)
    relaxed = False
    if n_kp < cfg.min_keypoints:
        # Dark or texture-poor views: SIFT's contrast threshold keeps too few points to link them.
        log.info("only %d features per image: extracting again with a lower contrast threshold", n_kp)
        remove_database(ws.database_path)
        peak_scale /= 3
        features(peak_scale)
        renumber_images(ws.database_path, names)
        n_kp, relaxed = _median_keypoints(ws), True
    return {**info, "features_per_image": n_kp, "low_contrast_features": relaxed, "sift_peak_scale": peak_scale}


def _median_keypoints(ws: Workspace) -> int:
    import pycolmap

    db = pycolmap.Database.open(ws.database_path)
    try:
        return int(np.median([db.read_keypoints(img.image_id).shape[0] for img in db.read_all_images()]))
    finally:
        db.close()


def _db_images(db) -> dict[str, int]:
    return {img.name: img.image_id for img in db.read_all_images()}


def _verified_edges(db, ids: dict[str, int], names: list[str]) -> list[tuple[int, int]]:
    idx = {ids[n]: i for i, n in enumerate(names)}
    pair_ids, geoms = db.read_two_view_geometries()
    edges = []
    for pid, g in zip(pair_ids, geoms):
        a, b = __import__("pycolmap").pair_id_to_image_pair(pid)
        if len(g.inlier_matches) >= MIN_INLIERS and a in idx and b in idx:
            edges.append((idx[a], idx[b]))
    return edges


def _match(ws: Workspace, names: list[str], pairs: set[tuple[int, int]], done: set[tuple[int, int]],
           features: str = "sift", guided: bool = False) -> None:
    todo = sorted(pairs - done)
    F.match(ws.database_path, ws.pairs_txt, [(names[a], names[b]) for a, b in todo], features, guided)
    done.update(todo)


def _widen(ws: Workspace, names: list[str], missing: list[str], done: set[tuple[int, int]],
           features: str = "sift") -> int:
    """Match the images a mapper could not place against every other image; pairs added."""
    idx = {n: i for i, n in enumerate(names)}
    extra = {(min(idx[m], j), max(idx[m], j)) for m in missing for j in range(len(names)) if j != idx[m]}
    before = len(done)
    _match(ws, names, extra, done, features)
    return len(done) - before


def _densify(ws: Workspace, names: list[str], kf: dict[str, Any], cfg: SfmConfig, done: set[tuple[int, int]],
             cam_info: dict[str, Any], exclude: set[tuple[str, str]] = frozenset(),
             bridges: frozenset[str] = frozenset()) -> bool:
    """Rescue step: guided re-matching of every pair tried so far (less ``exclude``, name pairs found to
    be false links), on denser features (contrast threshold a third again) when the views kept few.
    False when there is nothing to gain (learned features)."""
    if cfg.features != "sift":
        return False
    pairs = {p for p in done if tuple(sorted((names[p[0]], names[p[1]]))) not in exclude}
    done.clear()
    if cam_info["features_per_image"] < 2 * cfg.min_keypoints:
        log.info("few features per image (%d): extracting denser ones", cam_info["features_per_image"])
        remove_database(ws.database_path)
        scale = 1 / 9 if cam_info.get("low_contrast_features") else 1 / 3  # /3 more than the last extraction
        cam_info.update(_extract(ws, names, kf, dataclasses.replace(cfg, min_keypoints=0), peak_scale=scale,
                                 bridges=bridges),
                        low_contrast_features=True)
    else:
        import pycolmap

        db = pycolmap.Database.open(ws.database_path)
        try:
            db.clear_matches()
            db.clear_two_view_geometries()
        finally:
            db.close()
    _match(ws, names, pairs, done, cfg.features, guided=True)
    return True


def _pairs_and_match(ws: Workspace, names: list[str], video: bool, cfg: SfmConfig,
                     done: set[tuple[int, int]]) -> dict[str, Any]:
    """Choose pairs, match, and add pairs where the match graph is weak."""
    import pycolmap

    n = len(names)
    if cfg.matcher == "exhaustive" or (cfg.matcher == "auto" and n <= cfg.exhaustive_max_images):
        pairs = {(i, j) for i in range(n) for j in range(i + 1, n)}
        strategy = "exhaustive"
    else:
        db = pycolmap.Database.open(ws.database_path)
        ids = _db_images(db)
        desc = [np.asarray(db.read_descriptors(ids[nm]).data) for nm in names]
        db.close()
        vec = P.bow_vectors(desc)
        # Photo folders are often shot in order too (names follow the path): detected, not assumed.
        if video or cfg.matcher == "sequential" or P.is_sequence(vec):
            pairs = P.sequential_pairs(n, cfg.sequential_overlap)
            if cfg.loop_closure:
                pairs |= P.retrieval_pairs(vec, k=cfg.retrieval_k, min_index_gap=cfg.sequential_overlap)
            strategy = "sequential+retrieval"
        else:
            pairs = P.retrieval_pairs(vec, k=min(n - 1, 20))
            strategy = "retrieval"
    _match(ws, names, pairs, done, cfg.features)
    added = 0
    for attempt in range(2):
        db = pycolmap.Database.open(ws.database_path)
        ids = _db_images(db)
        edges = _verified_edges(db, ids, names)
        db.close()
        comps = P.components(n, edges)
        degree = np.bincount(np.array(edges, int).ravel(), minlength=n) if edges else np.zeros(n, int)
        weak = [i for i in range(n) if degree[i] < 2]
        if len(comps) == 1 and not weak:
            break
        # Fallback: match weak images and the smaller pieces against everything.
        focus = set(weak) | {i for c in comps[1:] for i in c}
        extra = {(min(i, j), max(i, j)) for i in focus for j in range(n) if i != j}
        if attempt == 0 and len(extra) > 4000:
            extra = {(a, b) for a, b in extra if abs(a - b) <= 3 * cfg.sequential_overlap}
        log.info("match graph weak (%d pieces, %d weak images): adding %d pairs", len(comps), len(weak),
                 len(extra - done))
        added += len(extra - done)
        _match(ws, names, extra, done, cfg.features)
    return {"strategy": strategy, "n_pairs": len(done), "fallback_pairs": added}


def _bridge(ws: Workspace, names: list[str], kf: dict[str, Any], cfg: SfmConfig, done: set[tuple[int, int]],
            cam_info: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]], dict[str, Any]]:
    """Add the held-out frame between each weakly linked pair of consecutive keyframes to the solve
    (stages.sfm_bridges). Returns the images to solve in capture order (``done`` re-indexed to it), the
    bridges' probe records and counts."""
    from vid2model.stages import sfm_bridges as B

    if cfg.bridge_min_inliers <= 0 or cfg.features != "sift" or not kf.get("probes") or not ws.probes_dir.is_dir():
        return names, [], {}
    weak = B.weak_links(ws.database_path, names, cfg.bridge_min_inliers)
    chosen = [p for p in B.choose(kf["probes"], weak) if ws.probe_image(p["name"]).exists()]
    if not chosen:
        return names, [], {"weak_links": len(weak), "bridges": 0}
    order = B.in_order(names, chosen)
    at = {n: i for i, n in enumerate(order)}
    remapped = {(at[names[a]], at[names[b]]) for a, b in done}
    done.clear()
    done.update(remapped)
    B.extract(ws.database_path, ws.probes_dir, [p["name"] for p in chosen], cfg, cam_info["sift_peak_scale"])
    _match(ws, order, B.pairs(order, {p["name"] for p in chosen}), done, cfg.features)
    log.info("%d of %d keyframe links are weak: the frames between them join the solve", len(chosen),
             len(names) - 1)
    return order, chosen, {"weak_links": len(weak), "bridges": len(chosen)}


def _scene_frame(ws: Workspace, rec, video: bool, cfg: SfmConfig) -> dict[str, Any]:
    """Rotate/translate (and scale) the model into the scene frame, in place."""
    import pycolmap

    from vid2model.stages.sfm_scale import metric_scale

    ids = list(rec.reg_image_ids())
    Rs = np.array([np.asarray(rec.image(i).cam_from_world().matrix())[:, :3] for i in ids])
    Cs = np.array([rec.image(i).projection_center() for i in ids])
    R = np.eye(3)
    if cfg.gravity_up:  # images are numbered in capture order: the lowest id is the first view
        R = rotation_to_z(estimate_up(Rs, Cs))
        R = heading_to_y(Rs[int(np.argmin(ids))] @ R.T) @ R
    target = look_at_point(Rs, Cs)
    kind = capture_kind(Rs @ R.T, Cs @ R.T, R @ target)
    if kind == "walk":
        pts = np.array([p.xyz for p in rec.points3D.values()]) if rec.num_points3D() else Cs
        target = np.median(pts, axis=0)
    rec.transform(pycolmap.Sim3d(1.0, pycolmap.Rotation3d(R), -R @ target))
    scale, how, scale_unc = metric_scale(ws, rec, cfg)
    if scale is not None:
        rec.transform(pycolmap.Sim3d(scale, pycolmap.Rotation3d(np.eye(3)), np.zeros(3)))
    Cs = np.array([rec.image(i).projection_center() for i in ids])
    pts = np.array([p.xyz for p in rec.points3D.values()]) if rec.num_points3D() else Cs
    dist = np.linalg.norm(pts, axis=1)
    radius = float(np.percentile(dist, 90)) if kind == "walk" else float(
        min(np.percentile(dist, 70), np.median(np.linalg.norm(Cs, axis=1)) * 0.8))
    return {"up": [0.0, 0.0, 1.0], "scale": "metric" if scale is not None else "arbitrary",
            "metres_per_unit": 1.0 if scale is not None else None, "scale_source": how,
            "scale_rel_uncertainty": scale_unc,
            "center": [0.0, 0.0, 0.0], "radius": radius, "capture": kind,
            "camera_distance_median": float(np.median(np.linalg.norm(Cs, axis=1)))}


def _focal_advice(rec, skip: frozenset[str] = frozenset(), few_views: int = 15, narrow_deg: float = 120.0) -> str:
    """What would pin the focal length down, from what the solved views lack: more of them, a wider arc.
    ``skip``: images that are not views of their own (bridges between keyframes)."""
    ids = [i for i in rec.reg_image_ids() if rec.image(i).name not in skip]
    axes = np.array([np.asarray(rec.image(i).cam_from_world().rotation.matrix())[2] for i in ids])  # view directions
    span = float(np.degrees(np.arccos(np.clip(axes @ axes.T, -1, 1))).max()) if len(axes) > 1 else 0.0
    tips = []
    if span < narrow_deg:
        tips.append(f"film a wider arc around the object (these views turn through only {span:.0f} degrees)")
    if len(ids) < few_views:
        tips.append(f"film longer and more slowly (only {len(ids)} distinct views)")
    if not tips:
        tips.append("keep more texture in view (plain surfaces give too few points)")
    text = " and ".join(tips)
    return text[0].upper() + text[1:]


def _pixel_aspect(rec) -> float:
    """The largest departure from square pixels (fy/fx) among the model's cameras."""
    worst = 1.0
    for cam in rec.cameras.values():
        fx, fy = cam.focal_length_x, cam.focal_length_y
        if fx > 0 and abs(fy / fx - 1) > abs(worst - 1):
            worst = fy / fx
    return round(float(worst), 5)


def _held_out(ws: Workspace, kf: dict[str, Any], cfg: SfmConfig, bridged: set[str] | frozenset[str]) -> list[dict]:
    """The video's probes that stay held out (not bridges), when the probe check is on."""
    if not cfg.probe_check or not ws.probes_dir.is_dir():
        return []
    return [p for p in kf.get("probes", []) if p["name"] not in bridged]


def _choose_lens(ws: Workspace, rec, names: list[str], kf: dict[str, Any], cfg: SfmConfig,
                 cam_info: dict[str, Any], bridged: frozenset[str]):
    """(model, held-out matches or None, what was chosen): the lens model chosen on the held-out frames
    (stages.sfm_refine.choose_lens), for a video whose camera model the settings leave to us."""
    probes = _held_out(ws, kf, cfg, bridged)
    if cfg.camera_model != "auto" or not probes:
        return rec, None, None
    from vid2model.stages.sfm_probes import held_out
    from vid2model.stages.sfm_refine import choose_lens

    matched = held_out(ws, rec, names, probes, cfg, cam_info.get("sift_peak_scale", 1.0))
    rec, info = choose_lens(rec, matched, adjusted=cfg.robust_refine)
    return rec, matched, info


def _self_check(ws: Workspace, rec, names: list[str], kf: dict[str, Any], cfg: SfmConfig,
                cam_info: dict[str, Any] | None = None, bridges: list[dict[str, Any]] = (),
                matched: dict[str, Any] | None = None, noise2: float = 0.0) -> dict[str, Any]:
    """Judge the solved model against the image pairs' own evidence (stages.sfm_verify): drop what they
    do not confirm, refuse a model that keeps too little, and write the verdict for the report.

    ``names``: the images solved, in capture order, ``bridges`` among them (judged like keyframes,
    counted apart). ``matched``: the held-out frames' matches, when the lens choice made them.
    ``noise2``: the least image noise (px^2) the focal length's uncertainty is judged at
    (see sfm_verify.focal_uncertainty)."""
    from vid2model.stages.sfm_verify import focal_uncertainty, rotation_uncertainty, spans, verify_model

    bridged = {p["name"] for p in bridges}
    keyframes = [n for n in names if n not in bridged]
    times = {k["name"]: k.get("timestamp") for k in [*kf.get("keyframes", []), *bridges]}
    probe = None
    held_out = _held_out(ws, kf, cfg, bridged)
    if held_out:
        from vid2model.stages.sfm_probes import probe_test

        probe = probe_test(ws, rec, names, held_out, cfg, (cam_info or {}).get("sift_peak_scale", 1.0),
                           {k["name"]: k["index"] for k in [*kf.get("keyframes", []), *bridges] if "index" in k},
                           matched)
    check = verify_model(ws.database_path, rec, names, times, drop=not cfg.allow_unverified,
                         links=probe["links"] if probe else ())
    check["dropped"] = [n for n in check["dropped"] if n not in bridged]
    check["bridges"] = sorted(bridged)
    if probe:
        check["probes"] = probe
        check["broken_links"] = [f"{times.get(a) or 0:.1f}-{times.get(b) or 0:.1f} s"
                                 for a, b, _, ok in probe["links"] if not ok]
    confirmed = {rec.image(i).name for i in rec.reg_image_ids()} - set(check["dropped"]) - bridged
    check["unplaced_spans"] = spans(keyframes, set(keyframes) - confirmed, times)
    need = max(3, int(np.ceil(cfg.min_verified_share * len(keyframes))))
    ok = len(confirmed) >= need
    check["focal_std_rel"] = round(focal_uncertainty(rec, min_variance=noise2), 5) \
        if ok and cfg.max_focal_uncertainty > 0 else None
    loose = check["focal_std_rel"] is not None and check["focal_std_rel"] > cfg.max_focal_uncertainty
    shaky = None
    video = all(times.get(n) is not None for n in names)  # photo order says nothing about which views neighbour
    if ok and not loose and video and cfg.max_rotation_uncertainty_deg > 0:
        steps = rotation_uncertainty(rec, names)
        worst = max(steps, key=lambda x: x[2], default=None)
        check["rotation_std_deg_max"] = round(worst[2], 4) if worst else None
        if worst and worst[2] > cfg.max_rotation_uncertainty_deg:
            shaky = worst
    trusted = ok and not loose and not shaky
    check["verdict"] = ("partial" if check["unplaced_spans"] else "ok") if trusted else "refused"
    msg = ""
    if not ok:
        where = "; ".join(check["unplaced_spans"][:6]) or "everywhere"
        msg = (f"the cameras cannot be trusted: only {len(confirmed)} of {len(keyframes)} keyframes are placed where their "
               f"own image pairs confirm (not confirmed: {where}). Film again more slowly, with more overlap "
               f"and texture in view (or --set sfm.allow_unverified=true to carry on regardless)")
    elif loose:
        whole = spans(keyframes, set(keyframes), times)[0]
        msg = (f"the cameras cannot be trusted: this capture leaves the lens's focal length uncertain by "
               f"{100 * check['focal_std_rel']:.1f} % (all of {whole}), and every camera angle inherits that error. "
               f"{_focal_advice(rec, frozenset(bridged))} (or --set sfm.allow_unverified=true to carry on regardless)")
    elif shaky:
        a, b, deg = shaky
        msg = (f"the cameras cannot be trusted: between {times[a]:.1f} and {times[b]:.1f} s the views share too few "
               f"points to fix how the camera turned (uncertain by {deg:.1f} degrees). Film again more slowly, with "
               f"more texture in view (or --set sfm.allow_unverified=true to carry on regardless)")
    check["reason"] = msg or None
    if trusted and video and check["focal_std_rel"] and check["focal_std_rel"] > cfg.warn_focal_uncertainty:
        check["focal_warning"] = (
            f"the lens's focal length is known to {100 * check['focal_std_rel']:.1f} % only, and a compressed "
            f"video's error can be several times that: camera angles and sizes along the view may be off by a few "
            f"percent. {_focal_advice(rec, frozenset(bridged))} for a firmer solve")
        log.warning("%s", check["focal_warning"])
    check["pixel_aspect"] = _pixel_aspect(rec)
    if abs(check["pixel_aspect"] - 1.0) > 0.01:
        log.warning("the solved camera has non-square pixels (fy/fx = %.3f) where cameras have square ones: its "
                    "focal length and the camera angles are likely off; use --set sfm.camera_model=RADIAL",
                    check["pixel_aspect"])
    ws.write_json(ws.camera_check_json, check)
    if msg:
        if not cfg.allow_unverified:  # camera_check.json is written: the runner's report shows the refusal
            raise UserError(msg)
        log.warning("%s", msg)
    elif check["unplaced_spans"]:
        what = "kept anyway (sfm.allow_unverified)" if cfg.allow_unverified and check["dropped"] else \
            "kept the largest verified part"
        log.warning("%s: %d of %d keyframes confirmed by their image pairs; not confirmed: %s", what, len(confirmed),
                    len(keyframes), "; ".join(check["unplaced_spans"][:6]))
    return {"camera_check": check["verdict"], "pairs_judged": check["pairs_judged"],
            "pairs_disagreeing": check["pairs_disagreeing"], "dropped_unverified": check["dropped"],
            "dropped_spans": check["unplaced_spans"], "focal_std_rel": check["focal_std_rel"],
            **({"bridges": len(bridged)} if bridged else {}),
            **({"probes_tested": check["probes"]["tested"], "probes_agreeing": check["probes"]["agreeing"],
                "links_contradicted": check["broken_links"]} if "probes" in check else {})}


def run(ws: Workspace, cfg: SfmConfig) -> dict[str, Any]:
    """Solve cameras for the keyframes in ``images/``; see the module docstring for outputs."""
    import cv2
    import pycolmap

    from vid2model.io.colmap import quiet_colmap
    from vid2model.io.transforms import write_transforms

    quiet_colmap()
    # COLMAP's RANSAC draws from one process-wide generator: without a fixed seed a solve depended on what
    # ran before it in the same process, and the same video could come out differently
    pycolmap.set_random_seed(SEED)
    cv2.setRNGSeed(SEED)  # OpenCV's RANSAC and k-means (pairing, self-check) draw from its generator too
    names, kf = _image_order(ws)
    video = bool(kf.get("video"))
    t = {}
    ws.sfm_dir.mkdir(parents=True, exist_ok=True)
    remove_database(ws.database_path)
    ws.camera_check_json.unlink(missing_ok=True)
    with bar("camera solving", 4) as b:
        t0 = time.perf_counter()
        cam_info = _extract(ws, names, kf, cfg)
        t["features_s"] = round(time.perf_counter() - t0, 2)
        b.advance()
        t0 = time.perf_counter()
        done: set[tuple[int, int]] = set()
        match_info = _pairs_and_match(ws, names, video, cfg, done)
        t["matching_s"] = round(time.perf_counter() - t0, 2)
        match_info.update(check_pairs(ws.database_path))
        keyframes = names
        names, bridges, bridge_info = _bridge(ws, names, kf, cfg, done, cam_info)  # video only: probes
        match_info.update(bridge_info)
        bridged = frozenset(p["name"] for p in bridges)
        b.advance()
        rec, map_info = solve(ws.database_path, ws.images_dir, names, ws, cfg,
                              lambda missing: _widen(ws, names, missing, done, cfg.features),
                              lambda exclude: _densify(ws, names, kf, cfg, done, cam_info, exclude, bridged))
        t["mapping_s"] = map_info.pop("mapping_s")
        check_solution(rec)
        noise2 = 0.0
        if cfg.robust_refine:
            from vid2model.stages.sfm_refine import refine_robust
            from vid2model.stages.sfm_verify import noise_variance

            t0 = time.perf_counter()
            noise2 = noise_variance(rec)  # the noise the focal length's uncertainty is judged at (see there)
            map_info["refine"] = refine_robust(rec)
            t["refine_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        rec, matched, lens = _choose_lens(ws, rec, names, kf, cfg, cam_info, bridged)
        if lens:
            map_info["lens_choice"] = lens
            cam_info["camera_model"] = lens["lens"]
            t["lens_s"] = round(time.perf_counter() - t0, 2)
        map_info.update(_self_check(ws, rec, names, kf, cfg, cam_info, bridges, matched, noise2))
        if bridged:
            from vid2model.stages.sfm_bridges import remove

            map_info["bridges_placed"] = remove(rec, bridged)
        map_info.update(check_motion(ws.database_path, rec, len(keyframes)))
        b.advance()
        t0 = time.perf_counter()
        scene = _scene_frame(ws, rec, video, cfg)
        with atomic_dir(ws.sparse_dir) as tmp:
            rec.write_binary(str(tmp))
        ws.write_json(ws.scene_json, scene)
        write_transforms(ws.transforms_json, rec, "images")
        with atomic_dir(ws.dense_dir) as tmp:
            pycolmap.undistort_images(tmp, ws.sparse_dir, ws.images_dir)
        t["outputs_s"] = round(time.perf_counter() - t0, 2)
        b.advance()
    summary = {"n_images": len(keyframes), "n_registered": rec.num_reg_images(),
               "registered_share": round(rec.num_reg_images() / len(keyframes), 4),
               "mean_reproj_error_px": round(float(rec.compute_mean_reprojection_error()), 4),
               "n_points": int(rec.num_points3D()), "features": cfg.features, **cam_info, **match_info, **map_info, **t,
               "scale": scene["scale"], "scale_source": scene["scale_source"],
               "metres_per_unit": scene["metres_per_unit"], "capture": scene["capture"]}
    return summary
