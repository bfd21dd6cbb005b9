"""Mesh cleanup (ops.mesh_cleanup and the mesh stage's cleanup chain) on geometry with exact ground truth:
floaters, decimation and LODs, hole filling, feature-preserving smoothing, object isolation and floor removal.

F-scores are computed as in the benchmarks: points sampled on the mesh against points sampled on the
ground-truth surface, at 1 % of the scene size.
"""

from __future__ import annotations

import numpy as np
import pytest

from vid2model.camera import Camera
from vid2model.config import MeshConfig
from vid2model.ops import mesh_cleanup as C
from vid2model.ops.metrics import fscore, sample_surface
from vid2model.stages.mesh import cleanup

N_SAMPLES = 60_000


def _f1(mesh_or_vf, gt_points: np.ndarray, threshold: float) -> float:
    V, F = mesh_or_vf if isinstance(mesh_or_vf, tuple) else C.arrays(mesh_or_vf)
    return fscore(sample_surface(V, F, N_SAMPLES, seed=1), gt_points, threshold)["fscore"]


def _icosphere(subdivisions: int, radius: float, center=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    s = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return np.asarray(s.vertices) + np.asarray(center, float), np.asarray(s.faces, np.int64)


def _merge(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    Vs, Fs, base = [], [], 0
    for V, F in parts:
        Vs.append(V)
        Fs.append(F + base)
        base += len(V)
    return np.concatenate(Vs), np.concatenate(Fs)


def _weld(V: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge coincident vertices (grids of a box's sides meet along its edges): one connected surface."""
    import trimesh

    m = trimesh.Trimesh(V, F, process=False)
    m.merge_vertices(digits_vertex=6)
    return np.asarray(m.vertices), np.asarray(m.faces, np.int64)


# ---- floaters ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def floater_scene():
    """A sphere (r 0.5) and a box beside it (both real surface), plus 30 small floating blobs."""
    from vid2model.synth.mesh import _box_faces

    rng = np.random.default_rng(3)
    sphere = _icosphere(4, 0.5)  # 5120 faces
    box = _weld(*_merge(_box_faces((0.6, -0.1, -0.5), (0.8, 0.1, -0.3), 0.02, False)))  # 1200 faces
    gt = _merge([sphere, box])
    dirs = rng.normal(size=(30, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    centers = dirs * rng.uniform(0.6, 0.95, (30, 1))
    centers = centers[np.linalg.norm(centers - [0.7, 0.0, -0.4], axis=1) > 0.2]  # not touching the box
    blobs = [_icosphere(1, rng.uniform(0.008, 0.02), c) for c in centers]  # 80 faces each
    V, F = _merge([gt] + blobs)
    gt_points = sample_surface(*gt, 200_000, seed=0)
    size = 2 * 0.95  # the scene fits a sphere of radius 0.95 (sphere, box and blobs)
    return {"gt": gt, "V": V, "F": F, "n_gt_faces": len(gt[1]), "centers": centers, "gt_points": gt_points,
            "th": 0.01 * size}


def _floaters_left(mesh, centers: np.ndarray) -> int:
    V = np.asarray(mesh.vertices)
    return int(sum((np.linalg.norm(V - c, axis=1) < 0.03).any() for c in centers))


def test_remove_small_components_drops_every_floater(floater_scene):
    s = floater_scene
    mesh = C.to_o3d(s["V"], s["F"])
    f_with = _f1(mesh, s["gt_points"], s["th"])
    f_gt = _f1(s["gt"], s["gt_points"], s["th"])
    out = C.remove_small_components(mesh, 0.02)
    assert len(out.triangles) == s["n_gt_faces"]  # exactly the sphere and the box are left
    assert _floaters_left(out, s["centers"]) == 0
    f_after = _f1(out, s["gt_points"], s["th"])
    assert f_with < f_gt - 0.005  # the floaters did cost accuracy (the test can see them)
    assert f_after >= f_with + 0.005 and f_after >= f_gt - 0.005, (f_with, f_after, f_gt)


def test_stage_cleanup_chain_drops_floaters_and_keeps_surface(floater_scene):
    s = floater_scene
    mesh = C.to_o3d(s["V"], s["F"], np.full((len(s["V"]), 3), 0.4))
    f_with = _f1(mesh, s["gt_points"], s["th"])
    out, info = cleanup(mesh, MeshConfig(), voxel=0.01, radius=0.5, center=np.zeros(3), orbit=True,
                        up=np.array([0.0, 0.0, 1.0]))
    assert info["floater_faces_removed"] == len(s["F"]) - s["n_gt_faces"]
    assert _floaters_left(out, s["centers"]) == 0
    assert out.has_vertex_colors() and len(out.vertex_colors) == len(out.vertices)
    f_after = _f1(out, s["gt_points"], s["th"])
    assert f_after >= f_with + 0.005 and f_after >= 0.995, (f_with, f_after)


# ---- decimation and LODs ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def object_mesh():
    """The synthetic orbit's object (two boxes and a sphere, no floor), welded, 1 cm facets, with colours."""
    from dataclasses import replace

    from vid2model.synth.mesh import scene_mesh
    from vid2model.synth.scene import orbit_scene

    scene = replace(orbit_scene(0), ground_half=0.0)
    V, F, _ = scene_mesh(scene, resolution=0.01)
    V, F = _weld(V, F)
    gt_points = sample_surface(V, F, 200_000, seed=0)
    return V, F, gt_points, 0.01 * 2 * scene.radius


def test_decimate_to_ten_percent_keeps_accuracy(object_mesh):
    V, F, gt_points, th = object_mesh
    cols = np.clip((V - V.min(0)) / np.ptp(V, 0), 0, 1)
    full = C.to_o3d(V, F, cols)
    target = len(F) // 10
    out = C.decimate(C.to_o3d(V, F, cols), target)
    n = len(out.triangles)
    assert 0.95 * target <= n <= target, (n, target)
    assert out.has_vertex_colors() and len(out.vertex_colors) == len(out.vertices)
    f_full, f_dec = _f1(full, gt_points, th), _f1(out, gt_points, th)
    assert f_full > 0.99 and f_dec >= f_full - 0.02, (f_full, f_dec)


def test_decimate_keeps_open_rims_and_colours():
    """A bumpy open sheet with a square hole: the outer rim and the hole's rim stay where they were (a hole
    must not grow), and each vertex keeps the colour of the surface where it ends up."""
    n = 120
    u, v = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n), indexing="ij")
    V = np.stack([u, v, 0.05 * np.sin(6 * u) * np.cos(5 * v)], -1).reshape(-1, 3)
    q = (np.arange(n - 1)[:, None] * n + np.arange(n - 1)[None, :]).ravel()
    F = np.concatenate([np.stack([q, q + n, q + 1], 1), np.stack([q + 1, q + n, q + n + 1], 1)])
    centre = V[F].mean(1)
    F = F[~((np.abs(centre[:, 0] - 0.5) < 0.1) & (np.abs(centre[:, 1] - 0.5) < 0.1))]
    cols = np.stack([V[:, 0], V[:, 1], 0.5 + 0 * V[:, 0]], 1)
    rim_before = np.unique(C.boundary_edges(F))
    out = C.decimate(C.to_o3d(V, F, cols), len(F) // 10)
    V2, F2 = C.arrays(out)
    assert len(F2) <= len(F) // 10 * 1.05
    rim = V2[np.unique(C.boundary_edges(F2))]
    # every rim vertex is an original rim vertex, and the rims span what they spanned
    d = np.abs(rim[:, None, :2] - V[rim_before][None, :, :2]).max(-1).min(1)
    assert d.max() < 1e-9, d.max()
    hole = rim[(np.abs(rim[:, 0] - 0.5) < 0.2) & (np.abs(rim[:, 1] - 0.5) < 0.2)]
    assert np.abs(hole[:, :2] - 0.5).max() < 0.1 + 1.5 / n  # the hole's rim did not move outwards
    got = np.asarray(out.vertex_colors)
    assert np.abs(got[:, :2] - V2[:, :2]).max() < 3.0 / n  # the colour of the nearest original vertex


def test_lods_decrease(object_mesh):
    V, F, gt_points, th = object_mesh
    counts = (len(F) * 2, len(F) // 4, len(F) // 16, len(F) // 64)  # the first is above the mesh: skipped
    out = C.lods(C.to_o3d(V, F), counts)
    assert sorted(out, reverse=True) == list(counts[1:])
    sizes = [len(out[c].triangles) for c in counts[1:]]
    assert all(a > b for a, b in zip(sizes, sizes[1:])), sizes
    for c, n in zip(counts[1:], sizes):
        assert 0.9 * c <= n <= c, (c, n)
    assert _f1(out[counts[1]], gt_points, th) > 0.98


# ---- hole filling -----------------------------------------------------------------------------

def _cut_holes(V: np.ndarray, F: np.ndarray, spots: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """Faces kept after removing those whose centroid lies within each (centre, radius) disc."""
    c = V[F].mean(1)
    keep = np.ones(len(F), bool)
    for p, r in spots:
        keep &= np.linalg.norm(c - p, axis=1) > r
    return F[keep]


def _loops(V: np.ndarray, F: np.ndarray) -> list[np.ndarray]:
    """Vertices of each boundary loop (connected set of boundary edges)."""
    e = C.boundary_edges(F)
    if len(e) == 0:
        return []
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    g = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(len(V), len(V)))
    _, lab = connected_components(g, directed=False)
    vs = np.unique(e)
    return [vs[lab[vs] == k] for k in np.unique(lab[vs])]


def _across(P: np.ndarray) -> float:
    return float(np.linalg.norm(P[:, None] - P[None], axis=2).max())


@pytest.fixture(scope="module")
def holed_sphere():
    R = 0.5
    V, F = _icosphere(5, R)  # 20480 faces, 1 cm edges
    d = np.array([[0, 0, -1], [1, 0, 0], [-1, 0, 0], [0, -1, 0], [0.6, 0.6, -0.6]], float)  # away from +y, +z
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    small = [(R * p, 0.04) for p in d[:5]]  # about 9 cm across
    return R, V, F, small


def test_fill_holes_closes_small_holes_near_the_surface(holed_sphere):
    R, V, F, small = holed_sphere
    gt_points = sample_surface(V, F, 200_000, seed=0)
    th = 0.01 * 2 * R
    Fh = _cut_holes(V, F, small)
    loops = _loops(V, Fh)
    assert len(loops) == 5
    widest = max(_across(V[lp]) for lp in loops)
    mesh = C.to_o3d(V, Fh, np.full((len(V), 3), 0.25))
    f_holed = _f1(mesh, gt_points, th)
    out = C.fill_holes(mesh, max_hole_size=1.25 * widest)
    Vo, Fo = C.arrays(out)
    assert len(C.boundary_edges(Fo)) == 0
    assert out.is_watertight() and out.is_orientable()
    assert np.allclose(Vo, V)  # no vertex moved or was added
    # consistently wound: every directed edge once (a flipped patch would repeat its rim edges)
    de = np.concatenate([Fo[:, [0, 1]], Fo[:, [1, 2]], Fo[:, [2, 0]]])
    assert len(np.unique(de, axis=0)) == len(de)
    assert abs(out.get_volume() - 4 / 3 * np.pi * R ** 3) < 0.01 * 4 / 3 * np.pi * R ** 3
    assert out.has_vertex_colors() and len(out.vertex_colors) == len(Vo)
    f_full, f_filled = _f1((V, F), gt_points, th), _f1(out, gt_points, th)
    assert f_filled >= 0.99 * f_full and f_filled > f_holed, (f_holed, f_filled, f_full)


def test_fill_holes_leaves_holes_wider_than_the_limit(holed_sphere):
    R, V, F, small = holed_sphere
    p_mid, p_big = np.array([0.0, 0.0, R]), np.array([0.0, R, 0.0])
    Fh = _cut_holes(V, F, small[:3] + [(p_mid, 0.1), (p_big, 0.2)])
    spots = [p for p, _ in small[:3]] + [p_mid, p_big]

    def spot(loop):  # which cut a boundary loop belongs to: the nearest disc centre
        return int(np.argmin([np.linalg.norm(V[loop].mean(0) - p) for p in spots]))

    loops = _loops(V, Fh)
    assert sorted(spot(lp) for lp in loops) == [0, 1, 2, 3, 4]
    across = {spot(lp): _across(V[lp]) for lp in loops}
    limit = 0.8 * across[3]  # the 20 cm hole is 25 % wider than the limit, the small ones 40 % narrower
    assert max(across[k] for k in range(3)) < 0.6 * limit
    out = C.fill_holes(C.to_o3d(V, Fh), max_hole_size=limit)
    left = _loops(*C.arrays(out))
    assert sorted(spot(lp) for lp in left) == [3, 4]  # the open rims are those of the 20 cm and 40 cm holes
    assert sum(len(lp) for lp in left) == len(C.boundary_edges(C.arrays(out)[1]))
    # and everything closes without a limit (what the stage's watertight option asks for)
    assert len(C.boundary_edges(C.arrays(C.fill_holes(C.to_o3d(V, Fh), 1e9))[1])) == 0


# ---- smoothing --------------------------------------------------------------------------------

def test_smoothing_keeps_box_edges_and_volume():
    import trimesh

    half = np.array([0.2, 0.15, 0.1])
    box = trimesh.creation.box(extents=2 * half)
    for _ in range(4):
        box = box.subdivide()  # 3072 faces, about 2 cm edges
    V, F = np.asarray(box.vertices), np.asarray(box.faces, np.int64)
    sigma = 0.002
    Vn = V + np.random.default_rng(0).normal(0, sigma, V.shape)

    def dist(P):  # unsigned distance to the exact box surface
        q = np.abs(P) - half
        return np.abs(np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(1), 0))

    on_plane = np.isclose(np.abs(V), half).sum(1) == 1
    near_edge = on_plane & ((np.abs(np.abs(V) - half) < 0.03).sum(1) >= 2)
    corners = np.isclose(np.abs(V), half).all(1)
    out = C.smooth(C.to_o3d(Vn, F), 10)
    S = np.asarray(out.vertices)
    rms = lambda x: float(np.sqrt(np.mean(x ** 2)))  # noqa: E731
    assert rms(dist(S[on_plane])) < 0.65 * rms(dist(Vn[on_plane]))  # flat faces got flatter
    assert rms(dist(S[near_edge])) < 0.7 * rms(dist(Vn[near_edge]))  # also right next to the edges
    assert np.linalg.norm(S[corners] - V[corners], axis=1).max() < 4 * sigma * np.sqrt(3)  # corners stay
    vol0 = float(np.prod(2 * half))
    assert abs(out.get_volume() / vol0 - 1) < 0.005  # no shrinking (nor swelling)
    for k in range(3):  # each side stays where it was: its vertices' mean offset along the normal
        for sign in (1, -1):
            side = on_plane & np.isclose(V[:, k], sign * half[k])
            assert abs(np.mean(S[side, k]) - sign * half[k]) < 0.2 * sigma, (k, sign)


def test_smoothing_keeps_open_rims_in_place():
    V, F = _icosphere(4, 0.5)
    F = F[V[F].mean(1)[:, 2] > 0]  # a hemisphere: its rim is a circle of radius 0.5 on z = 0
    rim = np.unique(C.boundary_edges(F))
    out = C.smooth(C.to_o3d(V, F), 10)
    S = np.asarray(out.vertices)
    assert np.abs(np.linalg.norm(S[rim, :2], axis=1) - 0.5).max() < 0.01  # the rim did not pull inwards
    assert np.abs(np.linalg.norm(S, axis=1)[np.unique(F)] - 0.5).max() < 0.01


# ---- isolation, floor, look-at ---------------------------------------------------------------

@pytest.fixture(scope="module")
def object_on_floor():
    """A 4 m x 4 m floor with an open box (no bottom) welded onto it at the origin and another far away."""
    from vid2model.synth.mesh import _box_faces, _grid

    res = 0.05
    floor = _grid((-2.0, -2.0, 0.0), (4.0, 0, 0), (0, 4.0, 0), 80, 80)
    obj = [p for p in _box_faces((-0.25, -0.2, 0.0), (0.25, 0.2, 0.3), res, False)]
    far = [p for p in _box_faces((1.4, 1.2, 0.0), (1.6, 1.4, 0.4), res, False)]
    # _box_faces order per axis k: (+k side, -k side); drop the bottoms (-z, index 5)
    obj_v, obj_f = _merge(obj[:5])
    far_v, far_f = _merge(far[:5])
    V, F = _weld(*_merge([floor, (obj_v, obj_f), (far_v, far_f)]))
    return V, F


def test_isolate_object_and_drop_floor(object_on_floor):
    V, F = object_on_floor
    c = V[F].mean(1)
    is_obj = (np.abs(c[:, 0]) < 0.26) & (np.abs(c[:, 1]) < 0.21) & (c[:, 2] > 1e-6)
    is_far = (c[:, 0] > 1.39) & (c[:, 1] > 1.19) & (c[:, 2] > 1e-6)
    assert len(np.unique(C.component_labels(len(V), F))) == 1  # floor and boxes are one welded surface
    cfg = MeshConfig(isolate=True, drop_floor=True, isolate_radius=1.2, smooth_iterations=0)
    out, _ = cleanup(C.to_o3d(V, F), cfg, voxel=0.01, radius=0.5, center=np.array([0.0, 0.0, 0.15]), orbit=True,
                     up=np.array([0.0, 0.0, 1.0]))
    Vo, Fo = C.arrays(out)
    co = Vo[Fo].mean(1)
    assert co[:, 2].min() > 0.01  # no floor left
    assert np.all((np.abs(co[:, 0]) < 0.26) & (np.abs(co[:, 1]) < 0.21))  # nothing but the object
    # the object's faces above the floor band survive: its top and all of its walls but the lowest row
    assert len(Fo) >= 0.8 * is_obj.sum() and Vo[:, 2].max() == pytest.approx(0.3)
    assert is_far.sum() > 0


def test_drop_floor_without_isolation_removes_only_the_floor(object_on_floor):
    V, F = object_on_floor
    out = C.drop_floor(C.to_o3d(V, F), up=np.array([0.0, 0.0, 1.0]), distance=0.02)
    Vo, Fo = C.arrays(out)
    co = Vo[Fo].mean(1)
    assert co[:, 2].min() > 0.02
    # both boxes are separate pieces now; the far one is as big as a floater threshold of 5 % allows
    assert (co[:, 0] > 1.3).any() and (np.abs(co[:, 0]) < 0.3).any()


def test_look_at_center_for_orbits_and_none_for_walks():
    from vid2model.synth import SynthConfig
    from vid2model.synth.camera import camera_path

    target = np.array([0.3, -0.2, 0.4])
    az = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    eyes = target + np.stack([2 * np.cos(az), 2 * np.sin(az), 0.8 + 0.1 * np.sin(3 * az)], 1)
    fwd = target - eyes
    assert np.allclose(C.look_at_center(eyes, fwd), target, atol=1e-9)
    # a half orbit with hand-held shake, as the generator films it: the look-at point is the target
    cams = camera_path(SynthConfig(path="orbit", arc_deg=180, seed=3), np.linspace(0, 1, 30))
    c = C.look_at_center(cams[:, :3, 3], cams[:, :3, 2])
    assert c is not None and np.linalg.norm(c - [0.05, 0.0, 0.25]) < 0.05
    # cameras all looking the same way (a walk along a corridor, a scan of a wall)
    eyes = np.stack([np.linspace(-2, 2, 20), np.zeros(20), np.full(20, 1.5)], 1)
    assert C.look_at_center(eyes, np.tile([0.0, 1.0, 0.0], (20, 1))) is None
    # the generator's walk: forward-looking cameras must not be taken for an orbit
    cams = camera_path(SynthConfig(path="walk", seed=2), np.linspace(0, 1, 40))
    assert C.look_at_center(cams[:, :3, 3], cams[:, :3, 2]) is None


def test_isolate_by_views_keeps_what_the_ring_of_cameras_sees(object_on_floor):
    """Cameras circling the object with a narrow view: the far box (never in view) goes, the object stays
    whole even where it reaches beyond any sphere around its centre."""
    from vid2model.render import look_at

    V, F = object_on_floor
    c = V[F].mean(1)
    is_obj = (np.abs(c[:, 0]) < 0.26) & (np.abs(c[:, 1]) < 0.21) & (c[:, 2] > 1e-6)
    target = np.array([0.0, 0.0, 0.15])
    K = np.array([[400.0, 0, 160], [0, 400.0, 120], [0, 0, 1]])
    cams = []
    for a in np.linspace(0, 2 * np.pi, 16, endpoint=False):
        eye = target + np.array([1.2 * np.cos(a), 1.2 * np.sin(a), 0.6])
        w2c = np.linalg.inv(look_at(eye, target))
        cams.append(Camera.from_world_to_cam(K, w2c, 320, 240))
    share = C.view_share(V, cams)
    assert share[np.linalg.norm(V - target, axis=1) < 0.2].min() == 1.0
    out = C.isolate_by_views(C.to_o3d(V, F), share, 0.6, target)
    Vo, Fo = C.arrays(out)
    co = Vo[Fo].mean(1)
    assert not ((co[:, 0] > 1.3) & (co[:, 1] > 1.1)).any()  # the far box is gone
    inside = (np.abs(co[:, 0]) < 0.26) & (np.abs(co[:, 1]) < 0.21) & (co[:, 2] > 1e-6)
    assert inside.sum() >= 0.95 * is_obj.sum()  # the object is whole
    assert len(Fo) < 0.8 * len(F)  # most of the wide floor is out of the common view


def _ring_cams(target: np.ndarray, n: int = 12, dist: float = 2.5, height: float = 1.0):
    from vid2model.render import look_at

    K = np.array([[300.0, 0, 160], [0, 300.0, 120], [0, 0, 1]])
    cams = []
    for a in np.linspace(0, 2 * np.pi, n, endpoint=False):
        w2c = np.linalg.inv(look_at(target + np.array([dist * np.cos(a), dist * np.sin(a), height]), target))
        cams.append(Camera.from_world_to_cam(K, w2c, 320, 240))
    return cams


def test_carve_outside_points_removes_a_skirt_and_keeps_the_surface():
    """A sphere whose points miss a cap (a gap no depth map measured) with a Poisson-like skirt around its
    equator out to 1.6 radii: the skirt goes, the sphere stays whole, cap included."""
    Vs, Fs = _icosphere(4, 0.5)
    r = np.linspace(0.5, 0.8, 7)
    a = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    ring = np.stack([np.outer(r, np.cos(a)).ravel(), np.outer(r, np.sin(a)).ravel(), np.zeros(r.size * a.size)], 1)
    idx = np.arange(r.size * a.size).reshape(r.size, a.size)
    i0, i1, j0, j1 = idx[:-1, :], idx[1:, :], np.roll(idx[:-1, :], -1, 1), np.roll(idx[1:, :], -1, 1)
    Fr = np.concatenate([np.stack([i0, i1, j1], -1).reshape(-1, 3), np.stack([i0, j1, j0], -1).reshape(-1, 3)])
    V, F = np.vstack([Vs, ring]), np.vstack([Fs, Fr + len(Vs)])
    pts = sample_surface(Vs, Fs, 40_000)
    pts = pts[np.linalg.norm(pts - [0.0, 0.0, 0.5], axis=1) > 0.15]  # the unmeasured cap on top
    out = C.carve_outside_points(C.to_o3d(V, F), pts, _ring_cams(np.zeros(3)), close_frac=0.02, min_views=2)
    Vo, Fo = C.arrays(out)
    rad = np.linalg.norm(Vo[Fo].mean(1)[:, :2], axis=1)
    on_sphere = np.abs(np.linalg.norm(Vo[Fo].mean(1), axis=1) - 0.5) < 0.01
    assert (rad > 0.6).sum() == 0  # the skirt is gone beyond a sliver at the rim
    assert on_sphere.sum() >= 0.99 * len(Fs)  # the sphere and its unmeasured cap stay


def test_isolate_by_views_grows_the_core_into_connected_parts_seen_by_few_views():
    """A bar leaving the frame of most cameras (share falling from 1 to 0.2 along it) and a separate piece
    seen by 0.3: with a grow share the bar stays whole and the piece without core goes; without, the bar is cut."""
    x = np.linspace(0, 2, 41)
    V = np.concatenate([np.stack([x, np.zeros_like(x), np.zeros_like(x)], 1),
                        np.stack([x, np.ones_like(x) * 0.05, np.zeros_like(x)], 1),
                        [[3.0, 0, 0], [3.1, 0, 0], [3.0, 0.1, 0]]])
    n = len(x)
    F = np.array([[i, i + 1, n + i] for i in range(n - 1)] + [[i + 1, n + i + 1, n + i] for i in range(n - 1)]
                 + [[2 * n, 2 * n + 1, 2 * n + 2]])
    share = np.concatenate([np.linspace(1, 0.2, n), np.linspace(1, 0.2, n), [0.3, 0.3, 0.3]])
    out = C.isolate_by_views(C.to_o3d(V, F), share, 0.6, np.zeros(3), grow_share=0.15)
    Vo, _ = C.arrays(out)
    assert Vo[:, 0].max() == pytest.approx(2.0) and Vo[:, 0].min() == 0.0  # the whole bar
    assert len(C.arrays(out)[1]) == 2 * (n - 1)  # and not the separate piece
    cut = C.isolate_by_views(C.to_o3d(V, F), share, 0.6, np.zeros(3))
    assert C.arrays(cut)[0][:, 0].max() < 1.1


def _grid(x0: float, x1: float, y0: float, y1: float, z: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
    V = np.stack([xs.ravel(), ys.ravel(), np.full(n * n, z)], 1)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    return V, np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])


def test_free_space_carving_drops_what_views_saw_through_and_keeps_unmeasured_surface():
    """A floor whose middle is plain (no depth measured there) and two floating sheets: one over measured
    floor, which every view sees through, goes; one just over the plain middle stays (nothing the views
    measured lies behind it), and so does the whole floor."""
    cams = _ring_cams(np.zeros(3))
    views = []
    for cam in cams:
        c = cam.center
        rays = cam.pixel_rays() @ cam.R  # [H, W, 3] world directions at unit depth along the optical axis
        s = -c[2] / rays[..., 2]  # depth where the ray meets the floor z = 0
        hit = c + s[..., None] * rays
        depth = np.where((s > 0) & (np.abs(hit[..., :2]) <= 1.5).all(-1), s, 0.0)
        depth[(np.abs(hit[..., :2]) < 0.4).all(-1)] = 0.0  # the plain middle: no measurement
        views.append((cam, depth[::2, ::2]))  # depth maps at half the image size
    floor = _grid(-1.5, 1.5, -1.5, 1.5, 0.0, 61)
    over_measured = _grid(0.6, 1.0, -0.2, 0.2, 0.2, 9)
    over_plain = _grid(-0.2, 0.2, -0.2, 0.2, 0.02, 9)  # low: the views see past it onto the plain middle only
    parts = [floor, over_measured, over_plain]
    offs = np.cumsum([0] + [len(p[0]) for p in parts])
    V = np.vstack([p[0] for p in parts])
    F = np.vstack([p[1] + o for p, o in zip(parts, offs)])
    votes = C.free_space_votes(V, views, margin=0.03, min_gap=0.01)
    assert (votes[: offs[1]] >= 2).sum() == 0  # no floor vertex is seen through by two views
    assert (votes[offs[1]: offs[2]] >= 2).all()  # every vertex of the sheet over measured floor is
    assert (votes[offs[2]:] == 0).all()  # the plain middle says nothing about the sheet above it
    out = C.carve_free_space(C.to_o3d(V, F), views, margin=0.03, min_gap=0.01, min_views=2)
    assert len(C.arrays(out)[1]) == len(floor[1]) + len(over_plain[1])


def test_crop_to_box_is_open3d_crop():
    import open3d as o3d

    rng = np.random.default_rng(0)
    d = rng.normal(size=(4000, 3))
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(d / np.linalg.norm(d, axis=1, keepdims=True)))
    pcd.estimate_normals()
    pcd.orient_normals_consistent_tangent_plane(10)
    mesh, _ = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(pcd, depth=6)
    lo, hi = np.array([-0.7, -1.5, -0.4]), np.array([0.9, 0.2, 1.5])
    want = C.tidy(o3d.geometry.TriangleMesh(mesh).crop(o3d.geometry.AxisAlignedBoundingBox(lo, hi)))
    got = C.tidy(C.crop_to_box(o3d.geometry.TriangleMesh(mesh), lo, hi))
    assert 0 < len(got.triangles) < len(mesh.triangles)
    np.testing.assert_array_equal(np.asarray(got.vertices), np.asarray(want.vertices))
    np.testing.assert_array_equal(np.asarray(got.triangles), np.asarray(want.triangles))
