"""Held-out test of a video's solved cameras: frames between keyframes, localised against the model.

Ingest keeps one frame between each two consecutive keyframes out of the solve (``ingest/probes``).
Each probe is matched with its two keyframes; its matches to keypoints the model triangulated give
2D-3D correspondences, and the probe is localised (RANSAC PnP with the solved camera, focal fixed). A
correct model puts it on the path between its two keyframes and explains correspondences through both
of them. A link between two keyframes that the model got wrong does neither:

* the probe's pose lies off the path: its rotation farther from the slerp between the keyframes'
  rotations, or its centre farther from the segment joining their centres, than the bounds below;
* or the pose explains one keyframe's points and not the other's: the two sides' 3D points disagree.

A probe next to a keyframe the model left out tests the link across the gap. A probe with too little
evidence leaves its link untested. The verdicts join the image pairs' own in
the self-check (:func:`vid2model.stages.sfm_verify.verify_model`): an agreeing probe links its two
keyframes, a contradicted one unlinks them.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from typing import Any

import numpy as np

from vid2model.config import SfmConfig
from vid2model.io.colmap import SEED
from vid2model.ops.similarity import rotation_angle_deg
from vid2model.stages import sfm_features as F
from vid2model.stages.sfm_models import centres
from vid2model.stages.sfm_verify import observed
from vid2model.workspace import Workspace, remove_database

log = logging.getLogger("vid2model")

REPROJ_PX = 4.0  # RANSAC threshold of the localisation (working-resolution pixels)
MIN_CORRESPONDENCES = 40  # 2D-3D correspondences under which a probe tests nothing
MIN_INLIERS = 30
SIDE_MIN = 20  # correspondences through one keyframe for that side's share to count
SIDE_SHARE = 0.2  # a side whose points the pose explains under this share (the other over twice it) disagrees
# Rotation off the path allowed: PATH_DEG plus PATH_ROT_SHARE of the median angle between consecutive
# keyframes. Not a share of the two keyframes' own angle: a keyframe turned wrong widens that, and the
# path's curvature and a hand's shake between keyframes stay small however far apart they are.
PATH_DEG = 1.5
PATH_ROT_SHARE = 0.15
PATH_CENTRE_SHARE = 0.5  # centre off the segment allowed, as a share of the keyframes' distance ...
PATH_CENTRE_STEP = 0.25  # ... plus this share of the median step between keyframes


def _slerp(Ra: np.ndarray, Rb: np.ndarray, s: float) -> np.ndarray:
    """The rotation a share ``s`` of the way from ``Ra`` to ``Rb`` ([3, 3] each) along their geodesic."""
    import cv2

    return cv2.Rodrigues(s * cv2.Rodrigues(Rb @ Ra.T)[0].ravel())[0] @ Ra


def _along_segment(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(share of the way from ``a`` to ``b`` of the point nearest ``c`` on the segment, distance to it)."""
    d = b - a
    s = float(np.clip(np.dot(c - a, d) / max(float(np.dot(d, d)), 1e-20), 0.0, 1.0))
    return s, float(np.linalg.norm(c - (a + s * d)))


def judge_probe(pose: np.ndarray, inliers: np.ndarray, side: np.ndarray, pose_a: np.ndarray, pose_b: np.ndarray,
                step: float, step_deg: float, gap_ratio: float = 1.0) -> dict[str, Any]:
    """Verdict on one localised probe.

    Args:
        pose, pose_a, pose_b: [3, 4] world-to-camera of the probe and of the keyframes before and after it.
        inliers: [M] bool, the localisation's inliers; side: [M] 0 or 1, the keyframe each came through.
        step, step_deg: median distance between consecutive keyframes' centres (model units) and median
            angle between their rotations (degrees).
        gap_ratio: frames between the two keyframes over the median between consecutive ones: the longer
            the gap, the less the path between them is a straight line and one steady turn.
    """
    def centre(P: np.ndarray) -> np.ndarray:
        return -P[:, :3].T @ P[:, 3]

    ca, cb = centre(pose_a), centre(pose_b)
    s, centre_off = _along_segment(centre(pose), ca, cb)
    ab_deg = rotation_angle_deg(pose_a[:, :3], pose_b[:, :3])
    if np.linalg.norm(cb - ca) < 0.25 * step:  # turning on the spot: the centre cannot say how far along
        s = min(np.linspace(0, 1, 41), key=lambda v: rotation_angle_deg(pose[:, :3], _slerp(pose_a[:, :3],
                                                                                             pose_b[:, :3], v)))
    # the rotation expected where the centre is along the way; the share of the keyframes' own angle allows for
    # the centre's share being a little off, capped so that a keyframe turned wrong cannot widen the bound. Where
    # the keyframes lie more frames apart than usual the path may wander between them (a walk can turn away and
    # back by more than the keyframes' own angle): half a usual step's turn for each step more
    rot_off = rotation_angle_deg(pose[:, :3], _slerp(pose_a[:, :3], pose_b[:, :3], s))
    rot_tol = (PATH_DEG + PATH_ROT_SHARE * step_deg + 0.1 * min(ab_deg, 2 * step_deg)
               + 0.5 * step_deg * max(0.0, gap_ratio - 1.0))
    centre_tol = PATH_CENTRE_SHARE * float(np.linalg.norm(cb - ca)) + PATH_CENTRE_STEP * step
    shares = [float(inliers[side == k].mean()) if (side == k).sum() >= SIDE_MIN else None for k in (0, 1)]
    split = None not in shares and min(shares) < SIDE_SHARE and max(shares) >= 2 * SIDE_SHARE
    off_path = rot_off > rot_tol or centre_off > centre_tol
    return {"verdict": "disagrees" if split or off_path else "agrees",
            "rotation_off_deg": round(rot_off, 3), "rotation_bound_deg": round(rot_tol, 3),
            "keyframes_deg": round(ab_deg, 3), "gap_ratio": round(gap_ratio, 2),
            "centre_off": round(centre_off / max(centre_tol, 1e-12), 3),
            "side_shares": [None if s is None else round(s, 3) for s in shares]}


def _median_steps(rec, order: list[str]) -> tuple[float, float]:
    """Median centre distance and rotation angle (degrees) between consecutive keyframes of ``order``."""
    if len(order) < 2:
        return 0.0, 0.0
    at = centres(rec)
    rots = [np.asarray(rec.find_image_with_name(n).cam_from_world().rotation.matrix()) for n in order]
    angles = [rotation_angle_deg(p, q) for p, q in zip(rots[:-1], rots[1:])]
    steps = np.linalg.norm(np.diff([at[n] for n in order], axis=0), axis=1)
    return float(np.median(steps)), float(np.median(angles))


def _add_probes(ws: Workspace, probes: list[dict[str, Any]], cfg: SfmConfig, peak_scale: float) -> None:
    """The keyframes' database, copied, with the probes' features and their matches to both keyframes."""
    import pycolmap

    ws.probe_database_path.parent.mkdir(parents=True, exist_ok=True)
    remove_database(ws.probe_database_path)
    shutil.copyfile(ws.database_path, ws.probe_database_path)
    names = [p["name"] for p in probes]
    F.extract(ws.probe_database_path, ws.probes_dir, names, cfg, pycolmap.CameraMode.SINGLE,
              pycolmap.ImageReaderOptions(), peak_scale)
    F.match(ws.probe_database_path, ws.probe_pairs_txt, [(p["name"], k) for p in probes for k in p["between"]],
            cfg.features)


def _correspondences(db, rec, ids: dict[str, int], probe: dict[str, Any], seen: dict[str, Any]):
    """[M, 2] probe pixels, [M] ids of the model points they see, [M] side (0: keyframe before, 1: after), or None.

    The keyframe's matched keypoints are found among the model's observations by position, not index:
    a rescue may have extracted the database's features again after the kept model was solved.
    ``seen``: keyframe name -> (KD-tree of its observations, their point ids), filled as needed (a
    keyframe serves the probes on both of its sides).
    """
    from scipy.spatial import cKDTree

    pid = ids.get(probe["name"])
    if pid is None:
        return None
    kp = np.asarray(db.read_keypoints(pid))[:, :2].astype(np.float64)
    xy, pids, side = [], [], []
    for s, kname in enumerate(probe["between"]):
        img = rec.find_image_with_name(kname)
        kid = ids.get(kname)
        if img is None or not img.has_pose or kid is None or not db.exists_two_view_geometry(pid, kid):
            return None
        if kname not in seen:
            obs_xy, obs_ids = observed(img)
            seen[kname] = (cKDTree(obs_xy) if len(obs_ids) else None, obs_ids)
        tree, obs_ids = seen[kname]
        m = np.asarray(db.read_two_view_geometry(pid, kid).inlier_matches).reshape(-1, 2)
        if not len(m) or tree is None:
            continue
        dist, at = tree.query(np.asarray(db.read_keypoints(kid))[m[:, 1], :2])
        for i, d, k in zip(m[:, 0], dist, at):
            if d < 0.5:
                xy.append(kp[i])
                pids.append(int(obs_ids[k]))
                side.append(s)
    return np.array(xy).reshape(-1, 2), np.array(pids, np.int64), np.array(side, int)


def _localise(xy: np.ndarray, xyz: np.ndarray, camera) -> tuple[np.ndarray, np.ndarray] | None:
    import pycolmap

    est = pycolmap.AbsolutePoseEstimationOptions()
    est.ransac.max_error = REPROJ_PX
    est.ransac.random_seed = SEED
    out = pycolmap.estimate_and_refine_absolute_pose(xy, xyz, camera, est)
    if out is None:
        return None
    return np.asarray(out["cam_from_world"].matrix()), np.asarray(out["inlier_mask"], bool)


def anchored(probes: list[dict[str, Any]], names: list[str], reg: set[str]) -> list[dict[str, Any]]:
    """Each probe between the nearest registered keyframes before and after it (capture order ``names``).

    Where a keyframe between was left out, its neighbours' link is the one in doubt (a rescue joined
    them across the gap): the probes there test it.
    """
    pos = {n: i for i, n in enumerate(names)}
    out = []
    for p in probes:
        a, b = (pos.get(k) for k in p["between"])
        if a is None or b is None:
            continue
        before = next((names[i] for i in range(a, -1, -1) if names[i] in reg), None)
        after = next((names[i] for i in range(b, len(names)) if names[i] in reg), None)
        if before is not None and after is not None:
            out.append({**p, "between": [before, after]})
    return out


def held_out(ws: Workspace, rec, names: list[str], probes: list[dict[str, Any]], cfg: SfmConfig,
             peak_scale: float) -> dict[str, Any]:
    """Match every probe between two registered keyframes of ``rec`` (capture order ``names``) with them.

    Returns ``probes`` (anchored, see :func:`anchored`) and ``found``: probe name -> (pixels [M, 2], model
    point ids [M], side [M]) or None. Point ids outlive a re-adjustment of the model, so the same
    correspondences test any refit of it."""
    import pycolmap

    reg = {rec.image(i).name for i in rec.reg_image_ids()}
    probes = anchored(probes, names, reg)
    found: dict[str, Any] = {}
    if not probes:
        return {"probes": probes, "found": found}
    _add_probes(ws, probes, cfg, peak_scale)
    db = pycolmap.Database.open(ws.probe_database_path)
    try:
        ids = {img.name: img.image_id for img in db.read_all_images()}
        seen: dict[str, Any] = {}
        for p in probes:
            found[p["name"]] = _correspondences(db, rec, ids, p, seen)
    finally:
        db.close()
    return {"probes": probes, "found": found}


def points_of(rec, pids: np.ndarray) -> np.ndarray:
    """[M, 3] positions of the model points ``pids`` [M]."""
    return np.array([rec.points3D[int(i)].xyz for i in pids], float).reshape(-1, 3)


def held_out_error(rec, matched: dict[str, Any]) -> tuple[float, int]:
    """How well ``rec`` predicts the held-out frames: each probe localised with the model's camera, the mean
    of its correspondences' squared reprojection errors truncated at the RANSAC threshold (an outlier costs
    the same under any model), averaged over the probes; and the number of probes that count."""
    from vid2model.camera import Camera

    scores = []
    for p in matched["probes"]:
        found = matched["found"].get(p["name"])
        if found is None or len(found[0]) < MIN_CORRESPONDENCES:
            continue
        a = rec.find_image_with_name(p["between"][0])
        xy, xyz = found[0], points_of(rec, found[1])
        loc = _localise(xy, xyz, rec.camera(a.camera_id))
        if loc is None or loc[1].sum() < MIN_INLIERS:
            continue
        cam = replace(Camera.from_colmap(a, rec.camera(a.camera_id), lens=True), R=loc[0][:3, :3], t=loc[0][:3, 3])
        proj, z = cam.project(xyz)
        r2 = ((proj - xy) ** 2).sum(axis=1)
        r2[~np.isfinite(r2) | (z <= 0)] = REPROJ_PX ** 2
        scores.append(float(np.minimum(r2, REPROJ_PX ** 2).mean()))
    return (float(np.mean(scores)) if scores else float("nan")), len(scores)


def probe_test(ws: Workspace, rec, names: list[str], probes: list[dict[str, Any]], cfg: SfmConfig,
               peak_scale: float, frames: dict[str, int] | None = None,
               matched: dict[str, Any] | None = None) -> dict[str, Any]:
    """Localise every probe between two registered keyframes against ``rec`` and judge its link.

    ``frames``: each keyframe's frame number in the video (the gap between two keyframes in frames).
    ``matched``: :func:`held_out` of this model's registered set, when already done.

    Returns counts, ``links`` ([keyframe before, keyframe after, inliers, agrees] of every tested
    probe) and each probe's verdict and figures (``results``).
    """
    reg = {rec.image(i).name for i in rec.reg_image_ids()}
    matched = matched or held_out(ws, rec, names, probes, cfg, peak_scale)
    probes = matched["probes"]
    info: dict[str, Any] = {"probes": len(probes), "tested": 0, "agreeing": 0, "disagreeing": 0, "links": [],
                            "results": []}
    if not probes:
        return info
    step, step_deg = _median_steps(rec, [n for n in names if n in reg])
    gaps = np.diff([frames[n] for n in names]) if frames and all(n in frames for n in names) else []
    usual_gap = float(np.median(gaps)) if len(gaps) else 0.0
    for p in probes:
        row: dict[str, Any] = {"name": p["name"], "between": p["between"], "verdict": "untested"}
        info["results"].append(row)
        found = matched["found"].get(p["name"])
        row["correspondences"] = 0 if found is None else len(found[0])
        if found is None or len(found[0]) < MIN_CORRESPONDENCES:
            continue
        xy, pids, side = found
        a, b = (rec.find_image_with_name(k) for k in p["between"])
        loc = _localise(xy, points_of(rec, pids), rec.camera(a.camera_id))
        row["inliers"] = 0 if loc is None else int(loc[1].sum())
        if loc is None or row["inliers"] < MIN_INLIERS:
            continue
        gap = (frames[b.name] - frames[a.name]) / usual_gap if usual_gap > 0 else 1.0
        row.update(judge_probe(loc[0], loc[1], side, np.asarray(a.cam_from_world().matrix()),
                               np.asarray(b.cam_from_world().matrix()), step, step_deg, gap))
        info["links"].append([*p["between"], row["inliers"], row["verdict"] == "agrees"])
    info.update(tested=len(info["links"]), agreeing=sum(ok for *_, ok in info["links"]),
                disagreeing=sum(not ok for *_, ok in info["links"]))
    if info["disagreeing"]:
        log.info("held-out frames: %d of %d links tested, %d contradicted", info["tested"], len(probes),
                 info["disagreeing"])
    return info
