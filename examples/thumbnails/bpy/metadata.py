"""Metadata: a JSON of the run's outputs (the four passes, the contact sheet, the model's stats).

    blender -b --factory-startup -noaudio --python-exit-code 1 -P bpy/metadata.py -- out/metadata.json

Environment: `model`, `size`, `samples` (context values), `model_stats` (prep.py's JSON),
`thumb_textured`, `thumb_normal`, `thumb_depth`, `thumb_edges` (the passes' PNGs; each has a
.json beside it written by render.py) and `contact_sheet` (the 2x2 PNG made with ffmpeg).
Every PNG's size is read from its IHDR chunk and checked: a pass must be size x size pixels
and the contact sheet 2*size x 2*size.
Exit status: 2 bad parameters or inputs, 4 anything else.
"""
import os
import struct
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import EXIT_USAGE, ThumbnailError, env_int, env_str, log, main, read_json, script_args, write_json  # noqa: E402

NAME = "metadata"
PASSES = ("textured", "normal", "depth", "edges")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """(width, height) from a PNG's IHDR chunk."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError as e:
        raise ThumbnailError(f"cannot read '{path}': {e.strerror}", EXIT_USAGE) from None
    if len(head) < 24 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise ThumbnailError(f"'{path}' is not a PNG image", EXIT_USAGE)
    return struct.unpack(">II", head[16:24])


def image_entry(path, expected):
    width, height = png_size(path)
    if (width, height) != expected:
        raise ThumbnailError(f"'{path}' is {width}x{height} pixels, expected {expected[0]}x{expected[1]}", EXIT_USAGE)
    return {"path": path, "width": width, "height": height, "bytes": os.path.getsize(path)}


def body():
    (out_json,) = script_args(1, "OUT.json")
    size = env_int("size", 16, 4096)
    samples = env_int("samples", 1, 4096)
    passes = []
    for name in PASSES:
        entry = {"pass": name, **image_entry(env_str(f"thumb_{name}"), (size, size))}
        sidecar = os.path.splitext(entry["path"])[0] + ".json"
        if os.path.isfile(sidecar):
            info = read_json(sidecar)
            entry.update({k: info[k] for k in ("engine", "samples", "threads", "render_s") if k in info})
        passes.append(entry)
    sheet = image_entry(env_str("contact_sheet"), (2 * size, 2 * size))
    sheet["layout"] = [["textured", "normal"], ["depth", "edges"]]
    metadata = {
        "model": env_str("model"),
        "size": size,
        "samples": samples,
        "passes": passes,
        "contact_sheet": sheet,
        "model_stats": read_json(env_str("model_stats")),
    }
    write_json(out_json, metadata)
    log(NAME, f"{len(passes)} passes of {size}x{size}, contact sheet {sheet['width']}x{sheet['height']}; wrote {out_json}")


main(NAME, body)
