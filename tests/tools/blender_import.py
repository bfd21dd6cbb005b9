"""Run inside Blender: import each file given after '--', print one ``RESULT {json}`` line per file.

Reports triangle count, whether a material has an image texture node with a loaded image, the world-space
bounding box (Blender is +Z up, metres: it undoes each format's axis/unit convention) and a sample of
(world position, UV) pairs so the caller can check the UV convention against the source mesh.
"""
import json
import sys

import numpy

numpy.bool = bool  # Debian's Blender 3.4 glTF importer still uses the removed alias
import bpy  # noqa: E402

for path in sys.argv[sys.argv.index("--") + 1:]:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    ext = path.rsplit(".", 1)[-1].lower()
    try:
        if ext in ("glb", "gltf"):
            bpy.ops.import_scene.gltf(filepath=path)
        elif ext == "obj":
            if hasattr(bpy.ops.wm, "obj_import"):
                bpy.ops.wm.obj_import(filepath=path)
            else:
                bpy.ops.import_scene.obj(filepath=path)
        elif ext == "fbx":
            bpy.ops.import_scene.fbx(filepath=path)
    except Exception as exc:  # report, keep going with the other files
        print("RESULT " + json.dumps({"file": path, "error": repr(exc)}))
        continue
    tris, textured, lo, hi, samples = 0, False, [1e30] * 3, [-1e30] * 3, []
    for ob in bpy.data.objects:
        if ob.type != "MESH":
            continue
        me = ob.data
        me.calc_loop_triangles()
        tris += len(me.loop_triangles)
        world = [ob.matrix_world @ v.co for v in me.vertices]
        for co in world:
            lo = [min(a, b) for a, b in zip(lo, co)]
            hi = [max(a, b) for a, b in zip(hi, co)]
        uv_layer = me.uv_layers.active
        if uv_layer is not None:
            step = max(1, len(me.loops) // 60)
            for li in range(0, len(me.loops), step):
                co = world[me.loops[li].vertex_index]
                samples.append([list(co), list(uv_layer.data[li].uv)])
        for mat in me.materials:
            if mat and mat.use_nodes:
                for node in mat.node_tree.nodes:
                    if node.type == "TEX_IMAGE" and node.image is not None and node.image.size[0] > 0:
                        textured = True
    print("RESULT " + json.dumps({"file": path, "triangles": tris, "textured": textured, "bbox": [lo, hi],
                                  "uv_samples": samples}))
