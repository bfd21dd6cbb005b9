"""Synthetic captures with exact ground truth (intrinsics, OpenCV camera-to-world poses, scene mesh).

Used by the tests of every stage and by ``vid2model demo``. World frame: metres, +Z up.
"""

from vid2model.synth.generate import SynthConfig, SynthResult, generate, make_scene, render_depth, render_views

__all__ = ["SynthConfig", "SynthResult", "generate", "make_scene", "render_depth", "render_views"]
