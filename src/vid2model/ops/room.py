"""A room's layout from its gravity-aligned mesh (+Z up): floor, ceiling and four walls at right angles.

Surfaces are told apart by their normals, which the meshing orients towards the cameras, so in a
walk-through every wall, the floor and the ceiling face into the room; furniture stands inside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vid2model.ops.measure import face_geometry, fit_level, peaks


def dominant_wall_angle(nrm: np.ndarray, area: np.ndarray) -> float:
    """Direction (radians, in [0, pi/2)) of a Manhattan room's walls: the area-weighted circular mean of the
    vertical faces' normal azimuths taken modulo 90 degrees."""
    az = np.arctan2(nrm[:, 1], nrm[:, 0])
    c = (area * np.exp(4j * az)).sum()
    return float((np.angle(c) / 4) % (np.pi / 2))


@dataclass(frozen=True)
class Room:
    """A rectangular room in model units; ``corners`` [4, 3] on the floor, counter-clockwise from above."""

    floor: float  # at the room's middle
    ceiling: float | None  # the same, along the floor's normal; None: no ceiling in the model (never filmed)
    corners: np.ndarray
    walls: list[float]  # wall lengths, corner k to corner k + 1
    angle_deg: float  # direction of the first wall from +X
    wall_area: list[float]  # area of measured surface on each wall (how well it was seen)

    @property
    def height(self) -> float | None:
        return None if self.ceiling is None else self.ceiling - self.floor

    @property
    def floor_area(self) -> float:
        return self.walls[0] * self.walls[1]


def _quantiles(x: np.ndarray, w: np.ndarray, q: tuple[float, ...]) -> np.ndarray:
    """Weighted quantiles of ``x`` [N] (weights ``w`` [N]) at the fractions ``q``."""
    order = np.argsort(x)
    c = np.cumsum(w[order])
    return x[order][np.minimum(np.searchsorted(c, np.asarray(q) * c[-1]), len(x) - 1)]


def _wall_of(levels: list[tuple[float, float]], pos: np.ndarray, along: np.ndarray, z: np.ndarray,
             area: np.ndarray, sel: np.ndarray, window: float, outward: float) -> tuple[float, float]:
    """The wall among one side's levels [(position, area)]: walking out from the innermost (``outward`` +1: to
    larger positions), each level replaces the one taken unless most of its area (faces ``sel`` [M] at ``pos``,
    ``along`` the wall and at height ``z``) lies within that one's extent along the wall and in height. Such a
    level is seen through it: the room beyond a door or window, where a wall behind furniture is not."""
    order = sorted(levels, key=lambda lv: lv[0] * outward)
    cur = order[0]
    for nxt in order[1:]:
        here = sel & (np.abs(pos - cur[0]) <= window)
        there = sel & (np.abs(pos - nxt[0]) <= window)
        if here.any() and there.any():
            a0, a1 = _quantiles(along[here], area[here], (0.02, 0.98))
            z0, z1 = _quantiles(z[here], area[here], (0.02, 0.98))
            within = there & (along >= a0) & (along <= a1) & (z >= z0) & (z <= z1)
            if area[within].sum() > 0.5 * area[there].sum():
                continue
        cur = nxt
    return cur


def _at(plane: np.ndarray, xy: np.ndarray) -> float:
    return float(plane[0] * xy[0] + plane[1] * xy[1] + plane[2])


def room_layout(V: np.ndarray, F: np.ndarray, bin_size: float, min_share: float = 0.2) -> Room | None:
    """The floor, ceiling and four walls of the room a walk-through's mesh (vertices [N, 3], triangles [M, 3])
    shows, or None when it shows no floor or not two walls facing each other along both directions.

    The floor is the lowest upward-facing level and the ceiling the highest downward-facing one holding at
    least ``min_share`` of the largest such level's area, each refined to a plane (:func:`fit_level`); the
    height is taken between them at the room's middle. Along each of the two wall directions the walls are
    the outermost inward-facing levels holding that share of the largest, save those seen through a wall's
    openings (:func:`_wall_of`).
    """
    cen, area, nrm = face_geometry(V, F)
    up, down = nrm[:, 2] > 0.95, nrm[:, 2] < -0.95
    ups = peaks(cen[up, 2], area[up], bin_size, min_share)
    downs = peaks(cen[down, 2], area[down], bin_size, min_share)
    if not ups:
        return None
    floor_plane = fit_level(cen, area, up, ups[0][0], 5 * bin_size)
    ceiling_plane = fit_level(cen, area, down, downs[-1][0], 5 * bin_size) if downs and downs[-1][0] > ups[0][0] \
        else None
    vert = np.abs(nrm[:, 2]) < 0.2
    if not vert.any():
        return None
    phi = dominant_wall_angle(nrm[vert], area[vert])
    sides = []
    for axis in (np.array([np.cos(phi), np.sin(phi)]), np.array([-np.sin(phi), np.cos(phi)])):
        facing = nrm[:, :2] @ axis
        pos = cen[:, :2] @ axis
        along = cen[:, :2] @ np.array([-axis[1], axis[0]])
        up_, down_ = vert & (facing > 0.9), vert & (facing < -0.9)
        lo = peaks(pos[up_], area[up_], bin_size, min_share)  # face +axis
        hi = peaks(pos[down_], area[down_], bin_size, min_share)
        if not lo or not hi:
            return None
        lo = _wall_of(lo, pos, along, cen[:, 2], area, up_, 1.5 * bin_size, -1.0)
        hi = _wall_of(hi, pos, along, cen[:, 2], area, down_, 1.5 * bin_size, 1.0)
        if hi[0] <= lo[0]:
            return None
        sides.append((axis, lo, hi))
    (a, (x0, ax0), (x1, ax1)), (b, (y0, ay0), (y1, ay1)) = sides
    corners2 = np.array([x0 * a + y0 * b, x1 * a + y0 * b, x1 * a + y1 * b, x0 * a + y1 * b])
    mid = corners2.mean(0)
    floor = _at(floor_plane, mid)
    ceiling = None
    if ceiling_plane is not None:
        # along the two planes' mean normal: a model whose up is a little off tilts both levels alike
        slope = (floor_plane[:2] + ceiling_plane[:2]) / 2
        ceiling = floor + (_at(ceiling_plane, mid) - floor) / float(np.sqrt(1 + slope @ slope))
    corners = np.c_[corners2, [_at(floor_plane, c) for c in corners2]]
    walls = [float(np.linalg.norm(corners2[(k + 1) % 4] - corners2[k])) for k in range(4)]
    # wall k runs from corner k to k + 1: y0 (normal +b), x1 (-a), y1 (-b), x0 (+a)
    return Room(floor=floor, ceiling=ceiling, corners=corners, walls=walls, angle_deg=float(np.degrees(phi)),
                wall_area=[ay0, ax1, ay1, ax0])


def _opening_ends(room: Room, o) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An opening's two ends [2] on the plan (along wall ``o.wall`` from its first corner) and the wall's unit
    normal into the room [2]."""
    c = room.corners[:, :2]
    a, b = c[o.wall], c[(o.wall + 1) % 4]
    e = (b - a) / max(float(np.linalg.norm(b - a)), 1e-12)
    n = np.array([-e[1], e[0]])
    n = n if (c.mean(0) - a) @ n > 0 else -n
    return a + e * o.start, a + e * (o.start + o.width), n


def _label(value: float, unit: str) -> str:
    return f"{value:.3f} {unit}" if unit == "m" else f"{value:.3g} ({unit})"


def floor_plan_svg(room: Room, unit: str, px_per_unit: float | None = None, openings=()) -> str:
    """The room seen from above as an SVG: its outline, each wall's length (in ``unit``) and its ``openings``
    (:class:`~vid2model.ops.openings.Opening` s, in the room's units) as gaps in the walls: a door with its
    leaf and swing, a window with its glass, each with its width."""
    c = room.corners[:, :2]
    span = float(np.ptp(c, axis=0).max())
    s = px_per_unit or 600.0 / max(span, 1e-9)
    pad = 60.0
    lo = c.min(0)
    H_px = np.ptp(c[:, 1]) * s + 2 * pad

    def px(p: np.ndarray) -> np.ndarray:
        q = (np.asarray(p, float) - lo) * s + pad
        return np.array([q[0], H_px - q[1]])  # SVG's y runs down

    xy = np.array([px(p) for p in c])
    W, H = np.ptp(c[:, 0]) * s + 2 * pad, H_px
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W:.0f}" height="{H:.0f}" '
             f'viewBox="0 0 {W:.1f} {H:.1f}" font-family="sans-serif" font-size="14">',
             f'<polygon points="{pts}" fill="#f4f1ea" stroke="#333" stroke-width="4"/>']
    centre = xy.mean(0)
    for k, length in enumerate(room.walls):
        m = (xy[k] + xy[(k + 1) % 4]) / 2
        m = m + 22 * (m - centre) / max(np.linalg.norm(m - centre), 1e-9)
        parts.append(f'<text x="{m[0]:.1f}" y="{m[1]:.1f}" text-anchor="middle" dominant-baseline="middle">'
                     f'{_label(length, unit)}</text>')
    for o in openings:
        parts += _opening_svg(room, o, px, s, unit)
    parts.append("</svg>")
    return "\n".join(parts)


def _opening_svg(room: Room, o, px, s: float, unit: str) -> list[str]:
    """SVG elements of one opening: the wall cut away, then a door's leaf and swing or a window's glass, and
    its width inside the room."""
    a, b, n = _opening_ends(room, o)
    pa, pb = px(a), px(b)
    out = [f'<line class="{o.kind}" x1="{pa[0]:.1f}" y1="{pa[1]:.1f}" x2="{pb[0]:.1f}" y2="{pb[1]:.1f}" '
           f'stroke="#fff" stroke-width="6"/>']
    if o.kind == "door":
        leaf = px(a + n * o.width)  # hinged at its first end, opening into the room
        d1, d2 = pb - pa, leaf - pa
        sweep = 1 if d1[0] * d2[1] - d1[1] * d2[0] > 0 else 0
        r = o.width * s
        out += [f'<line x1="{pa[0]:.1f}" y1="{pa[1]:.1f}" x2="{leaf[0]:.1f}" y2="{leaf[1]:.1f}" stroke="#333" '
                f'stroke-width="2"/>',
                f'<path d="M {pb[0]:.1f} {pb[1]:.1f} A {r:.1f} {r:.1f} 0 0 {sweep} {leaf[0]:.1f} {leaf[1]:.1f}" '
                f'fill="none" stroke="#333" stroke-width="1" stroke-dasharray="4 3"/>']
    else:
        for off in (-2.5, 2.5):
            d = off * np.array([n[0], -n[1]])  # the normal, in SVG's flipped y
            out.append(f'<line x1="{pa[0] + d[0]:.1f}" y1="{pa[1] + d[1]:.1f}" x2="{pb[0] + d[0]:.1f}" '
                       f'y2="{pb[1] + d[1]:.1f}" stroke="#3a7bd5" stroke-width="1.5"/>')
    m = px((a + b) / 2 + n * 0.25 * max(o.width, 1e-9)) if o.kind == "window" else px((a + b) / 2 + n * 0.5 * o.width)
    out.append(f'<text class="{o.kind}" x="{m[0]:.1f}" y="{m[1]:.1f}" text-anchor="middle" '
               f'dominant-baseline="middle" font-size="12">{o.kind} {_label(o.width, unit)}</text>')
    return out


def write_floor_plan_dxf(room: Room, path, unit: str, openings=()) -> None:
    """The room's outline (a closed polyline on layer WALLS, or with ``openings`` one polyline per stretch of
    wall between them), its wall lengths and openings' widths (text on layer DIMENSIONS) and the openings
    (layer OPENINGS: a door's leaf and swing, a window's glass) as DXF, in the room's units (metres when
    ``unit`` is "m"), for CAD programs."""
    import ezdxf

    doc = ezdxf.new("R2010")
    doc.units = ezdxf.units.M if unit == "m" else 0  # 0: unitless (relative units)
    msp = doc.modelspace()
    for layer in ("WALLS", "DIMENSIONS", "OPENINGS"):
        doc.layers.add(layer)
    c = room.corners[:, :2]
    if not openings:
        msp.add_lwpolyline([tuple(p) for p in c], close=True, dxfattribs={"layer": "WALLS"})
    else:
        for piece in _wall_pieces(room, openings):
            msp.add_lwpolyline([tuple(p) for p in piece], dxfattribs={"layer": "WALLS"})
    height = 0.02 * float(np.ptp(c, axis=0).max())
    mid = ezdxf.enums.TextEntityAlignment.MIDDLE_CENTER
    for k, length in enumerate(room.walls):
        a, b = c[k], c[(k + 1) % 4]
        msp.add_text(f"{length:.3f}", height=height, dxfattribs={"layer": "DIMENSIONS"}).set_placement(
            tuple((a + b) / 2), align=mid)
    for o in openings:
        a, b, n = _opening_ends(room, o)
        at = {"layer": "OPENINGS"}
        if o.kind == "door":
            leaf = a + n * o.width
            msp.add_line(tuple(a), tuple(leaf), dxfattribs=at)
            ang = [float(np.degrees(np.arctan2(*v[::-1]))) for v in (b - a, n)]
            ccw = (b - a)[0] * n[1] - (b - a)[1] * n[0] > 0  # DXF arcs run counter-clockwise
            msp.add_arc(tuple(a), o.width, *(ang if ccw else ang[::-1]), dxfattribs=at)
        else:
            for off in (-0.01, 0.01):
                d = n * off * max(room.walls)
                msp.add_line(tuple(a + d), tuple(b + d), dxfattribs=at)
        msp.add_text(f"{o.kind} {o.width:.3f}", height=0.7 * height, dxfattribs={"layer": "DIMENSIONS"}).set_placement(
            tuple((a + b) / 2 + n * 3 * height), align=mid)
    doc.saveas(str(path))


def _wall_pieces(room: Room, openings) -> list[np.ndarray]:
    """The room's outline [K, 2] polylines with the openings cut out: one per stretch of wall between
    openings, stretches that meet at a corner joined."""
    c = room.corners[:, :2]
    pieces: list[list[np.ndarray]] = [[c[0]]]
    for k in range(4):
        a, b = c[k], c[(k + 1) % 4]
        e = (b - a) / max(float(np.linalg.norm(b - a)), 1e-12)
        for o in sorted((o for o in openings if o.wall == k), key=lambda o: o.start):
            pieces[-1].append(a + e * o.start)
            pieces.append([a + e * (o.start + o.width)])
        pieces[-1].append(b)
    if len(pieces) > 1:  # the last stretch runs on into the first, round corner 0
        pieces[0] = pieces.pop() + pieces[0][1:]
    return [np.array(p) for p in pieces]
