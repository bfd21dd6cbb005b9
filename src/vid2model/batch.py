"""Batch a catalogue of videos: one workspace per input, locally or on a Ray cluster, and a catalogue page.

A catalogue is either paths (videos, image folders, folders of videos) or a CSV file with one row per product:
``input`` (required; relative to the CSV's folder), ``name``, ``preset``, ``marker_size`` (metres), ``isolate``
(yes/no) and ``options`` (``stage.field=value`` settings separated by ``;``).
"""

from __future__ import annotations

import csv
import html
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vid2model.config import build_config
from vid2model.errors import UserError, require
from vid2model.pipeline import VIDEO_SUFFIXES
from vid2model.workspace import Workspace

log = logging.getLogger("vid2model")


@dataclass(frozen=True)
class Item:
    """One product of a catalogue: its input, its workspace's name and its own settings."""

    input: Path
    name: str
    preset: str | None = None
    sets: tuple[str, ...] = ()


_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _safe_name(name: str) -> str:
    """A workspace folder name: letters, digits, dot, dash and underscore only, never empty or hidden."""
    out = _NAME.sub("_", name.strip()).strip("._") or "item"
    return out[:100]


def read_catalogue(path: Path) -> list[Item]:
    """The rows of a catalogue CSV (see the module's docstring); every row's settings are checked here, so a
    typo stops the batch before anything runs, naming its line."""
    items: list[Item] = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "input" not in [c.strip() for c in reader.fieldnames]:
            raise UserError(f"{path}: a catalogue needs a header row with an 'input' column")
        for row in reader:
            line = reader.line_num
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            if not row.get("input"):
                raise UserError(f"{path}, line {line}: no input")
            src = Path(row["input"]).expanduser()
            src = src if src.is_absolute() else path.parent / src
            if not src.exists():
                raise UserError(f"{path}, line {line}: input not found: {src}")
            sets = [o.strip() for o in row.get("options", "").split(";") if o.strip()]
            if row.get("marker_size"):
                sets.append(f"sfm.marker_size={row['marker_size']}")
            if row.get("isolate", "").lower() in ("yes", "true", "1", "y"):
                sets.append("mesh.isolate=true")
            preset = row.get("preset") or None
            try:
                build_config(preset or "default", sets=sets)
            except UserError as exc:
                raise UserError(f"{path}, line {line}: {exc}") from None
            items.append(Item(src, _safe_name(row.get("name") or src.stem), preset, tuple(sets)))
    if not items:
        raise UserError(f"{path}: the catalogue has no rows")
    return items


def find_inputs(paths: list[str | os.PathLike]) -> list[Item]:
    """Expand the given paths into catalogue items: catalogue CSV files, video files, and folders of images
    or of videos. A folder holding videos contributes each video; a folder holding only images is one input.
    """
    items: list[Item] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            raise UserError(f"input not found: {p}")
        if p.suffix.lower() == ".csv":
            items.extend(read_catalogue(p))
        elif p.is_dir():
            videos = sorted(c for c in p.iterdir() if c.suffix.lower() in VIDEO_SUFFIXES)
            subdirs = sorted(c for c in p.iterdir() if c.is_dir())
            items.extend(Item(c, _safe_name(c.stem)) for c in (videos or subdirs or [p]))
        else:
            items.append(Item(p, _safe_name(p.stem)))
    names = [i.name for i in items]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise UserError(f"two inputs would share a workspace name: {', '.join(sorted(dupes))}; rename one")
    if not items:
        raise UserError("no inputs found")
    return items


def _one(name: str, input_path: str, ws_root: str, preset: str, sets: list[str], stages: list[str] | None,
         skip: tuple[str, ...]) -> dict[str, Any]:
    """Run one input (and measure it when it is an orbit with a mesh); never raises, so one bad video does not
    stop the catalogue."""
    from vid2model.pipeline import run_pipeline

    t0 = time.perf_counter()
    ws = Workspace(ws_root)
    try:
        res = run_pipeline(ws, build_config(preset, sets=sets), input_path=input_path, stages=stages, skip=skip)
        status = "done"
        error = ""
        done = {k: v["status"] for k, v in res.items()}
    except UserError as exc:
        status, error, done = "failed", str(exc), {}
    except Exception as exc:  # noqa: BLE001 - recorded per input, the batch goes on
        log.exception("%s failed", input_path)
        status, error, done = "failed", f"{type(exc).__name__}: {exc}", {}
    size = None
    if status == "done" and ws.clean_mesh.exists():
        from vid2model.measure import measure

        try:
            size = measure(ws).get("object")
        except UserError as exc:  # a walk-through, no object in the middle: the catalogue shows no size
            log.info("%s: not measured (%s)", name, exc)
    return {"name": name, "input": input_path, "workspace": ws_root, "status": status, "error": error,
            "stages": done, "size": size, "wall_s": round(time.perf_counter() - t0, 2)}


def _on_ray(*args: Any) -> dict[str, Any]:
    """:func:`_one` as a Ray task, recording the node it ran on."""
    import ray

    return {**_one(*args), "node": ray.get_runtime_context().get_node_id()}


def run_batch(items: list[Item], out_dir: Path, preset: str = "default", sets: list[str] | tuple[str, ...] = (), *,
              stages: list[str] | None = None, skip: tuple[str, ...] = (), ray_address: str | None = None
              ) -> dict[str, Any]:
    """Reconstruct every item into ``out_dir/<name>/``, write ``out_dir/batch.json`` and the catalogue page
    ``out_dir/index.html``.

    Args:
        items: from :func:`find_inputs`.
        out_dir: parent folder of the workspaces.
        preset, sets: settings for every item (an item's own preset and settings come on top).
        stages: stages to run (None = all).
        skip: stages to leave out.
        ray_address: run on a Ray cluster ("auto", "ray://host:port", or "local" for a local Ray);
            None runs one input after another in this process (each stage already uses all cores).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(it.name, str(it.input.resolve()), str((out_dir / it.name).resolve()), it.preset or preset,
             [*sets, *it.sets]) for it in items]
    if ray_address is None:
        from vid2model.progress import track

        results = [_one(*j, stages, skip) for j in track(jobs, "batch")]
    else:
        ray = require("ray", "running a batch on a Ray cluster", extra="cluster")
        ray.init(address=None if ray_address == "local" else ray_address, ignore_reinit_error=True,
                 log_to_driver=False)
        # a job whose node dies is run again elsewhere (Ray retries tasks lost to a system failure); its
        # workspace, on the shared folder, resumes where the lost run stopped
        remote = ray.remote(num_cpus=1, max_retries=3)(_on_ray)
        results = ray.get([remote.remote(*j, stages, skip) for j in jobs])
    summary = {"out_dir": str(out_dir.resolve()), "n_inputs": len(jobs),
               "n_done": sum(r["status"] == "done" for r in results), "results": results}
    Workspace(out_dir).write_json(out_dir / "batch.json", summary)
    Workspace(out_dir).write_text(out_dir / "index.html", catalogue_page(out_dir, results))
    return summary


def catalogue_page(out_dir: Path, results: list[dict[str, Any]]) -> str:
    """A static page listing every product: thumbnail, status, size and links (relative, so the folder can be
    served or opened as it is)."""
    rows = []
    for r in results:
        ws = Workspace(r["workspace"])
        rel = os.path.relpath(ws.root, out_dir)
        names = ws.image_names() if ws.images_dir.exists() else []
        thumb = (f"<img src='{html.escape(rel)}/images/{html.escape(names[0])}' alt='' loading='lazy'>"
                 if names else "")
        size = ""
        if r.get("size"):
            o = r["size"]
            size = " × ".join(f"{o[d]['value']:.3g}" for d in ("height", "width", "depth")) + f" {o['height']['unit']}"
        links = [f"<a href='{html.escape(rel)}/export/{html.escape(p.name)}'>{html.escape(p.name)}</a>"
                 for p in ws.exported_models()]
        if ws.report_html.exists():
            links.append(f"<a href='{html.escape(rel)}/report/index.html'>report</a>")
        state = html.escape(r["status"]) + (f"<br><small>{html.escape(r['error'])}</small>" if r["error"] else "")
        rows.append(f"<tr data-name='{html.escape(r['name'])}' data-status='{html.escape(r['status'])}'><td>{thumb}"
                    f"</td><td>{html.escape(r['name'])}</td><td>{state}</td><td>{html.escape(size)}</td>"
                    f"<td>{' · '.join(links)}</td></tr>")
    done = sum(r["status"] == "done" for r in results)
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Catalogue - vid2model</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse}"
            "td,th{padding:.4em .7em;border-bottom:1px solid #ddd;text-align:left;vertical-align:middle}"
            "img{width:96px;height:72px;object-fit:cover}</style></head><body>"
            f"<h1>Catalogue</h1><p>{done} of {len(results)} products done.</p><table><thead><tr><th></th>"
            "<th>product</th><th>status</th><th>size (h × w × d)</th><th>files</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></body></html>\n")
