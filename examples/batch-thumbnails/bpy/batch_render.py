"""One render pass for every model of a batch, in ONE Blender process (Cycles, CPU).

    size=64 samples=4 blender -b --factory-startup -noaudio --python-exit-code 1 \
        -P bpy/batch_render.py -- PASS

As a batch step it renders every item listed in $HPCPIPE_BATCH_ITEMS (an item is a glTF path
relative to the working directory) to OUTPUT_DIR/PASS.png and reports each one; as a plain
per-item step it renders its one item (see hpcpipe_batch.py). PASS is one of:
- textured  the model's own materials, lit by two suns and a grey world
- normal    camera-space normals as colours (facing the camera is blue), raw values
- depth     camera depth as a grey ramp: nearest bound white, background black
- edges     Freestyle outlines in black over flat light grey shapes on white

Every item starts from a copy of the factory empty scene with nothing left of earlier items
(fresh_scene), and Cycles renders with a fixed
seed and thread count, so a model gives the same pixels in a batch as in a process of its own.
Threads: $SLURM_CPUS_PER_TASK (else 1).
"""
import math
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy  # noqa: E402

# Debian's numpy 1.24 removed numpy.bool, which Blender 3.4's glTF importer still uses.
if not hasattr(numpy, "bool") or numpy.bool is not bool:
    numpy.bool = bool

import bpy  # noqa: E402
from mathutils import Vector  # noqa: E402

import hpcpipe_batch as hb  # noqa: E402

PASSES = ("textured", "normal", "depth", "edges")
AZIMUTH_DEG = 35.0
ELEVATION_DEG = 25.0
MARGIN = 0.12


def env_int(name, lo, hi):
    raw = os.environ.get(name, "")
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise SystemExit(f"batch_render: '{name}' must be a whole number in {lo}..{hi}, got {raw!r}")
    return int(raw)


def threads():
    raw = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else 1


_PRISTINE = None  # (the factory empty scene, pointers of every data-block the factory file has)


def fresh_scene():
    """Makes the current scene a copy of Blender's factory empty scene, with nothing left of earlier models.

    The first call loads the factory settings (read_factory_settings, about 40 ms: it also reloads every
    add-on) and keeps that empty scene untouched as a template. Every call then removes each data-block
    the factory file did not have (the previous model's scene copy, objects, meshes, materials, images,
    actions, worlds, line styles, the render result) and works on a fresh copy of the template, so a model
    starts from the same state whether it is the first of its process or the fiftieth (same pixels in a
    batch as in a process of its own), for a few milliseconds instead of a factory reload per model."""
    global _PRISTINE
    if _PRISTINE is None:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        _PRISTINE = (bpy.context.scene, frozenset(id_.as_pointer() for id_ in bpy.data.user_map()))
    template, keep = _PRISTINE
    window = bpy.context.window
    window.scene = template
    stale = [id_ for id_ in bpy.data.user_map() if id_.as_pointer() not in keep]
    if stale:
        bpy.data.batch_remove(stale)
    window.scene = template.copy()


def stage(path):
    """An empty scene with the model, a camera framing its bounds, two suns and a grey world."""
    fresh_scene()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model '{path}' does not exist")
    bpy.ops.import_scene.gltf(filepath=os.path.abspath(path))
    scene = bpy.context.scene
    depsgraph = bpy.context.evaluated_depsgraph_get()
    lo = Vector((math.inf,) * 3)
    hi = Vector((-math.inf,) * 3)
    for obj in scene.objects:
        if obj.type != "MESH":
            continue
        for v in obj.evaluated_get(depsgraph).data.vertices:
            w = obj.matrix_world @ v.co
            lo = Vector(map(min, lo, w))
            hi = Vector(map(max, hi, w))
    if not math.isfinite(lo.x):
        raise ValueError(f"model '{path}' has no mesh geometry")
    corners = [Vector((x, y, z)) for x in (lo.x, hi.x) for y in (lo.y, hi.y) for z in (lo.z, hi.z)]
    centre = (lo + hi) / 2
    scene.render.resolution_x = scene.render.resolution_y = 128
    scene.render.resolution_percentage = 100
    cam_data = bpy.data.cameras.new("thumbnail_camera")
    cam_data.lens = 50.0
    cam = bpy.data.objects.new("thumbnail_camera", cam_data)
    scene.collection.objects.link(cam)
    scene.camera = cam
    az, el = math.radians(AZIMUTH_DEG), math.radians(ELEVATION_DEG)
    back = Vector((math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)))
    cam.rotation_euler = (-back).to_track_quat("-Z", "Y").to_euler()
    cam.location = centre + back * 10.0
    bpy.context.view_layer.update()
    fit, _ = cam.camera_fit_coords(bpy.context.evaluated_depsgraph_get(), [c for v in corners for c in v])
    distance = (Vector(fit) - centre).dot(back)
    cam.location = Vector(fit) + back * (distance * MARGIN)
    bpy.context.view_layer.update()
    depths = [(c - cam.location).dot(-back) for c in corners]
    near, far = min(depths), max(depths)
    cam_data.clip_start = max(0.001, near * 0.5)
    cam_data.clip_end = far * 2.0 + 1.0
    for obj in [o for o in scene.objects if o.type == "LIGHT"]:
        obj.hide_render = True
    for name, strength, towards, angle in (("key", 3.0, (-0.4, -0.7, 0.9), 10.0), ("fill", 0.6, (1.0, -0.2, 0.1), 30.0)):
        light = bpy.data.lights.new(name, "SUN")
        light.energy = strength
        light.angle = math.radians(angle)
        obj = bpy.data.objects.new(name, light)
        obj.rotation_euler = (-Vector(towards).normalized()).to_track_quat("-Z", "Y").to_euler()
        scene.collection.objects.link(obj)
    set_world(scene, (0.42, 0.45, 0.5), 0.3)
    return scene, near, far


def set_world(scene, rgb, strength):
    world = bpy.data.worlds.new(f"thumbnail_world_{rgb}")
    world.use_nodes = True
    bg = world.node_tree.nodes["Background"]
    bg.inputs["Color"].default_value = (*rgb, 1.0)
    bg.inputs["Strength"].default_value = strength
    scene.world = world


def emission_override(view_layer, name, build):
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
    fs.crease_angle = 2.36
    while len(fs.linesets) > 0:
        fs.linesets.remove(fs.linesets[0])
    lineset = fs.linesets.new("outline")
    lineset.select_by_visibility = True
    lineset.visibility = "VISIBLE"
    lineset.select_by_edge_types = True
    for edge_type in ("silhouette", "border", "crease", "external_contour"):
        setattr(lineset, f"select_{edge_type}", True)
    lineset.linestyle.color = (0.0, 0.0, 0.0)
    lineset.linestyle.thickness = 1.5


def render(pass_name, size, samples):
    def one(item):
        scene, near, far = stage(item.value)
        view_layer = bpy.context.view_layer
        r = scene.render
        r.engine = "CYCLES"
        r.resolution_x = r.resolution_y = size
        r.film_transparent = False
        r.threads_mode = "FIXED"
        r.threads = threads()
        r.image_settings.file_format = "PNG"
        r.image_settings.color_mode = "RGB"
        r.image_settings.color_depth = "8"
        r.dither_intensity = 0.0
        cy = scene.cycles
        cy.device = "CPU"
        cy.samples = samples
        cy.use_adaptive_sampling = False
        cy.use_denoising = False
        cy.seed = 0
        scene.view_settings.look = "None"
        if pass_name == "textured":
            cy.max_bounces = 4
            scene.view_settings.view_transform = "Standard"
        else:
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
                emission_override(view_layer, "thumb_depth", depth_grey(near, far))
            else:
                set_world(scene, (1.0, 1.0, 1.0), 1.0)
                emission_override(view_layer, "thumb_edges", lambda nodes, links: (0.55, 0.55, 0.55, 1.0))
                setup_freestyle(scene, view_layer, size)
        out = os.path.join(item.out_dir, f"{pass_name}.png")
        os.makedirs(item.out_dir, exist_ok=True)
        r.filepath = out
        r.use_file_extension = False
        bpy.ops.render.render(write_still=True)
        if not os.path.isfile(out):
            raise RuntimeError(f"the render finished but {out} was not written")
        item.publish(f"thumb_{pass_name}", out)
        print(f"batch_render: {pass_name} {item.value} -> {out}", flush=True)

    return one


def main():
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    if len(argv) != 1 or argv[0] not in PASSES:
        raise SystemExit(f"usage: blender -b --factory-startup -noaudio -P batch_render.py -- {{{'|'.join(PASSES)}}}")
    status = hb.run(render(argv[0], env_int("size", 16, 4096), env_int("samples", 1, 4096)))
    sys.exit(status)


main()
