"""Orbit camera: a camera on a circle around the model, keyframed over the frame range, plus
lights and a world; the model's own animation plays on.

    configured=out/configured.blend blender -b --factory-startup -noaudio --python-exit-code 1 \
        -P bpy/orbit.py -- out/orbit-scene.blend

- `configured` (environment): the .blend written by configure.py (frame range, frame rate).
- The camera (50 mm, square frame) is the child of an empty `orbit_pivot` at the centre of the
  model's bounds (taken over its animation by normalise.py). It looks at the centre from 20
  degrees above, from far enough that the bounding sphere fits the frame with a margin, so the
  model stays in view at every angle. The pivot turns once about the vertical axis over the
  frame range, linearly: frame_start is the front view, and frame_end + 1 would be the front
  view again, so a looping video has no jump.
- A key sun and a fill sun (fixed in the world, so the light on the model changes as the camera
  goes round) and a grey world.
Exit status: 2 bad parameters, 4 anything else.
"""
import math
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bpy  # noqa: E402
from mathutils import Vector  # noqa: E402

from common import EXIT_USAGE, OrbitError, env_str, log, main, open_blend, save_blend, script_args, write_json  # noqa: E402

NAME = "orbit"
ELEVATION_DEG = 20.0
LENS_MM = 50.0
MARGIN = 1.02  # distance factor beyond the bounding sphere's exact fit


def add_sun(scene, name, strength, towards_light, angle_deg):
    """A sun shining from the direction `towards_light` (world space, from the model to the light)."""
    light = bpy.data.lights.new(name, "SUN")
    light.energy = strength
    light.angle = math.radians(angle_deg)
    obj = bpy.data.objects.new(name, light)
    obj.rotation_euler = (-Vector(towards_light).normalized()).to_track_quat("-Z", "Y").to_euler()
    scene.collection.objects.link(obj)


def body():
    (blend_out,) = script_args(1, "OUT.blend")
    open_blend(env_str("configured"))
    scene = bpy.context.scene
    if "orbit_bounds_min" not in scene or scene.frame_end < scene.frame_start:
        raise OrbitError("the scene is not configured (was it written by configure.py?)", EXIT_USAGE)
    lo = Vector(tuple(scene["orbit_bounds_min"]))
    hi = Vector(tuple(scene["orbit_bounds_max"]))
    centre = (lo + hi) / 2
    radius = max((hi - lo).length / 2, 1e-3)
    start, end = scene.frame_start, scene.frame_end
    count = end - start + 1

    cam_data = bpy.data.cameras.new("orbit_camera")
    cam_data.lens = LENS_MM
    cam_data.sensor_fit = "AUTO"
    half_fov = cam_data.angle / 2  # the frame is square, so this holds both ways
    distance = radius / math.sin(half_fov) * MARGIN
    cam_data.clip_start = max(0.001, (distance - radius) * 0.5)
    cam_data.clip_end = distance + radius * 2 + 1.0

    pivot = bpy.data.objects.new("orbit_pivot", None)
    scene.collection.objects.link(pivot)
    pivot.location = centre
    cam = bpy.data.objects.new("orbit_camera", cam_data)
    scene.collection.objects.link(cam)
    cam.parent = pivot
    el = math.radians(ELEVATION_DEG)
    # Blender's front view looks along +Y: at angle 0 the camera sits at -Y, above by the elevation.
    back = Vector((0.0, -math.cos(el), math.sin(el)))
    cam.location = back * distance
    cam.rotation_euler = (-back).to_track_quat("-Z", "Y").to_euler()
    scene.camera = cam

    pivot.rotation_mode = "XYZ"
    pivot.rotation_euler = (0.0, 0.0, 0.0)
    pivot.keyframe_insert("rotation_euler", index=2, frame=start)
    pivot.rotation_euler = (0.0, 0.0, 2 * math.pi)
    pivot.keyframe_insert("rotation_euler", index=2, frame=start + count)
    for fc in pivot.animation_data.action.fcurves:
        for kp in fc.keyframe_points:
            kp.interpolation = "LINEAR"

    for obj in [o for o in scene.objects if o.type == "LIGHT"]:
        obj.hide_render = True
    add_sun(scene, "key", 3.0, (-0.4, -0.7, 0.9), 10.0)
    add_sun(scene, "fill", 0.8, (0.8, 0.5, 0.2), 30.0)
    world = bpy.data.worlds.new("orbit_world")
    world.use_nodes = True
    bg = world.node_tree.nodes["Background"]
    bg.inputs["Color"].default_value = (0.42, 0.45, 0.5, 1.0)
    bg.inputs["Strength"].default_value = 0.35
    scene.world = world
    world.color = (0.42, 0.45, 0.5)  # Workbench's background

    save_blend(blend_out)
    info = {
        "centre": [round(c, 6) for c in centre],
        "radius": round(radius, 6),
        "distance": round(distance, 6),
        "elevation_deg": ELEVATION_DEG,
        "lens_mm": LENS_MM,
        "frames": [start, end],
        "degrees_per_frame": round(360.0 / count, 6),
    }
    write_json(os.path.splitext(blend_out)[0] + ".json", info)
    log(NAME, f"camera at distance {distance:.3f} around {tuple(round(c, 3) for c in centre)}, {360.0 / count:.4g} degrees a frame over frames {start}-{end}; wrote {blend_out}")


main(NAME, body)
