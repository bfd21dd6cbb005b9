"""Metric scale from an ArUco marker of known size: detect its corners, triangulate, measure."""

from __future__ import annotations

import numpy as np

from vid2model.camera import Camera, image_coords, index_coords
from vid2model.ops.similarity import umeyama


def detect_aruco(gray: np.ndarray, dictionary: int | None = None, min_side_px: float = 8.0,
                 thorough: bool = False) -> dict[int, np.ndarray]:
    """ArUco markers in a grey uint8 image: {id: (4, 2) corner pixels}.

    Detections with a mean side under ``min_side_px`` are dropped: at that size texture can decode as a
    marker by chance, and corners would be too imprecise to measure with anyway.

    Small or distant markers (a few tens of pixels) are common, so small images are upsampled (to a
    long side of about 1600 px) and corners refined with the AprilTag edge fit, which on rendered
    markers of 20-50 px keeps the perimeter within ~0.5% where sub-pixel corner refinement is off by 2-3%.
    Upsampling a whole frame 3-4x is most of a long solve's marker time, so the markers are found at twice the
    image's size first and only the region round each is upsampled and refined: the same corners, a fraction
    of the time. The finder needs the AprilTag quad detection too: the plain contour finder misses markers
    seen at a grazing angle (a few pixels across one way), at any upsampling. Even so it misses some of those
    that the whole frame upsampled finds: ``thorough`` searches that way (for the frames of a capture whose
    marker was seen in few).
    """
    import cv2

    d = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50 if dictionary is None else dictionary)
    up = int(np.clip(np.ceil(1600 / max(gray.shape[:2])), 1, 4))
    if up == 1:
        return _detect(gray, d, 1, min_side_px)
    if thorough:  # each marker's corners from the linear upsampling where it decodes there (see _detect)
        return _detect(gray, d, up, min_side_px, sharp=True) | _detect(gray, d, up, min_side_px)
    found: dict[int, np.ndarray] = {}
    h, w = gray.shape[:2]
    for i, c in _detect(gray, d, min(2, up), 0.0, finder=True, sharp=True).items():
        pad = 2 * float(np.linalg.norm(c - np.roll(c, 1, axis=0), axis=1).mean()) + 8
        x0, y0 = (np.floor(c.min(0) - pad).astype(int)).clip(0)
        x1, y1 = np.minimum(np.ceil(c.max(0) + pad).astype(int), [w, h])
        crop = gray[y0:y1, x0:x1]  # each crop refines its own marker
        refined = _detect(crop, d, up, min_side_px).get(i)
        if refined is not None:
            found[i] = refined + np.array([x0, y0], float)
    return found


def _detect(gray: np.ndarray, d, up: int, min_side_px: float, finder: bool = False,
            sharp: bool = False) -> dict[int, np.ndarray]:
    """:func:`detect_aruco`'s detector on ``gray`` upsampled ``up`` times (corners in ``gray``'s pixels).

    Upsampled linearly, the corners sit where the marker's edges are: bicubic's overshoot at its black and white
    edges moved them outward on small markers seen at a grazing angle.
    ``sharp`` upsamples bicubically, which decodes some of those that the linear image does not."""
    import cv2

    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_APRILTAG  # also its quads: see detect_aruco
    img = gray
    if up > 1 or finder:
        params.minMarkerPerimeterRate = 0.01
        params.polygonalApproxAccuracyRate = 0.06
        params.adaptiveThreshWinSizeMin = 3
    if finder:  # a marker within the refining pass's 3 px of the border is nearer it at the finder's size
        params.minDistanceToBorder = 0
    if up > 1:
        img = cv2.resize(gray, None, fx=up, fy=up, interpolation=cv2.INTER_CUBIC if sharp else cv2.INTER_LINEAR)
    corners, ids, _ = cv2.aruco.ArucoDetector(d, params).detectMarkers(img)
    found = {}
    for i, c in zip(() if ids is None else ids.ravel(), corners):
        c = index_coords(image_coords(c.reshape(4, 2)) / up)  # upsampled corners back to input pixels
        if np.linalg.norm(c - np.roll(c, 1, axis=0), axis=1).mean() >= min_side_px:
            found[int(i)] = c
    return found


def triangulate(rays_cam: list[np.ndarray], R_w2c: list[np.ndarray], t_w2c: list[np.ndarray]) -> np.ndarray:
    """Linear multi-view triangulation from normalised image points (x, y) (one per view)."""
    rows = []
    for (x, y), R, t in zip(rays_cam, R_w2c, t_w2c):
        P = np.hstack([R, t[:, None]])
        rows.append(x * P[2] - P[0])
        rows.append(y * P[2] - P[1])
    _, _, vt = np.linalg.svd(np.array(rows))
    X = vt[-1]
    return X[:3] / X[3]


def marker_edge_length(observations: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[float, np.ndarray, float]:
    """Edge length of a square marker in model units, from its corners seen in several views.

    Args:
        observations: per view (normalised corner coords (4, 2), R (3, 3), t (3,)).

    Returns:
        (edge length: mean of the 4 edges and the 2 diagonals / sqrt 2, corners (4, 3) in model
        coordinates, squareness: relative spread of those 6 estimates; large = not a real square).
    """
    corners = np.array([triangulate([o[0][k] for o in observations], [o[1] for o in observations],
                                    [o[2] for o in observations]) for k in range(4)])
    edges = np.linalg.norm(corners - np.roll(corners, -1, axis=0), axis=1)
    diags = np.linalg.norm(corners[:2] - corners[2:], axis=1) / np.sqrt(2)
    est = np.concatenate([edges, diags])
    return float(est.mean()), corners, float(est.std() / max(est.mean(), 1e-12))


def fit_plane(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares plane through (N, 3) points: (unit normal n, d) with n . x = d."""
    c = points.mean(0)
    n = np.linalg.svd(points - c, full_matrices=False)[2][2]
    return n, float(n @ c)


def corners_on_plane(cam: Camera, corners: np.ndarray, n: np.ndarray, d: float) -> np.ndarray | None:
    """Intersect the viewing rays of (4, 2) corners (image coordinates of ``cam``) with the plane n . x = d:
    (4, 3) or None."""
    center = cam.center
    rays = cam.rays(corners) @ cam.R  # camera rays in world axes (R^T r)
    denom = rays @ n
    if np.any(np.abs(denom) < 1e-9):
        return None
    lam = (d - n @ center) / denom
    if np.any(lam <= 0):
        return None
    return center + lam[:, None] * rays


def square_edge(corners: np.ndarray) -> tuple[float, float]:
    """(edge estimate, relative spread) of a (4, 3) square: mean of 4 edges and 2 diagonals / sqrt 2."""
    edges = np.linalg.norm(corners - np.roll(corners, -1, axis=0), axis=1)
    diags = np.linalg.norm(corners[:2] - corners[2:], axis=1) / np.sqrt(2)
    est = np.concatenate([edges, diags])
    return float(est.mean()), float(est.std() / max(est.mean(), 1e-12))


# A square of unit edge in its own frame, corners in ArUco's order (clockwise from the top-left as the
# marker's face is seen): x along the top edge, y down the left edge, z into the marker.
_UNIT_SQUARE = 0.5 * np.array([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]])


def fit_square(observations: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]], corners: np.ndarray,
               px_scale: float = 1.0, jackknife: bool = True) -> tuple[float, np.ndarray, float, float] | None:
    """The square (pose and edge) whose corners project closest to the detections in every view.

    Triangulating each corner on its own (:func:`marker_edge_length`) minimises an algebraic error and lets
    the four corners drift apart independently; the marker is a rigid flat square, so its seven unknowns
    (pose and edge) are fitted to every detection at once, in pixels, with a robust loss (a detection
    spoiled by blur or a bad decode counts for little).

    Args:
        observations: per view in capture order (normalised corner coords (4, 2), R (3, 3), t (3,), focal
            length in pixels).
        corners: (4, 3) starting corners (the linear triangulation).
        px_scale: the robust loss's scale in pixels (residuals beyond it count linearly).
        jackknife: the edge's standard error is also estimated by leaving out runs of views
            (:func:`_jackknife`), and the larger of the two is returned.

    Returns:
        (edge, corners (4, 3), the edge's relative standard error, the median corner's reprojection error in
        pixels), or None when the corners are not near a square to start from.
    """
    from scipy.optimize import least_squares
    from scipy.spatial.transform import Rotation

    c0 = corners.mean(0)
    edge0, spread = square_edge(corners)
    if not np.isfinite(edge0) or edge0 <= 0 or spread > 0.2:
        return None
    _, R0, _ = umeyama(edge0 * _UNIT_SQUARE, corners)  # the unit square turned onto the triangulated corners
    obs = np.array([o[0] for o in observations], float)  # [V, 4, 2]
    Rs = np.array([o[1] for o in observations], float)  # [V, 3, 3]
    ts = np.array([o[2] for o in observations], float)  # [V, 3]
    fs = np.array([o[3] for o in observations], float)[:, None, None]  # [V, 1, 1]

    def model(p):
        X = p[3:6] + np.exp(p[6]) * _UNIT_SQUARE @ Rotation.from_rotvec(p[:3]).as_matrix().T  # [4, 3]
        return np.einsum("vij,kj->vki", Rs, X) + ts[:, None, :]  # [V, 4, 3] in each camera

    def residuals(p):
        Xc = model(p)
        z = np.maximum(Xc[..., 2:], 1e-9)
        return (fs * (Xc[..., :2] / z - obs)).ravel()

    p0 = np.concatenate([Rotation.from_matrix(R0).as_rotvec(), c0, [np.log(edge0)]])
    res = least_squares(residuals, p0, loss="huber", f_scale=px_scale, x_scale="jac")
    if not res.success or np.any(model(res.x)[..., 2] <= 0):
        return None
    m = res.fun.size
    edge = float(np.exp(res.x[6]))
    X = res.x[3:6] + edge * _UNIT_SQUARE @ Rotation.from_rotvec(res.x[:3]).as_matrix().T
    err = float(np.median(np.linalg.norm(residuals(res.x).reshape(-1, 2), axis=1)))
    try:
        cov = np.linalg.inv(res.jac.T @ res.jac) * (2 * res.cost / max(m - 7, 1))
        rel = float(np.sqrt(max(cov[6, 6], 0.0)))  # the edge is fitted as its logarithm
    except np.linalg.LinAlgError:
        return None
    return edge, X, max(rel, _jackknife(observations, X)) if jackknife else rel, err


def _jackknife(observations: list, corners: np.ndarray, groups: int = 8) -> float:
    """The relative standard error of :func:`fit_square`'s edge by leaving out runs of consecutive views in
    turn: neighbouring frames of a video err alike (the same blur, the same sub-pixel phase of the marker's
    edges), which the fit's own error estimate takes as independent."""
    V = len(observations)
    if V < 3:
        return 0.0
    G = min(V, groups)
    logs = []
    for block in np.array_split(np.arange(V), G):
        rest = [o for i, o in enumerate(observations) if not block[0] <= i <= block[-1]]
        fit = fit_square(rest, corners, jackknife=False)
        if fit is None:
            return float("inf")
        logs.append(np.log(fit[0]))
    logs = np.array(logs)
    return float(np.sqrt((G - 1) / G * np.sum((logs - logs.mean()) ** 2)))
