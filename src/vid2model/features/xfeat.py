"""XFeat keypoints and descriptors from the ONNX backbone (onnxruntime, CPU).

The exported graph (verlab/accelerated_features, Apache-2.0) takes a fixed 1x3x640x640 float image in
[0, 1] (it averages RGB to grey and instance-normalises internally) and returns three raw heads:

- a 64-D dense descriptor map at 1/8 resolution (1x64x80x80),
- keypoint logits, 64 cells of an 8x8 block plus a dustbin (1x65x80x80),
- a reliability heatmap at 1/8 resolution (1x1x80x80, already a sigmoid).

The post-processing follows ``XFeat.detectAndCompute``: softmax over the 65 logits, the 64 cells
unfolded to a full-resolution heatmap, 5x5 non-maximum suppression above 0.05, score = heatmap x
reliability, the best ``top_k`` kept, descriptors sampled bilinearly from the L2-normalised map and
normalised again; peaks refined to subpixel by a parabola through the log-heatmap.

Images of any size are resized (aspect kept) so the long side is 640 and padded by reflection to
640x640; keypoints in the padding are dropped. Keypoints are returned in original-image pixels in the
COLMAP convention (the centre of the top-left pixel is (0.5, 0.5)).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vid2model.camera import image_coords

SIZE = 640  # the exported graph's fixed input side
CELL = 8  # descriptor / reliability maps are at 1/8 resolution


@dataclass
class Features:
    keypoints: np.ndarray  # (N, 2) float32, original-image pixels, COLMAP convention (+0.5 centres)
    scores: np.ndarray  # (N,) float32, descending
    descriptors: np.ndarray  # (N, 64) float32, L2-normalised


class XFeat:
    """XFeat sparse features through onnxruntime.

    Args:
        model_path: ``xfeat.onnx``.
        top_k: keypoints kept per image (best scores first).
        threshold: heatmap value a keypoint needs (upstream default 0.05).
        threads: onnxruntime intra-op threads (0 = its default).
    """

    def __init__(self, model_path: str | Path, top_k: int = 4096, threshold: float = 0.05, threads: int = 0):
        from vid2model.errors import require

        ort = require("onnxruntime", "learned features (sfm.features=xfeat)", package="onnxruntime", extra="learned")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.top_k = top_k
        self.threshold = threshold

    # ---- preprocessing --------------------------------------------------------------------------

    @staticmethod
    def prepare(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int], tuple[float, float]]:
        """(1x3x640x640 float32 in [0, 1], valid (w, h) inside the canvas, per-axis scale canvas/original)."""
        import cv2

        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        h, w = image.shape[:2]
        s = SIZE / max(h, w)
        nw, nh = max(1, min(SIZE, round(w * s))), max(1, min(SIZE, round(h * s)))
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        img = cv2.resize(image, (nw, nh), interpolation=interp) if (nw, nh) != (w, h) else image
        if (nw, nh) != (SIZE, SIZE):
            # reflection keeps the instance-norm statistics close to the image's own; the padding's
            # keypoints are dropped afterwards
            mode = cv2.BORDER_REFLECT_101 if min(nw, nh) > 1 else cv2.BORDER_REPLICATE
            img = cv2.copyMakeBorder(img, 0, SIZE - nh, 0, SIZE - nw, mode)
        x = img.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
        return np.ascontiguousarray(x), (nw, nh), (nw / w, nh / h)

    # ---- inference --------------------------------------------------------------------------------

    def heads(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw heads (descriptor map 64x80x80, logits 65x80x80, reliability 80x80), told apart by shape."""
        outs = self.session.run(None, {self.input_name: x})
        by_c = {o.shape[1]: o[0] for o in outs}
        return by_c[64], by_c[65], by_c[1][0]

    def __call__(self, image: np.ndarray, top_k: int | None = None) -> Features:
        """Features of one RGB (or grey) uint8 image of any size."""
        top_k = self.top_k if top_k is None else top_k
        x, (vw, vh), (sx, sy) = self.prepare(image)
        desc_map, logits, reliability = self.heads(x)
        heat = keypoint_heatmap(logits)
        ys, xs = nms(heat, self.threshold, 5)
        keep = (xs < vw) & (ys < vh)
        xs, ys = xs[keep], ys[keep]
        # reliability/descriptor maps: cell i covers canvas pixels 8i..8i+7, its centre is pixel 8i+3.5
        u, v = (xs - (CELL - 1) / 2) / CELL, (ys - (CELL - 1) / 2) / CELL
        scores = heat[ys, xs] * bilinear(reliability[None], u, v)[:, 0]
        order = np.argsort(-scores, kind="stable")[:top_k]
        xs, ys, u, v, scores = xs[order], ys[order], u[order], v[order], scores[order]
        dm = desc_map / np.maximum(np.linalg.norm(desc_map, axis=0, keepdims=True), 1e-12)
        desc = bilinear(dm, u, v)
        desc /= np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)
        fx, fy = subpixel(heat, xs, ys)
        kp = image_coords(np.stack([fx, fy], axis=1)) / (sx, sy)  # canvas pixel indices -> image coordinates
        return Features(kp.astype(np.float32), scores.astype(np.float32), desc.astype(np.float32))

    def from_file(self, path: str | Path, top_k: int | None = None) -> Features:
        import cv2

        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            from vid2model.errors import UserError

            raise UserError(f"cannot read image {path}")
        return self(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), top_k)


def keypoint_heatmap(logits: np.ndarray) -> np.ndarray:
    """65xHxW logits (64 cells of an 8x8 block + dustbin) -> (8H)x(8W) heatmap."""
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    p = (e / e.sum(axis=0, keepdims=True))[:64]  # 64, H, W
    _, h, w = p.shape
    # channel c = row * 8 + col of the pixel inside its cell
    return p.reshape(CELL, CELL, h, w).transpose(2, 0, 3, 1).reshape(h * CELL, w * CELL)


def subpixel(heat: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Peak positions refined by a parabola through the log-heatmap (a Gaussian fit), per axis, +-0.5 px:
    the cell grid alone leaves keypoints a fraction of a pixel off where the same point is found again."""
    hp = np.log(np.maximum(np.pad(heat, 1, mode="edge"), 1e-9))
    y1, x1 = ys + 1, xs + 1

    def offset(a, b, c):
        den = a - 2 * b + c
        safe = np.where(den < -1e-9, den, -1.0)
        return np.where(den < -1e-9, np.clip(0.5 * (a - c) / safe, -0.5, 0.5), 0.0)

    dx = offset(hp[y1, x1 - 1], hp[y1, x1], hp[y1, x1 + 1])
    dy = offset(hp[y1 - 1, x1], hp[y1, x1], hp[y1 + 1, x1])
    return xs + dx, ys + dy


def nms(heat: np.ndarray, threshold: float, kernel: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of local maxima (kernel x kernel window) above ``threshold``."""
    from scipy.ndimage import maximum_filter

    peak = (heat == maximum_filter(heat, size=kernel, mode="constant", cval=-np.inf)) & (heat > threshold)
    return np.nonzero(peak)


def bilinear(maps: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Sample CxHxW ``maps`` at continuous cell coordinates (u = column, v = row); edges clamped. -> (N, C)."""
    c, h, w = maps.shape
    u = np.clip(u, 0, w - 1)
    v = np.clip(v, 0, h - 1)
    u0 = np.minimum(np.floor(u).astype(int), w - 2) if w > 1 else np.zeros(len(u), int)
    v0 = np.minimum(np.floor(v).astype(int), h - 2) if h > 1 else np.zeros(len(v), int)
    du, dv = (u - u0)[:, None], (v - v0)[:, None]
    u1, v1 = np.minimum(u0 + 1, w - 1), np.minimum(v0 + 1, h - 1)
    m = maps.transpose(1, 2, 0)
    return ((1 - du) * (1 - dv) * m[v0, u0] + du * (1 - dv) * m[v0, u1]
            + (1 - du) * dv * m[v1, u0] + du * dv * m[v1, u1])
