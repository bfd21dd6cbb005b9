"""A ruler in the local viewer: click two points on the mesh, read their distance (metres when the workspace
has a scale, else relative units)."""

from __future__ import annotations

from typing import Any

import numpy as np


class Ruler:
    """Picks points on a mesh (vertices [N, 3], triangles [M, 3]) by clicked rays; every second point closes a
    measure. :meth:`click` is the API the viewer's click handler calls."""

    def __init__(self, V: np.ndarray, F: np.ndarray, unit: str, server: Any = None):
        import open3d as o3d

        self.unit = unit
        self._scene = o3d.t.geometry.RaycastingScene()
        self._scene.add_triangles(o3d.core.Tensor(np.asarray(V, np.float32)),
                                  o3d.core.Tensor(np.asarray(F, np.uint32)))
        self.points: list[np.ndarray] = []
        self.distance: float | None = None
        self._server, self._text, self._nodes = server, None, []
        extent = float(np.linalg.norm(np.ptp(np.asarray(V), axis=0)))
        self._dot = 0.005 * extent
        if server is not None:
            with server.gui.add_folder("Ruler"):
                self._text = server.gui.add_text("distance", initial_value="click two points on the mesh",
                                                 disabled=True)
                clear = server.gui.add_button("Clear")
            clear.on_click(lambda _: self.clear())
            server.scene.on_click()(lambda ev: self.click(ev.ray_origin, ev.ray_direction))

    def pick(self, origin, direction) -> np.ndarray | None:
        """The first point [3] where the ray from ``origin`` along ``direction`` meets the mesh, or None."""
        import open3d as o3d

        d = np.asarray(direction, np.float64)
        d = d / max(float(np.linalg.norm(d)), 1e-12)
        ray = np.r_[np.asarray(origin, np.float64), d].astype(np.float32)[None]
        t = float(self._scene.cast_rays(o3d.core.Tensor(ray))["t_hit"].numpy()[0])
        return None if not np.isfinite(t) else np.asarray(origin, np.float64) + t * d

    def click(self, origin, direction) -> float | None:
        """Add the point a click's ray hits; returns the distance when it is the second of a pair. A click
        that misses the mesh changes nothing."""
        p = self.pick(origin, direction)
        if p is None:
            return None
        if len(self.points) == 2:
            self.clear()
        self.points.append(p)
        self._draw_point(p)
        if len(self.points) < 2:
            self._show("click a second point")
            return None
        a, b = self.points
        self.distance = float(np.linalg.norm(b - a))
        self._draw_line(a, b)
        self._show(f"{self.distance:.4f} m" if self.unit == "m" else f"{self.distance:.4g} (relative units)")
        return self.distance

    def clear(self) -> None:
        self.points, self.distance = [], None
        for n in self._nodes:
            n.remove()
        self._nodes = []
        self._show("click two points on the mesh")

    def _show(self, text: str) -> None:
        if self._text is not None:
            self._text.value = text

    def _draw_point(self, p: np.ndarray) -> None:
        if self._server is not None:
            self._nodes.append(self._server.scene.add_icosphere(
                f"/ruler/point_{len(self.points)}", radius=self._dot, color=(230, 60, 40), position=tuple(p)))

    def _draw_line(self, a: np.ndarray, b: np.ndarray) -> None:
        if self._server is not None:
            self._nodes.append(self._server.scene.add_line_segments(
                "/ruler/line", points=np.array([[a, b]], np.float32), colors=(230, 60, 40), thickness=3.0, thickness_units="screen"))
