"""nerfstudio ``transforms.json`` (OpenGL camera axes) from a COLMAP reconstruction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vid2model.workspace import atomic_path

# OpenCV camera axes (x right, y down, z forward) -> OpenGL/NeRF (x right, y up, z backward)
CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])


def write_transforms(path: Path, rec, image_prefix: str = "images") -> None:
    """Write nerfstudio-style cameras; one shared camera's intrinsics at the top level."""
    frames = []
    cams = {}
    for image_id in sorted(rec.reg_image_ids(), key=lambda i: rec.image(i).name):
        img = rec.image(image_id)
        m = np.eye(4)
        m[:3, :] = np.asarray(img.cam_from_world().matrix())
        c2w = np.linalg.inv(m) @ CV_TO_GL
        cam = img.camera
        cams[cam.camera_id] = cam
        frames.append({"file_path": f"{image_prefix}/{img.name}", "transform_matrix": c2w.tolist(),
                       "colmap_im_id": int(image_id), "camera_id": int(cam.camera_id)})
    cam = next(iter(cams.values()))
    data = {**_intrinsics(cam), "frames": frames, "applied_transform": np.eye(4)[:3].tolist()}
    if len(cams) > 1:  # per-frame intrinsics
        for f in frames:
            f.update(_intrinsics(cams[f["camera_id"]]))
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))


def _intrinsics(cam) -> dict:
    p = list(cam.params)
    name = cam.model_name
    out = {"w": int(cam.width), "h": int(cam.height)}
    if name in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        out.update(fl_x=p[0], fl_y=p[0], cx=p[1], cy=p[2], camera_model="OPENCV")
        out.update(k1=p[3] if len(p) > 3 else 0.0, k2=p[4] if len(p) > 4 else 0.0, p1=0.0, p2=0.0)
    else:
        out.update(fl_x=p[0], fl_y=p[1], cx=p[2], cy=p[3], camera_model="OPENCV")
        if name == "OPENCV":
            out.update(k1=p[4], k2=p[5], p1=p[6], p2=p[7])
    return out


def read_transforms(path: Path) -> tuple[dict, list[str], np.ndarray]:
    """Read a nerfstudio ``transforms.json``.

    Returns:
        (top-level intrinsics dict, frame file paths, (N, 4, 4) camera-to-world in OpenCV axes).
    """
    data = json.loads(Path(path).read_text())
    frames = data.get("frames", [])
    c2w = np.array([np.asarray(f["transform_matrix"], float) @ CV_TO_GL for f in frames]).reshape(-1, 4, 4)
    intr = {k: v for k, v in data.items() if k != "frames"}
    return intr, [f["file_path"] for f in frames], c2w
