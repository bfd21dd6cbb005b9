"""Run inside Blender: import each file given after '--', print one JSON line per file."""
import json
import sys

import numpy

numpy.bool = bool  # Debian's Blender 3.4 glTF importer still uses the removed alias
import bpy  # noqa: E402

for path in sys.argv[sys.argv.index("--") + 1:]:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    ext = path.rsplit(".", 1)[-1].lower()
    if ext in ("glb", "gltf"):
        bpy.ops.import_scene.gltf(filepath=path)
    elif ext == "obj":
        if hasattr(bpy.ops.wm, "obj_import"):
            bpy.ops.wm.obj_import(filepath=path)
        else:
            bpy.ops.import_scene.obj(filepath=path)
    elif ext == "fbx":
        bpy.ops.import_scene.fbx(filepath=path)
    tris, textured = 0, False
    for ob in bpy.data.objects:
        if ob.type != "MESH":
            continue
        me = ob.data
        me.calc_loop_triangles()
        tris += len(me.loop_triangles)
        for mat in me.materials:
            if mat and mat.use_nodes:
                for node in mat.node_tree.nodes:
                    if node.type == "TEX_IMAGE" and node.image is not None and node.image.size[0] > 0:
                        textured = True
    print("RESULT " + json.dumps({"file": path, "triangles": tris, "textured": textured}))
