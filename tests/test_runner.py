"""Stage runner: skip unchanged work, rerun on config change, resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from runner_stages import StepConfig
from vid2model.errors import UserError
from vid2model.runner import Stage, run_stages
from vid2model.workspace import Workspace

STAGES = [
    Stage(name="a", target="runner_stages:step_a"),
    Stage(name="b", target="runner_stages:step_b", needs=("a",)),
    Stage(name="c", target="runner_stages:step_c", needs=("b",)),
]


def _ws(tmp_path: Path) -> Workspace:
    ws = Workspace(tmp_path / "ws").create()
    src = tmp_path / "input.mp4"
    src.write_bytes(b"not really a video")
    ws.write_json(ws.input_path, {"path": str(src), "kind": "video"})
    return ws


def _cfg(a=1, b=10, c=100, sleep_b=0.0):
    return SimpleNamespace(a=StepConfig(value=a), b=StepConfig(value=b, sleep=sleep_b), c=StepConfig(value=c))


def _runs(ws: Workspace, name: str) -> int:
    p = ws.root / f"runs_{name}.txt"
    return len(p.read_text()) if p.exists() else 0


def test_runs_then_skips_unchanged(tmp_path):
    ws = _ws(tmp_path)
    res = run_stages(ws, STAGES, _cfg())
    assert [r["status"] for r in res.values()] == ["done"] * 3
    assert (ws.root / "c.txt").read_text() == "111"
    res = run_stages(ws, STAGES, _cfg())
    assert [r["status"] for r in res.values()] == ["skipped"] * 3
    assert (_runs(ws, "a"), _runs(ws, "b"), _runs(ws, "c")) == (1, 1, 1)
    m = json.loads(ws.manifest_path.read_text())
    entry = m["stages"]["b"]
    assert entry["status"] == "done" and entry["config"] == {"value": 10, "sleep": 0.0}
    assert entry["wall_s"] >= 0 and entry["peak_mem_mb"] > 10
    assert "vid2model" in entry["versions"] and "numpy" in entry["versions"]


def test_config_change_reruns_stage_and_downstream_only(tmp_path):
    ws = _ws(tmp_path)
    run_stages(ws, STAGES, _cfg())
    res = run_stages(ws, STAGES, _cfg(b=20))
    assert [res[n]["status"] for n in "abc"] == ["skipped", "done", "done"]
    assert (ws.root / "c.txt").read_text() == "121"
    assert (_runs(ws, "a"), _runs(ws, "b"), _runs(ws, "c")) == (1, 2, 2)


def test_input_change_reruns_everything(tmp_path):
    ws = _ws(tmp_path)
    run_stages(ws, STAGES, _cfg())
    src = Path(ws.read_json(ws.input_path)["path"])
    src.write_bytes(b"a different video, longer")
    res = run_stages(ws, STAGES, _cfg())
    assert [res[n]["status"] for n in "abc"] == ["done"] * 3


def test_force_and_from(tmp_path):
    ws = _ws(tmp_path)
    run_stages(ws, STAGES, _cfg())
    res = run_stages(ws, STAGES, _cfg(), from_stage="b")
    assert [res[n]["status"] for n in "abc"] == ["skipped", "done", "done"]
    res = run_stages(ws, STAGES, _cfg(), force=True)
    assert [res[n]["status"] for n in "abc"] == ["done"] * 3


def test_missing_upstream_is_a_clear_error(tmp_path):
    ws = _ws(tmp_path)
    with pytest.raises(UserError, match="needs 'a' first"):
        run_stages(ws, STAGES[1:], _cfg())


def test_failed_stage_is_recorded_and_not_done(tmp_path):
    ws = _ws(tmp_path)
    bad = [STAGES[0], Stage(name="b", target="runner_stages:does_not_exist", needs=("a",))]
    with pytest.raises(AttributeError):
        run_stages(ws, bad, _cfg())
    m = json.loads(ws.manifest_path.read_text())
    assert m["stages"]["a"]["status"] == "done"
    assert m["stages"]["b"]["status"] == "failed"


def _count_reports(monkeypatch, fail: bool = False) -> list[str]:
    """Count report builds (by the stages done so far); ``fail`` makes every build raise."""
    import vid2model.report as report

    built: list[str] = []
    real = report.build_report

    def build(ws):
        built.append(ws.read_json(ws.manifest_path)["stages"])
        if fail:
            raise RuntimeError("the report builder broke")
        return real(ws)

    monkeypatch.setattr(report, "build_report", build)
    return built


def test_report_rebuilt_after_every_stage_that_ran(tmp_path, monkeypatch):
    ws = _ws(tmp_path)
    built = _count_reports(monkeypatch)
    run_stages(ws, STAGES, _cfg())
    assert [list(m) for m in built] == [["a"], ["a", "b"], ["a", "b", "c"]]  # each after its stage is recorded
    run_stages(ws, STAGES, _cfg())
    assert len(built) == 3  # skipped stages change nothing the report shows
    assert ws.report_html.exists()


@pytest.mark.parametrize("target,error", [("runner_stages:step_refuse", UserError),
                                          ("runner_stages:step_crash", RuntimeError)])
def test_report_shows_a_refused_or_failed_stage(tmp_path, monkeypatch, target, error):
    ws = _ws(tmp_path)
    built = _count_reports(monkeypatch)
    with pytest.raises(error):
        run_stages(ws, [STAGES[0], Stage(name="b", target=target, needs=("a",))], _cfg())
    assert len(built) == 2 and built[-1]["b"]["status"] == "failed"
    if error is UserError:  # the refusal's reason is in the report when the error reaches the user
        assert "Camera check: refused: the cameras cannot be trusted: a test refusal" in ws.report_html.read_text()


def test_a_broken_report_never_hides_the_stages_outcome(tmp_path, monkeypatch, caplog):
    ws = _ws(tmp_path)
    _count_reports(monkeypatch, fail=True)
    res = run_stages(ws, STAGES[:1], _cfg())  # a finished stage stays finished
    assert res["a"]["status"] == "done"
    with pytest.raises(UserError, match="a test refusal"):  # the stage's own error, not the report's
        run_stages(ws, [Stage(name="b", target="runner_stages:step_refuse", needs=("a",))], _cfg())
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["could not build the report: the report builder broke"] * 2


def test_no_report_built_when_the_user_stops_a_stage(tmp_path, monkeypatch):
    ws = _ws(tmp_path)
    built = _count_reports(monkeypatch)
    cfg = SimpleNamespace(a=StepConfig(value=1), splat=StepConfig(value=-1))
    with pytest.raises(KeyboardInterrupt):  # a stop ends the run at once
        run_stages(ws, [STAGES[0], Stage(name="splat", target="runner_stages:step_splat", needs=("a",))], cfg)
    assert len(built) == 1


def test_stages_leave_the_report_to_the_runner():
    stages = Path(__file__).resolve().parents[1] / "src" / "vid2model" / "stages"
    assert not [p.name for p in stages.glob("*.py") if "build_report" in p.read_text()]


def test_resume_after_kill_9(tmp_path):
    """Kill the process while stage b is half-way through writing: a stays done, b reruns, no half file."""
    ws = _ws(tmp_path)
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "from test_runner import STAGES, _cfg\n"
        "from vid2model.runner import run_stages\n"
        "from vid2model.workspace import Workspace\n"
        "run_stages(Workspace(%r), STAGES, _cfg(sleep_b=60))\n" % (str(Path(__file__).parent), str(ws.root))
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    marker = ws.root / "started_b"
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "stage b never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert not (ws.root / "b.txt").exists(), "a half-written artifact looks finished"
    assert list(ws.root.glob(".tmp-*")), "the killed write should have left only a temp file"
    m = json.loads(ws.manifest_path.read_text())
    assert m["stages"]["a"]["status"] == "done" and m["stages"]["b"]["status"] == "running"

    res = run_stages(ws, STAGES, _cfg())
    assert [res[n]["status"] for n in "abc"] == ["skipped", "done", "done"]
    assert (ws.root / "c.txt").read_text() == "111"
    assert _runs(ws, "a") == 1 and _runs(ws, "b") == 2
    assert not list(ws.root.glob(".tmp-*")), "leftover temp files are cleaned on resume"


class _StepWorkspace(Workspace):
    """The runner stages' artifacts as workspace paths, so that stages can declare them as outputs."""

    a_txt = property(lambda self: self.root / "a.txt")
    b_txt = property(lambda self: self.root / "b.txt")


TRACKED = [
    Stage(name="a", target="runner_stages:step_a", outputs=("a_txt",)),
    Stage(name="b", target="runner_stages:step_b", needs=("a",), outputs=("b_txt",)),
    Stage(name="c", target="runner_stages:step_c", needs=("b",)),
]


def test_damaged_output_reruns_its_stage_and_what_its_bytes_feed(tmp_path):
    ws = _StepWorkspace(_ws(tmp_path).root)
    run_stages(ws, TRACKED, _cfg())
    ws.a_txt.unlink()  # deleted: a writes the same bytes again, so b and c stay valid
    res = run_stages(ws, TRACKED, _cfg())
    assert [res[n]["status"] for n in "abc"] == ["done", "skipped", "skipped"]
    ws.b_txt.write_text("9")  # changed behind the runner's back: b reruns, rewrites its bytes, c stays valid
    os.utime(ws.a_txt, ns=(1, 1))  # a touched but unchanged (a copy without mtimes): still intact
    res = run_stages(ws, TRACKED, _cfg())
    assert [res[n]["status"] for n in "abc"] == ["skipped", "done", "skipped"]
    assert (ws.root / "c.txt").read_text() == "111" and ws.b_txt.read_text() == "11"
    with pytest.raises(UserError, match="needs 'b' again"):
        ws.b_txt.unlink()
        run_stages(ws, TRACKED[2:], _cfg(), all_stages=TRACKED)


def test_assets_first_export_before_splat_training_and_after(tmp_path):
    from vid2model.pipeline import assets_first

    stages = [Stage(name="a", target="runner_stages:step_a"),
              Stage(name="splat", target="runner_stages:step_splat", needs=("a",)),
              Stage(name="export", target="runner_stages:step_export", needs=("a",), optional_needs=("splat",))]
    order = assets_first(stages)
    assert [s.name for s in order] == ["a", "export", "splat", "export"]
    ws = _ws(tmp_path)
    cfg = SimpleNamespace(a=StepConfig(value=1), splat=StepConfig(value=-1), export=StepConfig())
    with pytest.raises(KeyboardInterrupt):  # training stopped by the user
        run_stages(ws, order, cfg)
    assert (ws.root / "export.txt").read_text() == "a"  # the assets were written before training began
    cfg.splat = StepConfig(value=1)
    run_stages(ws, order, cfg)
    assert (ws.root / "export.txt").read_text() == "a,splat"  # and again with the splats once trained
    assert _runs(ws, "export") == 2  # the early export was up to date on the resumed run


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_memory_returns_a_fragmented_heap():
    """Blocks freed between live ones stay in the process until release_memory, which the runner calls
    before each stage (so a stage's peak does not sit on the last one's leftovers)."""
    import numpy as np
    import psutil

    from vid2model.runner import release_memory

    def rss_mb() -> float:
        return psutil.Process().memory_info().rss / 2**20

    blocks = [np.ones(100_000 // 8) for _ in range(3000)]  # 100 kB each: on the heap, not mmapped
    keep = blocks[::10]
    del blocks
    before = rss_mb()
    release_memory()
    assert before - rss_mb() > 150, (before, rss_mb())
    assert len(keep) == 300
