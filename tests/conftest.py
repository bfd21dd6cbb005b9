"""Shared fixtures: paths to ../shared data and cached synthetic scenes with exact ground truth."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VID2MODEL_SHARED", REPO.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """Path under ../shared; skips the test with a clear reason when absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared dataset not present: {p}")
    return p


@pytest.fixture(autouse=True)
def _normal_scheduling():
    """Put the test process back under normal scheduling after each test.

    SVT-AV1's encoder (the AV1 decoding test films its clip with it) leaves the calling thread under
    SCHED_FIFO 99 when run as root. Everything started afterwards inherits it, and headless Chromium's busy
    renderers at that priority starved the service test's job until it timed out.
    """
    yield
    if hasattr(os, "sched_getscheduler") and os.sched_getscheduler(0) != os.SCHED_OTHER:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_path("data")


@pytest.fixture(scope="session")
def synth_orbit(tmp_path_factory):
    """A 24-frame 320x240 orbit video with ground truth (SynthResult)."""
    from vid2model.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("synth_orbit")
    return generate(out, SynthConfig(path="orbit", width=320, height=240, n_frames=24, seed=1))


@pytest.fixture(scope="session")
def synth_walk(tmp_path_factory):
    """A 24-frame 320x240 walk-through video with ground truth (SynthResult)."""
    from vid2model.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("synth_walk")
    return generate(out, SynthConfig(path="walk", width=320, height=240, n_frames=24, seed=2))


@pytest.fixture(scope="session")
def orbit_workspace(tmp_path_factory, synth_orbit):
    """The whole pipeline (fast preset, no splat) run once through the CLI on the synthetic orbit."""
    from vid2model.cli import main
    from vid2model.workspace import Workspace

    ws = tmp_path_factory.mktemp("orbit_ws") / "ws"
    rc = main(["run", str(synth_orbit.video_path), "-o", str(ws), "--preset", "fast", "--skip", "splat", "-q"])
    assert rc == 0
    return Workspace(ws)
