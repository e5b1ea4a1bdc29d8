"""Camera setup: frame the normalised model, light it, save a staged .blend.

    scene=out/scene.blend blender -b --factory-startup -noaudio --python-exit-code 1 \
        -P bpy/camera.py -- out/staged.blend

- `scene` (environment): the .blend written by prep.py.
- A 50 mm camera looks at the model from the front right, above (azimuth 35 degrees, elevation
  25 degrees), placed so that the 8 corners of the world bounds fit the (square) frame with a
  margin. The nearest and farthest corner depths are kept on the scene (`thumb_near`,
  `thumb_far`) for the depth pass.
- A key sun, a fill sun and a soft grey world light the textured pass.
Exit status: 2 bad parameters, 4 anything else.
"""
import math
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bpy  # noqa: E402
from mathutils import Vector  # noqa: E402

from common import ThumbnailError, env_str, log, main, open_blend, save_blend, script_args  # noqa: E402

NAME = "camera"
AZIMUTH_DEG = 35.0
ELEVATION_DEG = 25.0
MARGIN = 0.12  # of the fitted distance, added behind the camera


def bounds_corners(scene):
    depsgraph = bpy.context.evaluated_depsgraph_get()
    lo = Vector((math.inf,) * 3)
    hi = Vector((-math.inf,) * 3)
    for obj in scene.objects:
        if obj.type != "MESH":
            continue
        mw = obj.matrix_world
        for v in obj.evaluated_get(depsgraph).data.vertices:
            w = mw @ v.co
            lo = Vector(map(min, lo, w))
            hi = Vector(map(max, hi, w))
    if not math.isfinite(lo.x):
        raise ThumbnailError("the scene has no mesh geometry (was it written by prep.py?)")
    return [Vector((x, y, z)) for x in (lo.x, hi.x) for y in (lo.y, hi.y) for z in (lo.z, hi.z)], (lo + hi) / 2


def add_sun(scene, name, strength, towards_light, angle_deg):
    """A sun shining from the direction `towards_light` (world space, from the model to the light)."""
    light = bpy.data.lights.new(name, "SUN")
    light.energy = strength
    light.angle = math.radians(angle_deg)
    obj = bpy.data.objects.new(name, light)
    obj.rotation_euler = (-Vector(towards_light).normalized()).to_track_quat("-Z", "Y").to_euler()
    scene.collection.objects.link(obj)


def body():
    (staged_out,) = script_args(1, "OUT.blend")
    open_blend(env_str("scene"))
    scene = bpy.context.scene
    corners, centre = bounds_corners(scene)

    scene.render.resolution_x = scene.render.resolution_y = 128  # the aspect the fit uses; renders set the size
    scene.render.resolution_percentage = 100
    cam_data = bpy.data.cameras.new("thumbnail_camera")
    cam_data.lens = 50.0
    cam_data.sensor_fit = "AUTO"
    cam = bpy.data.objects.new("thumbnail_camera", cam_data)
    scene.collection.objects.link(cam)
    scene.camera = cam

    az, el = math.radians(AZIMUTH_DEG), math.radians(ELEVATION_DEG)
    # Blender's front view looks along +Y: the camera sits at -Y, turned towards +X by the azimuth.
    back = Vector((math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)))
    cam.rotation_euler = (-back).to_track_quat("-Z", "Y").to_euler()
    cam.location = centre + back * 10.0
    bpy.context.view_layer.update()
    fit, _ = cam.camera_fit_coords(bpy.context.evaluated_depsgraph_get(), [c for v in corners for c in v])
    distance = (Vector(fit) - centre).dot(back)
    cam.location = Vector(fit) + back * (distance * MARGIN)
    bpy.context.view_layer.update()

    forward = -back
    depths = [(c - cam.location).dot(forward) for c in corners]
    near, far = min(depths), max(depths)
    cam_data.clip_start = max(0.001, near * 0.5)
    cam_data.clip_end = far * 2.0 + 1.0
    scene["thumb_near"] = near
    scene["thumb_far"] = far

    for obj in [o for o in scene.objects if o.type == "LIGHT"]:
        obj.hide_render = True
    # Key from the upper front left, fill from the right: top, front and right faces differ.
    add_sun(scene, "key", 3.0, (-0.4, -0.7, 0.9), 10.0)
    add_sun(scene, "fill", 0.6, (1.0, -0.2, 0.1), 30.0)
    world = bpy.data.worlds.new("thumbnail_world")
    world.use_nodes = True
    bg = world.node_tree.nodes["Background"]
    bg.inputs["Color"].default_value = (0.42, 0.45, 0.5, 1.0)
    bg.inputs["Strength"].default_value = 0.3
    scene.world = world

    save_blend(staged_out)
    log(NAME, f"camera at {tuple(round(c, 3) for c in cam.location)}, depth {near:.3f}..{far:.3f}; wrote {staged_out}")


main(NAME, body)
