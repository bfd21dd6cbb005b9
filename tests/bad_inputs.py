"""A corpus of bad or awkward inputs, made at test time: each case is a command and what it must answer.

Every case must end within its time bound with exit code 2 and one line that names the cause, no
traceback and no "internal error"; ``untouched`` lists paths that must be byte-for-byte as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np


@dataclass
class Case:
    name: str
    make: Callable[[Path], list[str]]  # builds the input under a fresh folder, returns the argv
    needle: str  # part of the one-line error
    bound_s: float = 20.0
    untouched: Callable[[Path], list[Path]] = field(default=lambda root: [])


def _video(path: Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    from vid2model.synth.video import write_video

    return write_video(path, frames, np.arange(len(frames)) / fps, fps)


def _texture(seed: int, h: int = 240, w: int = 320) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    return img


def _audio_only(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=44100)
        s.layout = "mono"
        for i in range(20):
            fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            fr.sample_rate, fr.pts = 44100, i * 1024
            for p in s.encode(fr):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def _photos(folder: Path, n: int, size=(320, 240)) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(_texture(i, size[1], size[0])).save(folder / f"p{i:03d}.jpg")
    return folder


def _workspace(root: Path) -> Path:
    """A finished-looking workspace (manifest + input) for commands that need one."""
    from vid2model.workspace import Workspace

    ws = Workspace(root / "ws").create()
    video = _video(root / "v.mp4", [_texture(0)] * 3)
    ws.write_json(ws.input_path, {"path": str(video), "kind": "video"})
    return ws.root


def _poses(root: Path, name: str, pose: np.ndarray) -> Path:
    p = root / "poses.json"
    p.write_text(json.dumps({"width": 16, "height": 16, "K": [[16.0, 0, 8], [0, 16.0, 8], [0, 0, 1]],
                             "frames": [{"name": name, "cam_to_world": pose.tolist()}]}))
    return p


def _users_folder(root: Path) -> Path:
    d = root / "mine"
    (d / "images").mkdir(parents=True)
    (d / "images" / "holiday.jpg").write_bytes(b"\xff\xd8 mine")
    (d / ".tmp-keep").write_text("mine")
    return d


def _file(root: Path, name: str, data: bytes) -> Path:
    p = root / name
    p.write_bytes(data)
    return p


def _dir_with_manifest(root: Path, content: str | None) -> Path:
    d = root / "proj"
    d.mkdir()
    if content is None:
        (d / "manifest.json").mkdir()
    else:
        (d / "manifest.json").write_text(content)
    return d


def _run(inp: Path | str, out: Path, *extra: str) -> list[str]:
    return ["run", str(inp), "-o", str(out), "-q", *extra]


def _ingest(inp: Path | str, out: Path, *extra: str) -> list[str]:
    return ["ingest", str(inp), "-o", str(out), "-q", *extra]


CASES: list[Case] = [
    Case("empty video file", lambda r: _run(_file(r, "e.mp4", b""), r / "ws"), "is empty"),
    Case("random bytes", lambda r: _run(_file(r, "g.mp4", np.random.default_rng(0).bytes(50_000)), r / "ws"),
         "cannot"),
    Case("audio only", lambda r: _run(_audio_only(r / "a.m4a"), r / "ws"), "no video"),
    Case("one frame", lambda r: _run(_video(r / "one.mp4", [_texture(1)]), r / "ws"), "frame"),
    Case("tiny frames", lambda r: _run(_video(r / "tiny.mp4", [_texture(i, 16, 16) for i in range(30)]), r / "ws"),
         "too small to reconstruct", bound_s=5),
    Case("static camera", lambda r: _run(_video(r / "still.mp4", [_texture(3)] * 60), r / "ws"), "does not move"),
    Case("missing input", lambda r: _run(r / "nope.mp4", r / "ws"), "input not found"),
    Case("empty folder", lambda r: _ingest(_mkdir(r / "empty"), r / "ws"), "holds no images"),
    Case("one photo", lambda r: _ingest(_photos(r / "one", 1), r / "ws"), "readable image"),
    Case("only non-images", lambda r: _ingest(_non_images(r / "t"), r / "ws"), "readable image"),
    Case("output is a file", lambda r: _run(_photos(r / "ph", 3), _file(r, "out.txt", b"keep")),
         "is a file, not a folder", untouched=lambda r: [r / "out.txt"]),
    Case("output is the user's folder", lambda r: _run(_photos(r / "ph", 3), _users_folder(r)),
         "not a vid2model workspace", untouched=lambda r: [r / "mine"]),
    Case("output holds a foreign manifest", lambda r: _run(_photos(r / "ph", 3), _dir_with_manifest(r, '{"a": 1}')),
         "was not written by vid2model", untouched=lambda r: [r / "proj"]),
    Case("corrupt manifest", lambda r: ["status", str(_dir_with_manifest(r, '{"stages": {'))], "is damaged"),
    Case("manifest is a folder", lambda r: ["status", str(_dir_with_manifest(r, None))], "is a folder"),
    Case("input inside the workspace", lambda r: _ingest(_photos(_dir_init(r / "ws") / "images", 3), r / "ws"),
         "lies inside the workspace", untouched=lambda r: [r / "ws" / "images"]),
    Case("jpeg quality 500", lambda r: _run(_photos(r / "ph", 3), r / "ws", "--set", "ingest.jpeg_quality=500"),
         "ingest.jpeg_quality cannot be 500"),
    Case("unknown matcher", lambda r: _run(_photos(r / "ph", 3), r / "ws", "--set", "sfm.matcher=bogus"),
         "sfm.matcher cannot be 'bogus'"),
    Case("negative dense size", lambda r: _run(_photos(r / "ph", 3), r / "ws", "--set", "dense.max_side=-5"),
         "dense.max_side cannot be -5"),
    Case("negative analysis size", lambda r: _run(_photos(r / "ph", 3), r / "ws", "--set", "ingest.analysis_side=-1"),
         "ingest.analysis_side cannot be -1"),
    Case("zero working size", lambda r: _run(_photos(r / "ph", 3), r / "ws", "--set", "ingest.max_side=0"),
         "ingest.max_side cannot be 0"),
    Case("unknown stage in --set", lambda r: _run(_photos(r / "ph", 3), r / "ws", "--set", "nope.x=1"), "nope"),
    Case("wrong type in --set", lambda r: _run(_photos(r / "ph", 3), r / "ws", "--set", "dense.max_side=big"),
         "dense.max_side expects int"),
    Case("unknown export format", lambda r: _run(_photos(r / "ph", 3), r / "ws", "--formats", "nope"),
         "unknown export format(s) nope"),
    Case("NaN in a pose", lambda r: ["render", str(_workspace(r)), "--poses",
                                     str(_poses(r, "a", np.full((4, 4), np.nan))), "--out", str(r / "o")],
         "not a rigid camera-to-world"),
    Case("pose name escapes --out", lambda r: ["render", str(_workspace(r)), "--poses",
                                               str(_poses(r, "../../escaped", np.eye(4))), "--out", str(r / "o")],
         "not a plain file name"),
    Case("view on an invalid port", lambda r: ["view", str(_workspace(r)), "--port", "99999"], "is not a port"),
    Case("status of a plain folder", lambda r: ["status", str(_mkdir(r / "plain"))], "not a vid2model workspace"),
    Case("stage on a plain folder", lambda r: ["dense", str(_mkdir(r / "plain"))], "not a vid2model workspace"),
    Case("stage before its input stage", lambda r: ["dense", str(_workspace(r))], "needs 'sfm' first"),
    Case("export before mesh", lambda r: ["export", str(_workspace(r))], "needs 'mesh' first"),
]


def _dir_init(root: Path) -> Path:
    from vid2model.workspace import Workspace

    return Workspace(root).create().root


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _non_images(folder: Path) -> Path:
    folder.mkdir()
    (folder / "a.jpg").write_text("text, not a photo")
    (folder / "b.png").write_bytes(b"\x89PNG broken")
    return folder
