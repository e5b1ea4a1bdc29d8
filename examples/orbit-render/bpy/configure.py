"""Configure the renderer: engine, samples, resolution, frame rate and frame range, written into
the .blend; the model's animation retimed to the frame rate and made to loop.

    scene=out/scene.blend engine=cycles size=96 samples=4 fps=12 blender -b --factory-startup \
        -noaudio --python-exit-code 1 -P bpy/configure.py -- frame-ranges.txt out/configured.blend out/configure.env

- `scene` (environment): the .blend written by normalise.py.
- `engine`: `cycles` (CPU path tracing; needs nothing but the CPU), `workbench` (Blender's
  solid-shading renderer) or `eevee` (Blender's real-time renderer); the last two need OpenGL,
  which Blender 3.4 finds headless through EGL (Mesa's software renderer on a machine without
  a GPU), so they may not start on every compute node.
- `size`: width and height in pixels (16..4096); `samples`: samples per pixel (1..4096; Cycles'
  path samples, Eevee's anti-aliasing samples, Workbench's anti-aliasing samples);
  `fps`: frames per second of the video (1..120).
- FRAME_RANGES: the map's items file (one range `A-B` a line, bundled with the pipeline), so the
  scene's frame range is exactly the frames the render tasks cover: from the first range's first
  frame to the last range's last, without gaps or overlaps.
- The animation keeps its speed in seconds: its keyframes are moved by fps / the frame rate it
  was imported at, and every F-curve gets a Cycles modifier, so it loops over the whole range.
- Writes OUT.blend and OUT.env (`frame_start`, `frame_end`, `frame_count`, to append to
  $HPCPIPE_PUBLISH), and OUT.json beside the .blend with the settings.
Exit status: 2 bad parameters, 4 anything else.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bpy  # noqa: E402

from common import EXIT_USAGE, OrbitError, env_choice, env_int, env_str, log, main, open_blend, read_ranges, save_blend, script_args, write_json, write_publish  # noqa: E402

NAME = "configure"
ENGINES = {"cycles": "CYCLES", "workbench": "BLENDER_WORKBENCH", "eevee": "BLENDER_EEVEE"}


def retime_and_loop(scene, factor):
    """Scales every keyframe's time by `factor` (about frame 0) and makes each F-curve cyclic."""
    actions = {o.animation_data.action for o in scene.objects if o.animation_data is not None and o.animation_data.action is not None}
    curves = 0
    for action in actions:
        for fc in action.fcurves:
            for kp in fc.keyframe_points:
                kp.co.x *= factor
                kp.handle_left.x *= factor
                kp.handle_right.x *= factor
            fc.update()
            if not any(m.type == "CYCLES" for m in fc.modifiers):
                fc.modifiers.new("CYCLES")
            curves += 1
    return sorted(a.name for a in actions), curves


def material_colours_for_workbench():
    """Workbench shades with each material's viewport colour: take it from the node tree's base colour."""
    for mat in bpy.data.materials:
        if not mat.use_nodes or mat.node_tree is None:
            continue
        for node in mat.node_tree.nodes:
            if node.type == "BSDF_PRINCIPLED":
                mat.diffuse_color = tuple(node.inputs["Base Color"].default_value)
                break


def body():
    ranges_file, blend_out, env_out = script_args(3, "FRAME_RANGES.txt OUT.blend OUT.env")
    engine = env_choice("engine", tuple(ENGINES))
    size = env_int("size", 16, 4096)
    samples = env_int("samples", 1, 4096)
    fps = env_int("fps", 1, 120)
    ranges, first, last = read_ranges(ranges_file)
    if os.path.exists(env_out):
        os.remove(env_out)
    open_blend(env_str("scene"))
    scene = bpy.context.scene
    if "orbit_import_fps" not in scene:
        raise OrbitError("the scene has no normalised model (was it written by normalise.py?)", EXIT_USAGE)

    r = scene.render
    r.engine = ENGINES[engine]
    r.resolution_x = r.resolution_y = size
    r.resolution_percentage = 100
    r.pixel_aspect_x = r.pixel_aspect_y = 1.0
    r.fps = fps
    r.fps_base = 1.0
    scene.frame_start = first
    scene.frame_end = last
    scene.frame_step = 1
    r.film_transparent = False
    r.use_file_extension = True
    r.image_settings.file_format = "PNG"
    r.image_settings.color_mode = "RGB"
    r.image_settings.color_depth = "8"
    r.image_settings.compression = 90
    r.dither_intensity = 0.0
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    if engine == "cycles":
        cy = scene.cycles
        cy.device = "CPU"
        cy.samples = samples
        cy.use_adaptive_sampling = False
        cy.use_denoising = False
        cy.seed = 0
        cy.max_bounces = 4
    elif engine == "eevee":
        scene.eevee.taa_render_samples = samples
    else:
        shading = scene.display.shading
        shading.light = "STUDIO"
        shading.color_type = "MATERIAL"
        scene.display.render_aa = "8" if samples >= 8 else ("5" if samples >= 5 else "FXAA")
        material_colours_for_workbench()

    factor = fps / float(scene["orbit_import_fps"])
    actions, curves = retime_and_loop(scene, factor)
    loop_s = (float(scene["orbit_anim_end"]) - float(scene["orbit_anim_start"])) / float(scene["orbit_import_fps"])
    settings = {
        "engine": r.engine,
        "size": size,
        "samples": samples,
        "fps": fps,
        "frame_start": first,
        "frame_end": last,
        "frame_count": last - first + 1,
        "ranges": [f"{a}-{b}" for a, b in ranges],
        "seconds": round((last - first + 1) / fps, 6),
        "animation": {"actions": actions, "fcurves": curves, "retimed_by": round(factor, 6), "loop_s": round(loop_s, 6)},
    }
    save_blend(blend_out)
    write_json(os.path.splitext(blend_out)[0] + ".json", settings)
    write_publish(env_out, {"frame_start": first, "frame_end": last, "frame_count": last - first + 1})
    log(NAME, f"{r.engine} {size}x{size}, {samples} samples, {fps} fps, frames {first}-{last} in {len(ranges)} range(s); wrote {blend_out}")


main(NAME, body)
