"""glTF 2.0 writer (GLB or .gltf + .bin + texture): one mesh, PBR metallic-roughness material.

Written by hand (numpy + json) so that every accessor carries min/max, buffers are aligned, and the
texture is embedded in GLB files: what the Khronos validator and web viewers expect.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from vid2model import __version__
from vid2model.workspace import atomic_path

FLOAT, UINT32 = 5126, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963


def _pad(b: bytes, fill: bytes = b"\x00") -> bytes:
    return b + fill * ((4 - len(b) % 4) % 4)


def build_gltf(mesh, texture: Path | None) -> tuple[dict, bytes, bytes | None]:
    """glTF JSON (without buffer URIs), the binary payload, and the PNG bytes (also inside the payload)."""
    V = np.asarray(mesh.vertices, np.float32)
    F = np.asarray(mesh.faces, np.uint32)
    N = np.asarray(mesh.vertex_normals, np.float32)
    N = N / np.maximum(np.linalg.norm(N, axis=1, keepdims=True), 1e-12)
    chunks: list[bytes] = []
    views, accessors = [], []

    def add(data: bytes, target: int | None) -> int:
        offset = sum(len(c) for c in chunks)
        chunks.append(_pad(data))
        view = {"buffer": 0, "byteOffset": offset, "byteLength": len(data)}
        if target:
            view["target"] = target
        views.append(view)
        return len(views) - 1

    def accessor(arr: np.ndarray, ctype: int, typ: str, target: int, minmax: bool = True) -> int:
        view = add(arr.tobytes(), target)
        acc = {"bufferView": view, "componentType": ctype, "count": int(len(arr)), "type": typ}
        if minmax:
            acc["min"] = np.atleast_1d(arr.min(0)).tolist()
            acc["max"] = np.atleast_1d(arr.max(0)).tolist()
        accessors.append(acc)
        return len(accessors) - 1

    attrs = {"POSITION": accessor(V, FLOAT, "VEC3", ARRAY_BUFFER), "NORMAL": accessor(N, FLOAT, "VEC3", ARRAY_BUFFER)}
    material: dict = {"name": "material", "pbrMetallicRoughness": {"metallicFactor": 0.0, "roughnessFactor": 1.0},
                      "doubleSided": False}
    gltf: dict = {"asset": {"version": "2.0", "generator": f"vid2model {__version__}"}, "scene": 0,
                  "scenes": [{"name": "scene", "nodes": [0]}], "nodes": [{"name": "model", "mesh": 0}]}
    png = None
    uv = getattr(mesh.visual, "uv", None)
    if texture is not None and uv is not None:
        T = np.asarray(uv, np.float32).copy()
        T[:, 1] = 1.0 - T[:, 1]  # glTF's UV origin is the image's top-left
        attrs["TEXCOORD_0"] = accessor(T, FLOAT, "VEC2", ARRAY_BUFFER)
        png = Path(texture).read_bytes()
        img_view = add(png, None)
        gltf["images"] = [{"bufferView": img_view, "mimeType": "image/png", "name": "texture"}]
        gltf["samplers"] = [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}]
        gltf["textures"] = [{"sampler": 0, "source": 0}]
        material["pbrMetallicRoughness"]["baseColorTexture"] = {"index": 0}
    else:
        colors = getattr(mesh.visual, "vertex_colors", None)
        if colors is not None and len(colors) == len(V):
            C = np.asarray(colors, np.float32)[:, :3] / 255.0
            attrs["COLOR_0"] = accessor(C.astype(np.float32), FLOAT, "VEC3", ARRAY_BUFFER)
    idx = accessor(F.ravel(), UINT32, "SCALAR", ELEMENT_ARRAY_BUFFER, minmax=False)
    accessors[idx]["min"] = [int(F.min())]
    accessors[idx]["max"] = [int(F.max())]
    gltf["meshes"] = [{"name": "model", "primitives": [{"attributes": attrs, "indices": idx, "material": 0,
                                                        "mode": 4}]}]
    gltf["materials"] = [material]
    gltf["accessors"] = accessors
    gltf["bufferViews"] = views
    payload = b"".join(chunks)
    gltf["buffers"] = [{"byteLength": len(payload)}]
    return gltf, payload, png


def write_gltf(path: Path, mesh, texture: Path | None) -> None:
    """Write ``.glb`` (single file) or ``.gltf`` (+ ``<stem>.bin``; texture inside the .bin)."""
    path = Path(path)
    gltf, payload, _ = build_gltf(mesh, texture)
    if path.suffix == ".glb":
        js = _pad(json.dumps(gltf, separators=(",", ":")).encode(), b" ")
        total = 12 + 8 + len(js) + 8 + len(payload)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(struct.pack("<4sII", b"glTF", 2, total))
                f.write(struct.pack("<I4s", len(js), b"JSON"))
                f.write(js)
                f.write(struct.pack("<I4s", len(payload), b"BIN\x00"))
                f.write(payload)
        return
    bin_path = path.with_suffix(".bin")
    gltf["buffers"][0]["uri"] = bin_path.name
    with atomic_path(bin_path) as tmp:
        tmp.write_bytes(payload)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(gltf, indent=1))
