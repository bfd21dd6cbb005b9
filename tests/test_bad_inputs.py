"""The bad-input corpus (tests/bad_inputs.py): every case a clean refusal, in bounded time, nothing touched."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from bad_inputs import CASES, Case

from vid2model.cli import main


def _tree(path: Path) -> dict[str, str]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_cleanly(case: Case, tmp_path, capsys):
    argv = case.make(tmp_path)
    kept = {str(p): _tree(p) for p in case.untouched(tmp_path)}
    capsys.readouterr()
    t0 = time.perf_counter()
    rc = main(argv)
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("WARNING")]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("vid2model: error:"), err
    assert case.needle in lines[0], lines[0]
    assert "Traceback" not in err and "internal error" not in err
    assert elapsed < case.bound_s, f"{case.name}: {elapsed:.1f} s"
    assert {str(p): _tree(p) for p in case.untouched(tmp_path)} == kept
    assert not list(tmp_path.rglob("escaped*")), "a file was written outside its folder"


def test_corpus_is_large_enough():
    assert len(CASES) >= 30 and len({c.name for c in CASES}) == len(CASES)
