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

BYTE, UBYTE, USHORT, UINT32, FLOAT = 5120, 5121, 5123, 5125, 5126
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963


def _pad(b: bytes, fill: bytes = b"\x00") -> bytes:
    return b + fill * ((4 - len(b) % 4) % 4)


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] to linear (glTF vertex colours are linear)."""
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    """Linear values in [0, 1] to sRGB encoding: the inverse of :func:`srgb_to_linear`."""
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def build_gltf(vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray | None = None,
               uvs: np.ndarray | None = None, texture: Path | bytes | None = None,
               colors: np.ndarray | None = None, name: str = "model", quantize: bool = False) -> tuple[dict, bytes]:
    """glTF JSON (without buffer URIs) and the binary payload (image included).

    Args:
        vertices: (V, 3) Y-up metres; faces: (F, 3); normals: (V, 3) or None;
        uvs: (V, 2) with the OBJ convention (origin bottom-left) or None; texture: PNG/JPEG/WebP file or its bytes
            (WebP through EXT_texture_webp, required);
        colors: (V, 3) uint8 sRGB vertex colours, used when there is no texture.
        quantize: KHR_mesh_quantization, for the web: positions as 16-bit integers on the node's
            translation and uniform scale (steps of 1/65535 of the largest extent), normals as 8-bit, UVs
            as 16-bit normalised, colours as 8-bit, 16-bit indices where they fit. About half the bytes of
            the float layout; three.js (model-viewer) reads it without a decoder.
    """
    V = np.ascontiguousarray(vertices, np.float32)
    F = np.ascontiguousarray(faces, np.uint32)
    chunks: list[bytes] = []
    views, accessors = [], []
    node: dict = {"name": name, "mesh": 0}

    def add(data: bytes, target: int | None, stride: int | None = None) -> int:
        offset = sum(len(c) for c in chunks)
        chunks.append(_pad(data))
        view = {"buffer": 0, "byteOffset": offset, "byteLength": len(data)}
        if target:
            view["target"] = target
        if stride:
            view["byteStride"] = stride
        views.append(view)
        return len(views) - 1

    def accessor(arr: np.ndarray, ctype: int, typ: str, target: int, minmax: bool = True,
                 normalized: bool = False) -> int:
        n = {"SCALAR": 1, "VEC2": 2, "VEC3": 3}[typ]
        if arr.ndim == 2 and arr.shape[1] * arr.itemsize % 4:  # vertex elements start on 4-byte boundaries
            padded = np.zeros((len(arr), -(-arr.shape[1] * arr.itemsize // 4) * 4 // arr.itemsize), arr.dtype)
            padded[:, :n] = arr
            view = add(padded.tobytes(), target, padded.shape[1] * arr.itemsize)
        else:
            view = add(arr.tobytes(), target)
        acc = {"bufferView": view, "componentType": ctype, "count": int(len(arr)), "type": typ}
        if normalized:
            acc["normalized"] = True
        if minmax:
            acc["min"] = np.atleast_1d(arr.min(0)).tolist()
            acc["max"] = np.atleast_1d(arr.max(0)).tolist()
        accessors.append(acc)
        return len(accessors) - 1

    if quantize:
        lo = V.min(0).astype(np.float64)
        step = max(float((V.max(0) - lo).max()), 1e-9) / 65535.0
        Q = np.clip(np.round((V - lo) / step), 0, 65535).astype(np.uint16)
        node.update(translation=lo.tolist(), scale=[step] * 3)
        attrs = {"POSITION": accessor(Q, USHORT, "VEC3", ARRAY_BUFFER)}
    else:
        attrs = {"POSITION": accessor(V, FLOAT, "VEC3", ARRAY_BUFFER)}
    if normals is not None:
        N = np.asarray(normals, np.float64)
        N = N / np.maximum(np.linalg.norm(N, axis=1, keepdims=True), 1e-12)
        attrs["NORMAL"] = accessor(np.round(N * 127).astype(np.int8), BYTE, "VEC3", ARRAY_BUFFER, minmax=False,
                                   normalized=True) if quantize else \
            accessor(N.astype(np.float32), FLOAT, "VEC3", ARRAY_BUFFER)
    material: dict = {"name": f"{name}_material",
                      "pbrMetallicRoughness": {"metallicFactor": 0.0, "roughnessFactor": 1.0},
                      "doubleSided": False}
    gltf: dict = {"asset": {"version": "2.0", "generator": f"vid2model {__version__}"}, "scene": 0,
                  "scenes": [{"name": "scene", "nodes": [0]}], "nodes": [node]}
    if quantize:
        gltf["extensionsUsed"] = gltf["extensionsRequired"] = ["KHR_mesh_quantization"]
    if texture is not None and uvs is not None:
        T = np.asarray(uvs, np.float32).copy()
        T[:, 1] = 1.0 - T[:, 1]  # glTF's UV origin is the image's top-left
        attrs["TEXCOORD_0"] = accessor(np.round(np.clip(T, 0, 1) * 65535).astype(np.uint16), USHORT, "VEC2",
                                       ARRAY_BUFFER, normalized=True) if quantize else \
            accessor(T, FLOAT, "VEC2", ARRAY_BUFFER)
        png = texture if isinstance(texture, bytes) else Path(texture).read_bytes()
        img_view = add(png, None)
        mime = _image_mime(png)
        gltf["images"] = [{"bufferView": img_view, "mimeType": mime,
                           "name": "texture" if isinstance(texture, bytes) else Path(texture).stem}]
        gltf["samplers"] = [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}]
        if mime == "image/webp":  # core glTF knows PNG and JPEG only; WebP is an extension every viewer must read
            gltf["textures"] = [{"sampler": 0, "extensions": {"EXT_texture_webp": {"source": 0}}}]
            for key in ("extensionsUsed", "extensionsRequired"):
                gltf[key] = gltf.get(key, []) + ["EXT_texture_webp"]
        else:
            gltf["textures"] = [{"sampler": 0, "source": 0}]
        material["pbrMetallicRoughness"]["baseColorTexture"] = {"index": 0}
    elif colors is not None and len(colors) == len(V):
        C = srgb_to_linear(np.asarray(colors, np.float64)[:, :3] / 255.0)
        attrs["COLOR_0"] = accessor(np.round(C * 255).astype(np.uint8), UBYTE, "VEC3", ARRAY_BUFFER, minmax=False,
                                    normalized=True) if quantize else \
            accessor(C.astype(np.float32), FLOAT, "VEC3", ARRAY_BUFFER)
    small = quantize and (F.size == 0 or int(F.max()) < 65535)  # 65535 is primitive restart in WebGL 2
    idx = accessor(F.ravel().astype(np.uint16) if small else F.ravel(), USHORT if small else UINT32, "SCALAR",
                   ELEMENT_ARRAY_BUFFER, minmax=False)
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


def _image_mime(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/png"


def write_gltf(path: Path, vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray | None = None,
               uvs: np.ndarray | None = None, texture: Path | bytes | None = None, colors: np.ndarray | None = None,
               name: str = "model", quantize: bool = False) -> list[Path]:
    """Write ``.glb`` (single file) or ``.gltf`` (+ ``<stem>.bin``, texture inside it); see ``build_gltf``.

    Returns every file written (``path`` first).
    """
    path = Path(path)
    gltf, payload = build_gltf(vertices, faces, normals, uvs, texture, colors, name, quantize)
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


_DTYPES = {BYTE: np.int8, UBYTE: np.uint8, 5122: np.int16, USHORT: np.uint16, UINT32: np.uint32, FLOAT: np.float32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}


def _glb_json(data: bytes, path: Path) -> tuple[dict, int]:
    if len(data) < 20:
        raise ValueError(f"{path} is not a GLB file")
    magic, _, _ = struct.unpack_from("<4sII", data, 0)
    js_len, js_type = struct.unpack_from("<I4s", data, 12)
    if magic != b"glTF" or js_type != b"JSON":
        raise ValueError(f"{path} is not a GLB file")
    return json.loads(data[20:20 + js_len]), js_len


def glb_triangles(path: Path) -> int:
    """Triangles in a GLB's meshes (indexed triangle lists), read from its JSON alone: any layout or compression."""
    gltf, _ = _glb_json(Path(path).read_bytes(), path)
    return sum(gltf["accessors"][p["indices"]]["count"] // 3 for m in gltf.get("meshes", [])
               for p in m["primitives"] if p.get("mode", 4) == 4 and "indices" in p)


def read_glb(path: Path) -> dict:
    """The one mesh of a GLB this module wrote (either layout), back in :func:`build_gltf`'s terms.

    Also reads other single-mesh GLBs whose mesh node is only translated and scaled (or has a matrix); its
    parents' transforms are not applied.

    Returns ``{"vertices": (V, 3), "faces": (F, 3), "normals": (V, 3) | None, "uvs": (V, 2) | None (OBJ
    convention), "texture": bytes | None, "colors": (V, 3) uint8 sRGB | None}``, vertices after the node's
    translation and scale.
    """
    data = Path(path).read_bytes()
    gltf, js_len = _glb_json(data, path)
    bin_start = 20 + js_len + 8
    (prim,) = gltf["meshes"][0]["primitives"]

    def read(i: int) -> np.ndarray:
        acc = gltf["accessors"][i]
        view = gltf["bufferViews"][acc["bufferView"]]
        dt = np.dtype(_DTYPES[acc["componentType"]])
        n, count = _WIDTH[acc["type"]], acc["count"]
        stride = view.get("byteStride") or n * dt.itemsize
        start = bin_start + view.get("byteOffset", 0) + acc.get("byteOffset", 0)
        rows = np.frombuffer(data, np.uint8, count=stride * count, offset=start).reshape(count, stride)
        out = rows[:, :n * dt.itemsize].copy().view(dt).reshape(count, n)
        if acc.get("normalized"):
            out = np.maximum(out / float(np.iinfo(dt).max), -1.0)
        return out if n > 1 else out.ravel()

    attrs = prim["attributes"]
    node = next((n for n in gltf.get("nodes", []) if n.get("mesh") == 0), None)
    if node is None:
        raise ValueError(f"{path}: no node holds its mesh")
    V = read(attrs["POSITION"]).astype(np.float64)
    if "matrix" in node:
        M = np.asarray(node["matrix"], np.float64).reshape(4, 4).T  # column-major
        V = V @ M[:3, :3].T + M[:3, 3]
    else:
        if "rotation" in node and not np.allclose(node["rotation"], [0, 0, 0, 1]):
            raise ValueError(f"{path}: a rotated mesh node is not read here")
        V = V * np.asarray(node.get("scale", [1.0] * 3)) + np.asarray(node.get("translation", [0.0] * 3))
    out = {"vertices": V, "faces": read(prim["indices"]).astype(np.int64).reshape(-1, 3),
           "normals": read(attrs["NORMAL"]).astype(np.float64) if "NORMAL" in attrs else None,
           "uvs": None, "texture": None, "colors": None}
    if "TEXCOORD_0" in attrs and gltf.get("images"):
        T = read(attrs["TEXCOORD_0"]).astype(np.float64)
        T[:, 1] = 1.0 - T[:, 1]
        view = gltf["bufferViews"][gltf["images"][0]["bufferView"]]
        start = bin_start + view.get("byteOffset", 0)
        out["uvs"], out["texture"] = T, data[start:start + view["byteLength"]]
    if "COLOR_0" in attrs:
        C = np.clip(read(attrs["COLOR_0"])[:, :3].astype(np.float64), 0, 1)
        out["colors"] = np.round(linear_to_srgb(C) * 255).astype(np.uint8)
    return out
