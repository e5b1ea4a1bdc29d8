"""Render one range of frames of the orbit scene (one array task of the map).

    orbit_scene=out/orbit-scene.blend frames=7-12 blender -b --factory-startup -noaudio \
        --python-exit-code 1 -P bpy/render.py -- out/frames

- `orbit_scene` (environment): the .blend written by orbit.py (engine, size, samples and frame
  range were set by configure.py).
- `frames` (environment): this task's map item, a range `A-B` (or one frame `A`) inside the
  scene's frame range.
- Writes OUT_DIR/frame_####.png for every frame of the range (frame 7 is frame_0007.png) and
  OUT_DIR/range_A-B.json (frames, engine, threads, render time).
Threads: $SLURM_CPUS_PER_TASK (the local executor sets it too).
Exit status: 2 bad parameters, 4 anything else.
"""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bpy  # noqa: E402

from common import EXIT_USAGE, OrbitError, cpu_threads, env_str, log, main, open_blend, parse_range, script_args, write_json  # noqa: E402

NAME = "render"


def body():
    (out_dir,) = script_args(1, "OUT_DIR")
    start, end = parse_range(env_str("frames"), "frames (the map item)")
    open_blend(env_str("orbit_scene"))
    scene = bpy.context.scene
    if scene.camera is None or "orbit_bounds_min" not in scene:
        raise OrbitError("the scene has no orbit camera (was it written by orbit.py?)", EXIT_USAGE)
    if start < scene.frame_start or end > scene.frame_end:
        raise OrbitError(f"frames {start}-{end} are outside the scene's frame range {scene.frame_start}-{scene.frame_end}", EXIT_USAGE)

    r = scene.render
    threads = cpu_threads()
    r.threads_mode = "FIXED" if threads > 0 else "AUTO"
    if threads > 0:
        r.threads = threads
    out_abs = os.path.abspath(out_dir)
    os.makedirs(out_abs, exist_ok=True)
    r.filepath = os.path.join(out_abs, "frame_####")
    r.use_file_extension = True
    r.use_overwrite = True
    scene.frame_start, scene.frame_end = start, end
    t0 = time.monotonic()
    bpy.ops.render.render(animation=True)
    render_s = time.monotonic() - t0
    files = [os.path.join(out_dir, f"frame_{f:04d}.png") for f in range(start, end + 1)]
    missing = [p for p in files if not os.path.isfile(p)]
    if missing:
        raise OrbitError(f"the render finished but {len(missing)} frame(s) were not written: {', '.join(missing)}")
    info = {
        "frames": f"{start}-{end}",
        "files": files,
        "engine": r.engine,
        "width": r.resolution_x,
        "height": r.resolution_y,
        "threads": r.threads,
        "render_s": round(render_s, 3),
    }
    write_json(os.path.join(out_abs, f"range_{start}-{end}.json"), info)
    log(NAME, f"frames {start}-{end}: {len(files)} frame(s) in {render_s:.2f} s with {r.threads} thread(s)")


main(NAME, body)
