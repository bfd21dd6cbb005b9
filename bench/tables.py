"""Markdown tables of a benchmark run (bench/run.py's results dict)."""

from __future__ import annotations

STAGES = ("ingest", "sfm", "dense", "mesh", "texture", "splat", "export")


def _f(x, fmt: str = "{:.3f}") -> str:
    return "" if x is None else fmt.format(x)


def _cameras(results: dict) -> list[str]:
    rows = ["## Camera solving (rotation / centre error after a similarity alignment to GT)", "",
            "| dataset | registered | rot median (deg) | rot max (deg) | centre median (% extent) | "
            "centre max (% extent) | reproj (px) | mapper |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results["datasets"].items():
        if "error" in r:
            rows.append(f"| {name} | error: {r['error']} | | | | | | |")
            continue
        c = r.get("cameras", {})
        reg = f"{c.get('registered')}/{c.get('inputs', c.get('keyframes'))}"
        pct = lambda k: _f(100 * c[k] if c.get(k) is not None else None)  # noqa: E731
        rows.append(f"| {name} | {reg} | {_f(c.get('rot_median_deg'))} | {_f(c.get('rot_max_deg'))} | "
                    f"{pct('center_median_rel')} | {pct('center_max_rel')} | {_f(c.get('reproj_px'))} | "
                    f"{c.get('mapper') or ''} |")
    return rows


def _surfaces(results: dict) -> list[str]:
    rows = ["## Dense points and mesh against the GT surface the cameras see (thresholds: % of scene size)", "",
            "| dataset | what | P@1% | R@1% | F@1% | P@0.5% | R@0.5% | F@0.5% |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results["datasets"].items():
        for what in ("dense", "mesh"):
            if what not in r:
                continue
            a, b = r[what]["at_0.01"], r[what]["at_0.005"]
            rows.append(f"| {name} | {what} | {_f(a['precision'])} | {_f(a['recall'])} | {_f(a['fscore'])} | "
                        f"{_f(b['precision'])} | {_f(b['recall'])} | {_f(b['fscore'])} |")
    sil = [(n, r["silhouette"]) for n, r in results["datasets"].items() if "silhouette" in r]
    if sil:
        rows += ["", "Silhouette IoU with the object masks (DTU: its masks; Middlebury: derived from the images inside "
                 "the GT bounding box, bright pixels refined by GrabCut), meshes rendered at our solved cameras, on the views held "
                 "out of dense stereo and meshing and on those used (clean: object isolated and table dropped; raw: "
                 "surface before cleanup):", "",
                 "| dataset | mesh | views | IoU mean | IoU median | IoU min |", "|---|---|---|---|---|---|"]
        for n, s in sil:
            n_held = len(s.get("held_out_views", []))
            for k in ("clean_held_out", "raw_held_out", "clean_used", "raw_used", "clean", "raw"):
                if k in s:
                    views = n_held if k.endswith("held_out") else s["views"] - n_held
                    rows.append(f"| {n} | {k.replace('_', ' ')} | {views} | {_f(s[k]['iou_mean'])} | "
                                f"{_f(s[k]['iou_median'])} | {_f(s[k]['iou_min'])} |")
    return rows


def _novel_views(results: dict) -> list[str]:
    rows = ["## Novel views at held-out poses (frames never used for reconstruction or training)", "",
            "| dataset | source | PSNR (dB) | SSIM | coverage | views |", "|---|---|---|---|---|---|"]
    for name, r in results["datasets"].items():
        t = r.get("texture")
        if t and "object" in t:
            o = t["object"]
            rows.append(f"| {name} | textured mesh (object pixels) | {_f(o.get('psnr'), '{:.2f}')} | "
                        f"{_f(o.get('ssim'))} | {_f(o.get('coverage'))} | {len(t.get('frames', []))} |")
        s = r.get("splat")
        if s and s.get("eval_psnr") is not None:
            rows.append(f"| {name} | Gaussian splats ({s.get('gaussians')} splats, {s.get('iterations')} it) | "
                        f"{_f(s.get('eval_psnr'), '{:.2f}')} | {_f(s.get('eval_ssim'))} | | {s.get('eval_views')} |")
    return rows


def _timings(results: dict) -> list[str]:
    rows = ["## Time and memory per stage (wall s / CPU s / peak MB)", "",
            "| dataset | " + " | ".join(STAGES) + " | total wall (s) |", "|---" * (len(STAGES) + 2) + "|"]
    for name, r in results["datasets"].items():
        st = r.get("stages") or {}
        cells = [f"{s['wall_s']:.0f} / {s['cpu_s']:.0f} / {s['peak_mem_mb']:.0f}" if (s := st.get(k)) and
                 s.get("wall_s") is not None else "" for k in STAGES]
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {r.get('total_wall_s', '')} |")
    return rows


def _exports(results: dict) -> list[str]:
    rows = []
    for name, r in results["datasets"].items():
        if r.get("exports_bytes"):
            rows += [f"Exports of {name}: " + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in r["exports_bytes"].items())]
    return ["## Export sizes", ""] + rows if rows else []


def _peers(results: dict) -> list[str]:
    rows = []
    peer = results.get("peer_colmap_fox")
    if peer:
        o, c = peer["ours"], peer["colmap"]
        rows += ["## Camera solving vs Debian's colmap CLI on fox (same keyframes, same machine, same run)", ""]
        if "skipped" in c:
            rows.append(f"colmap: {c['skipped']}")
        else:
            rows += ["| tool | wall (s) | registered | reproj (px) |", "|---|---|---|---|",
                     f"| vid2model sfm | {o['wall_s']} | {o['registered']}/{o['images']} | {_f(o['reproj_px'], '{:.3f}')} |",
                     f"| colmap CLI (SIFT, exhaustive, mapper) | {c['wall_s']} | {c['registered']}/{c['images']} | "
                     f"{_f(c['reproj_px'], '{:.3f}')} |", "",
                     f"Speed ratio colmap / vid2model: **{c['wall_s'] / max(o['wall_s'], 1e-9):.1f}x**"]
    m = results.get("micro")
    if m:
        rows += ["", "## Accelerated parts vs plain baselines (same run)", "", "| part | ours | baseline | ratio |",
                 "|---|---|---|---|"]
        if "splat_iteration" in m:
            s = m["splat_iteration"]
            rows.append(f"| splat training iteration, 100k splats at 480x270 | {s['compiled']:.3f} s | "
                        f"{s['plain_torch']:.2f} s (plain torch) | {s['ratio_plain_over_compiled']:.1f}x |")
        if "depth_map" in m:
            d = m["depth_map"]
            w, h = d["resolution"]
            rows.append(f"| depth map {w}x{h}, {d['sources']} sources (plane sweep + refinement) | "
                        f"{d['numba']['wall_s']:.2f} s (numba kernel) | {d['torch']['wall_s']:.2f} s (plain torch) | "
                        f"{d['ratio']:.1f}x |")
        if "video_decode" in m:
            v = m["video_decode"]
            rows.append(f"| 1080p video decode | {v['pyav_fps']:.0f} frames/s (PyAV) | {v['opencv_fps']:.0f} frames/s "
                        f"(OpenCV) | {v['ratio']:.2f}x |")
    return rows


def _random(results: dict) -> list[str]:
    rows = results.get("random")
    if not rows:
        return []
    import bench_random

    return ["## Randomised captures (ingest + sfm as a user runs them; `bench/bench_random.py`)", "",
            bench_random.summary(rows), "", bench_random.table(rows)]


def markdown(results: dict) -> str:
    head = [f"# vid2model benchmark {results['date']}", "", f"Command: `{results['command']}`  ",
            f"Machine: {results['machine']}, load average at start {results.get('load_avg_start')}, preset "
            f"`{results.get('preset')}`{' with ' + ' '.join(results['sets']) if results.get('sets') else ''}, whole run {results.get('total_wall_s')} s, code at commit {results.get('commit')}  "]
    if results.get("skipped"):
        head.append(f"Not run (absent or not chosen): {', '.join(results['skipped'])}")
    parts = [head, _cameras(results), _surfaces(results), _novel_views(results), _timings(results),
             _exports(results), _peers(results), _random(results)]
    # a section whose table has no rows (header, blank, column names, rule) is left out
    keep = [p for p in parts if p and not (len(p) == 4 and p[3].startswith("|---"))]
    return "\n".join("\n".join(p) + "\n" for p in keep)
