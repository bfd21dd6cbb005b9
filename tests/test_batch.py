"""``vid2model batch``: catalogues from paths or a CSV, one workspace per product, failures recorded per row, and
the catalogue page."""

from __future__ import annotations

import json
import re

import pytest

from vid2model.batch import find_inputs, read_catalogue
from vid2model.cli import main
from vid2model.errors import UserError


def test_a_catalogue_csv_is_checked_row_by_row_before_anything_runs(tmp_path, synth_orbit):
    video = synth_orbit.video_path
    good = tmp_path / "good.csv"
    good.write_text(f"input,name,marker_size,isolate,options\n{video},Mug 1/2 (blue),0.15,yes,dense.max_side=320\n")
    [item] = read_catalogue(good)
    assert item.name == "Mug_1_2_blue" and item.input == video
    assert item.sets == ("dense.max_side=320", "sfm.marker_size=0.15", "mesh.isolate=true")
    for body, says in [(f"name\nx\n", "needs a header row with an 'input' column"),
                       (f"input\n{video}\nmissing.mp4\n", "line 3: input not found"),
                       (f"input,options\n{video},dense.nope=1\n", "line 2: "),
                       (f"input,preset\n{video},turbo\n", "line 2: unknown preset")]:
        bad = tmp_path / "bad.csv"
        bad.write_text(body)
        with pytest.raises(UserError, match=re.escape(says)):
            read_catalogue(bad)
    # relative inputs are read against the CSV's folder; two rows may not share a workspace
    (tmp_path / "v.mp4").write_bytes(video.read_bytes())
    twice = tmp_path / "twice.csv"
    twice.write_text("input,name\nv.mp4,a\nv.mp4,a\n")
    with pytest.raises(UserError, match="share a workspace name: a"):
        find_inputs([twice])


def test_batch_runs_each_row_records_failures_and_writes_the_catalogue_page(tmp_path, synth_orbit, capsys):
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all" * 50)
    cat = tmp_path / "catalogue.csv"
    cat.write_text(f"input,name\n{synth_orbit.video_path},Orbit <one>\nbroken.mp4,broken\n")
    out = tmp_path / "out"
    assert main(["batch", str(cat), "-o", str(out), "--stages", "ingest", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "1 of 2 done" in printed and "index.html" in printed
    summary = json.loads((out / "batch.json").read_text())
    by_name = {r["name"]: r for r in summary["results"]}
    assert by_name["Orbit_one"]["status"] == "done" and by_name["broken"]["status"] == "failed"
    assert by_name["broken"]["error"]
    page = (out / "index.html").read_text()
    assert "data-name='Orbit_one' data-status='done'" in page and "data-name='broken' data-status='failed'" in page
    thumb = re.search(r"<img src='([^']+)'", page).group(1)
    assert (out / thumb).is_file()  # relative to the page: the folder can be served or opened as it is
    assert "<one>" not in page
