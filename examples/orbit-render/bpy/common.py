"""Helpers shared by the orbit-render scripts (run inside Blender: blender -b -P script.py -- args).

Parameters come from environment variables (the pipeline's context values, the values earlier
steps published and the map item) and from the arguments after `--` (file paths, written
literally in pipeline.yaml). A failure prints one line starting with
"orbit-render <script>: error:" on stderr and exits non-zero.
"""
import json
import os
import re
import sys

# Exit statuses of the scripts (the step fails with "command exited with status N").
EXIT_USAGE = 2       # a missing or malformed parameter or input file
EXIT_BAD_MODEL = 3   # no usable model: none animated, unreadable, nothing to render
EXIT_FAILED = 4      # anything else (rendering, writing)

# Blender's largest frame number (MAXFRAME).
MAX_FRAME = 1048574
# Most frames one run may render (a guard against a typo such as 1-100000).
MAX_FRAMES = 100_000


class OrbitError(Exception):
    def __init__(self, message, code=EXIT_FAILED):
        super().__init__(message)
        self.code = code


def log(script, message):
    print(f"orbit-render {script}: {message}", flush=True)


def fail(script, message, code):
    sys.stdout.flush()
    print(f"orbit-render {script}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def main(script, body):
    """Runs body(); turns an OrbitError (or any exception) into a clear message and an exit status."""
    try:
        body()
    except OrbitError as e:
        fail(script, str(e), e.code)
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - a clear line, then the traceback for the log
        import traceback

        traceback.print_exc()
        fail(script, f"{type(e).__name__}: {e}", EXIT_FAILED)
    sys.stdout.flush()
    sys.stderr.flush()


def script_args(count, usage):
    """The arguments after `--` on Blender's command line."""
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    if len(argv) != count:
        raise OrbitError(f"usage: blender -b --factory-startup -noaudio -P <script> -- {usage}", EXIT_USAGE)
    return argv


def env_str(name):
    value = os.environ.get(name)
    if value is None or value == "":
        raise OrbitError(f"environment variable '{name}' is not set (a context value of the pipeline)", EXIT_USAGE)
    return value


def env_int(name, lo, hi):
    raw = env_str(name)
    if not re.fullmatch(r"[0-9]+", raw.strip()):
        raise OrbitError(f"'{name}' must be a whole number, got {raw!r}", EXIT_USAGE)
    value = int(raw.strip(), 10)
    if not lo <= value <= hi:
        raise OrbitError(f"'{name}' must be between {lo} and {hi}, got {value}", EXIT_USAGE)
    return value


def env_choice(name, choices):
    raw = env_str(name).strip().lower()
    if raw not in choices:
        raise OrbitError(f"'{name}' must be one of {', '.join(choices)}, got {env_str(name)!r}", EXIT_USAGE)
    return raw


def cpu_threads():
    """Render threads: the CPUs SLURM gave the task (the local executor sets it too), else 0 (all)."""
    raw = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else 0


def parse_range(text, where):
    """A frame range 'A-B' (or one frame 'A'): (A, B) with 1 <= A <= B <= MAX_FRAME."""
    m = re.fullmatch(r"\s*([0-9]{1,7})\s*(?:-\s*([0-9]{1,7})\s*)?", text)
    if m is None:
        raise OrbitError(f"{where}: expected a frame range like '1-6' (or one frame '7'), got {text!r}", EXIT_USAGE)
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) is not None else start
    if not 1 <= start <= end <= MAX_FRAME:
        raise OrbitError(f"{where}: expected 1 <= first <= last <= {MAX_FRAME}, got {text!r}", EXIT_USAGE)
    return start, end


def read_ranges(path):
    """The frame ranges of a ranges file (one per line; blank lines and '#' comments skipped, as
    hpcpipe reads a map's items_file). They must cover one run of frames without gaps or overlaps.
    Returns (ranges in file order, first frame, last frame)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except OSError as e:
        raise OrbitError(f"cannot read the frame ranges file '{path}': {e.strerror}", EXIT_USAGE) from None
    ranges = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if text == "" or text.startswith("#"):
            continue
        ranges.append((parse_range(text, f"{path}:{number}"), number))
    if not ranges:
        raise OrbitError(f"the frame ranges file '{path}' has no ranges", EXIT_USAGE)
    ordered = sorted(ranges)
    for ((a_start, a_end), a_line), ((b_start, b_end), b_line) in zip(ordered, ordered[1:]):
        if b_start <= a_end:
            raise OrbitError(f"{path}: ranges {a_start}-{a_end} (line {a_line}) and {b_start}-{b_end} (line {b_line}) overlap", EXIT_USAGE)
        if b_start != a_end + 1:
            gap = f"frame {a_end + 1} is" if b_start == a_end + 2 else f"frames {a_end + 1}-{b_start - 1} are"
            raise OrbitError(f"{path}: {gap} in no range (between lines {a_line} and {b_line}); the ranges must cover one run of frames", EXIT_USAGE)
    first, last = ordered[0][0][0], ordered[-1][0][1]
    if last - first + 1 > MAX_FRAMES:
        raise OrbitError(f"{path}: {last - first + 1} frames; at most {MAX_FRAMES} are allowed", EXIT_USAGE)
    return [r for r, _ in ranges], first, last


def open_blend(path):
    import bpy

    if not os.path.isfile(path):
        raise OrbitError(f"scene file '{path}' does not exist (cwd {os.getcwd()})", EXIT_USAGE)
    bpy.ops.wm.open_mainfile(filepath=os.path.abspath(path), load_ui=False)


def save_blend(path):
    import bpy

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(path), compress=False, copy=False)


def write_text(path, text):
    """Writes a file through a temp file renamed into place."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_json(path, data):
    write_text(path, json.dumps(data, indent=2) + "\n")


def write_publish(path, values):
    """`key=value` lines for the step to append to $HPCPIPE_PUBLISH (values are single lines)."""
    lines = []
    for key, value in values.items():
        text = str(value)
        if re.search(r"[\x00-\x1f\x7f]", text):
            raise OrbitError(f"cannot publish {key}: the value {text!r} contains a control character", EXIT_USAGE)
        lines.append(f"{key}={text}\n")
    write_text(path, "".join(lines))


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise OrbitError(f"cannot read '{path}': {e}", EXIT_USAGE) from None
