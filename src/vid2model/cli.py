"""Command line: ``vid2model`` (alias ``v2m``). Errors reach the user as one line and a non-zero exit."""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import logging
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

# OpenMP threads that spin while waiting make 2-thread torch/C++ kernels several times slower on a busy
# 2-core machine; sleeping waits cost nothing when it is idle. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# numba tries its TBB threading layer first and, finding an older TBB than it wants, warns on stderr before taking
# OpenMP: not a user's concern
warnings.filterwarnings("ignore", message="The TBB threading layer requires TBB version")

from vid2model._version import __version__  # noqa: E402
from vid2model.config import PRESETS, build_config
from vid2model.errors import UserError
from vid2model.pipeline import STAGE_NAMES, STAGES, run_pipeline
from vid2model.progress import set_quiet
from vid2model.signals import install_stop_handlers, stop_requested
from vid2model.workspace import Workspace

log = logging.getLogger("vid2model")


def _setup_logging(verbose: int, ws: Workspace | None) -> None:
    root = logging.getLogger("vid2model")
    root.setLevel(logging.DEBUG)
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root.addHandler(console)
    if ws is not None:
        ws.create()
        fh = logging.FileHandler(ws.log_path, encoding="utf-8")
        fh.setLevel(logging.DEBUG)
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(fh)


def _config_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("settings")
    g.add_argument("--preset", choices=list(PRESETS), default=None,
                   help="speed/quality preset (default: the workspace's last, else 'default')")
    g.add_argument("--set", dest="sets", action="append", default=[], metavar="STAGE.FIELD=VALUE",
                   help="override one setting, e.g. --set dense.max_side=800 (repeatable)")
    g.add_argument("--marker-size", type=float, default=None,
                   help="edge length in metres of an ArUco marker (DICT_4X4_50) seen in the video, for metric scale")
    g.add_argument("--isolate", action="store_true", default=None,
                   help="keep only the object the cameras circle (drop floor/background)")
    g.add_argument("--watertight", action="store_true", default=None,
                   help="a closed mesh: the object an orbit circles as a solid, its unseen bottom flat on the "
                        "table or floor it stands on")
    g.add_argument("--force", action="store_true", help="rerun stages even if finished and unchanged")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vid2model", description="Turn a video or a folder of photos into 3D models.",
        epilog="Stages: " + ", ".join(STAGE_NAMES) + ". Run 'vid2model demo' to try it on a generated video.")
    parser.add_argument("--version", action="version", version=f"vid2model {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("run", help="the whole pipeline: INPUT (video or image folder) to finished assets")
    p.add_argument("input", help="video file or folder of images")
    p.add_argument("-o", "--output", required=True, help="workspace folder")
    p.add_argument("--from", dest="from_stage", choices=STAGE_NAMES, help="rerun from this stage on")
    p.add_argument("--skip", action="append", default=[], choices=STAGE_NAMES, help="leave a stage out")
    p.add_argument("--formats", default=None, help="export formats, comma separated")
    p.add_argument("--view", action="store_true",
                   help="open the local viewer at once and fill it as the run goes (it stays open after the run)")
    _config_args(p)
    _common(p)

    for st in STAGES:
        p = sub.add_parser(st.name, help=st.help)
        if st.name == "ingest":
            p.add_argument("input", help="video file or folder of images")
            p.add_argument("-o", "--output", required=True, help="workspace folder")
        else:
            p.add_argument("workspace", help="workspace folder")
        if st.name == "export":
            p.add_argument("--format", dest="formats", default=None,
                           help="comma separated: glb,gltf,obj,usdz,usd,usda,fbx,ply,splat_ply,splat,spz")
        _config_args(p)
        _common(p)

    p = sub.add_parser("status", help="what is finished in a workspace")
    p.add_argument("workspace")
    _common(p)

    p = sub.add_parser("demo", help="generate a demo video and run the whole pipeline on it")
    p.add_argument("-o", "--output", default="demo_workspace",
                   help="workspace folder (default: ./demo_workspace); the generated video goes beside it, "
                        "to OUTPUT-input")
    p.add_argument("--preset", choices=list(PRESETS), default="fast")
    p.add_argument("--skip", action="append", default=[], choices=STAGE_NAMES, help="leave a stage out")
    _common(p)

    p = sub.add_parser("batch", help="reconstruct a catalogue of videos, one workspace each (locally or on Ray)")
    p.add_argument("inputs", nargs="+", help="video files, folders of videos, image folders, or a catalogue CSV "
                                             "(columns: input, name, preset, marker_size, isolate, options)")
    p.add_argument("-o", "--output", required=True, help="parent folder of the workspaces")
    p.add_argument("--stages", default=None, help="comma separated stages to run (default: all)")
    p.add_argument("--skip", action="append", default=[], choices=STAGE_NAMES, help="leave a stage out")
    p.add_argument("--ray", dest="ray_address", default=None, metavar="ADDRESS",
                   help="run on a Ray cluster: 'auto', 'ray://HOST:PORT' or 'local'")
    p.add_argument("--preset", choices=list(PRESETS), default="default")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="STAGE.FIELD=VALUE")
    _common(p)

    p = sub.add_parser("report", help="rebuild the capture/reconstruction report")
    p.add_argument("workspace")
    _common(p)

    p = sub.add_parser("render", help="render images at given camera poses from the splat, textured mesh or NeRF")
    p.add_argument("workspace")
    p.add_argument("--poses", help="POSES.json (width, height, K, frames[name, cam_to_world]) in OpenCV convention")
    p.add_argument("--out", required=True, help="output folder (or .mp4 file with --orbit)")
    p.add_argument("--source", choices=["splat", "mesh", "nerf"], default=None,
                   help="default: splat when present, else mesh (nerf: after `vid2model nerf`)")
    p.add_argument("--orbit", action="store_true", help="render a turntable MP4 instead of --poses")
    p.add_argument("--depth", action="store_true",
                   help="with --poses and --source nerf: also <name>_depth.npy (float32 z-depth, world units)")
    p.add_argument("--normals", action="store_true",
                   help="with --poses and --source nerf: also <name>_normals.npy (float32 world-frame unit normals, "
                        "0 where none) and <name>_normals.png ((n + 1) / 2 as RGB)")
    _common(p)

    p = sub.add_parser("view", help="interactive local viewer (cameras, points, mesh, splat)")
    p.add_argument("workspace")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--follow", action="store_true", help="keep drawing what a running job writes")
    _common(p)

    p = sub.add_parser("measure", help="the object's dimensions (metres with a marker or a known size)")
    p.add_argument("workspace")
    p.add_argument("--known-size", default=None, metavar="\"box height=0.30\"",
                   help="a size you know (box height, width or depth, in metres) sets the scale")
    p.add_argument("--point", dest="points", action="append", default=[], metavar="A.jpg:X,Y/B.jpg:X,Y",
                   help="a spot marked in two or more keyframes (pixel column,row); two --point give a distance")
    p.add_argument("--subject", default="auto", choices=("auto", "object", "body", "garment", "room"),
                   help="what was filmed: an object, a person standing (body), a garment laid flat and filmed "
                        "from above, a room (default: object for an orbit, room for a walk-through)")
    _common(p)

    p = sub.add_parser("serve", help="a web service: upload captures in a browser or by API, collect the models")
    p.add_argument("--data", required=True, help="folder for the job store, uploads and workspaces")
    p.add_argument("--host", default="127.0.0.1", help="interface (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="jobs run at once")
    p.add_argument("--token", default=None, help="API token (default: $VID2MODEL_TOKEN; made up when not on loopback)")
    p.add_argument("--max-upload-mb", type=float, default=2048.0)
    p.add_argument("--ray", dest="ray_address", default=None, metavar="ADDRESS",
                   help="run jobs on a Ray cluster ('auto', HOST:PORT or 'local'); --data must be a folder every "
                        "node shares at the same path")
    _common(p)

    p = sub.add_parser("publish", help="a self-contained static web page (product viewer, splat viewer, report)")
    p.add_argument("workspace")
    p.add_argument("-o", "--output", required=True, help="site folder")
    _common(p)
    return parser


def _settings(args: argparse.Namespace, ws: Workspace) -> tuple[str, list[str]]:
    """Preset and --set strings: the workspace's last ones, updated by this command's options."""
    last = ws.read_manifest() if ws.manifest_path.exists() else {}
    opts = last.get("options", {})
    preset = getattr(args, "preset", None) or opts.get("preset", "default")
    sets = list(opts.get("sets", []))
    new = list(getattr(args, "sets", []) or [])
    if getattr(args, "marker_size", None) is not None:
        new.append(f"sfm.marker_size={args.marker_size}")
    if getattr(args, "isolate", None):
        new.append("mesh.isolate=true")
    if getattr(args, "watertight", None):
        new.append("mesh.watertight=true")
    if getattr(args, "formats", None):
        new.append(f"export.formats={args.formats}")
    keys = {s.partition("=")[0] for s in new}
    sets = [s for s in sets if s.partition("=")[0] not in keys] + new
    return preset, sets


def _save_options(ws: Workspace, preset: str, sets: list[str]) -> None:
    from vid2model.runner import Manifest

    m = Manifest(ws)
    m.data["options"] = {"preset": preset, "sets": sets}
    m.save()


def _print_result(args: argparse.Namespace, result: dict[str, Any], human: str) -> None:
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    elif human:
        print(human)


def _cmd_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    ws = Workspace(args.output if args.command in ("run", "ingest") else args.workspace)
    input_path = getattr(args, "input", None)
    if input_path is None:
        ws.read_manifest()  # a one-line refusal for a folder that is not a workspace
        if not ws.input_path.exists():
            raise UserError(f"not a vid2model workspace: {ws.root} (create one with: vid2model run INPUT -o DIR)")
    # Settings are checked before anything is written: a bad value leaves no folder and is not remembered.
    preset, sets = _settings(args, ws)
    cfg = build_config(preset, sets=sets)
    if input_path is not None:
        from vid2model.pipeline import set_input
        set_input(ws, input_path)
    _setup_logging(args.verbose, ws)
    viewer = None
    if getattr(args, "view", False):
        viewer = _call("vid2model.viewer.local:serve", ws, block=False, follow=True)["viewer"]
    with ws.locked():
        _save_options(ws, preset, sets)
        if args.command == "run":
            try:
                res = run_pipeline(ws, cfg, skip=tuple(args.skip), force=args.force, from_stage=args.from_stage)
            finally:
                if viewer is not None:
                    viewer.refresh()  # the last state, whether the run finished or stopped
        else:
            force = args.force or args.command == "export" and bool(args.formats)
            res = run_pipeline(ws, cfg, stages=[args.command], force=force)
    lines = [f"{name}: {r['status']}" + (f" in {r['wall_s']:.1f} s" if r["status"] == "done" else "")
             for name, r in res.items()]
    lines.append(f"workspace: {ws.root}")
    if viewer is not None:
        print("\n".join(lines) + f"\nthe viewer stays open at {viewer.url} (Ctrl-C to close)", flush=True)
        _call("vid2model.viewer.local:keep_open", viewer)
        return {"workspace": str(ws.root), "stages": res}
    return {"workspace": str(ws.root), "stages": res, "_human": "\n".join(lines)}


def _cmd_status(args: argparse.Namespace) -> dict[str, Any]:
    ws = Workspace(args.workspace)
    data = ws.read_manifest()
    busy = ws.is_busy()
    rows = []
    for name in STAGE_NAMES:
        e = data["stages"].get(name, {})
        status = e.get("status", "not run")
        if status == "running" and not busy:  # its process is gone (killed, or the machine stopped)
            status = e["status"] = "stopped"
            e["error"] = "the run was stopped; run the same command again to resume"
        extra = f"{e['wall_s']:.1f} s, peak {e.get('peak_mem_mb', 0):.0f} MB" if status == "done" else e.get("error", "")
        rows.append(f"{name:8s} {status:8s} {extra}")
    return {"workspace": str(ws.root), "stages": data["stages"], "_human": "\n".join(rows)}


def _call(target: str, *a: Any, **kw: Any) -> Any:
    module, _, func = target.partition(":")
    fn: Callable[..., Any] = getattr(importlib.import_module(module), func)
    return fn(*a, **kw)


def _existing_ws(path: str, verbose: int) -> Workspace:
    ws = Workspace(path)
    ws.read_manifest()
    _setup_logging(verbose, ws)
    return ws


def _cmd_other(args: argparse.Namespace) -> dict[str, Any]:
    if args.command == "demo":
        _setup_logging(args.verbose, None)
        return _call("vid2model.demo:run_demo", Path(args.output), preset=args.preset, skip=tuple(args.skip))
    if args.command == "batch":
        from vid2model.batch import find_inputs, run_batch

        _setup_logging(args.verbose, None)
        stages = [x.strip() for x in args.stages.split(",")] if args.stages else None
        build_config(args.preset, sets=args.sets)  # a typo stops the batch before anything runs
        res = run_batch(find_inputs(args.inputs), Path(args.output), args.preset, args.sets,
                        stages=stages, skip=tuple(args.skip), ray_address=args.ray_address)
        lines = [f"{r['status']:6s} {r['input']}" + (f": {r['error']}" if r["error"] else "") for r in res["results"]]
        lines.append(f"{res['n_done']} of {res['n_inputs']} done; summary in {res['out_dir']}/batch.json, "
                     f"catalogue page {res['out_dir']}/index.html")
        return {**res, "_human": "\n".join(lines)}
    if args.command == "serve":
        _setup_logging(args.verbose, None)
        return _call("vid2model.service.app:serve", args.data, host=args.host, port=args.port,
                     n_workers=args.workers, token=args.token, max_upload_mb=args.max_upload_mb,
                     ray_address=args.ray_address)
    ws = _existing_ws(args.workspace, args.verbose)
    if args.command == "report":
        return _call("vid2model.report:build_report", ws)
    if args.command == "render":
        if args.orbit:
            if args.depth or args.normals:
                raise UserError(f"--{'depth' if args.depth else 'normals'} goes with --poses, not --orbit")
            return _call("vid2model.render:render_orbit", ws, Path(args.out), source=args.source)
        if not args.poses:
            raise UserError("render needs --poses POSES.json (or --orbit)")
        return _call("vid2model.render:render_poses", ws, Path(args.poses), Path(args.out), source=args.source,
                     depth=args.depth, normals=args.normals)
    if args.command == "view":
        return _call("vid2model.viewer.local:serve", ws, host=args.host, port=args.port, follow=args.follow)
    if args.command == "measure":
        return _call("vid2model.measure:measure", ws, known_size=args.known_size, points=args.points,
                     subject=args.subject)
    if args.command == "publish":
        return _call("vid2model.viewer.publish:publish", ws, Path(args.output))
    raise UserError(f"unknown command {args.command}")  # pragma: no cover


# File-system trouble the user can fix: one line naming the path, never a traceback.
_FS_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
              errno.EROFS: "the location is read-only", errno.EACCES: "permission denied",
              errno.EPERM: "permission denied", errno.ENOTDIR: "a file stands where a folder should be",
              errno.EISDIR: "a folder stands where a file should be", errno.EEXIST: "it already exists",
              errno.ENAMETOOLONG: "the name is too long"}


def _fs_message(exc: OSError) -> str | None:
    reason = _FS_ERRNOS.get(exc.errno or -1)
    if reason is None:
        return None
    where = f" {exc.filename}" if exc.filename else ""
    return f"cannot write or read{where}: {reason}; free space or choose another location, then run again"


def _run_command(args: argparse.Namespace) -> dict[str, Any]:
    if args.command in ("run", *STAGE_NAMES):
        return _cmd_pipeline(args)
    if args.command == "status":
        return _cmd_status(args)
    return _cmd_other(args) or {}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    set_quiet(args.quiet)
    install_stop_handlers()
    try:
        result = _run_command(args)
        if stop_requested():
            raise KeyboardInterrupt
        human = result.pop("_human", "") if isinstance(result, dict) else ""
        _print_result(args, result, human)
    except UserError as err:
        print(f"vid2model: error: {err}", file=sys.stderr)
        log.debug("user error", exc_info=True)
        return err.exit_code
    except BrokenPipeError:  # `vid2model status WS | head -1`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except BaseException as exc:
        sig = stop_requested()
        if sig is not None or isinstance(exc, KeyboardInterrupt):
            # numba and threads can wrap the KeyboardInterrupt (SystemError): the signal decides, not the type
            print("vid2model: interrupted; run the same command again to resume", file=sys.stderr)
            return 128 + (sig or signal.SIGINT)
        if isinstance(exc, SystemExit):
            raise
        msg = _fs_message(exc) if isinstance(exc, OSError) else None
        log.debug("failed", exc_info=True)
        if msg is not None:
            print(f"vid2model: error: {msg}", file=sys.stderr)
            return 1
        if args.verbose:
            raise
        where = " (details in the workspace's vid2model.log)" if log.handlers[1:] else ""
        print(f"vid2model: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
              f"{where}; please report it; run with -v to see the traceback", file=sys.stderr)
        return 1
    return 0


def entry() -> None:
    """The console script: :func:`main`, then a prompt exit after a stop signal.

    After Ctrl-C or SIGTERM the stage's state is already recorded; worker threads still inside compiled
    kernels would otherwise hold the interpreter's shutdown until their tile is done.
    """
    rc = main()
    if stop_requested() is not None:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    sys.exit(rc)


if __name__ == "__main__":  # pragma: no cover
    entry()
