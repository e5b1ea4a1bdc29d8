"""Scene prep: import a glTF model, normalise its scale and origin, save a .blend.

    model=path/to/model.glb blender -b --factory-startup -noaudio --python-exit-code 1 \
        -P bpy/prep.py -- out/scene.blend out/model.json

- `model` (environment): the .glb/.gltf file, relative to the working directory or absolute.
- The model's root objects are parented to an empty `thumbnail_root` that moves the centre of
  the world bounds to the origin and scales the largest dimension to 2 (animations keep working).
- Imported cameras and lights are hidden from rendering (the camera step sets its own).
- Writes the .blend (images packed) and a JSON of model statistics.
Exit status: 2 bad parameters, 3 a model that cannot be read or has no meshes, 4 anything else.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy  # noqa: E402

# Debian's numpy 1.24 removed numpy.bool, which Blender 3.4's glTF importer still uses.
numpy.bool = bool

import bpy  # noqa: E402
from mathutils import Matrix, Vector  # noqa: E402

from common import EXIT_BAD_MODEL, ThumbnailError, env_str, log, main, save_blend, script_args, write_json  # noqa: E402

NAME = "prep"
TARGET_SIZE = 2.0


def world_bounds(objects):
    lo = numpy.full(3, numpy.inf)
    hi = numpy.full(3, -numpy.inf)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    for obj in objects:
        mesh = obj.evaluated_get(depsgraph).data
        n = len(mesh.vertices)
        if n == 0:
            continue
        co = numpy.empty(n * 3, dtype=numpy.float64)
        mesh.vertices.foreach_get("co", co)
        co = co.reshape(n, 3)
        m = numpy.array(obj.matrix_world, dtype=numpy.float64)
        world = co @ m[:3, :3].T + m[:3, 3]
        lo = numpy.minimum(lo, world.min(axis=0))
        hi = numpy.maximum(hi, world.max(axis=0))
    if not numpy.all(numpy.isfinite(lo)):
        return None
    return Vector(lo.tolist()), Vector(hi.tolist())


def rounded(v):
    return [round(x, 6) + 0.0 for x in v]


def import_model(path):
    if not os.path.exists(path):
        raise ThumbnailError(f"model '{path}' does not exist (cwd {os.getcwd()})", EXIT_BAD_MODEL)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".glb", ".gltf"):
        raise ThumbnailError(f"model '{path}' is not a glTF file (.glb or .gltf)", EXIT_BAD_MODEL)
    if os.path.getsize(path) == 0:
        raise ThumbnailError(f"model '{path}' is empty", EXIT_BAD_MODEL)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    try:
        result = bpy.ops.import_scene.gltf(filepath=os.path.abspath(path))
    except Exception as e:  # the importer reports through a RuntimeError
        detail = " ".join(str(e).split()).removeprefix("Error: ")
        raise ThumbnailError(f"cannot import model '{path}': {detail}", EXIT_BAD_MODEL) from None
    if "FINISHED" not in result:
        raise ThumbnailError(f"cannot import model '{path}': the glTF importer returned {sorted(result)}", EXIT_BAD_MODEL)


def body():
    blend_out, stats_out = script_args(2, "OUT.blend OUT_STATS.json")
    model = env_str("model")
    log(NAME, f"importing {model}")
    import_model(model)

    scene = bpy.context.scene
    scene.frame_set(scene.frame_start)
    meshes = [o for o in scene.objects if o.type == "MESH"]
    for o in scene.objects:
        if o.type in ("CAMERA", "LIGHT"):
            o.hide_render = True
    bounds = world_bounds(meshes)
    if bounds is None:
        raise ThumbnailError(f"model '{model}' has no mesh geometry to render", EXIT_BAD_MODEL)
    lo, hi = bounds
    size = hi - lo
    largest = max(size)
    scale = TARGET_SIZE / largest if largest > 0 else 1.0
    centre = (lo + hi) / 2

    roots = [o for o in scene.objects if o.parent is None]
    root = bpy.data.objects.new("thumbnail_root", None)
    scene.collection.objects.link(root)
    root.matrix_world = Matrix.Diagonal((scale, scale, scale, 1.0)) @ Matrix.Translation(-centre)
    for o in roots:
        o.parent = root
        o.matrix_parent_inverse = Matrix.Identity(4)
    bpy.context.view_layer.update()
    nlo, nhi = world_bounds(meshes)

    depsgraph = bpy.context.evaluated_depsgraph_get()
    vertices = triangles = 0
    for o in meshes:
        mesh = o.evaluated_get(depsgraph).data
        mesh.calc_loop_triangles()
        vertices += len(mesh.vertices)
        triangles += len(mesh.loop_triangles)
    images = [i for i in bpy.data.images if i.type == "IMAGE"]
    try:
        bpy.ops.file.pack_all()
    except RuntimeError as e:
        log(NAME, f"warning: could not pack every image: {' '.join(str(e).split())}")

    stats = {
        "model": model,
        "file_bytes": os.path.getsize(model),
        "objects": len(scene.objects) - 1,
        "mesh_objects": len(meshes),
        "meshes": len({o.data.name for o in meshes}),
        "vertices": vertices,
        "triangles": triangles,
        "materials": len(bpy.data.materials),
        "images": len(images),
        "animations": len(bpy.data.actions),
        "bounds": {"min": rounded(lo), "max": rounded(hi), "size": rounded(size)},
        "normalised": {"scale": round(scale, 6), "offset": rounded(-centre), "min": rounded(nlo), "max": rounded(nhi)},
    }
    write_json(stats_out, stats)
    save_blend(blend_out)
    log(NAME, f"{len(meshes)} mesh object(s), {triangles} triangles, scale {scale:.4g}; wrote {blend_out} and {stats_out}")


main(NAME, body)
