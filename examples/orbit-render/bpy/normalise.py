"""Normalise: import the picked glTF model, normalise its scale and origin over its whole
animation, save a .blend.

    model=models/windmill.glb blender -b --factory-startup -noaudio --python-exit-code 1 \
        -P bpy/normalise.py -- out/scene.blend out/model.json

- `model` (environment): the .glb/.gltf file the filter picked.
- The model's first animation stays the active action of each animated object (the importer's
  NLA tracks are removed, so nothing else plays).
- The world bounds of the meshes are taken over the animation (sampled at 25 frames across it),
  so a moving part never leaves the frame; the model's root objects are parented to an empty
  `orbit_root` that moves the centre of those bounds to the origin and scales their largest
  dimension to 2 (the animation keeps working under it).
- Imported cameras and lights are hidden from rendering (the orbit step adds its own).
- The .blend keeps, as scene properties, the normalised bounds (`orbit_bounds_min/max`), the
  frame rate the animation was imported at (`orbit_import_fps`) and its frame range
  (`orbit_anim_start/end`) for the later steps. Writes a JSON of the model's statistics.
Exit status: 2 bad parameters, 3 a model that cannot be imported, has no meshes or no animation,
4 anything else.
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

from common import EXIT_BAD_MODEL, OrbitError, env_str, log, main, save_blend, script_args, write_json  # noqa: E402

NAME = "normalise"
TARGET_SIZE = 2.0
BOUNDS_SAMPLES = 25


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
    return lo, hi


def bounds_over(scene, meshes, frames):
    lo = numpy.full(3, numpy.inf)
    hi = numpy.full(3, -numpy.inf)
    for frame in frames:
        scene.frame_set(int(frame), subframe=float(frame) - int(frame))
        flo, fhi = world_bounds(meshes)
        lo, hi = numpy.minimum(lo, flo), numpy.maximum(hi, fhi)
    if not numpy.all(numpy.isfinite(lo)):
        return None
    return Vector(lo.tolist()), Vector(hi.tolist())


def rounded(v):
    return [round(x, 6) + 0.0 for x in v]


def import_model(path):
    if not os.path.isfile(path):
        raise OrbitError(f"model '{path}' does not exist (cwd {os.getcwd()})", EXIT_BAD_MODEL)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    try:
        result = bpy.ops.import_scene.gltf(filepath=os.path.abspath(path))
    except Exception as e:  # the importer reports through a RuntimeError
        detail = " ".join(str(e).split()).removeprefix("Error: ")
        raise OrbitError(f"cannot import model '{path}': {detail}", EXIT_BAD_MODEL) from None
    if "FINISHED" not in result:
        raise OrbitError(f"cannot import model '{path}': the glTF importer returned {sorted(result)}", EXIT_BAD_MODEL)


def body():
    blend_out, stats_out = script_args(2, "OUT.blend OUT_STATS.json")
    model = env_str("model")
    log(NAME, f"importing {model}")
    import_model(model)

    scene = bpy.context.scene
    animated = [o for o in scene.objects if o.animation_data is not None and o.animation_data.action is not None]
    for o in scene.objects:
        if o.animation_data is not None:
            for track in list(o.animation_data.nla_tracks):
                o.animation_data.nla_tracks.remove(track)
    if not animated:
        raise OrbitError(f"model '{model}' has no animation Blender can play (was it picked by the filter?)", EXIT_BAD_MODEL)
    anim_start = min(o.animation_data.action.frame_range[0] for o in animated)
    anim_end = max(o.animation_data.action.frame_range[1] for o in animated)

    meshes = [o for o in scene.objects if o.type == "MESH"]
    for o in scene.objects:
        if o.type in ("CAMERA", "LIGHT"):
            o.hide_render = True
    samples = numpy.linspace(anim_start, anim_end, BOUNDS_SAMPLES)
    bounds = bounds_over(scene, meshes, samples)
    if bounds is None:
        raise OrbitError(f"model '{model}' has no mesh geometry to render", EXIT_BAD_MODEL)
    lo, hi = bounds
    size = hi - lo
    largest = max(size)
    scale = TARGET_SIZE / largest if largest > 0 else 1.0
    centre = (lo + hi) / 2

    roots = [o for o in scene.objects if o.parent is None]
    root = bpy.data.objects.new("orbit_root", None)
    scene.collection.objects.link(root)
    root.matrix_world = Matrix.Diagonal((scale, scale, scale, 1.0)) @ Matrix.Translation(-centre)
    for o in roots:
        o.parent = root
        o.matrix_parent_inverse = Matrix.Identity(4)
    bpy.context.view_layer.update()
    nlo, nhi = bounds_over(scene, meshes, samples)
    scene.frame_set(int(anim_start))

    depsgraph = bpy.context.evaluated_depsgraph_get()
    vertices = triangles = 0
    for o in meshes:
        mesh = o.evaluated_get(depsgraph).data
        mesh.calc_loop_triangles()
        vertices += len(mesh.vertices)
        triangles += len(mesh.loop_triangles)
    try:
        bpy.ops.file.pack_all()
    except RuntimeError as e:
        log(NAME, f"warning: could not pack every image: {' '.join(str(e).split())}")

    scene["orbit_bounds_min"] = list(nlo)
    scene["orbit_bounds_max"] = list(nhi)
    scene["orbit_import_fps"] = scene.render.fps / scene.render.fps_base
    scene["orbit_anim_start"] = float(anim_start)
    scene["orbit_anim_end"] = float(anim_end)
    stats = {
        "model": model,
        "file_bytes": os.path.getsize(model),
        "mesh_objects": len(meshes),
        "vertices": vertices,
        "triangles": triangles,
        "materials": len(bpy.data.materials),
        "animated_objects": sorted(o.name for o in animated),
        "actions": sorted({o.animation_data.action.name for o in animated}),
        "animation": {"import_fps": scene["orbit_import_fps"], "frame_start": anim_start, "frame_end": anim_end, "seconds": round((anim_end - anim_start) / scene["orbit_import_fps"], 6)},
        "bounds": {"min": rounded(lo), "max": rounded(hi), "size": rounded(size)},
        "normalised": {"scale": round(scale, 6), "offset": rounded(-centre), "min": rounded(nlo), "max": rounded(nhi)},
    }
    write_json(stats_out, stats)
    save_blend(blend_out)
    log(NAME, f"{len(meshes)} mesh object(s), {triangles} triangles, {len(animated)} animated object(s), scale {scale:.4g}; wrote {blend_out} and {stats_out}")


main(NAME, body)
