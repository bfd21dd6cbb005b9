"""CLI: --help everywhere, and bad input gives one clear line, a non-zero exit and no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vid2model.cli import build_parser, main
from vid2model.pipeline import STAGE_NAMES

COMMANDS = ["run", *STAGE_NAMES, "status", "demo", "batch", "report", "render", "view", "publish"]


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vid2model.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_top_level_help_lists_stages():
    out = _cli("--help")
    assert out.returncode == 0
    for name in STAGE_NAMES:
        assert name in out.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: vid2model " + command in capsys.readouterr().out


def _assert_one_line_error(res: subprocess.CompletedProcess, needle: str) -> None:
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("vid2model: error:") and needle in lines[0], lines[0]


def test_missing_input(tmp_path):
    res = _cli("run", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "ws"))
    _assert_one_line_error(res, "input not found")


def test_stage_on_non_workspace(tmp_path):
    res = _cli("sfm", str(tmp_path))
    _assert_one_line_error(res, "not a vid2model workspace")


def test_status_on_non_workspace(tmp_path):
    _assert_one_line_error(_cli("status", str(tmp_path)), "not a vid2model workspace")


def test_bad_setting(tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    res = _cli("run", str(video), "-o", str(tmp_path / "ws"), "--set", "dense.max_side=big")
    _assert_one_line_error(res, "dense.max_side expects int")
    res = _cli("run", str(video), "-o", str(tmp_path / "ws"), "--set", "dense.nope=1")
    _assert_one_line_error(res, "has no setting 'nope'")


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 100], ids=["empty", "garbage"])
def test_corrupt_video_is_one_line_error(tmp_path, content):
    video = tmp_path / "broken.mp4"
    video.write_bytes(content)
    ws = tmp_path / "ws"
    res = _cli("run", str(video), "-o", str(ws))
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert res.stderr.strip().startswith("vid2model: error:")
    assert not (ws / "images").exists(), "nothing half-written may look finished"
    status = _cli("status", str(ws), "--json")
    assert '"failed"' in status.stdout


def test_parser_builds():
    assert build_parser().prog == "vid2model"


def test_demo_films_its_video_beside_the_workspace_and_runs(tmp_path):
    """The README's first command: the demo's video must not sit inside the workspace (that input is
    refused: a workspace's folders are rewritten), and the pipeline must take it."""
    from vid2model.workspace import Workspace

    later = [s for s in STAGE_NAMES if s != "ingest"]
    args = ["demo", "-o", str(tmp_path / "ws"), "-q", *[a for s in later for a in ("--skip", s)]]
    assert main(args) == 0
    assert (tmp_path / "ws-input" / "video.mp4").exists() and (tmp_path / "ws-input" / "gt.json").exists()
    ws = Workspace(tmp_path / "ws")
    assert len(ws.read_json(ws.keyframes_json)["keyframes"]) >= 8
    mtime = (tmp_path / "ws-input" / "video.mp4").stat().st_mtime_ns
    assert main(args) == 0  # a second run takes the video it filmed before
    assert (tmp_path / "ws-input" / "video.mp4").stat().st_mtime_ns == mtime


@pytest.mark.parametrize("verbose, shown", [(0, False), (1, False), (2, True)])
def test_native_stderr_is_quiet_unless_debugging(verbose, shown, tmp_path, capfd):
    """C++ writes (PoissonRecon's '[WARNING] ... bad average roots') bypass logging: they reach the terminal
    only with -vv, although the workspace's log file takes every level."""
    import logging
    import os

    from vid2model.cli import _setup_logging
    from vid2model.ops.native import quiet_stderr
    from vid2model.workspace import Workspace

    logger = logging.getLogger("vid2model")
    before = (logger.level, list(logger.handlers))
    try:
        _setup_logging(verbose, Workspace(tmp_path / "ws"))
        with quiet_stderr():
            os.write(2, b"native warning\n")
        os.write(2, b"after\n")
    finally:
        for h in list(logger.handlers):
            logger.removeHandler(h)
            h.close()
        logger.setLevel(before[0])
        for h in before[1]:
            logger.addHandler(h)
    err = capfd.readouterr().err
    assert ("native warning" in err) == shown and "after" in err, err
