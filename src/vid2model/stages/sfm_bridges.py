"""Bridges: held-out frames that join a video's solve where two consecutive keyframes share few matches.

Ingest keeps one frame between each two consecutive keyframes out of the solve (``ingest/probes``).
Where the keyframes' own link is weak (fewer verified matches than ``sfm.bridge_min_inliers``), that
frame sees about half the change of view to each of them, so it shares more with both: it joins the
solve as an extra view, before any relaxed or fixed-focal rescue is tried. It is matched with the
keyframes and bridges near it, placed by the mapper, judged by the self-check like a keyframe, and
taken out of the model before the model is written (the points it helped to place stay, seen by the
keyframes). A frame used as a bridge is no longer held out: the probe test skips it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vid2model.config import SfmConfig

log = logging.getLogger("vid2model")

REACH = 2  # a bridge is matched with the keyframes up to this many positions before and after it


def weak_links(database: Path, names: list[str], min_inliers: int) -> list[tuple[str, str, int]]:
    """(keyframe, next keyframe, verified matches) of consecutive ``names`` sharing fewer than ``min_inliers``."""
    import pycolmap

    db = pycolmap.Database.open(database)
    try:
        ids = {img.name: img.image_id for img in db.read_all_images()}
        out = []
        for a, b in zip(names[:-1], names[1:]):
            ia, ib = ids.get(a), ids.get(b)
            n = (len(db.read_two_view_geometry(ia, ib).inlier_matches)
                 if ia is not None and ib is not None and db.exists_two_view_geometry(ia, ib) else 0)
            if n < min_inliers:
                out.append((a, b, n))
        return out
    finally:
        db.close()


def choose(probes: list[dict[str, Any]], weak: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    """The probes that lie between the two keyframes of a weak link."""
    want = {(a, b) for a, b, _ in weak}
    return [p for p in probes if tuple(p.get("between", ())) in want]


def in_order(names: list[str], bridges: list[dict[str, Any]]) -> list[str]:
    """``names`` (capture order) with each bridge placed right after the keyframe before it."""
    after = {p["between"][0]: p["name"] for p in bridges}
    out = []
    for n in names:
        out.append(n)
        if n in after:
            out.append(after[n])
    return out


def pairs(order: list[str], bridge_names: set[str]) -> set[tuple[int, int]]:
    """Index pairs (into ``order``) that a bridge is matched on: every image within ``REACH`` keyframes of it."""
    out = set()
    for i, n in enumerate(order):
        if n not in bridge_names:
            continue
        seen = {"before": 0, "after": 0}
        for step, side in ((-1, "before"), (1, "after")):
            j = i + step
            while 0 <= j < len(order) and seen[side] < REACH:
                out.add((min(i, j), max(i, j)))
                seen[side] += order[j] not in bridge_names
                j += step
    return out


def extract(database: Path, probes_dir: Path, names: list[str], cfg: SfmConfig, peak_scale: float) -> None:
    """Features of the bridge frames ``names`` into ``database``, on the keyframes' one camera."""
    import pycolmap

    from vid2model.stages import sfm_features as F

    db = pycolmap.Database.open(database)
    try:
        cameras = db.read_all_cameras()
    finally:
        db.close()
    reader = pycolmap.ImageReaderOptions()
    reader.existing_camera_id = cameras[0].camera_id
    # one at a time: COLMAP numbers images in the order its threads finish them, the mapper follows the numbers
    for name in names:
        F.extract(database, probes_dir, [name], cfg, pycolmap.CameraMode.SINGLE, reader, peak_scale)


def remove(rec, names: set[str]) -> int:
    """Take the bridge images out of ``rec`` (in place); how many had been placed."""
    n = 0
    for name in names:
        img = rec.find_image_with_name(name)
        if img is not None and img.has_pose:
            rec.deregister_frame(img.frame_id)
            n += 1
    return n
