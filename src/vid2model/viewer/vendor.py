"""The JavaScript a published site needs: pinned npm packages, installed once into a cache, copied to SITE/vendor.

``web/package.json`` + ``web/package-lock.json`` pin every library (with integrity hashes). At the first
publish they are installed with ``npm ci`` into ``~/.cache/vid2model/web-<hash>`` (``$VID2MODEL_CACHE``
overrides the parent folder) and the splat view is bundled there with esbuild into one classic script, so
sites never fetch anything at view time and also run from ``file://``. Later publishes reuse the cache
and need neither npm nor the network. The cache also holds gltfpack, which publish runs with Node.js to
compress the page's copy of the model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from pathlib import Path

from vid2model.errors import UserError
from vid2model.workspace import atomic_dir

log = logging.getLogger("vid2model")

WEB_DIR = Path(__file__).resolve().parent / "web"
_INPUTS = ("package.json", "package-lock.json", "embedded.js", "splat-view.js", "tour-view.js")
_BUNDLES = ("splat-view.js", "tour-view.js")

_ESBUILD_JS = ("require('esbuild').buildSync({entryPoints: [process.argv[1]], outfile: process.argv[2], bundle: true, "
               "format: 'iife', minify: true, target: 'es2020', logLevel: 'error'})")

# site path under vendor/ -> path inside the cache folder
VENDOR_FILES = {
    "model-viewer/model-viewer-umd.min.js": "node_modules/@google/model-viewer/dist/model-viewer-umd.min.js",
    "model-viewer/LICENSE": "node_modules/@google/model-viewer/LICENSE",
    "splat-view.js": "dist/splat-view.js",
    "tour-view.js": "dist/tour-view.js",
    "three/LICENSE": "node_modules/three/LICENSE",
    "spark/LICENSE": "node_modules/@sparkjsdev/spark/LICENSE",
}


# tools run at publish time, from the cache folder (not copied to sites)
GLTFPACK = "node_modules/gltfpack/cli.js"


def cache_root() -> Path:
    """Parent folder of vid2model's caches (``$VID2MODEL_CACHE`` or ``~/.cache/vid2model``)."""
    return Path(os.environ.get("VID2MODEL_CACHE", Path.home() / ".cache" / "vid2model")).expanduser()


def web_hash() -> str:
    """Short hash of the pinned package list and the bundled source: names the cache folder."""
    h = hashlib.sha256()
    for name in _INPUTS:
        h.update(name.encode() + b"\0" + (WEB_DIR / name).read_bytes() + b"\0")
    return h.hexdigest()[:12]


def _complete(folder: Path) -> bool:
    return (folder / ".complete").exists() and all((folder / src).exists()
                                                   for src in (*VENDOR_FILES.values(), GLTFPACK))


def ensure_web_libs(timeout_s: float = 600.0) -> Path:
    """The cache folder with installed packages and the built splat bundle; installs them on first use.

    Raises:
        UserError: npm is missing (and nothing is cached yet) or the install/bundle failed.
    """
    folder = cache_root() / f"web-{web_hash()}"
    if _complete(folder):
        return folder
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        raise UserError("publishing needs Node.js and npm once, to install the pinned viewer libraries "
                        "(e.g. 'sudo apt-get install nodejs npm'), then run the command again")
    log.info("installing the web viewer libraries into %s (once)", folder)
    with atomic_dir(folder) as tmp:
        for name in _INPUTS:
            shutil.copy(WEB_DIR / name, tmp / name)
        _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], tmp, timeout_s,
             "installing the viewer libraries with npm failed (is the npm registry reachable?)")
        # esbuild's JS API: its bin/ entry may be the native binary or a JS shim depending on the platform
        for bundle in _BUNDLES:
            _run([node, "-e", _ESBUILD_JS, bundle, f"dist/{bundle}"], tmp, timeout_s,
                 f"bundling {bundle} with esbuild failed")
        (tmp / ".complete").write_text(web_hash() + "\n", encoding="utf-8")
    if not _complete(folder):
        raise UserError(f"the viewer libraries in {folder} are incomplete; delete that folder and run again")
    return folder


def _run(args: list[str], cwd: Path, timeout_s: float, what: str) -> None:
    try:
        proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise UserError(f"{what}: no answer after {timeout_s:.0f} s") from exc
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        log.debug("%s output:\n%s%s", args[0], proc.stdout, proc.stderr)
        raise UserError(f"{what}: {lines[-1] if lines else f'exit code {proc.returncode}'}")


def copy_vendor(site_dir: Path) -> list[Path]:
    """Copy the viewer libraries into ``site_dir/vendor``; returns the written files."""
    folder = ensure_web_libs()
    out = []
    for dst, src in VENDOR_FILES.items():
        target = site_dir / "vendor" / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(folder / src, target)
        out.append(target)
    return out
