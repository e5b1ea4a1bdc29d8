"""One render pass of the staged scene, with Cycles on the CPU.

    staged=out/staged.blend size=128 samples=8 blender -b --factory-startup -noaudio \
        --python-exit-code 1 -P bpy/render.py -- PASS out/thumbs/PASS.png

PASS is one of:
- textured  the model's own materials, lit by the camera step's suns and grey world
- normal    camera-space normals as colours (x, y, z mapped from -1..1 to 0..1; facing the
            camera is blue), through a material override; raw colour values
- depth     camera depth as a grey ramp: nearest bound white, far side dark, background black
- edges     Freestyle outlines (silhouette, border, crease) in black over flat light grey
            shapes on white

- `staged` (environment): the .blend written by camera.py.
- `size` (environment): width and height in pixels (16..4096).
- `samples` (environment): Cycles samples per pixel (1..4096).
Also writes PASS.json next to the image (size, samples, render time). Threads: $SLURM_CPUS_PER_TASK.
Exit status: 2 bad parameters, 4 anything else.
"""
import json
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bpy  # noqa: E402

from common import EXIT_USAGE, ThumbnailError, cpu_threads, env_int, env_str, log, main, open_blend, script_args, write_json  # noqa: E402

NAME = "render"
PASSES = ("textured", "normal", "depth", "edges")


def set_world(scene, rgb, strength=1.0):
    world = bpy.data.worlds.new(f"thumbnail_world_{rgb}")
    world.use_nodes = True
    bg = world.node_tree.nodes["Background"]
    bg.inputs["Color"].default_value = (*rgb, 1.0)
    bg.inputs["Strength"].default_value = strength
    scene.world = world


def emission_override(view_layer, name, build):
    """A material whose colour comes from build(nodes, links) -> colour socket, emitted unlit."""
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    out = nodes.new("ShaderNodeOutputMaterial")
    emit = nodes.new("ShaderNodeEmission")
    emit.inputs["Strength"].default_value = 1.0
    colour = build(nodes, links)
    if isinstance(colour, tuple):
        emit.inputs["Color"].default_value = colour
    else:
        links.new(colour, emit.inputs["Color"])
    links.new(emit.outputs["Emission"], out.inputs["Surface"])
    view_layer.material_override = mat


def normal_colour(nodes, links):
    geo = nodes.new("ShaderNodeNewGeometry")
    to_cam = nodes.new("ShaderNodeVectorTransform")
    to_cam.vector_type = "NORMAL"
    to_cam.convert_from = "WORLD"
    to_cam.convert_to = "CAMERA"
    links.new(geo.outputs["Normal"], to_cam.inputs["Vector"])
    # Cycles' camera space looks along +Z; flip z so that a face towards the camera is blue.
    flip = nodes.new("ShaderNodeVectorMath")
    flip.operation = "MULTIPLY"
    flip.inputs[1].default_value = (1.0, 1.0, -1.0)
    links.new(to_cam.outputs["Vector"], flip.inputs[0])
    remap = nodes.new("ShaderNodeVectorMath")
    remap.operation = "MULTIPLY_ADD"
    remap.inputs[1].default_value = (0.5, 0.5, 0.5)
    remap.inputs[2].default_value = (0.5, 0.5, 0.5)
    links.new(flip.outputs["Vector"], remap.inputs[0])
    return remap.outputs["Vector"]


def depth_grey(near, far):
    def build(nodes, links):
        cam = nodes.new("ShaderNodeCameraData")
        ramp = nodes.new("ShaderNodeMapRange")
        ramp.clamp = True
        ramp.inputs["From Min"].default_value = near
        # The nearest corner of the bounds is white; the visible surface rarely reaches the
        # farthest corner, so the ramp ends three quarters of the way there (clamped beyond).
        ramp.inputs["From Max"].default_value = near + 0.75 * (far - near)
        ramp.inputs["To Min"].default_value = 1.0
        ramp.inputs["To Max"].default_value = 0.1
        links.new(cam.outputs["View Z Depth"], ramp.inputs["Value"])
        return ramp.outputs["Result"]

    return build


def setup_freestyle(scene, view_layer, size):
    scene.render.use_freestyle = True
    scene.render.line_thickness_mode = "ABSOLUTE"
    scene.render.line_thickness = max(1.0, size / 128.0)
    view_layer.use_freestyle = True
    fs = view_layer.freestyle_settings
    fs.mode = "EDITOR"
    fs.crease_angle = 2.36  # 135 degrees: box edges count as creases
    while len(fs.linesets) > 0:
        fs.linesets.remove(fs.linesets[0])
    lineset = fs.linesets.new("outline")
    lineset.select_by_visibility = True
    lineset.visibility = "VISIBLE"
    lineset.select_by_edge_types = True
    for edge_type in ("silhouette", "border", "crease", "external_contour"):
        setattr(lineset, f"select_{edge_type}", True)
    style = lineset.linestyle
    style.color = (0.0, 0.0, 0.0)
    style.thickness = 1.5


def body():
    pass_name, out_png = script_args(2, f"{{{'|'.join(PASSES)}}} OUT.png")
    if pass_name not in PASSES:
        raise ThumbnailError(f"unknown pass '{pass_name}' (expected one of {', '.join(PASSES)})", EXIT_USAGE)
    size = env_int("size", 16, 4096)
    samples = env_int("samples", 1, 4096)
    open_blend(env_str("staged"))
    scene = bpy.context.scene
    view_layer = bpy.context.view_layer
    if scene.camera is None or "thumb_near" not in scene:
        raise ThumbnailError("the staged scene has no thumbnail camera (was it written by camera.py?)", EXIT_USAGE)

    r = scene.render
    r.engine = "CYCLES"
    r.resolution_x = r.resolution_y = size
    r.resolution_percentage = 100
    r.film_transparent = False
    r.threads_mode = "FIXED" if cpu_threads() > 0 else "AUTO"
    if cpu_threads() > 0:
        r.threads = cpu_threads()
    r.image_settings.file_format = "PNG"
    r.image_settings.color_mode = "RGB"
    r.image_settings.color_depth = "8"
    r.image_settings.compression = 90
    cy = scene.cycles
    cy.device = "CPU"
    cy.samples = samples
    cy.use_adaptive_sampling = False
    cy.use_denoising = False
    cy.seed = 0
    scene.view_settings.look = "None"
    r.dither_intensity = 0.0
    if pass_name == "textured":
        cy.max_bounces = 4
        scene.view_settings.view_transform = "Standard"
    else:
        # Unlit: emission only, no bounces, colour values written as they are.
        cy.max_bounces = 0
        for obj in scene.objects:
            if obj.type == "LIGHT":
                obj.hide_render = True
        scene.view_settings.view_transform = "Raw" if pass_name in ("normal", "depth") else "Standard"
        if pass_name == "normal":
            set_world(scene, (0.5, 0.5, 1.0), 0.0)
            emission_override(view_layer, "thumb_normal", normal_colour)
        elif pass_name == "depth":
            set_world(scene, (0.0, 0.0, 0.0), 0.0)
            emission_override(view_layer, "thumb_depth", depth_grey(float(scene["thumb_near"]), float(scene["thumb_far"])))
        else:
            set_world(scene, (1.0, 1.0, 1.0), 1.0)
            emission_override(view_layer, "thumb_edges", lambda nodes, links: (0.55, 0.55, 0.55, 1.0))
            setup_freestyle(scene, view_layer, size)

    out_abs = os.path.abspath(out_png)
    os.makedirs(os.path.dirname(out_abs), exist_ok=True)
    r.filepath = out_abs
    r.use_file_extension = False
    t0 = time.monotonic()
    bpy.ops.render.render(write_still=True)
    render_s = time.monotonic() - t0
    if not os.path.isfile(out_abs):
        raise ThumbnailError(f"the render finished but {out_png} was not written")
    info = {
        "pass": pass_name,
        "path": out_png,
        "width": size,
        "height": size,
        "samples": samples,
        "engine": "CYCLES",
        "threads": r.threads,
        "render_s": round(render_s, 3),
    }
    write_json(os.path.splitext(out_abs)[0] + ".json", info)
    log(NAME, json.dumps(info))


main(NAME, body)
