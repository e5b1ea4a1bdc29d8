"""Makes models/windmill.glb, the bundled animated model: a windmill whose rotor turns.

    blender -b --factory-startup -noaudio --python-exit-code 1 -P bpy/make_windmill.py -- models/windmill.glb

A green base plate, a white tower, a grey nacelle on top and a rotor of four red blades on a
yellow hub. The rotor turns once every 2 seconds about the nacelle's axis (linear, so the
animation loops without a jerk); the whole model is about 3.4 units tall. Only meshes and one
animation are exported (no camera, no light), as a single binary glTF file.
"""
import math
import os
import sys

sys.dont_write_bytecode = True

import numpy  # noqa: E402

# Debian's numpy 1.24 removed numpy.bool, which Blender 3.4's glTF exporter still uses.
numpy.bool = bool

import bpy  # noqa: E402
from mathutils import Matrix  # noqa: E402

FPS = 24
TURN_S = 2.0


def material(name, rgb, roughness=0.6):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*rgb, 1.0)
    bsdf.inputs["Roughness"].default_value = roughness
    mat.diffuse_color = (*rgb, 1.0)
    return mat


def box(name, size, location, mat, parent=None):
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0.0, 0.0, 0.0))
    obj = bpy.context.active_object
    obj.name = name
    obj.data.name = name
    obj.scale = size
    bpy.ops.object.transform_apply(location=False, rotation=False, scale=True)
    obj.location = location
    obj.data.materials.append(mat)
    if parent is not None:
        obj.parent = parent
    return obj


def main():
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    if len(argv) != 1:
        print("usage: blender -b --factory-startup -noaudio -P bpy/make_windmill.py -- OUT.glb", file=sys.stderr)
        sys.exit(2)
    out = os.path.abspath(argv[0])
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps = FPS
    end = int(TURN_S * FPS)
    scene.frame_start, scene.frame_end = 0, end

    green = material("grass", (0.18, 0.45, 0.16))
    white = material("tower", (0.85, 0.84, 0.8))
    grey = material("nacelle", (0.35, 0.37, 0.4))
    red = material("blade", (0.75, 0.1, 0.08))
    yellow = material("hub", (0.9, 0.7, 0.1))

    box("base", (2.0, 2.0, 0.12), (0.0, 0.0, 0.06), green)
    box("tower", (0.34, 0.34, 2.2), (0.0, 0.0, 1.22), white)
    box("nacelle", (0.4, 0.7, 0.36), (0.0, 0.05, 2.42), grey)
    # The rotor turns about its local Y axis (the nacelle points along -Y, the front view).
    rotor = bpy.data.objects.new("rotor", None)
    scene.collection.objects.link(rotor)
    rotor.location = (0.0, -0.42, 2.42)
    box("hub", (0.22, 0.2, 0.22), (0.0, 0.0, 0.0), yellow, parent=rotor)
    for i in range(4):
        blade = box(f"blade_{i}", (0.16, 0.04, 0.9), (0.0, -0.04, 0.0), red, parent=rotor)
        # Each blade reaches out from the hub: move along its own length, then turn about Y.
        blade.data.transform(Matrix.Translation((0.0, 0.0, 0.55)))
        blade.rotation_euler = (0.0, i * math.pi / 2, 0.0)

    rotor.rotation_mode = "XYZ"
    rotor.rotation_euler = (0.0, 0.0, 0.0)
    rotor.keyframe_insert("rotation_euler", index=1, frame=0)
    rotor.rotation_euler = (0.0, -2.0 * math.pi, 0.0)
    rotor.keyframe_insert("rotation_euler", index=1, frame=end)
    for fc in rotor.animation_data.action.fcurves:
        for kp in fc.keyframe_points:
            kp.interpolation = "LINEAR"
    rotor.animation_data.action.name = "rotor_turn"

    os.makedirs(os.path.dirname(out), exist_ok=True)
    bpy.ops.export_scene.gltf(
        filepath=out,
        export_format="GLB",
        export_animations=True,
        export_frame_range=True,
        export_force_sampling=True,
        export_cameras=False,
        export_lights=False,
        export_apply=True,
    )
    print(f"windmill: wrote {out} ({os.path.getsize(out)} bytes)")


main()
