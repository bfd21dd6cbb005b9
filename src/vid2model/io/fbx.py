"""A binary FBX 7.4 writer for one textured triangle mesh (no good Python writer exists).

Layout per the public descriptions of the binary format: a 27-byte header, node records
(end offset, property count, property bytes, name) holding typed properties, nested records closed
by a 13-byte null record, and the footer. Geometry carries per-corner normals, UVs (IndexToDirect)
and one material whose diffuse colour is a texture (the image is embedded in the Video node), or
per-corner vertex colours when there is no texture. Validated with Blender's importer and ufbx (strict).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

VERSION = 7400
HEADER = b"Kaydara FBX Binary  \x00\x1a\x00"
NULL_RECORD = b"\x00" * 13
FOOTER_ID = bytes([0xFA, 0xBC, 0xAB, 0x09, 0xD0, 0xC8, 0xD4, 0x66, 0xB1, 0x76, 0xFB, 0x83, 0x1C, 0xF7, 0x26, 0x7E])
# Fixed file id / creation time that Autodesk's SDK expects to pair with the footer id above.
FILE_ID = bytes([0x28, 0xB3, 0x2A, 0xEB, 0xB6, 0x24, 0xCC, 0xC2, 0xBF, 0xC8, 0xB0, 0x2A, 0xA9, 0x2B, 0xFC, 0xF1])
CREATION_TIME = "1970-01-01 10:00:00:000"
FOOTER_MAGIC = bytes([0xF8, 0x5A, 0x8C, 0x6A, 0xDE, 0xF5, 0xD9, 0x7E, 0xEC, 0xE9, 0x0C, 0xE3, 0x75, 0x8F, 0x29, 0x0B])


class Node:
    """An FBX node: a name, typed properties and child nodes."""

    def __init__(self, name: str, *props: Any, children: list["Node"] | None = None):
        self.name, self.props, self.children = name, list(props), children or []

    def add(self, name: str, *props: Any) -> "Node":
        child = Node(name, *props)
        self.children.append(child)
        return child


class Raw(bytes):
    """Marks a property as raw binary ('R')."""


class Id(int):
    """Marks an integer as a 64-bit property ('L'): object ids and connection ends."""


def _prop(p: Any) -> bytes:
    if isinstance(p, Raw):
        return b"R" + struct.pack("<I", len(p)) + p
    if isinstance(p, Id):
        return b"L" + struct.pack("<q", p)
    if isinstance(p, bool):
        return b"C" + struct.pack("<?", p)
    if isinstance(p, int):
        return (b"I" + struct.pack("<i", p)) if -2**31 <= p < 2**31 else (b"L" + struct.pack("<q", p))
    if isinstance(p, float):
        return b"D" + struct.pack("<d", p)
    if isinstance(p, str):
        b = p.encode("utf-8")
        return b"S" + struct.pack("<I", len(b)) + b
    if isinstance(p, bytes):
        return b"S" + struct.pack("<I", len(p)) + p
    if isinstance(p, np.ndarray):
        code = {np.dtype("float64"): b"d", np.dtype("float32"): b"f", np.dtype("int32"): b"i",
                np.dtype("int64"): b"l"}[p.dtype]
        raw = np.ascontiguousarray(p).tobytes()
        if len(raw) < 128:  # tiny arrays stay plain, as other writers do
            return code + struct.pack("<III", len(p), 0, len(raw)) + raw
        packed = zlib.compress(raw, 1)  # level 1: most of the gain at a fraction of the time
        return code + struct.pack("<III", len(p), 1, len(packed)) + packed
    raise TypeError(f"unsupported FBX property {type(p).__name__}")


def _encode(node: Node, offset: int) -> bytes:
    props = b"".join(_prop(p) for p in node.props)
    name = node.name.encode()
    head_len = 13 + len(name) + len(props)
    body = b""
    pos = offset + head_len
    for child in node.children:
        enc = _encode(child, pos)
        body += enc
        pos += len(enc)
    if node.children or not node.props:
        body += NULL_RECORD
    end = offset + head_len + len(body)
    return struct.pack("<IIIB", end, len(node.props), len(props), len(name)) + name + props + body


def _p70(*entries: tuple) -> Node:
    n = Node("Properties70")
    for e in entries:
        n.add("P", *e)
    return n


def _name(name: str, cls: str) -> bytes:
    return name.encode() + b"\x00\x01" + cls.encode()


def build_document(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray | None, normals: np.ndarray | None,
                   texture: Path | None, unit_scale_cm: float = 100.0, colors: np.ndarray | None = None,
                   name: str = "model") -> list[Node]:
    """Top-level FBX nodes for one mesh (Y-up, units of ``unit_scale_cm`` centimetres).

    Args:
        vertices: (V, 3) float; faces: (F, 3) int; uvs: (V, 2) or None; normals: (V, 3) or None;
        colors: (V, 3|4) uint8 vertex colours or None; texture: PNG/JPEG embedded in the Video node.
    """
    ids = {k: Id(2_000_000_000_000 + i) for i, k in enumerate(("model", "geom", "mat", "tex", "video", "doc"))}
    header = Node("FBXHeaderExtension", children=[
        Node("FBXHeaderVersion", 1003), Node("FBXVersion", VERSION), Node("EncryptionType", 0),
        Node("CreationTimeStamp", children=[Node("Version", 1000), Node("Year", 2026), Node("Month", 1),
                                            Node("Day", 1), Node("Hour", 0), Node("Minute", 0), Node("Second", 0),
                                            Node("Millisecond", 0)]),
        Node("Creator", "vid2model")])
    file_id = Node("FileId", Raw(FILE_ID))
    creation = Node("CreationTime", CREATION_TIME)
    creator = Node("Creator", "vid2model")
    gs = Node("GlobalSettings", children=[Node("Version", 1000), _p70(
        ("UpAxis", "int", "Integer", "", 1), ("UpAxisSign", "int", "Integer", "", 1),
        ("FrontAxis", "int", "Integer", "", 2), ("FrontAxisSign", "int", "Integer", "", 1),
        ("CoordAxis", "int", "Integer", "", 0), ("CoordAxisSign", "int", "Integer", "", 1),
        ("OriginalUpAxis", "int", "Integer", "", 1), ("OriginalUpAxisSign", "int", "Integer", "", 1),
        ("UnitScaleFactor", "double", "Number", "", float(unit_scale_cm)),
        ("OriginalUnitScaleFactor", "double", "Number", "", float(unit_scale_cm)))])
    textured = texture is not None and uvs is not None
    types = [("GlobalSettings", 1), ("Model", 1), ("Geometry", 1), ("Material", 1)]
    if textured:
        types += [("Texture", 1), ("Video", 1)]
    defs = Node("Definitions", children=[Node("Version", 100), Node("Count", sum(c for _, c in types))] +
                [Node("ObjectType", t, children=[Node("Count", c)]) for t, c in types])

    F = faces.astype(np.int32)
    pvi = F.copy()
    pvi[:, 2] = -pvi[:, 2] - 1  # the last corner of each polygon is stored as ~index
    geom = Node("Geometry", ids["geom"], _name(name, "Geometry"), "Mesh", children=[
        Node("Vertices", np.ascontiguousarray(vertices, np.float64).ravel()),
        Node("PolygonVertexIndex", pvi.ravel()),
        Node("GeometryVersion", 124)])
    layer = Node("Layer", 0, children=[Node("Version", 100)])
    if normals is not None:
        geom.children.append(Node("LayerElementNormal", 0, children=[
            Node("Version", 101), Node("Name", ""), Node("MappingInformationType", "ByPolygonVertex"),
            Node("ReferenceInformationType", "Direct"),
            Node("Normals", np.ascontiguousarray(normals[F].reshape(-1, 3), np.float64).ravel())]))
        layer.children.append(Node("LayerElement", children=[Node("Type", "LayerElementNormal"),
                                                             Node("TypedIndex", 0)]))
    if colors is not None:
        rgba = np.ones((len(colors), 4))
        rgba[:, :3] = np.asarray(colors)[:, :3] / 255.0
        geom.children.append(Node("LayerElementColor", 0, children=[
            Node("Version", 101), Node("Name", "Col"), Node("MappingInformationType", "ByPolygonVertex"),
            Node("ReferenceInformationType", "IndexToDirect"), Node("Colors", rgba.ravel()),
            Node("ColorIndex", F.ravel())]))
        layer.children.append(Node("LayerElement", children=[Node("Type", "LayerElementColor"),
                                                             Node("TypedIndex", 0)]))
    if uvs is not None:
        geom.children.append(Node("LayerElementUV", 0, children=[
            Node("Version", 101), Node("Name", "UVMap"), Node("MappingInformationType", "ByPolygonVertex"),
            Node("ReferenceInformationType", "IndexToDirect"),
            Node("UV", np.ascontiguousarray(uvs, np.float64).ravel()),
            Node("UVIndex", F.ravel())]))
        layer.children.append(Node("LayerElement", children=[Node("Type", "LayerElementUV"), Node("TypedIndex", 0)]))
    geom.children.append(Node("LayerElementMaterial", 0, children=[
        Node("Version", 101), Node("Name", ""), Node("MappingInformationType", "AllSame"),
        Node("ReferenceInformationType", "IndexToDirect"), Node("Materials", np.zeros(1, np.int32))]))
    layer.children.append(Node("LayerElement", children=[Node("Type", "LayerElementMaterial"), Node("TypedIndex", 0)]))
    geom.children.append(layer)

    model = Node("Model", ids["model"], _name(name, "Model"), "Mesh", children=[
        Node("Version", 232), _p70(("Lcl Translation", "Lcl Translation", "", "A", 0.0, 0.0, 0.0),
                                   ("Lcl Rotation", "Lcl Rotation", "", "A", 0.0, 0.0, 0.0),
                                   ("Lcl Scaling", "Lcl Scaling", "", "A", 1.0, 1.0, 1.0)),
        Node("Shading", True), Node("Culling", "CullingOff")])
    mat = Node("Material", ids["mat"], _name(f"{name}_material", "Material"), "", children=[
        Node("Version", 102), Node("ShadingModel", "phong"), Node("MultiLayer", 0),
        _p70(("DiffuseColor", "Color", "", "A", 0.8, 0.8, 0.8), ("DiffuseFactor", "Number", "", "A", 1.0),
             ("SpecularFactor", "Number", "", "A", 0.0), ("ShininessExponent", "Number", "", "A", 2.0))])
    objects = Node("Objects", children=[geom, model, mat])
    conns = Node("Connections", children=[Node("C", "OO", ids["model"], Id(0)),
                                          Node("C", "OO", ids["geom"], ids["model"]),
                                          Node("C", "OO", ids["mat"], ids["model"])])
    if textured:
        fname = Path(texture).name
        objects.children.append(Node("Video", ids["video"], _name("texture", "Video"), "Clip", children=[
            Node("Type", "Clip"), _p70(("Path", "KString", "XRefUrl", "", fname)), Node("UseMipMap", 0),
            Node("Filename", fname), Node("RelativeFilename", fname),
            Node("Content", Raw(Path(texture).read_bytes()))]))
        objects.children.append(Node("Texture", ids["tex"], _name("texture", "Texture"), "", children=[
            Node("Type", "TextureVideoClip"), Node("Version", 202), Node("TextureName", _name("texture", "Texture")),
            _p70(("UseMaterial", "bool", "", "", 1)), Node("Media", _name("texture", "Video")),
            Node("FileName", fname), Node("RelativeFilename", fname),
            Node("ModelUVTranslation", 0.0, 0.0), Node("ModelUVScaling", 1.0, 1.0),
            Node("Texture_Alpha_Source", "None"), Node("Cropping", 0, 0, 0, 0)]))
        conns.children += [Node("C", "OP", ids["tex"], ids["mat"], "DiffuseColor"),
                           Node("C", "OO", ids["video"], ids["tex"])]
    docs = Node("Documents", children=[Node("Count", 1), Node("Document", ids["doc"], "Scene", "Scene", children=[
        _p70(("SourceObject", "object", "", ""), ("ActiveAnimStackName", "KString", "", "", "")),
        Node("RootNode", Id(0))])])
    return [header, file_id, creation, creator, gs, docs, Node("References"), defs, objects, conns]


def write_fbx(path: Path, vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray | None = None,
              normals: np.ndarray | None = None, texture: Path | None = None, unit_scale_cm: float = 100.0,
              colors: np.ndarray | None = None, name: str = "model") -> None:
    """Write a binary FBX 7.4 file (vertices in metres and Y-up with the defaults; see ``build_document``)."""
    # Node offsets are 32-bit in 7.4: refuse (before any work) what could pass 4 GiB even uncompressed.
    worst = 48 * len(vertices) + 208 * len(faces) + (Path(texture).stat().st_size if texture is not None else 0)
    if worst >= 2**32:
        raise ValueError("mesh too large for FBX 7.4 (over 4 GiB); export GLB or USD instead")
    out = bytearray(HEADER + struct.pack("<I", VERSION))
    for node in build_document(vertices, faces, uvs, normals, texture, unit_scale_cm, colors, name):
        out += _encode(node, len(out))
    out += NULL_RECORD
    # Footer: id, 4 zero bytes, zero padding to a 16-byte boundary (a full 16 when already aligned),
    # version, 120 zero bytes, magic.
    out += FOOTER_ID + b"\x00" * 4
    out += b"\x00" * ((16 - len(out) % 16) % 16 or 16)
    out += struct.pack("<I", VERSION) + b"\x00" * 120 + FOOTER_MAGIC
    Path(path).write_bytes(bytes(out))


def read_fbx_nodes(path: Path) -> list[tuple[str, list[Any], list]]:
    """Minimal reader of our own binary FBX files (name, props, children): used to check round trips."""
    data = Path(path).read_bytes()
    if not data.startswith(HEADER):
        raise ValueError("not a binary FBX file")

    def prop(pos: int) -> tuple[Any, int]:
        t = data[pos:pos + 1]
        pos += 1
        if t in b"CYIFDL":
            fmt = {b"C": "<?", b"Y": "<h", b"I": "<i", b"F": "<f", b"D": "<d", b"L": "<q"}[t]
            return struct.unpack_from(fmt, data, pos)[0], pos + struct.calcsize(fmt)
        if t in b"SR":
            (n,) = struct.unpack_from("<I", data, pos)
            return data[pos + 4:pos + 4 + n], pos + 4 + n
        n, enc, clen = struct.unpack_from("<III", data, pos)
        raw = data[pos + 12:pos + 12 + clen]
        raw = zlib.decompress(raw) if enc else raw
        dt = {b"d": np.float64, b"f": np.float32, b"i": np.int32, b"l": np.int64, b"b": np.bool_}[t]
        return np.frombuffer(raw, dt, n), pos + 12 + clen

    def node(pos: int):
        end, nprops, _plen, nlen = struct.unpack_from("<IIIB", data, pos)
        if end == 0:
            return None, pos + 13
        name = data[pos + 13:pos + 13 + nlen].decode()
        pos += 13 + nlen
        props = []
        for _ in range(nprops):
            v, pos = prop(pos)
            props.append(v)
        children = []
        while pos < end:
            child, pos = node(pos)
            if child is not None:
                children.append(child)
        return (name, props, children), end

    pos, nodes = len(HEADER) + 4, []
    while True:
        n, pos = node(pos)
        if n is None:
            break
        nodes.append(n)
    return nodes
