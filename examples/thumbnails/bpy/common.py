"""Helpers shared by the thumbnail scripts (run inside Blender: blender -b -P script.py -- args).

Parameters come from environment variables (the pipeline's context values and
the values earlier steps published) and from the arguments after `--` (the
output paths, written literally in pipeline.yaml). A failure prints one line
starting with "thumbnails <script>: error:" on stderr and exits non-zero.
"""
import json
import os
import sys

import bpy

# Exit statuses of the scripts (the step fails with "command exited with status N").
EXIT_USAGE = 2       # a missing or malformed parameter
EXIT_BAD_MODEL = 3   # the model is missing, unreadable, or has nothing to render
EXIT_FAILED = 4      # anything else (rendering, writing)



class ThumbnailError(Exception):
    def __init__(self, message, code=EXIT_FAILED):
        super().__init__(message)
        self.code = code


def log(script, message):
    print(f"thumbnails {script}: {message}", flush=True)


def fail(script, message, code):
    sys.stdout.flush()
    print(f"thumbnails {script}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def main(script, body):
    """Runs body(); turns a ThumbnailError (or any exception) into a clear message and an exit status."""
    try:
        body()
    except ThumbnailError as e:
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
        raise ThumbnailError(f"usage: blender -b --factory-startup -noaudio -P <script> -- {usage}", EXIT_USAGE)
    return argv


def env_str(name):
    value = os.environ.get(name)
    if value is None or value == "":
        raise ThumbnailError(f"environment variable '{name}' is not set (a context value of the pipeline)", EXIT_USAGE)
    return value


def env_int(name, lo, hi):
    raw = env_str(name)
    try:
        value = int(raw, 10)
    except ValueError:
        raise ThumbnailError(f"'{name}' must be a whole number, got {raw!r}", EXIT_USAGE) from None
    if not lo <= value <= hi:
        raise ThumbnailError(f"'{name}' must be between {lo} and {hi}, got {value}", EXIT_USAGE)
    return value


def cpu_threads():
    """Render threads: the CPUs SLURM gave the task (the local executor sets it too), else all."""
    raw = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else 0


def open_blend(path):
    if not os.path.isfile(path):
        raise ThumbnailError(f"scene file '{path}' does not exist (cwd {os.getcwd()})", EXIT_USAGE)
    bpy.ops.wm.open_mainfile(filepath=os.path.abspath(path), load_ui=False)


def save_blend(path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(path), compress=False, copy=False)


def write_json(path, data):
    """Writes JSON through a temp file renamed into place."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ThumbnailError(f"cannot read '{path}': {e}", EXIT_USAGE) from None
