"""Features and matches into a COLMAP database, for the keyframes and for the held-out probe frames alike."""

from __future__ import annotations

from pathlib import Path

from vid2model.config import SfmConfig
from vid2model.io.colmap import SEED
from vid2model.signals import interruptible


def extract(database: Path, images_dir: Path, names: list[str], cfg: SfmConfig, camera_mode, reader,
            peak_scale: float = 1.0) -> None:
    """Features of ``names`` (in ``images_dir``) into ``database``: SIFT, or the learned kind ``cfg`` names.

    ``peak_scale``: SIFT's contrast threshold scaled by this (under 1 for dark or texture-poor views).
    """
    import pycolmap

    if cfg.features != "sift":  # learned features (vid2model.features) written into the same database
        from vid2model.features import colmap_db, extractor

        colmap_db.extract_to_database(database, images_dir, names, extractor(cfg), camera_mode, reader)
        return
    ext = pycolmap.FeatureExtractionOptions()
    ext.sift.max_num_features = cfg.max_features
    ext.sift.peak_threshold *= peak_scale
    ext.num_threads = -1
    interruptible(pycolmap.extract_features, database, images_dir, image_names=names, camera_mode=camera_mode,
                  reader_options=reader, extraction_options=ext, device=pycolmap.Device.auto)


def match(database: Path, pairs_path: Path, pairs: list[tuple[str, str]], features: str = "sift",
          guided: bool = False) -> None:
    """Match and geometrically verify the named image pairs; the list is kept in ``pairs_path``."""
    import pycolmap

    if not pairs:
        return
    if features != "sift":  # learned features: own matcher, then COLMAP's geometric verification
        from vid2model.features.colmap_db import match_pairs

        match_pairs(database, pairs, pairs_path)
        return
    Path(pairs_path).write_text("".join(f"{a} {b}\n" for a, b in pairs))
    opts = pycolmap.ImportedPairingOptions()
    opts.match_list_path = pairs_path
    mopts = pycolmap.FeatureMatchingOptions()
    mopts.guided_matching = guided  # re-match along the verified epipolar geometry: more inliers on weak pairs
    # COLMAP's matcher threads gave a few different matches now and then (the same capture then solved to
    # slightly different cameras); one thread gives the same matches every run, for about a tenth more time
    mopts.num_threads = 1
    vopts = pycolmap.TwoViewGeometryOptions()
    vopts.ransac.random_seed = SEED  # per RANSAC, not per thread: the same pairs verify the same way every run
    interruptible(pycolmap.match_image_pairs, database, matching_options=mopts, pairing_options=opts,
                  verification_options=vopts, device=pycolmap.Device.auto)
