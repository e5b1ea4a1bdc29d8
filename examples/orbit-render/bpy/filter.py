"""Filter: from a set of glTF models, keep the animated ones and pick the one to render.

    models=models pick=auto blender -b --factory-startup -noaudio --python-exit-code 1 \
        -P bpy/filter.py -- out/filter.json out/filter.env

- `models` (environment): a directory (every *.glb and *.gltf directly in it, in name order) or
  one model file; relative to the working directory or absolute.
- `pick` (environment): `auto` (the first animated model in name order) or the file name of one
  of the animated models (e.g. `windmill.glb`).
- A model is animated when its glTF JSON has an animation with at least one channel whose
  sampler's keyframe times span more than zero seconds; it must also have a mesh. Each file is
  read as glTF 2.0 (the JSON chunk of a .glb, or the .gltf JSON; the external buffers a .gltf
  names must exist) without importing it, so looking at many models is fast.
- Writes OUT.json (every file looked at, with its verdict) and OUT.env (`model=PATH` and
  `animation_s=SECONDS`, to append to $HPCPIPE_PUBLISH).
Exit status: 2 bad parameters, 3 no animated model (the message names every file looked at),
4 anything else.
"""
import json
import os
import struct
import sys
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import EXIT_BAD_MODEL, EXIT_USAGE, OrbitError, env_str, log, main, script_args, write_json, write_publish  # noqa: E402

NAME = "filter"
EXTENSIONS = (".glb", ".gltf")
MAX_JSON_BYTES = 64 * 1024 * 1024


class NotGltf(Exception):
    pass


def gltf_json(path):
    """The glTF JSON of a .glb (its first chunk) or a .gltf file."""
    with open(path, "rb") as f:
        if path.lower().endswith(".glb"):
            header = f.read(20)
            if len(header) < 20:
                raise NotGltf("too short for a GLB file")
            magic, version, length, chunk_length, chunk_type = struct.unpack("<4sIIII", header)
            if magic != b"glTF":
                raise NotGltf("no GLB header (magic 'glTF')")
            if version != 2:
                raise NotGltf(f"GLB version {version}, expected 2")
            if length != os.path.getsize(path):
                raise NotGltf(f"the GLB header says {length} bytes, the file has {os.path.getsize(path)}")
            if chunk_type != 0x4E4F534A or chunk_length > MAX_JSON_BYTES or 20 + chunk_length > length:
                raise NotGltf("the first GLB chunk is not a JSON chunk that fits the file")
            raw = f.read(chunk_length)
        else:
            raw = f.read(MAX_JSON_BYTES + 1)
            if len(raw) > MAX_JSON_BYTES:
                raise NotGltf("the JSON is larger than 64 MiB")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise NotGltf(f"the JSON cannot be parsed: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("asset"), dict) or not str(doc["asset"].get("version", "")).startswith("2."):
        raise NotGltf("not glTF 2.0 (asset.version)")
    return doc


def as_list(doc, key):
    value = doc.get(key, [])
    return value if isinstance(value, list) else []


def animation_facts(doc):
    """(number of animations that move something, longest keyframe span in seconds)."""
    accessors = as_list(doc, "accessors")
    moving, longest = 0, 0.0
    for anim in as_list(doc, "animations"):
        if not isinstance(anim, dict):
            continue
        samplers = anim.get("samplers") if isinstance(anim.get("samplers"), list) else []
        span = 0.0
        for channel in anim.get("channels") if isinstance(anim.get("channels"), list) else []:
            sampler = samplers[channel.get("sampler")] if isinstance(channel, dict) and isinstance(channel.get("sampler"), int) and 0 <= channel["sampler"] < len(samplers) else None
            accessor = accessors[sampler.get("input")] if isinstance(sampler, dict) and isinstance(sampler.get("input"), int) and 0 <= sampler["input"] < len(accessors) else None
            if not isinstance(accessor, dict):
                continue
            lo, hi = accessor.get("min"), accessor.get("max")
            if isinstance(lo, list) and isinstance(hi, list) and lo and hi and all(isinstance(v, (int, float)) for v in (lo[0], hi[0])):
                span = max(span, float(hi[0]) - float(lo[0]))
        if span > 0:
            moving += 1
            longest = max(longest, span)
    return moving, longest


def look_at(path, name):
    entry = {"file": name, "animated": False, "animations": 0, "animation_s": 0.0, "meshes": 0, "reason": None}
    try:
        doc = gltf_json(path)
    except NotGltf as e:
        entry["reason"] = f"not a readable glTF 2.0 file: {e}"
        return entry
    except OSError as e:
        entry["reason"] = f"cannot be read: {e.strerror}"
        return entry
    for buffer in as_list(doc, "buffers"):
        uri = buffer.get("uri") if isinstance(buffer, dict) else None
        if isinstance(uri, str) and not uri.startswith("data:"):
            if not os.path.isfile(os.path.join(os.path.dirname(path), urllib.parse.unquote(uri))):
                entry["reason"] = f"its buffer '{uri}' is missing"
                return entry
    entry["meshes"] = len(as_list(doc, "meshes"))
    entry["animations"], span = animation_facts(doc)
    entry["animation_s"] = round(span, 6)
    if entry["meshes"] == 0:
        entry["reason"] = "no meshes"
    elif entry["animations"] == 0:
        entry["reason"] = "no animations" if not as_list(doc, "animations") else "its animations move nothing"
    else:
        entry["animated"] = True
    return entry


def body():
    out_json, out_env = script_args(2, "OUT.json OUT.env")
    models = env_str("models")
    pick = env_str("pick").strip()
    if os.path.exists(out_env):
        os.remove(out_env)  # never publish a previous run's choice
    if os.path.isdir(models):
        names = sorted(n for n in os.listdir(models) if n.lower().endswith(EXTENSIONS) and os.path.isfile(os.path.join(models, n)))
        base = models
    elif os.path.isfile(models):
        base, name = os.path.split(models)
        names = [name]
    else:
        raise OrbitError(f"models '{models}' is neither a directory nor a file (cwd {os.getcwd()})", EXIT_USAGE)
    if not names:
        raise OrbitError(f"no glTF model (*.glb, *.gltf) in '{models}'", EXIT_BAD_MODEL)

    looked = [look_at(os.path.join(base, n), n) for n in names]
    animated = [e for e in looked if e["animated"]]
    for e in looked:
        log(NAME, f"{e['file']}: " + (f"animated ({e['animations']} animation(s), {e['animation_s']:g} s)" if e["animated"] else e["reason"]))
    report = {"models": models, "pick": pick, "looked_at": looked, "animated": [e["file"] for e in animated], "picked": None}
    if not animated:
        write_json(out_json, report)
        verdicts = ", ".join(f"{e['file']} ({e['reason']})" for e in looked)
        raise OrbitError(f"no animated model among the {len(looked)} glTF file(s) looked at in '{models}': {verdicts}", EXIT_BAD_MODEL)
    if pick.lower() == "auto":
        chosen = animated[0]
    else:
        chosen = next((e for e in animated if e["file"] == pick), None)
        if chosen is None:
            other = next((e for e in looked if e["file"] == pick), None)
            why = f"it was looked at: {other['reason']}" if other else "no such file was looked at"
            raise OrbitError(f"pick '{pick}' is not one of the animated models in '{models}' ({', '.join(report['animated'])}); {why}", EXIT_USAGE)
    model = os.path.join(base, chosen["file"]) if base else chosen["file"]
    report["picked"] = chosen["file"]
    write_json(out_json, report)
    write_publish(out_env, {"model": model, "animation_s": chosen["animation_s"]})
    log(NAME, f"{len(animated)} of {len(looked)} model(s) animated; picked {model}")


main(NAME, body)
