"""Read an FBX with ufbx (strict) in a child process and hand back plain arrays.

ufbx 0.0.5's Python binding (the only release) corrupts the heap when its scene objects are
garbage-collected: it appears to reuse a freed element wrapper (touch `node.mesh`, let it go, then read
`scene.meshes[0]`: segfault), and inside pytest the crash lands in whichever later test triggers a
collection. The child holds on to every wrapper it touches, copies out what the tests compare and
leaves with os._exit, so no ufbx object is ever freed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

_CHILD = r"""
import json, os, sys
import numpy as np
import ufbx
src, out = sys.argv[1], sys.argv[2]
scene = ufbx.load_file(src, strict=True, disable_quirks=True)
keep = [scene]  # every wrapper stays referenced until os._exit (see the module docstring)


def held(obj):
    keep.append(obj)
    return obj


arrays, meta = {}, {}
meta["warnings"] = [str(held(w)) for w in held(held(scene.metadata).warnings)]
meta["version"] = int(held(scene.metadata).version)
settings = held(scene.settings)
meta["up_is_positive_y"] = held(settings.axes).up == ufbx.CoordinateAxis.POSITIVE_Y
meta["unit_meters"] = float(settings.unit_meters)
meta["mesh_nodes"] = [held(n).name for n in held(scene.nodes) if held(n.mesh) is not None]
meta["n_textures"] = len(held(scene.textures))
meta["meshes"] = []
for i, mesh in enumerate(held(scene.meshes)):
    held(mesh)
    m = {"num_triangles": int(mesh.num_triangles), "max_face_triangles": int(mesh.max_face_triangles),
         "materials": [], "texture_content": []}
    for attr in ("vertex_position", "vertex_uv", "vertex_normal", "vertex_color"):
        a = held(getattr(mesh, attr))
        m[attr] = bool(a.exists)
        if a.exists:
            arrays[f"{i}_{attr}"] = np.array(held(a.values))[np.array(held(a.indices))]
    for mat in held(mesh.materials):
        m["materials"].append(held(mat).name)
        tex = held(held(held(mat.fbx).diffuse_color).texture)
        m["texture_content"].append(None if tex is None else bytes(tex.content).hex())
    meta["meshes"].append(m)
np.savez(out + ".npz", **arrays)
with open(out + ".json", "w") as f:
    json.dump(meta, f)
sys.stdout.flush()
os._exit(0)
"""


def read_with_ufbx(path: Path, scratch: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(metadata, arrays) of the FBX at path; arrays are per-corner: '{mesh}_{vertex_attr}' [C, k]."""
    import json

    out = scratch / "ufbx_probe"
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(out)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"ufbx child failed ({proc.returncode}): {proc.stderr[-2000:]}"
    meta = json.loads(Path(f"{out}.json").read_text())
    with np.load(f"{out}.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return meta, arrays
