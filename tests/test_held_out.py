"""The held-out verdict on trained view models, at the PSNR figures measured on this project's scenes."""

import pytest

from vid2model.ops.held_out import held_out_verdict


@pytest.mark.parametrize("train, held, n, verdict", [
    (33.37, 32.48, 13, "ok"),     # radiance field, NeRF lego 200 px (bench/results/nerf-2026-12-03.md)
    (35.14, 32.23, 3, "ok"),      # splats, synthetic orbit video with 30 keyframes (growth bench)
    (29.59, 15.08, 3, "poor"),    # radiance field, synthetic orbit of 21 views: memorised its views
    (46.82, 15.07, 3, "poor"),    # ... the same at 20x15 px
    (18.4, 16.3, 2, "poor"),      # radiance field of the tests' small orbit: close to its training, but low
    (None, None, 0, "unchecked"),  # nothing held out (eval_every=0)
])
def test_verdict_at_measured_figures(train, held, n, verdict):
    v = held_out_verdict(train, held, n, "the radiance field")
    assert v["verdict"] == verdict, v
    assert (v["reason"] is None) == (verdict == "ok")
    if verdict == "poor":
        assert f"{held:.1f} dB" in v["reason"] and str(n) in v["reason"]
