"""Self-check of a solved model before anything downstream uses it.

A mapper (or a rescue) can register every frame and still place whole blocks of them wrong: a
reprojection error computed on the model's own tracks cannot see it. The check here asks each
verified image pair's own two-view evidence instead:

* the relative rotation the pair's correspondences give on their own (essential matrix, or the
  rotation homography of a pair without baseline) must match the model's;
* the correspondences, triangulated with the model's two poses, must reproject onto themselves and
  lie in front of both cameras (the epipolar test alone lets a wrong turn pass as a depth change).

A pair whose evidence the model contradicts *disagrees*; one it explains *agrees*.

Frames are then kept only where agreeing pairs link them into one block: blocks that no agreeing pair
ties to the largest one were placed by nothing the images confirm, so they are dropped and named (for
video, as time spans). A model whose verified block is too small is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from vid2model.camera import Camera
from vid2model.ops.similarity import project_rotation, rotation_angle_deg

log = logging.getLogger("vid2model")

MIN_PAIR_INLIERS = 20  # pairs with fewer verified inliers say too little to judge a pose
REPROJ_PX = 4.0  # a correspondence the model explains reprojects within this (working-resolution px)
AGREE_SHARE = 0.6  # a pair agrees when at least this share of its inliers is explained
DISAGREE_SHARE = 0.3  # and disagrees when under this share is
# The pair's own relative rotation is only a coarse judge: narrow views and planar scenes leave it a few
# degrees loose even on correct pairs, so it catches gross turns only.
AGREE_DEG = 15.0
DISAGREE_DEG = 25.0


def _triangulate(x1: np.ndarray, x2: np.ndarray, P1: np.ndarray, P2: np.ndarray) -> np.ndarray:
    """Linear (DLT) triangulation of normalised image points x1, x2 (N, 2) seen by 3x4 poses: (N, 3)."""
    A = np.stack([x1[:, 0:1] * P1[2] - P1[0], x1[:, 1:2] * P1[2] - P1[1],
                  x2[:, 0:1] * P2[2] - P2[0], x2[:, 1:2] * P2[2] - P2[1]], axis=1)  # (N, 4, 4)
    _, _, vt = np.linalg.svd(A)
    X = vt[:, -1]
    w = X[:, 3:4]
    w = np.where(np.abs(w) < 1e-12, 1e-12, w)
    return X[:, :3] / w


def pair_agreement(x1: np.ndarray, x2: np.ndarray, P1: np.ndarray, P2: np.ndarray, f1: float, f2: float,
                   px: float = REPROJ_PX) -> float:
    """Share of correspondences (normalised x1, x2 (N, 2)) that the poses P1, P2 (3x4, cam_from_world)
    explain: triangulated, they reproject within ``px`` pixels (focal lengths f1, f2 convert) and lie in
    front of both cameras. Points seen along nearly parallel rays (no baseline) are judged by the
    reprojection alone: their depth, and so its sign, is not determined."""
    X = _triangulate(x1, x2, P1, P2)
    Xh = np.concatenate([X, np.ones((len(X), 1))], 1)
    c1, c2 = Xh @ P1.T, Xh @ P2.T  # (N, 3) in each camera
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = np.linalg.norm(c1[:, :2] / c1[:, 2:3] - x1, axis=1) * f1
        e2 = np.linalg.norm(c2[:, :2] / c2[:, 2:3] - x2, axis=1) * f2
    r1 = np.concatenate([x1, np.ones((len(x1), 1))], 1) @ P1[:, :3]  # world ray directions (R^T x)
    r2 = np.concatenate([x2, np.ones((len(x2), 1))], 1) @ P2[:, :3]
    cosang = np.sum(r1 * r2, 1) / (np.linalg.norm(r1, axis=1) * np.linalg.norm(r2, axis=1))
    parallel = cosang > np.cos(np.radians(0.5))
    front = (c1[:, 2] > 0) & (c2[:, 2] > 0)
    ok = np.isfinite(e1) & np.isfinite(e2) & (e1 < px) & (e2 < px) & front
    # rays that barely diverge fix no depth: the point is judged at infinity, by the rotation alone
    with np.errstate(divide="ignore", invalid="ignore"):
        inf = (P2[:, :3] @ r1.T).T
        e_inf = np.linalg.norm(inf[:, :2] / inf[:, 2:3] - x2, axis=1) * f2
    ok |= parallel & (inf[:, 2] > 0) & (e_inf < px)
    return float(ok.mean()) if len(ok) else 0.0


def rotation_disagreement(x1: np.ndarray, x2: np.ndarray, R_rel: np.ndarray, f: float) -> float:
    """Degrees between the relative rotation ``R_rel`` (cam2_from_cam1) of a model and the nearest of the
    rotations the pair's normalised correspondences x1, x2 (N, 2) allow on their own: the essential
    matrix's, and the homography's decompositions (a planar scene, or views without baseline, leave the
    essential matrix ambiguous). ``f``: focal length in pixels (the RANSAC threshold)."""
    import cv2

    thr = 1.5 / f
    cands = []
    if len(x1) >= 8:
        E, mask = cv2.findEssentialMat(x1, x2, np.eye(3), method=cv2.RANSAC, prob=0.999, threshold=thr)
        if E is not None and E.shape == (3, 3):
            cands.append(cv2.recoverPose(E, x1, x2, np.eye(3), mask=mask)[1])
        # a homography that fits describes most correspondences: a few hundred samples find it
        H, hm = cv2.findHomography(x1, x2, cv2.RANSAC, thr, maxIters=300, confidence=0.99)
        if H is not None and hm is not None and hm.mean() > 0.5:
            cands.append(project_rotation(H / np.cbrt(np.linalg.det(H))))
            cands += list(cv2.decomposeHomographyMat(H, np.eye(3))[1])
    return min((rotation_angle_deg(np.asarray(R), R_rel) for R in cands), default=180.0)


def judge_pairs(database: Path, rec, min_inliers: int = MIN_PAIR_INLIERS,
                max_matches: int = 200) -> list[tuple[int, int, int, bool | None]]:
    """(image id a, image id b, inliers, verdict) of every verified pair between registered images:
    True agrees, False disagrees, None undecided."""
    import pycolmap

    reg = set(rec.reg_image_ids())
    db = pycolmap.Database.open(database)
    try:
        pair_ids, geoms = db.read_two_view_geometries()
        kps = {i: np.asarray(db.read_keypoints(i))[:, :2].astype(np.float64) for i in reg}
    finally:
        db.close()
    poses, norm, focal = {}, {}, {}
    for i in reg:
        img = rec.image(i)
        cam = Camera.from_colmap(img, rec.camera(img.camera_id), lens=True)
        poses[i] = cam.world_to_cam[:3]
        norm[i] = cam.rays(kps[i])[:, :2]
        focal[i] = float(cam.lens.mean_focal_length())
    out = []
    rng = np.random.default_rng(0)
    for pid, g in zip(pair_ids, geoms):
        a, b = (int(v) for v in pycolmap.pair_id_to_image_pair(pid))
        m = np.asarray(g.inlier_matches)
        if a not in reg or b not in reg or len(m) < min_inliers:
            continue
        n_inliers = len(m)
        if len(m) > max_matches:  # a few hundred correspondences judge a pose as well as thousands
            m = m[rng.choice(len(m), max_matches, replace=False)]
        x1, x2 = norm[a][m[:, 0]], norm[b][m[:, 1]]
        share = pair_agreement(x1, x2, poses[a], poses[b], focal[a], focal[b])
        rot = rotation_disagreement(x1, x2, poses[b][:, :3] @ poses[a][:, :3].T, focal[a])
        verdict = (True if share >= AGREE_SHARE and rot <= AGREE_DEG else
                   False if share < DISAGREE_SHARE or rot > DISAGREE_DEG else None)
        out.append((a, b, n_inliers, verdict))
    return out


def verified_blocks(ids: list[int], judged: list[tuple[int, int, int, bool | None]],
                    max_disagree: float = 1 / 3, order: dict[int, int] | None = None,
                    local: int = 3) -> tuple[list[list[int]], set[int]]:
    """Blocks of images linked by agreeing pairs (largest first), and the images placed against their
    own evidence: one at a time, worst first, an image whose judged pairs disagree for more than
    ``max_disagree`` of their inliers is set aside (its pairs no longer count for the others).

    Weighting by inliers lets a look-alike pair (few inliers, the model rightly disagrees) count for
    less than the many true neighbours of an image.

    With ``order`` (image id -> position in a video's capture order), a pair more than ``local``
    positions apart (a loop closure, or a pair across a gap) joins two blocks only where a second such
    pair agrees: one pair's coarse rotation bound lets a block through several degrees off (a fast
    orbit's two halves, joined by one pair 100 degrees apart, came out 6 degrees wrong).
    """
    alive = set(ids)
    contradicted: set[int] = set()
    while True:
        agree = {i: 0.0 for i in alive}
        disagree = {i: 0.0 for i in alive}
        for a, b, n, v in judged:
            if a in alive and b in alive and v is not None:
                for i in (a, b):
                    (agree if v else disagree)[i] += n
        share = {i: disagree[i] / (agree[i] + disagree[i]) for i in alive if disagree[i] > 0}
        if not share:
            break
        worst = max(share, key=share.get)
        if share[worst] <= max_disagree:
            break
        alive.discard(worst)
        contradicted.add(worst)
    parent = {i: i for i in alive}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    far = []
    for a, b, _, v in judged:
        if v is True and a in alive and b in alive:
            if order is None or a not in order or b not in order or abs(order[a] - order[b]) <= local:
                parent[find(a)] = find(b)
            else:
                far.append((a, b))
    joined = True
    while joined:
        joined = False
        support: dict[frozenset[int], int] = {}
        for a, b in far:
            key = frozenset((find(a), find(b)))
            if len(key) == 2:
                support[key] = support.get(key, 0) + 1
        for key, n in support.items():
            ra, rb = (find(r) for r in key)
            if n >= 2 and ra != rb:
                parent[ra] = rb
                joined = True
    groups: dict[int, list[int]] = {}
    for i in ids:
        if i in alive:
            groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=len, reverse=True), contradicted


def spans(names: list[str], dropped: set[str], times: dict[str, float | None]) -> list[str]:
    """Runs of consecutive dropped frames (in capture order) as readable spans."""
    out, run = [], []
    for n in names + [None]:
        if n is not None and n in dropped:
            run.append(n)
            continue
        if run:
            t0, t1 = times.get(run[0]), times.get(run[-1])
            if t0 is not None and t1 is not None:
                out.append(f"{t0:.1f}-{t1:.1f} s ({len(run)} keyframes)")
            else:
                out.append(f"{run[0]}..{run[-1]} ({len(run)} images)" if len(run) > 1 else run[0])
            run = []
    return out


def with_links(judged: list[tuple[int, int, int, bool | None]], rec, links: Iterable[tuple[str, str, int, bool]],
               names: list[str] | None = None, reach: int = 2) -> list[tuple[int, int, int, bool | None]]:
    """``judged`` with the ``links`` verdicts added.

    A link that disagrees removes the agreement of the pairs across it: its own, and with ``names``
    (capture order) those of up to ``reach`` images on either side that span it, which would otherwise
    join the two sides again where the pair check's tolerance let a small wrong turn pass.
    """
    by_name = {rec.image(i).name: i for i in rec.reg_image_ids()}
    pos = {by_name[n]: k for k, n in enumerate(names or []) if n in by_name}
    extra = [(by_name[a], by_name[b], n, ok) for a, b, n, ok in links if a in by_name and b in by_name]

    def across(i: int, j: int, a: int, b: int) -> bool:
        if {i, j} == {a, b}:
            return True
        if i not in pos or j not in pos or a not in pos or b not in pos:
            return False
        (i, j), (a, b) = sorted((pos[i], pos[j])), sorted((pos[a], pos[b]))
        return a - reach <= i <= a and b <= j <= b + reach

    cut = [(a, b) for a, b, _, ok in extra if not ok]
    kept = [j for j in judged if not (j[3] is True and any(across(j[0], j[1], a, b) for a, b in cut))]
    return kept + [(a, b, min(n, MIN_PAIR_INLIERS), ok) for a, b, n, ok in extra]


def verify_model(database: Path, rec, names: list[str], times: dict[str, float | None],
                 drop: bool = True, links: Iterable[tuple[str, str, int, bool]] = ()) -> dict[str, Any]:
    """Judge ``rec`` against every verified pair; deregister what no agreeing pair ties to the largest
    verified block (in place; with ``drop`` False only name it).

    Args:
        names: every image to place, in capture order.
        times: timestamp (seconds) of each image for video, None for photos.
        links: further verdicts on image pairs (name, name, weight, agrees), from held-out frames
            (:mod:`vid2model.stages.sfm_probes`): one that disagrees overrules the pair's own agreement.

    Returns:
        pairs judged / agreeing / disagreeing, the dropped images and their spans, and ``kept_share``
        (registered after the check / all images).
    """
    ids = list(rec.reg_image_ids())
    by_id = {rec.image(i).name: i for i in ids}
    judged = with_links(judge_pairs(database, rec), rec, links, names)
    video = all(times.get(n) is not None for n in names)
    order = {i: k for k, n in enumerate(names) for i in [by_id.get(n)] if i is not None} if video else None
    blocks, contradicted = verified_blocks(ids, judged, order=order)
    keep = set(blocks[0]) if blocks else set()
    dropped_ids = [i for i in ids if i not in keep]
    dropped = {rec.image(i).name for i in dropped_ids}
    for i in dropped_ids if drop else []:
        rec.deregister_frame(rec.image(i).frame_id)
    n_dis = sum(v is False for *_, v in judged)
    info = {"pairs_judged": len(judged), "pairs_agreeing": sum(v is True for *_, v in judged),
            "pairs_disagreeing": n_dis, "verified_blocks": [len(b) for b in blocks],
            "contradicted": sorted(rec.image(i).name for i in contradicted), "dropped": sorted(dropped),
            "dropped_spans": spans(names, dropped, times), "kept_share": round(len(keep) / max(len(names), 1), 4)}
    return info


def _observations(rec) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(image id, observed pixels (M, 2), their 3D point ids (M,)) of every registered image."""
    out = []
    for i in rec.reg_image_ids():
        xy, pids = observed(rec.image(i))
        if len(pids):
            out.append((i, xy, pids))
    return out


def observed(img) -> tuple[np.ndarray, np.ndarray]:
    """Pixels [M, 2] of an image's observations of triangulated points, and those points' ids [M]."""
    obs = [(p.xy, p.point3D_id) for p in img.points2D if p.has_point3D()]
    return np.array([o[0] for o in obs], float).reshape(-1, 2), np.array([o[1] for o in obs], np.int64)


def reprojection_residuals(rec, obs: list[tuple[int, np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
    """Reprojection error (px) of each observation in ``obs`` (see :func:`_observations`; all of the
    model's when None), in that order [M]; NaN where the point lies behind the camera."""
    obs = _observations(rec) if obs is None else obs
    if not obs:
        return np.zeros(0)
    pids = np.concatenate([o[2] for o in obs])
    uniq, inv = np.unique(pids, return_inverse=True)
    xyz = np.array([rec.point3D(int(p)).xyz for p in uniq], float)[inv]
    out, start = [], 0
    for i, xy, _ in obs:
        img = rec.image(i)
        X = xyz[start:start + len(xy)]
        start += len(xy)
        proj, z = Camera.from_colmap(img, rec.camera(img.camera_id), lens=True).project(X)
        proj[z < np.finfo(float).eps] = np.nan  # behind the camera: no projection (COLMAP's cheirality test)
        out.append(np.linalg.norm(proj - xy, axis=1))
    return np.concatenate(out)


def _squared_reprojection(rec, obs: list[tuple[int, np.ndarray, np.ndarray]]) -> float:
    """Sum of squared reprojection errors (px^2) of the observations ``obs`` (see :func:`_observations`)."""
    return float((reprojection_residuals(rec, obs) ** 2).sum())


def _per_dof(rec, squared: float, n: int) -> float:
    """A sum of ``squared`` reprojection errors over ``n`` observations of ``rec``, per degree of freedom left
    (coordinates less points and poses)."""
    return squared / max(2 * n - 3 * rec.num_points3D() - 6 * rec.num_reg_images(), n)


def noise_variance(rec) -> float:
    """Per-coordinate variance (px^2) of the model's reprojection errors."""
    obs = _observations(rec)
    n = sum(len(o[1]) for o in obs)
    return _per_dof(rec, _squared_reprojection(rec, obs), n) if n else 0.0


def focal_uncertainty(rec, delta: float = 0.02, max_points: int = 3000, min_variance: float = 0.0) -> float:
    """Relative standard deviation of the solved focal length, from how much the reprojection error
    rises when it is held ``delta`` off and everything else re-adjusts (a profile of the bundle
    adjustment's cost on a copy; at most ``max_points`` points, the figure scaled back to all of them).

    ``min_variance``: image noise (px^2 per coordinate) the figure assumes at least. A model whose worst
    observations were removed (stages.sfm_refine) fits what is left more tightly than its geometry is
    known: measured on the observations as solved, the noise keeps the figure honest.

    Few views over a narrow arc, or few tracked points, leave the focal length nearly free: depth and
    focal trade off, and every rotation inherits the error while the reprojection error stays small.
    """
    import pycolmap

    from vid2model.io.colmap import bundle_adjust

    def adjust(r, refine_focal: bool) -> None:
        opts = pycolmap.BundleAdjustmentOptions()
        opts.refine_focal_length = refine_focal
        bundle_adjust(r, opts)

    n_all = sum(len(p.track.elements) for p in rec.points3D.values())
    base = pycolmap.Reconstruction(rec)
    pids = list(base.point3D_ids())
    if len(pids) > max_points:
        keep = set(np.random.default_rng(0).choice(len(pids), max_points, replace=False).tolist())
        for k, pid in enumerate(pids):
            if k not in keep:
                base.delete_point3D(pid)
    adjust(base, True)
    obs = _observations(base)
    n = sum(len(o[1]) for o in obs)
    if n < 10:
        return float("inf")
    c0 = _squared_reprojection(base, obs)
    sigma2 = max(_per_dof(base, c0, n), min_variance)
    rises = []
    for d in (-delta, delta):
        r = pycolmap.Reconstruction(base)
        for cam in r.cameras.values():
            p = np.asarray(cam.params, float).copy()
            for k in cam.focal_length_idxs():
                p[k] *= 1 + d
            cam.params = p
        adjust(r, False)
        rises.append(_squared_reprojection(r, obs) - c0)
    rise = float(np.mean(rises))
    return float(delta * np.sqrt(sigma2 / rise) * np.sqrt(n / max(n_all, n))) if rise > 0 else float("inf")


def rotation_uncertainty(rec, names: list[str]) -> list[tuple[str, str, float]]:
    """(keyframe, next keyframe, degrees) for consecutive registered keyframes of ``names`` (capture order):
    the 1-sigma uncertainty of the rotation between them at 1 px of image noise, from the bundle
    adjustment's covariance (intrinsics and points marginalised).

    A view sharing few points with its neighbours leaves that rotation loose while the reprojection error
    stays small: the model then holds cameras a degree or more off with nothing else looking wrong.
    """
    import pycolmap

    reg = {rec.image(i).name: i for i in rec.reg_image_ids()}
    ids = [reg[n] for n in names if n in reg]
    if len(ids) < 3:
        return []
    if rec.num_reg_frames() < rec.num_frames():  # the covariance walks every frame: those without a pose go
        rec = pycolmap.Reconstruction(rec)
        rec.tear_down()
    config = pycolmap.BundleAdjustmentConfig()
    for i in ids:
        config.add_image(i)
    config.fix_gauge(pycolmap.BundleAdjustmentGauge.THREE_POINTS)  # every pose stays free: all steps get a value
    adjuster = pycolmap.create_default_ceres_bundle_adjuster(pycolmap.BundleAdjustmentOptions(), config, rec)
    cov = pycolmap.estimate_ba_covariance(pycolmap.BACovarianceOptions(), rec, adjuster)
    if cov is None:
        return []
    out = []
    for a, b in zip(ids[:-1], ids[1:]):
        c = cov.get_cam2_cov_from_cam1(a, rec.image(a).cam_from_world(), b, rec.image(b).cam_from_world())
        if c is not None:
            out.append((rec.image(a).name, rec.image(b).name,
                        float(np.degrees(np.sqrt(max(np.trace(np.asarray(c)[:3, :3]), 0.0))))))
    return out
