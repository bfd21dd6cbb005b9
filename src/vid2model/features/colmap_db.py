"""Learned features into a COLMAP database: images, keypoints, descriptors, matches, verified geometry.

After :func:`extract_to_database` and :func:`match_pairs` the database looks to COLMAP's mappers like
one SIFT filled: cameras/frames/rigs from ``pycolmap.import_images``, keypoints (x, y) in the COLMAP
pixel convention, raw matches, and two-view geometries from ``pycolmap.verify_matches``.

Descriptors are stored as uint8 (64-D, ``round(255 d) + 128``, type UNDEFINED) so that code reading
``read_descriptors(...).data`` as uint8 vectors (the own bag-of-words loop closure in ``ops/pairs.py``)
works unchanged: the quantisation is affine, Euclidean neighbourhoods are kept. Matching reads them
back (:func:`dequantise`); the loss is ~0.004 per component, ~0.01 in cosine similarity.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from vid2model.io.colmap import SEED

log = logging.getLogger("vid2model")
Q_SCALE = 255.0


def quantise(desc: np.ndarray) -> np.ndarray:
    return (np.clip(np.round(desc * Q_SCALE), -127, 127) + 128).astype(np.uint8)


def dequantise(q: np.ndarray) -> np.ndarray:
    d = (np.asarray(q, np.float32) - 128.0) / Q_SCALE
    return d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)


def extract_to_database(database_path: Path, images_dir: Path, names: list[str], extractor, camera_mode,
                        reader_options) -> int:
    """Import ``names`` (cameras as ``reader_options``/``camera_mode`` say) and write their features.

    Returns the median number of keypoints per image.
    """
    import pycolmap

    from vid2model.progress import bar

    database_path = Path(database_path)
    pycolmap.Database.open(database_path).close()  # import_images wants an existing database
    pycolmap.import_images(database_path, images_dir, camera_mode, names, reader_options)
    db = pycolmap.Database.open(database_path)
    counts = []
    try:
        ids = {img.name: img.image_id for img in db.read_all_images()}
        with bar("learned features", len(names)) as b:
            for name in names:
                f = extractor.from_file(Path(images_dir) / name)
                db.write_keypoints(ids[name], f.keypoints)
                db.write_descriptors(ids[name], pycolmap.FeatureDescriptors(
                    pycolmap.FeatureExtractorType.UNDEFINED, quantise(f.descriptors)))
                counts.append(len(f.keypoints))
                b.advance()
    finally:
        db.close()
    return int(np.median(counts)) if counts else 0


def match_pairs(database_path: Path, pairs: Iterable[tuple[str, str]], pairs_path: Path, min_sim: float = 0.8,
                max_ratio: float = 0.88, radius_cells: float = 0.0, min_inlier_ratio: float = 0.25,
                max_error_px: float | None = None) -> int:
    """Match the named image pairs by mutual nearest neighbour, then verify them geometrically.

    Args:
        min_sim, max_ratio: see :func:`vid2model.features.matching.mutual_nn`.
        radius_cells: > 0: the ratio test's second best is looked for farther than this many
            descriptor-map cells (8 px of the 640 px network input) from the best. It keeps many more
            right matches across wide angles, but also lets through many wrong pairs (silhouettes, horizon:
            nearly every pair "verified", the model wrong), so it is off by default.
        min_inlier_ratio: TwoViewGeometryOptions.min_inlier_ratio.
        max_error_px: RANSAC threshold (None: COLMAP's default).

    Pairs already holding matches are left alone. Returns the number of pairs matched now.
    """
    import pycolmap

    from vid2model.features.matching import mutual_nn
    from vid2model.features.xfeat import CELL, SIZE

    pairs = list(pairs)
    db = pycolmap.Database.open(database_path)
    todo = []
    try:
        images = {img.name: img for img in db.read_all_images()}
        cameras = {c.camera_id: c for c in db.read_all_cameras()}
        cache: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}

        def feats(name: str) -> tuple[np.ndarray, np.ndarray, float]:
            img = images[name]
            if img.image_id not in cache:
                cam = cameras[img.camera_id]
                cell = CELL * max(cam.width, cam.height) / SIZE  # one descriptor cell in image pixels
                cache[img.image_id] = (dequantise(db.read_descriptors(img.image_id).data),
                                       db.read_keypoints(img.image_id)[:, :2], cell)
            return cache[img.image_id]

        for a, b in pairs:
            ia, ib = images[a].image_id, images[b].image_id
            if db.exists_matches(ia, ib):
                continue
            (da, ka, ca), (dbb, kb, cb) = feats(a), feats(b)
            m = mutual_nn(da, dbb, min_sim=min_sim, max_ratio=max_ratio, kp1=ka, kp2=kb,
                          radius=radius_cells * max(ca, cb))
            db.write_matches(ia, ib, m)
            todo.append((a, b))
    finally:
        db.close()
    if not todo:
        return 0
    Path(pairs_path).write_text("".join(f"{a} {b}\n" for a, b in todo))
    opts = pycolmap.TwoViewGeometryOptions()
    opts.min_inlier_ratio = min_inlier_ratio
    if max_error_px is not None:
        opts.ransac.max_error = max_error_px
    opts.ransac.random_seed = SEED
    pycolmap.verify_matches(database_path, pairs_path, opts)
    return len(todo)


def renumber_images(database_path: Path, names: list[str]) -> bool:
    """Give the database's images (and their one-image frames) ids in the order of ``names``.

    COLMAP numbers images in the order its extraction threads finish, and the mapper's choices follow
    the numbering, so without this the same video solves differently from run to run. Call before
    matching (pair ids are built from image ids). Returns whether anything changed.
    """
    import sqlite3

    con = sqlite3.connect(str(database_path))
    try:
        rows = dict(con.execute("SELECT name, image_id FROM images").fetchall())
        listed = set(names)
        order = [rows[n] for n in names if n in rows] + sorted(i for n, i in rows.items() if n not in listed)
        new_of = dict(zip(order, sorted(order)))
        if all(o == n for o, n in new_of.items()):
            return False
        if con.execute("SELECT COUNT(*) FROM matches").fetchone()[0]:
            raise RuntimeError("renumber_images must run before matching")
        frame_of = dict(con.execute("SELECT data_id, frame_id FROM frame_data WHERE sensor_type = 0").fetchall())
        per_frame = dict(con.execute("SELECT frame_id, COUNT(*) FROM frame_data GROUP BY frame_id").fetchall())
        one_image_frames = all(per_frame.get(frame_of.get(i), 0) == 1 for i in order)
        frame_new = {frame_of[o]: frame_of[n] for o, n in new_of.items()} if one_image_frames else {}
        off = 1 << 30
        with con:
            for table, col in (("images", "image_id"), ("keypoints", "image_id"), ("descriptors", "image_id")):
                _shift(con, table, col, new_of, off)
            _shift(con, "frame_data", "data_id", new_of, off, "sensor_type = 0")
            _shift(con, "pose_priors", "corr_data_id", new_of, off, "corr_sensor_type = 0")
            if frame_new:
                _shift(con, "frames", "frame_id", frame_new, off)
                _shift(con, "frame_data", "frame_id", frame_new, off)
        return True
    finally:
        con.close()


def _shift(con, table: str, col: str, new_of: dict[int, int], off: int, where: str = "1") -> None:
    """Rewrite ``col`` through ``new_of`` in two steps (via ``+off``) so that no two rows collide."""
    for old, new in new_of.items():
        con.execute(f"UPDATE {table} SET {col} = ? WHERE {col} = ? AND {where}", (new + off, old))
    con.execute(f"UPDATE {table} SET {col} = {col} - ? WHERE {col} >= ? AND {where}", (off, off))
