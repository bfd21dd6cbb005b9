"""Benchmark datasets: synthetic scenes from our generator and the real sets in ../shared/data with their
ground-truth cameras (each loader follows the conventions its README spells out).

Every loader returns ``(input_path, {image_name: cam_to_world (4, 4), OpenCV axes})``; names are those
the ingest stage keeps for image folders.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VID2MODEL_SHARED", REPO.parent / "shared")) / "data"
GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


def _c2w(R_w2c: np.ndarray, t_w2c: np.ndarray) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = R_w2c.T
    m[:3, 3] = -R_w2c.T @ t_w2c
    return m


def middlebury(name: str):
    root = SHARED / name
    prefix = "templeSR" if "temple" in name else "dinoSR"
    lines = (root / f"{prefix}_par.txt").read_text().split("\n")[1:]
    gt = {}
    for ln in lines:
        p = ln.split()
        if len(p) != 22:
            continue
        v = np.array(p[1:], float)
        gt[p[0]] = _c2w(v[9:18].reshape(3, 3), v[18:21])
    return root, gt


def dtu():
    import cv2

    root = SHARED / "dtu_scan24"
    cams = np.load(root / "cameras_sphere.npz")
    names = sorted(p.name for p in (root / "images").iterdir())
    gt = {}
    for i, n in enumerate(names):
        P = cams[f"world_mat_{i}"][:3]
        K, R, c, *_ = cv2.decomposeProjectionMatrix(P)
        c = (c[:3] / c[3]).ravel()
        m = np.eye(4)
        m[:3, :3] = R.T
        m[:3, 3] = c
        gt[n] = m
    return root / "images", gt


def strecha():
    root = SHARED / "strecha_fountain_P11"
    gt = {}
    for f in sorted((root / "gt_dense_cameras").glob("*.camera")):
        v = np.array(f.read_text().split(), float)
        m = np.eye(4)
        m[:3, :3] = v[12:21].reshape(3, 3)  # camera-to-world rotation (checked in the README)
        m[:3, 3] = v[21:24]
        gt[f.name.replace(".camera", "")] = m
    return root / "images", gt


def lego():
    root = SHARED / "nerf_synthetic_lego"
    meta = json.loads((root / "transforms_train.json").read_text())
    gt = {Path(f["file_path"]).name + ".png": np.array(f["transform_matrix"]) @ GL_TO_CV for f in meta["frames"]}
    return root / "train", gt


def fox():
    root = SHARED / "fox"
    meta = json.loads((root / "transforms.json").read_text())
    gt = {Path(f["file_path"]).name: np.array(f["transform_matrix"]) @ GL_TO_CV for f in meta["frames"]}
    return root / "images", gt


REAL = {
    "fox": fox,
    "dtu_scan24": dtu,
    "middlebury_templeSparseRing": lambda: middlebury("middlebury_templeSparseRing"),
    "middlebury_dinoSparseRing": lambda: middlebury("middlebury_dinoSparseRing"),
    "strecha_fountain_P11": strecha,
    "nerf_synthetic_lego": lego,
}


def dtu_masks() -> dict[str, Path]:
    """Object masks of DTU scan24 by image name (images/000007.jpg <-> mask/007.png)."""
    root = SHARED / "dtu_scan24"
    return {f"{int(p.stem):06d}.jpg": p for p in sorted((root / "mask").glob("*.png"))}


def middlebury_masks(name: str = "middlebury_templeSparseRing", threshold: int = 45,
                     refine: bool = True) -> dict[str, Path]:
    """Object masks derived for a Middlebury ring (the set has none), written once under bench/work/masks/.

    Seeds: outside the projected GT bounding box of README_original.txt is background; inside it, bright
    pixels (the plaster object against black cloth) are probable object and the rest probable background.
    With ``refine`` (default) OpenCV's GrabCut then settles the pixels inside the box by colour: shadowed
    recesses and the dim backs of columns (brown, grey 15-45) join the object, black cloth seen between the
    columns (grey 0-7) and the grey curtain stay out. Without it, the bright pixels alone, specks removed
    and dark seams closed (the masks of earlier benchmarks: every shadowed recess counts as background).
    """
    import cv2

    root, gt = middlebury(name)
    text = (root / "README_original.txt").read_text()
    lo, hi = (np.array(m.split(), float) for m in re.findall(r"\(([-\d.eE ]+)\)", text)[:2])
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    prefix = "templeSR" if "temple" in name else "dinoSR"
    K = np.array((root / f"{prefix}_par.txt").read_text().split("\n")[1].split()[1:10], float).reshape(3, 3)
    out = REPO / "bench" / "work" / "masks" / f"{name}_t{threshold}{'_grabcut' if refine else ''}"
    out.mkdir(parents=True, exist_ok=True)
    masks = {}
    for img_name, c2w in gt.items():
        path = out / img_name
        if not path.exists():
            img = cv2.imread(str(root / img_name), cv2.IMREAD_COLOR)
            gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            w2c = np.linalg.inv(c2w)
            x = (corners @ w2c[:3, :3].T + w2c[:3, 3]) @ K.T
            hull = cv2.convexHull((x[:, :2] / x[:, 2:]).astype(np.float32)).astype(np.int32)
            box = np.zeros_like(gray)
            cv2.fillConvexPoly(box, hull, 255)
            m = ((gray > threshold) & (box > 0)).astype(np.uint8) * 255
            m = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))  # cloth specks
            m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))  # dark seams on the object
            if refine:
                seeds = np.where(box > 0, cv2.GC_PR_BGD, cv2.GC_BGD).astype(np.uint8)
                seeds[m > 0] = cv2.GC_PR_FGD
                models = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
                cv2.setRNGSeed(0)
                cv2.grabCut(img, seeds, None, *models, 5, cv2.GC_INIT_WITH_MASK)
                m = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8) * 255
            cv2.imwrite(str(path), m)
        masks[img_name] = path
    return masks


MASKS = {"dtu_scan24": dtu_masks, "middlebury_templeSparseRing": middlebury_masks}


def available() -> list[str]:
    return [n for n in REAL if (SHARED / n).exists()]
