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


def _at(plane: np.ndarray, xy: np.ndarray) -> float:
    return float(plane[0] * xy[0] + plane[1] * xy[1] + plane[2])


def room_layout(V: np.ndarray, F: np.ndarray, bin_size: float, min_share: float = 0.2) -> Room | None:
    """The floor, ceiling and four walls of the room a walk-through's mesh (vertices [N, 3], triangles [M, 3])
    shows, or None when it shows no floor or not two walls facing each other along both directions.

    The floor is the lowest upward-facing level and the ceiling the highest downward-facing one holding at
    least ``min_share`` of the largest such level's area, each refined to a plane (:func:`fit_level`); the
    height is taken between them at the room's middle. Along each of the two wall directions the walls are
    the outermost inward-facing levels holding that share of the largest.
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
        lo = peaks(pos[vert & (facing > 0.9)], area[vert & (facing > 0.9)], bin_size, min_share)  # face +axis
        hi = peaks(pos[vert & (facing < -0.9)], area[vert & (facing < -0.9)], bin_size, min_share)
        if not lo or not hi or hi[-1][0] <= lo[0][0]:
            return None
        sides.append((axis, lo[0], hi[-1]))
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


def floor_plan_svg(room: Room, unit: str, px_per_unit: float | None = None) -> str:
    """The room seen from above as an SVG: its outline and each wall's length (in ``unit``)."""
    c = room.corners[:, :2]
    span = float(np.ptp(c, axis=0).max())
    s = px_per_unit or 600.0 / max(span, 1e-9)
    pad = 60.0
    lo = c.min(0)
    xy = (c - lo) * s + pad
    xy[:, 1] = (np.ptp(c[:, 1]) * s + 2 * pad) - xy[:, 1]  # SVG's y runs down
    W, H = np.ptp(c[:, 0]) * s + 2 * pad, np.ptp(c[:, 1]) * s + 2 * pad
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W:.0f}" height="{H:.0f}" '
             f'viewBox="0 0 {W:.1f} {H:.1f}" font-family="sans-serif" font-size="14">',
             f'<polygon points="{pts}" fill="#f4f1ea" stroke="#333" stroke-width="4"/>']
    centre = xy.mean(0)
    for k, length in enumerate(room.walls):
        m = (xy[k] + xy[(k + 1) % 4]) / 2
        m = m + 22 * (m - centre) / max(np.linalg.norm(m - centre), 1e-9)
        label = f"{length:.3f} {unit}" if unit == "m" else f"{length:.3g} ({unit})"
        parts.append(f'<text x="{m[0]:.1f}" y="{m[1]:.1f}" text-anchor="middle" dominant-baseline="middle">'
                     f'{label}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def write_floor_plan_dxf(room: Room, path, unit: str) -> None:
    """The room's outline (a closed polyline on layer WALLS) and its wall lengths (text on layer DIMENSIONS) as
    DXF, in the room's units (metres when ``unit`` is "m"), for CAD programs."""
    import ezdxf

    doc = ezdxf.new("R2010")
    doc.units = ezdxf.units.M if unit == "m" else 0  # 0: unitless (relative units)
    msp = doc.modelspace()
    doc.layers.add("WALLS")
    doc.layers.add("DIMENSIONS")
    c = room.corners[:, :2]
    msp.add_lwpolyline([tuple(p) for p in c], close=True, dxfattribs={"layer": "WALLS"})
    height = 0.02 * float(np.ptp(c, axis=0).max())
    for k, length in enumerate(room.walls):
        a, b = c[k], c[(k + 1) % 4]
        msp.add_text(f"{length:.3f}", height=height, dxfattribs={"layer": "DIMENSIONS"}).set_placement(
            tuple((a + b) / 2), align=ezdxf.enums.TextEntityAlignment.MIDDLE_CENTER)
    doc.saveas(str(path))
