"""Geometric consistency between depth maps, back-projection and depth-map normals.

Cameras are :class:`vid2model.camera.Camera` at the depth maps' resolution (COLMAP pixel centres).
"""

from __future__ import annotations

import numpy as np

from vid2model.camera import Camera, pixel_index


def depth_seen_at(points: np.ndarray, depth: np.ndarray, cam: Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each world point's z in the camera (N,), the depth map's value (N,) at the pixel it falls in (inf
    where none), and whether it falls in the image in front of the camera (N,) bool."""
    uv, z = cam.project(points)
    front = z > 1e-6
    u = np.full(len(points), -1)
    v = np.full(len(points), -1)
    px = pixel_index(uv[front])
    u[front], v[front] = px[:, 0], px[:, 1]
    H, W = depth.shape
    inside = front & (u >= 0) & (u < W) & (v >= 0) & (v < H)
    d = np.full(len(points), np.inf)
    d[inside] = depth[v[inside], u[inside]]
    return z, d, inside


def consistency(ref_depth: np.ndarray, ref_cam, src_depths: list[np.ndarray], src_cams: list,
                max_px: float = 1.0, max_rel: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """How many source depth maps agree with each reference pixel, and the depth they agree on.

    A pixel agrees with a source when its 3D point, projected into the source, lands on a depth
    whose back-projection reprojects within ``max_px`` pixels of the pixel and within ``max_rel``
    relative depth (the forward-backward check of MVSNet/COLMAP fusion). The source depth is read at the
    nearest pixel; one numba pass per map (kernels.agree_counts, 5x the numpy version it replaced).

    Args:
        ref_depth: (H, W) z-depth, 0 = none.
        ref_cam, src_cams: cameras at the depth maps' resolution.
        src_depths: (H', W') source depth maps.
        max_px, max_rel: agreement tolerances.

    Returns:
        count (H, W) int32, and the mean (H, W) of the reference depth and the agreeing source depths
        seen along the reference ray (averaging views cuts per-view matching noise).
    """
    from vid2model.ops.mvs.kernels import agree_counts, zero_padded

    H, W = ref_depth.shape
    count = np.empty((H, W), np.int32)
    depth_sum = np.empty((H, W), np.float64)
    stack = zero_padded(src_depths)
    f64 = np.float64
    agree_counts(np.ascontiguousarray(ref_depth, np.float32), ref_cam.K.astype(f64), ref_cam.R.astype(f64),
                 ref_cam.t.astype(f64), stack, np.array([c.K for c in src_cams], f64).reshape(-1, 3, 3),
                 np.array([c.R for c in src_cams], f64).reshape(-1, 3, 3),
                 np.array([c.t for c in src_cams], f64).reshape(-1, 3), float(max_px), float(max_rel), count, depth_sum)
    return count, (depth_sum / (count + 1)).astype(np.float32)


def small_gaps(valid: np.ndarray, max_area: int, plain: np.ndarray | None = None, edge_clear: int = 0) -> np.ndarray:
    """Invalid pixels (H, W) bool in 8-connected gaps of at most ``max_area`` pixels, and (given ``plain``
    (H, W) bool, the untextured pixels) mostly textured.

    A weakly textured surface leaves such specks where single windows failed to match; a depth edge against
    a plain backdrop leaves a large gap, or a small plain one where the backdrop shows through the object.
    Rim rules meant for edges must not eat into the specks; specks within ``edge_clear`` pixels of an edge (a
    gap that is not a speck) are left to those rules.
    """
    import cv2

    if max_area <= 0:
        return np.zeros(valid.shape, bool)
    n, labels, stats, _ = cv2.connectedComponentsWithStats((~valid).astype(np.uint8), connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] <= max_area
    if plain is not None:
        n_plain = np.bincount(labels.ravel(), weights=plain.ravel().astype(np.float64), minlength=n)
        small &= n_plain < 0.5 * stats[:, cv2.CC_STAT_AREA]
    small[0] = False  # the valid pixels' label
    specks = small[labels]
    if edge_clear > 0:  # beside an edge the fattened band and the specks mix: that rim stays an edge's
        edges = (~valid & ~specks).astype(np.uint8)
        k = 2 * edge_clear + 1
        specks &= cv2.dilate(edges, np.ones((k, k), np.uint8)) == 0
    return specks


def _grey_std(gray: np.ndarray, radius: int) -> np.ndarray:
    """[H, W] standard deviation of ``gray`` [H, W] over each pixel's ``2 radius + 1`` square."""
    import cv2

    k = 2 * radius + 1
    g = gray.astype(np.float32)
    m1 = cv2.blur(g, (k, k))
    m2 = cv2.blur(g * g, (k, k))
    return np.sqrt(np.maximum(m2 - m1 * m1, 0))


def _unit_rgb(rgb: np.ndarray) -> np.ndarray:
    """[H, W, 3] float32 in [0, 1] of an image given as uint8 or as floats in [0, 1]."""
    return rgb.astype(np.float32) / (255.0 if rgb.dtype == np.uint8 else 1.0)


def _rim_inputs(rgb: np.ndarray, depth: np.ndarray, flat_std: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What :func:`claim_far_rims` and :func:`release_near_rims` work on: the image [H, W, 3] in [0, 1], its plain
    pixels [H, W] bool (grey std under ``flat_std`` over 3x3) and the depth [H, W] float32 with 0 for none."""
    img = _unit_rgb(rgb)
    plain = _grey_std(img.mean(axis=2), 1) < flat_std
    return img, plain, np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)


def flat_fringe(valid: np.ndarray, gray: np.ndarray, window: int, min_std: float, radius: int = 1,
                gaps: np.ndarray | None = None) -> np.ndarray:
    """Pixels (H, W) bool of a depth map's fringe to drop: untextured in their own small neighbourhood
    (grey std under ``min_std`` over ``2 radius + 1`` pixels) and within ``window`` pixels of the
    valid region's edge.

    Such a pixel took its depth from texture at the rim of its matching window, typically the edge of
    an object in front of a plain backdrop, which widens the object by up to the window radius
    (foreground fattening). Untextured pixels deep inside a valid region are left alone; so are the rims
    of ``gaps`` (H, W) bool (:func:`small_gaps`): invalid pixels that do not make an edge.
    """
    import cv2

    flat = _grey_std(gray, radius) < min_std
    body = valid if gaps is None else valid | gaps
    interior = cv2.erode(body.astype(np.uint8), np.ones((2 * window + 1, 2 * window + 1), np.uint8)) > 0
    return valid & flat & ~interior


def peel_rims(rgb: np.ndarray, valid: np.ndarray, iters: int = 6, radius: int = 2, contrast: float = 0.05,
              flat_std: float = 0.03, gaps: np.ndarray | None = None) -> np.ndarray:
    """Shrink a depth map's valid region (H, W) bool where its rim has the colour of a plain backdrop.

    A matching window that straddles an object's edge gives the backdrop pixels beside the edge the object's
    depth (foreground fattening, up to the window radius on each side). A rim pixel is peeled when its colour
    is nearer the mean of the invalid pixels within ``radius`` than the mean of the valid ones within
    ``2 radius + 2`` (reaching past a fattened band to the object), the two means differ by more than
    ``contrast`` and the invalid pixels are plain (colour std under ``flat_std``): an edge against an
    untextured backdrop. Rims inside textured surroundings stay, and so do the rims of ``gaps`` (H, W) bool
    (:func:`small_gaps`). Repeated ``iters`` times, one pixel ring each.

    Args:
        rgb: (H, W, 3) image, float in [0, 1] or uint8.
        valid: (H, W) bool valid depths.
        radius: at least 1 (the window must reach a rim pixel's invalid neighbours).

    Returns:
        (H, W) bool, the valid pixels kept.
    """
    import cv2

    img = _unit_rgb(rgb)
    r_in = 2 * radius + 2
    # Box sums from integral images of the replicate-padded arrays (the borders a box filter would use), read
    # at the rim pixels only: the colour statistics of the whole image cost far more than the decision needs.
    pad = r_in

    def padded(a: np.ndarray) -> np.ndarray:
        return cv2.copyMakeBorder(a, pad, pad, pad, pad, cv2.BORDER_REPLICATE)

    def integral(a: np.ndarray) -> np.ndarray:
        return cv2.integral(a, sdepth=cv2.CV_64F)

    img_p = padded(img)
    sq_p = img_p * img_p
    i_img, i_sq = integral(img_p), integral(sq_p)
    keep = valid.copy()
    ring = np.ones((3, 3), np.uint8)
    for _ in range(iters):
        body = keep if gaps is None else keep | gaps
        rim = keep & (cv2.erode(body.astype(np.uint8), ring, borderType=cv2.BORDER_REPLICATE) == 0)
        ys, xs = np.nonzero(rim)
        if not len(ys):
            break
        v_p = padded(keep.astype(np.float32))
        i_v, i_iv, i_sv = integral(v_p), integral(img_p * v_p[..., None]), integral(sq_p * v_p[..., None])
        y, x = ys + pad, xs + pad

        def box(i: np.ndarray, r: int) -> np.ndarray:  # sums over the (2r+1)^2 box round each rim pixel
            return i[y + r + 1, x + r + 1] - i[y - r, x + r + 1] - i[y + r + 1, x - r] + i[y - r, x - r]

        n_in = box(i_v, r_in)
        n_out = (2 * radius + 1) ** 2 - box(i_v, radius)
        m_in = box(i_iv, r_in) / np.maximum(n_in, 1e-6)[..., None]
        m_out = (box(i_img, radius) - box(i_iv, radius)) / np.maximum(n_out, 1e-6)[..., None]
        var_out = (box(i_sq, radius) - box(i_sv, radius)) / np.maximum(n_out, 1e-6)[..., None] - m_out ** 2
        std_out = np.sqrt(np.maximum(var_out, 0).sum(-1))
        px = img[ys, xs]
        drop = ((np.linalg.norm(px - m_out, axis=-1) < np.linalg.norm(px - m_in, axis=-1))
                & (np.linalg.norm(m_in - m_out, axis=-1) > contrast) & (std_out < flat_std))
        if not drop.any():
            break
        keep[ys[drop], xs[drop]] = False
    return keep


def _diffs(X: np.ndarray, valid: np.ndarray, s: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Differences of X (H, W, 3) along ``axis``: central, one-sided where a neighbour is missing; and where defined."""
    fwd = np.zeros_like(X)
    bwd = np.zeros_like(X)
    ok_f = np.zeros(valid.shape, bool)
    ok_b = np.zeros(valid.shape, bool)
    a, b = [slice(None)] * 2, [slice(None)] * 2
    a[axis], b[axis] = slice(None, -s), slice(s, None)
    a, b = tuple(a), tuple(b)
    fwd[a] = X[b] - X[a]
    ok_f[a] = valid[b] & valid[a]
    bwd[b] = X[b] - X[a]
    ok_b[b] = valid[b] & valid[a]
    d = np.where(ok_f[..., None], fwd, 0) + np.where(ok_b[..., None], bwd, 0)
    return d, ok_f | ok_b


def depth_normals(depth: np.ndarray, cam: Camera, step: int = 1) -> np.ndarray:
    """Camera-frame unit normals (H, W, 3) of a depth map, facing the camera (zeros where invalid).

    Differences ``step`` pixels apart: central where both neighbours are valid, one-sided where only one
    is (rims and thin structures keep their pixels); a pixel needs a neighbour along each axis.
    The outer ``step`` pixels of the image get none.
    """
    s = step
    valid = depth > 0
    X = cam.pixel_rays(*depth.shape) * depth[..., None]
    dx, ok_x = _diffs(X, valid, s, 1)
    dy, ok_y = _diffs(X, valid, s, 0)
    n = np.cross(dx, dy)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(norm > 1e-12, n / np.maximum(norm, 1e-12), 0)
    n[(n * X).sum(-1) > 0] *= -1
    bad = ~(valid & ok_x & ok_y) | (norm[..., 0] <= 1e-12)
    bad[:, :s] = bad[:, -s:] = True
    bad[:s] = bad[-s:] = True
    n[bad] = 0
    return n.astype(np.float32)


def incidence_cos(normals: np.ndarray, cam: Camera) -> np.ndarray:
    """|cos| (H, W) of the angle between each pixel's viewing ray and its camera-frame normal."""
    rays = cam.pixel_rays(*normals.shape[:2])
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    return np.abs((rays * normals).sum(-1))


def claim_far_rims(rgb: np.ndarray, depth: np.ndarray, iters: int = 24, radius: int = 4, jump: float = 0.05,
                   flat_std: float = 0.01, close: float = 0.03) -> np.ndarray:
    """``depth`` [H, W] (0 = none) with the far side of its depth edges given back to the near side where it looks
    like it: plain pixels (grey std under ``flat_std`` over 3x3) within ``close`` (RGB distance) of the colour of a
    pixel within ``radius`` whose depth is nearer by more than ``jump`` of theirs take the nearest such depth;
    repeated ``iters`` times, one ring each. (The colour of one pixel, not the mean: where two faces of the object
    meet, the mean is neither's.)

    Stereo on a plain object in front of a textured background gives the object's pixels beside its outline the
    background's depth (the windows there match the texture beyond the edge; propagation carries it on across the
    plain surface, 10-20 pixels seen on a plain cylinder). Such a depth says the object is not there, which a
    free-space hull takes at its word. A background pixel beside an object is either textured (stereo matched it
    on its own texture) or of another colour than the object, and keeps its depth.

    Args:
        rgb: [H, W, 3] image at the depth map's size, float in [0, 1] or uint8.
    """
    import cv2

    img, flat, d = _rim_inputs(rgb, depth, flat_std)
    k = 2 * radius + 1
    box = np.ones((k, k), np.uint8)
    ip = np.pad(img, ((radius, radius), (radius, radius), (0, 0)))
    oy, ox = np.mgrid[0:k, 0:k].reshape(2, -1)
    for _ in range(iters):
        near = cv2.erode(np.where(d > 0, d, np.inf).astype(np.float32), box, borderType=cv2.BORDER_REPLICATE)
        ys, xs = np.nonzero(flat & (d > 0) & (near < d * (1 - jump)))
        if not len(ys):
            break
        wy, wx = ys[:, None] + oy, xs[:, None] + ox  # [n, k*k] in the padded arrays
        wd = np.pad(d, radius)[wy, wx]
        is_near = (wd > 0) & (wd < (d[ys, xs] * (1 - jump))[:, None])
        gap = np.where(is_near, np.linalg.norm(ip[wy, wx] - img[ys, xs][:, None], axis=2), np.inf)
        take = gap.min(axis=1) < close
        if not take.any():
            break
        d[ys[take], xs[take]] = near[ys[take], xs[take]]
    return d


def release_near_rims(rgb: np.ndarray, depth: np.ndarray, iters: int = 3, radius: int = 4, window: int = 8,
                      jump: float = 0.05, flat_std: float = 0.01, ratio: float = 1.5,
                      margin: float = 0.02) -> np.ndarray:
    """``depth`` [H, W] (0 = none) with the near side of its depth edges given to the far side where it looks like
    it: a textured pixel within ``radius`` of a depth farther than its own by more than ``jump`` takes the nearest
    of those far depths when there are plain pixels without a depth within ``window`` (grey std under ``flat_std``
    over 3x3: the plain object stereo could not match) and its colour is farther from every one of them than
    ``ratio`` times its distance to the colour of a textured far pixel there, plus ``margin`` (RGB, max over
    channels); repeated ``iters`` times, one ring each. (Plain pixels with a far depth beside nearer ones are
    :func:`claim_far_rims`'s: a shaded object's own.)

    Stereo's windows give the background pixels beside a plain object's outline the object's depth (a few pixels,
    and the consistency check keeps it). A free-space hull carving with those depths stops short of the object's
    outline, and a flat face is carved only by the few views that graze it: the hull stood out of such faces. A
    pixel of the plain object's own outline (blended with the background behind it) is about as near the object's
    colour as the background's, and keeps its depth; a plain background is not told from the object and keeps its
    depth too.

    Args:
        rgb: [H, W, 3] image at the depth map's size, float in [0, 1] or uint8.
    """
    import cv2

    img, plain, d = _rim_inputs(rgb, depth, flat_std)
    textured = ~plain  # what claim_far_rims gives the object is plain
    flat = np.pad(plain, window)
    box = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    ip = np.pad(img, ((window, window), (window, window), (0, 0)))
    k = 2 * window + 1
    oy, ox = np.mgrid[0:k, 0:k].reshape(2, -1)
    for _ in range(iters):
        with np.errstate(over="ignore"):  # a floor's depth at the horizon
            ys, xs = np.nonzero(textured & (d > 0) & (cv2.dilate(d, box) > d * (1 + jump)))
        if not len(ys):
            break
        wy, wx = ys[:, None] + oy, xs[:, None] + ox  # [n, k*k] in the padded arrays
        wd = np.pad(d, window)[wy, wx]
        is_far = wd > (d[ys, xs] * (1 + jump))[:, None]
        gap = np.abs(ip[wy, wx] - img[ys, xs][:, None]).max(axis=2)
        to_plain = np.where(flat[wy, wx] & (wd == 0), gap, np.inf).min(axis=1)
        to_far = np.where(is_far & ~flat[wy, wx], gap, np.inf).min(axis=1)  # a textured background's
        take = np.isfinite(to_plain) & (to_plain > ratio * to_far + margin)  # no plain object near: keep
        if not take.any():
            break
        d[ys[take], xs[take]] = np.where(is_far[take], wd[take], np.inf).min(axis=1)
    return d
