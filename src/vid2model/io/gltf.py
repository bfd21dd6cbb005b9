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


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] to linear (glTF vertex colours are linear)."""
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def build_gltf(vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray | None = None,
               uvs: np.ndarray | None = None, texture: Path | None = None, colors: np.ndarray | None = None,
               name: str = "model") -> tuple[dict, bytes]:
    """glTF JSON (without buffer URIs) and the binary payload (image included).

    Args:
        vertices: (V, 3) Y-up metres; faces: (F, 3); normals: (V, 3) or None;
        uvs: (V, 2) with the OBJ convention (origin bottom-left) or None; texture: PNG/JPEG file;
        colors: (V, 3) uint8 sRGB vertex colours, used when there is no texture.
    """
    V = np.ascontiguousarray(vertices, np.float32)
    F = np.ascontiguousarray(faces, np.uint32)
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

    attrs = {"POSITION": accessor(V, FLOAT, "VEC3", ARRAY_BUFFER)}
    if normals is not None:
        N = np.asarray(normals, np.float64)
        N = N / np.maximum(np.linalg.norm(N, axis=1, keepdims=True), 1e-12)
        attrs["NORMAL"] = accessor(N.astype(np.float32), FLOAT, "VEC3", ARRAY_BUFFER)
    material: dict = {"name": f"{name}_material",
                      "pbrMetallicRoughness": {"metallicFactor": 0.0, "roughnessFactor": 1.0},
                      "doubleSided": False}
    gltf: dict = {"asset": {"version": "2.0", "generator": f"vid2model {__version__}"}, "scene": 0,
                  "scenes": [{"name": "scene", "nodes": [0]}], "nodes": [{"name": name, "mesh": 0}]}
    if texture is not None and uvs is not None:
        T = np.asarray(uvs, np.float32).copy()
        T[:, 1] = 1.0 - T[:, 1]  # glTF's UV origin is the image's top-left
        attrs["TEXCOORD_0"] = accessor(T, FLOAT, "VEC2", ARRAY_BUFFER)
        png = Path(texture).read_bytes()
        img_view = add(png, None)
        mime = "image/jpeg" if png[:3] == b"\xff\xd8\xff" else "image/png"
        gltf["images"] = [{"bufferView": img_view, "mimeType": mime, "name": Path(texture).stem}]
        gltf["samplers"] = [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}]
        gltf["textures"] = [{"sampler": 0, "source": 0}]
        material["pbrMetallicRoughness"]["baseColorTexture"] = {"index": 0}
    elif colors is not None and len(colors) == len(V):
        C = srgb_to_linear(np.asarray(colors, np.float64)[:, :3] / 255.0)
        attrs["COLOR_0"] = accessor(C.astype(np.float32), FLOAT, "VEC3", ARRAY_BUFFER)
    idx = accessor(F.ravel(), UINT32, "SCALAR", ELEMENT_ARRAY_BUFFER, minmax=False)
    accessors[idx]["min"] = [int(F.min())]
    accessors[idx]["max"] = [int(F.max())]
    gltf["meshes"] = [{"name": name, "primitives": [{"attributes": attrs, "indices": idx, "material": 0,
                                                        "mode": 4}]}]
    gltf["materials"] = [material]
    gltf["accessors"] = accessors
    gltf["bufferViews"] = views
    payload = b"".join(chunks)
    gltf["buffers"] = [{"byteLength": len(payload)}]
    return gltf, payload


def write_gltf(path: Path, vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray | None = None,
               uvs: np.ndarray | None = None, texture: Path | None = None, colors: np.ndarray | None = None,
               name: str = "model") -> list[Path]:
    """Write ``.glb`` (single file) or ``.gltf`` (+ ``<stem>.bin``, texture inside it); see ``build_gltf``.

    Returns every file written (``path`` first).
    """
    path = Path(path)
    gltf, payload = build_gltf(vertices, faces, normals, uvs, texture, colors, name)
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
        return [path]
    bin_path = path.with_suffix(".bin")
    gltf["buffers"][0]["uri"] = bin_path.name
    with atomic_path(bin_path) as tmp:
        tmp.write_bytes(payload)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(gltf, indent=1))
    return [path, bin_path]
