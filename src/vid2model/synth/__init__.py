"""Synthetic captures with exact ground truth (intrinsics, OpenCV camera-to-world poses, scene mesh).

Used by the tests of every stage and by ``vid2model demo``. World frame: metres, +Z up (gravity -Z);
the floor is z = 0. Cameras: OpenCV axes (x right, y down, z forward), pinhole K with pixel centres at
+0.5 (COLMAP convention), no distortion.
"""

from vid2model.synth.generate import (SynthConfig, SynthResult, generate, make_scene, mesh_colors, render_depth,
                                      render_views)

__all__ = ["SynthConfig", "SynthResult", "generate", "make_scene", "mesh_colors", "render_depth", "render_views"]
