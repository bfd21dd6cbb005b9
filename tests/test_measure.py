"""Object measurements: the support level, the object cut from it, its upright box, area and volume, and the
``measure`` command's units, scale sources and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from vid2model.cli import main
from vid2model.ops.measure import (closed_volume, face_geometry, fit_level, girth_profile, horizontal_levels,
                                   object_faces, support_level, upright_box)
from vid2model.workspace import Workspace


def _box(size, center, yaw_deg=0.0, subdiv=3) -> trimesh.Trimesh:
    m = trimesh.creation.box(extents=size)
    for _ in range(subdiv):
        m = m.subdivide()
    T = trimesh.transformations.rotation_matrix(np.radians(yaw_deg), [0, 0, 1])
    T[:3, 3] = center
    m.apply_transform(T)
    return m


def _plane(half: float, z: float, n: int = 40) -> trimesh.Trimesh:
    g = np.linspace(-half, half, n)
    X, Y = np.meshgrid(g, g)
    V = np.c_[X.ravel(), Y.ravel(), np.full(X.size, z)]
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, 1:].ravel(), idx[1:, :-1].ravel()
    F = np.r_[np.c_[a, b, c], np.c_[a, c, d]]
    return trimesh.Trimesh(V, F, process=False)


def _arrays(*meshes) -> tuple[np.ndarray, np.ndarray]:
    m = trimesh.util.concatenate(meshes)
    return np.asarray(m.vertices, float), np.asarray(m.faces, np.int64)


def test_a_rotated_box_on_the_floor_is_measured_exactly():
    # a 0.30 x 0.20 x 0.25 box turned 30 degrees, a lid-sized ball on it, on a 3 m floor; origin mid-box
    box = _box((0.30, 0.20, 0.25), (0.02, -0.01, 0.125 - 0.12), yaw_deg=30)
    floor = _plane(1.5, -0.12)
    V, F = _arrays(box, floor)
    base = support_level(V, F, top=0.0, bin_size=0.002, axis_xy=np.zeros(2), reach=0.3)
    assert base == pytest.approx(-0.12, abs=1e-9)
    obj = object_faces(V, F, np.zeros(2), base, cut=0.005, reach=0.3)
    assert obj.sum() == len(box.faces) - 2 * 4 ** 3  # all but the bottom, which lies on the floor
    b = upright_box(V, F[obj], base, cut=0.005)
    assert (b.height, b.width, b.depth) == pytest.approx((0.25, 0.30, 0.20), abs=1e-6)
    assert b.yaw_deg == pytest.approx(30.0, abs=0.01)
    assert b.footprint == pytest.approx(0.06, rel=1e-6)
    assert b.volume == pytest.approx(0.30 * 0.20 * 0.25, rel=1e-6)
    assert b.surface == pytest.approx(2 * (0.3 * 0.25 + 0.2 * 0.25) + 0.06, rel=1e-6)
    g = girth_profile(V, F[obj], np.array([-0.1, 0.0, 0.1, 0.2]))
    assert g[:3] == pytest.approx([1.0, 1.0, 1.0], rel=1e-6) and np.isnan(g[3])  # above the lid: nothing


def test_the_object_stands_on_the_table_not_the_floor():
    # floor (9 m^2) at 0, table top (1 m^2) at 0.7, a box (0.04 m^2 lid) on it; the orbit looks at z = 0.8
    table = _box((1.0, 1.0, 0.7), (0, 0, 0.35), subdiv=2)
    item = _box((0.2, 0.2, 0.2), (0.1, 0, 0.8), subdiv=3)
    V, F = _arrays(table, item, _plane(1.5, 0.0))
    V[:, 2] -= 0.8
    levels = horizontal_levels(V, F, 0.002)
    assert [round(z, 6) for z, _ in levels[:3]] == [-0.8, -0.1, 0.1]  # floor, table top, the box's lid
    base = support_level(V, F, top=0.0, bin_size=0.002, axis_xy=np.zeros(2), reach=0.5)
    assert base == pytest.approx(-0.1, abs=1e-9)
    obj = object_faces(V, F, np.zeros(2), base, cut=0.005, reach=0.3)
    b = upright_box(V, F[obj], base, cut=0.005)
    assert (b.height, b.width, b.depth) == pytest.approx((0.2, 0.2, 0.2), abs=1e-6)


def test_an_open_side_gives_no_volume():
    box = _box((0.2, 0.2, 0.2), (0, 0, 0.1))
    V, F = np.asarray(box.vertices), np.asarray(box.faces)
    cen = V[F].mean(1)
    F = F[~((cen[:, 0] > 0.0999) | (cen[:, 2] < 1e-4))]  # no bottom, and one side missing
    assert closed_volume(V, F, 0.0, 0.005) is None
    F2 = np.asarray(box.faces)[V[np.asarray(box.faces)].mean(1)[:, 2] > 1e-4]  # only the bottom missing
    assert closed_volume(V, F2, 0.0, 0.005) == pytest.approx(0.008, rel=1e-9)


def _workspace(tmp_path, scale: str, scale_unc=None) -> Workspace:
    """A workspace holding just what ``measure`` reads: a mesh of a 0.3 x 0.2 x 0.25 box on a floor, in model
    units of 1/2 m (so metric figures are double), and the scene frame."""
    ws = Workspace(tmp_path / "ws")
    ws.create()
    box = _box((0.15, 0.10, 0.125), (0, 0, 0.0), yaw_deg=12)
    V, F = _arrays(box, _plane(1.0, -0.0625))
    if scale == "metric":
        V = V * 2
    ws.clean_mesh.parent.mkdir(parents=True, exist_ok=True)
    trimesh.Trimesh(V, F, process=False).export(ws.clean_mesh)
    ws.write_json(ws.scene_json, {"up": [0, 0, 1], "scale": scale, "scale_source": "marker" if scale == "metric"
                                  else "none", "scale_rel_uncertainty": scale_unc, "center": [0, 0, 0],
                                  "radius": 0.5 if scale == "metric" else 0.25, "capture": "orbit"})
    return ws


def test_without_scale_every_figure_says_relative_units(tmp_path, capsys):
    ws = _workspace(tmp_path, "arbitrary")
    assert main(["measure", str(ws.root)]) == 0
    out = capsys.readouterr().out
    figures = [ln for ln in out.splitlines() if ln.startswith("  ")]
    assert len(figures) == 7 and all(ln.endswith("relative units") or ln.endswith("-") for ln in figures)
    assert "--marker-size" in out and "--known-size" in out
    m = json.loads(ws.measure_json.read_text())
    assert m["units"] == "relative units" and m["scale_source"] == "none"
    assert m["object"]["height"]["value"] == pytest.approx(0.125, abs=1e-6)


def test_known_size_sets_the_scale(tmp_path, capsys):
    ws = _workspace(tmp_path, "arbitrary")
    assert main(["measure", str(ws.root), "--known-size", "box height=25cm", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    o = m["object"]
    assert m["units"] == "m" and m["scale_source"].startswith("known size")
    assert (o["height"]["value"], o["width"]["value"], o["depth"]["value"]) == pytest.approx((0.25, 0.30, 0.20), abs=1e-6)
    assert o["volume"]["value"] == pytest.approx(0.015, rel=1e-6) and o["volume"]["unit"] == "m^3"
    assert len(o["girths"]) == 40 and all(g["girth"]["value"] == pytest.approx(1.0, rel=1e-5) for g in o["girths"])


def test_marker_scale_and_its_uncertainty_carry_into_every_figure(tmp_path):
    ws = _workspace(tmp_path, "metric", scale_unc=0.004)
    assert main(["measure", str(ws.root), "-q"]) == 0
    m = json.loads(ws.measure_json.read_text())
    o = m["object"]
    assert m["units"] == "m" and m["scale_source"] == "marker"
    assert (o["height"]["value"], o["width"]["value"], o["depth"]["value"]) == pytest.approx((0.25, 0.30, 0.20), abs=1e-6)
    # no dense points: the scale's share alone
    assert o["width"]["uncertainty"] == pytest.approx(0.004 * 0.30, rel=1e-3)
    assert o["footprint"]["uncertainty"] == pytest.approx(2 * 0.004 * 0.06, rel=1e-3)


@pytest.mark.parametrize("args, says", [
    (["--known-size", "box weight=3"], "--known-size must look like"),
    (["--known-size", "height=-1"], "--known-size must look like"),
])
def test_bad_known_size_is_one_line(tmp_path, capsys, args, says):
    ws = _workspace(tmp_path, "arbitrary")
    assert main(["measure", str(ws.root), *args]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_workspace_without_a_mesh_says_what_to_run(tmp_path, capsys):
    ws = _workspace(tmp_path, "arbitrary")
    ws.clean_mesh.unlink()
    assert main(["measure", str(ws.root)]) == 2
    assert "vid2model mesh" in capsys.readouterr().err


def test_the_product_page_line_carries_the_figures(tmp_path):
    from vid2model.viewer.publish import dimensions_line

    ws = _workspace(tmp_path, "metric", scale_unc=0.004)
    assert main(["measure", str(ws.root), "-q"]) == 0
    line = dimensions_line(json.loads(ws.measure_json.read_text()))
    assert "height 25.0 ± 0.1 cm × width 30.0 ± 0.1 cm × depth 20.0 ± 0.1 cm (scale: marker)" in line
    ws2 = _workspace(tmp_path / "b", "arbitrary")
    assert main(["measure", str(ws2.root), "-q"]) == 0
    assert "height 0.125 × width 0.15 × depth 0.1 (relative units" in dimensions_line(
        json.loads(ws2.measure_json.read_text()))
    assert dimensions_line(None) == ""


def test_noisy_flat_sides_are_measured_at_their_level_not_their_farthest_vertex():
    # 1 mm of noise: the farthest vertices stand about 4 mm out of each side; the sides' levels do not
    box = _box((0.30, 0.20, 0.25), (0, 0, 0.125), yaw_deg=-20, subdiv=5)
    V, F = np.asarray(box.vertices).copy(), np.asarray(box.faces)
    V += np.random.default_rng(0).normal(0, 0.001, V.shape)
    F = F[V[F].mean(1)[:, 2] > 0.005]  # the bottom stood on the support
    b = upright_box(V, F, 0.0, cut=0.005, bin_size=0.002)
    assert (b.height, b.width, b.depth) == pytest.approx((0.25, 0.30, 0.20), abs=0.0005)
    # the farthest vertices, for contrast: along the box's own axes
    th = np.radians(b.yaw_deg)
    along = V[np.unique(F)] @ np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    assert np.ptp(along[:, 0]) - 0.30 > 0.004 and along[:, 2].max() - 0.25 > 0.002


def test_a_handle_standing_out_of_a_flat_side_is_kept():
    body = _box((0.20, 0.20, 0.25), (0, 0, 0.125), subdiv=4)
    handle = _box((0.06, 0.03, 0.10), (0.125, 0, 0.14), subdiv=3)  # reaches 0.155 along +x
    V, F = _arrays(body, handle)
    F = F[V[F].mean(1)[:, 2] > 0.005]
    b = upright_box(V, F, 0.0, cut=0.005, bin_size=0.002)
    assert b.width == pytest.approx(0.255, abs=1e-6) and b.depth == pytest.approx(0.20, abs=1e-6)


def _room_mesh(tilt_deg: float = 0.0) -> trimesh.Trimesh:
    """A 4 x 6 x 2.5 room seen from inside (faces inward), a cupboard and a table in it, turned 25 degrees about
    the vertical and tilted by ``tilt_deg`` (a gravity estimate that far off)."""
    room = trimesh.creation.box(extents=(4, 6, 2.5))
    room.invert()
    for _ in range(3):
        room = room.subdivide()
    room.apply_translation([0, 0, 1.25])
    cupboard = _box((0.6, 0.5, 1.8), (1.6, 2.0, 0.9), subdiv=2)
    table = _box((1.2, 0.8, 0.75), (-0.5, -1.0, 0.375), subdiv=2)
    m = trimesh.util.concatenate([room, cupboard, table])
    m.apply_transform(trimesh.transformations.rotation_matrix(np.radians(25), [0, 0, 1]))
    m.apply_transform(trimesh.transformations.rotation_matrix(np.radians(tilt_deg), [1, 0.4, 0]))
    return m


@pytest.mark.parametrize("tilt", [0.0, 0.6])
def test_a_room_is_read_as_floor_ceiling_and_four_walls(tilt):
    from vid2model.ops.room import room_layout

    m = _room_mesh(tilt)
    r = room_layout(np.asarray(m.vertices), np.asarray(m.faces), bin_size=0.012)
    assert sorted(r.walls) == pytest.approx([4, 4, 6, 6], abs=0.002 + 0.001 * tilt)
    assert r.height == pytest.approx(2.5, abs=1e-3) and r.floor_area == pytest.approx(24, abs=0.02)
    assert r.angle_deg % 90 == pytest.approx(25, abs=0.2)


def test_measure_writes_a_room_tour_floor_plan(tmp_path, capsys):
    ws = Workspace(tmp_path / "ws")
    ws.create()
    m = _room_mesh()
    m.apply_scale(0.5)  # model units of 2 m: relative units
    ws.clean_mesh.parent.mkdir(parents=True, exist_ok=True)
    m.export(ws.clean_mesh)
    ws.write_json(ws.scene_json, {"up": [0, 0, 1], "scale": "arbitrary", "scale_source": "none", "center": [0, 0, 0],
                                  "radius": 1.5, "capture": "walk"})
    assert main(["measure", str(ws.root)]) == 0
    out = capsys.readouterr().out
    assert "ceiling height   1.25 (uncertainty unknown) relative units" in out
    plan = json.loads(ws.floor_plan_json.read_text())
    assert plan["units"] == "relative units" and sorted(w["value"] for w in plan["walls"]) == pytest.approx(
        [2, 2, 3, 3], abs=0.002)
    svg = ws.floor_plan_svg.read_text()
    assert svg.startswith("<svg") and svg.count("<text") == 4 and "(relative units)" in svg
    ezdxf = pytest.importorskip("ezdxf", reason="DXF plans need the 'measure' extra")
    doc = ezdxf.readfile(str(ws.floor_plan_dxf))
    [outline] = doc.modelspace().query("LWPOLYLINE")
    pts = np.array([p[:2] for p in outline.get_points()])
    sides = np.linalg.norm(pts - np.roll(pts, -1, axis=0), axis=1)
    assert outline.closed and sorted(sides) == pytest.approx([2, 2, 3, 3], abs=0.002)
    assert len(doc.modelspace().query("TEXT")) == 4


def test_a_slightly_tilted_model_still_stands_the_object_on_its_floor():
    # up 0.4 deg off, and the floor seen in two patches either side of the object: each patch is a level of its
    # own, 6 mm above and 7 mm below the floor under the object; the plane through the one taken reads it there
    box = _box((0.30, 0.20, 0.25), (0, 0, 0.125 - 0.12), subdiv=3)
    near, far = _plane(0.5, -0.12, n=30), _plane(0.5, -0.12, n=30)
    near.vertices[:, 0] -= 1.0  # x from -1.5 to -0.5
    far.vertices[:, 0] += 1.0  # x from 0.5 to 1.5
    V, F = _arrays(box, near, far)
    V = V @ trimesh.transformations.rotation_matrix(np.radians(0.4), [0, 1, 0])[:3, :3].T
    base0 = support_level(V, F, top=0.0, bin_size=0.002, axis_xy=np.zeros(2), reach=2.0)
    cen, area, nrm = face_geometry(V, F)
    plane = fit_level(cen, area, nrm[:, 2] > 0.95, base0, 0.01)
    assert abs(base0 - (-0.12)) > 0.005  # the level taken is off under the object...
    assert plane[2] == pytest.approx(-0.12, abs=2e-4)  # ...its plane is not


def _seen_room(noise: float, yaw_deg: float = 25.0, unseen=None) -> tuple[np.ndarray, np.ndarray, list[dict], np.ndarray]:
    """The synthetic walk-through room with a door and two windows (and a larger room beyond them), as a mesh of
    what a tour round its middle sees: the exact scene mesh (5 cm facets) less the triangles no eye on the loop
    sees, vertices moved by ``noise`` (metres, normal), less the wall triangles in the box ``unseen`` ((lo, hi),
    world: a part never filmed), turned ``yaw_deg`` about the vertical. Returns vertices, triangles, the true
    openings and the turn [3, 3]."""
    from vid2model.synth.mesh import scene_mesh
    from vid2model.synth.render import cast
    from vid2model.synth.scene import opening_truth, walk_scene, with_openings

    scene = with_openings(walk_scene(0))
    V, F, _ = scene_mesh(scene, resolution=0.0125)
    cen = V[F].mean(1)
    seen = np.zeros(len(F), bool)
    for a in np.linspace(0, 2 * np.pi, 8, endpoint=False):
        eye = np.array([0.45 * np.cos(a), 0.65 * np.sin(a), 1.4])
        d = cen - eye
        dist = np.linalg.norm(d, axis=1)
        seen |= cast(scene, eye, d / dist[:, None])[0] >= dist - 1e-4
    if unseen is not None:
        seen &= ~np.all((cen >= unseen[0]) & (cen <= unseen[1]), axis=1)
    used, F = np.unique(F[seen], return_inverse=True)
    R = trimesh.transformations.rotation_matrix(np.radians(yaw_deg), [0, 0, 1])[:3, :3]
    V = (V[used] + np.random.default_rng(0).normal(0, noise, (len(used), 3))) @ R.T
    return V, F.reshape(-1, 3), opening_truth(scene), R


@pytest.fixture(scope="module")
def seen_room():
    # the x- wall (whole) gets a 1.2 m x 1 m patch the cameras never saw; the y+ wall is whole, partly hidden by
    # a 1.2 m high box standing 0.6 m in front of it
    return _seen_room(0.003, unseen=(np.array([-2.01, -1.5, 0.8]), np.array([-1.99, -0.3, 1.8])))


def test_doors_and_windows_are_found_to_a_few_millimetres(seen_room):
    from vid2model.ops.openings import wall_openings
    from vid2model.ops.room import room_layout

    V, F, truth, R = seen_room
    room = room_layout(V, F, bin_size=0.012)
    # the larger room seen through the openings is not taken for the walls
    assert sorted(room.walls) == pytest.approx([4, 4, 6, 6], abs=0.003) and room.height == pytest.approx(2.5, abs=2e-3)
    found = wall_openings(V, F, room, bin_size=0.012)
    assert len(found) == 3  # none on the whole wall, the unseen patch or behind the box
    for t in truth:
        o = min(found, key=lambda o: np.linalg.norm(o.center - R @ t["center"]))
        assert np.linalg.norm(o.center - R @ t["center"]) < 0.01 and o.kind == t["kind"]
        assert (o.width, o.height, o.sill) == pytest.approx((t["width"], t["height"], t["sill"]), abs=0.005)
        assert o.seen_through > 0.5 and o.width_se < 0.005 and o.height_se < 0.005 and not o.unseen_edges
    assert len({o.wall for o in found}) == 2
    # edges read from points on the surface (as from the dense points: 5 per 100 cm^2) instead of the triangles
    pts = trimesh.sample.sample_surface(trimesh.Trimesh(V, F, process=False), 1_000_000, seed=0)[0]
    again = wall_openings(V, F, room, bin_size=0.012, points=pts)
    assert [o.kind for o in again] == [o.kind for o in found]
    for a, b in zip(again, found):
        assert (a.width, a.height, a.sill) == pytest.approx((b.width, b.height, b.sill), abs=0.01)


def test_a_hole_with_nothing_beyond_it_is_no_opening():
    from vid2model.ops.openings import wall_openings
    from vid2model.ops.room import room_layout

    V, F, _, _ = _seen_room(0.0, yaw_deg=0.0)
    cen = V[F].mean(1)
    # a window-sized patch of the whole x- wall left out, as if never filmed: no surface shows through it
    F = F[~((cen[:, 0] < -1.99) & (np.abs(cen[:, 1]) < 0.6) & (np.abs(cen[:, 2] - 1.4) < 0.5))]
    room = room_layout(V, F, bin_size=0.012)
    found = wall_openings(V, F, room, bin_size=0.012)
    assert len(found) == 3 and all(abs(o.center[0] + 2) > 0.5 for o in found)
    assert sorted((round(o.width, 4), round(o.height, 4)) for o in found) == [(0.9, 2.0), (1.0, 1.2), (1.4, 1.0)]
    # the wall under the x+ window never filmed either: the window is still found, its foot said to be unseen
    cen = V[F].mean(1)
    F = F[~((cen[:, 0] > 1.99) & (cen[:, 1] > 0.6) & (cen[:, 1] < 2.4) & (cen[:, 2] < 1.0))]
    [o] = [o for o in wall_openings(V, F, room, bin_size=0.012) if o.center[0] > 1.9]
    assert o.kind == "opening" and o.unseen_edges == ("bottom",)
    assert (o.width, o.sill + o.height) == pytest.approx((1.4, 2.0), abs=0.01)


def test_measure_reports_openings_and_draws_them_on_the_plans(tmp_path, capsys):
    V, F, truth, _ = _seen_room(0.0, yaw_deg=0.0)
    ws = Workspace(tmp_path / "ws")
    ws.create()
    ws.clean_mesh.parent.mkdir(parents=True, exist_ok=True)
    trimesh.Trimesh(V, F, process=False).export(ws.clean_mesh)
    ws.write_json(ws.scene_json, {"up": [0, 0, 1], "scale": "metric", "scale_source": "marker",
                                  "scale_rel_uncertainty": 0.002, "center": [0, 0, 0], "radius": 3.0,
                                  "capture": "walk"})
    assert main(["measure", str(ws.root)]) == 0
    out = capsys.readouterr().out
    assert out.count(": door in wall") == 1 and out.count(": window in wall") == 2 and "none found" not in out
    m = json.loads(ws.measure_json.read_text())
    ops = m["room"]["openings"]
    assert sorted(o["kind"] for o in ops) == ["door", "window", "window"]
    door = next(o for o in ops if o["kind"] == "door")
    assert door["width"]["value"] == pytest.approx(0.9, abs=1e-3) and door["width"]["unit"] == "m"
    assert door["width"]["uncertainty"] == pytest.approx(0.002 * 0.9, rel=0.05)  # the scale's, edges exact
    assert door["sill"]["value"] == 0 and door["center"] == pytest.approx([-1.05, -3, 1.0], abs=2e-3)
    assert json.loads(ws.floor_plan_json.read_text())["openings"] == ops
    svg = ws.floor_plan_svg.read_text()
    assert svg.count('<text class="door"') == 1 and svg.count('<text class="window"') == 2 and "<path" in svg
    ezdxf = pytest.importorskip("ezdxf", reason="DXF plans need the 'measure' extra")
    msp = ezdxf.readfile(str(ws.floor_plan_dxf)).modelspace()
    walls = msp.query('LWPOLYLINE[layer=="WALLS"]')
    length = sum(np.linalg.norm(np.diff([p[:2] for p in w.get_points()], axis=0), axis=1).sum() for w in walls)
    assert len(walls) == 3 and length == pytest.approx(20 - 0.9 - 1.0 - 1.4, abs=1e-3)  # the gaps cut out
    assert len(msp.query('ARC[layer=="OPENINGS"]')) == 1 and len(msp.query('LINE[layer=="OPENINGS"]')) == 5


def test_a_bulge_where_no_dense_point_lies_is_left_out_of_the_box():
    """A product's side seen only at a grazing angle has few dense points near its top, and Poisson bulged 1-1.7 cm
    out of it there (a 0.2457 m box read 0.2645 m wide). The sides come from the triangles the points measured."""
    from vid2model.measure import _measured_faces

    body = _box((0.30, 0.20, 0.25), (0, 0, 0.125), subdiv=5)
    bulge = _box((0.04, 0.16, 0.08), (0.15 + 0.014 - 0.02, 0, 0.20), subdiv=4)  # 1.4 cm out of the +x side
    V, F = _arrays(body, bulge)
    F = F[V[F].mean(1)[:, 2] > 0.005]
    pts, _ = trimesh.sample.sample_surface(body, 200_000, seed=0)  # the points lie on the box only
    pts = pts[~((pts[:, 0] > 0.149) & (pts[:, 2] > 0.16) & (np.abs(pts[:, 1]) < 0.08))]  # none under the bulge
    whole = upright_box(V, F, 0.0, cut=0.005, bin_size=0.002)
    assert whole.width == pytest.approx(0.314, abs=1e-6)  # the bulge's own face: what the box read before
    measured = _measured_faces(pts, V, F, reach=0.0025)
    b = upright_box(V, F, 0.0, cut=0.005, bin_size=0.002, measured=measured)
    assert (b.height, b.width, b.depth) == pytest.approx((0.25, 0.30, 0.20), abs=0.0005)
    assert b.surface == pytest.approx(whole.surface) and b.n_faces == len(F)
    assert _measured_faces(None, V, F, reach=0.0025) is None


def test_a_side_poisson_stands_out_of_is_taken_from_the_dense_points():
    """Poisson's surface stands 0.2 mm out of every side of a 16 cm box and a millimetre more over the side the
    dense points cover thinly (an eighth of the others' points): a box read 0.75 % too wide from the triangles.
    Each flat side's level comes from the points beside it, which scatter evenly about the true side."""
    true = (0.120, 0.163, 0.1657)
    mesh = _box((0.1204, 0.1634, 0.1657), (0, 0, 0.1657 / 2), subdiv=4)
    V, F = _arrays(mesh)
    V[V[:, 1] < -0.0816, 1] -= 0.001  # the thinly measured side bulges a millimetre more
    F = F[V[F].mean(1)[:, 2] > 0.005]
    rng = np.random.default_rng(0)
    solid = _box(true, (0, 0, true[2] / 2), subdiv=0)
    pts, idx = trimesh.sample.sample_surface(solid, 200_000, seed=0)
    pts = pts + rng.normal(0, 0.0008, pts.shape)
    thin = solid.face_normals[idx, 1] < -0.9
    pts = pts[~thin | (rng.uniform(size=len(pts)) < 1 / 8)]
    mesh_only = upright_box(V, F, 0.0, cut=0.005, bin_size=0.002)
    assert mesh_only.width == pytest.approx(0.1644, abs=0.0002)  # seen: 0.1644
    b = upright_box(V, F, 0.0, cut=0.005, bin_size=0.002, points=pts)
    # seen: 0.16305 x 0.11999 (the points' noise is 0.8 mm); the top stays the mesh's
    assert (b.width, b.depth) == pytest.approx(true[1::-1], abs=0.0001)
    assert b.height == pytest.approx(mesh_only.height)
    # too few points beside a side: the mesh's level stays
    few = upright_box(V, F, 0.0, cut=0.005, bin_size=0.002, points=pts[:50])
    assert (few.width, few.depth) == pytest.approx((mesh_only.width, mesh_only.depth))
