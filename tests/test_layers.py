"""Layers point down: cli -> pipeline -> runner -> stages -> io/ops/splat/features -> config/workspace.

The contract lives in pyproject.toml ([tool.importlinter]) and is checked with import-linter, counting
function-local imports too. Inside a layer, modules must not import each other in a circle either.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _layers() -> list[str]:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in cfg["contracts"] if c["type"] == "layers"]
    return [m.strip() for layer in contract["layers"] for m in layer.split("|")]


def test_every_module_has_a_layer():
    pkg = ROOT / "src" / "vid2model"
    tops = {f"vid2model.{p.stem}" for p in pkg.glob("*.py") if p.stem != "__init__"} | \
        {f"vid2model.{p.name}" for p in pkg.iterdir() if (p / "__init__.py").exists()}
    assert tops - {"vid2model.__main__"} <= set(_layers()), sorted(tops - set(_layers()))


def test_layers_point_down():
    pytest.importorskip("importlinter", reason="pip install import-linter==2.1 (the test extra)")
    exe = Path(sys.executable).parent / "lint-imports"
    res = subprocess.run([str(exe), "--config", str(ROOT / "pyproject.toml")], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert res.returncode == 0 and "1 kept, 0 broken" in res.stdout, res.stdout[-3000:] + res.stderr[-2000:]


def test_no_import_cycles():
    grimp = pytest.importorskip("grimp", reason="pip install import-linter==2.1 (the test extra)")
    graph = grimp.build_graph("vid2model")
    cycles = sorted({tuple(sorted((m, i))) for m in graph.modules for i in graph.find_modules_directly_imported_by(m)
                     if i != m and graph.find_shortest_chain(importer=i, imported=m)})
    assert not cycles, cycles
