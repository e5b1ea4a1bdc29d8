"""hpcpipe batch steps from Python (Blender's included): the item list and the report, no third-party modules.

A batch step (`batch: true` on a map's step) runs ONE command for every item of its array task. The
job wrapper lists the items in the file `$HPCPIPE_BATCH_ITEMS`, one line each:

    INDEX <TAB> VALUE <TAB> PUBLISH_FILE <TAB> OUTPUT_DIR <TAB> NEEDS_FILE

and the command reports each finished item by appending one line to `$HPCPIPE_BATCH_REPORT`:

    INDEX <TAB> ok|failed [<TAB> MESSAGE]

An item never reported fails as "not reported"; the wrapper writes every item's state file.

    import hpcpipe_batch as hb

    def render(item):                      # raise to fail this item only
        ... write into item.out_dir ...
        item.publish("thumb", os.path.join(item.out_dir, "thumb.png"))

    sys.exit(hb.run(render))

The same script also runs as a plain per-item step (no `$HPCPIPE_BATCH_ITEMS`): `items()` is then the
step's one item (HPCPIPE_TASK, HPCPIPE_ITEM, HPCPIPE_PUBLISH; its output directory is
`out/<map key>/<index>` under the working directory, as the wrapper makes it for batch steps), and
`run()` returns 1 when it failed.
"""
import os
import sys
import traceback

__all__ = ["Item", "items", "report", "run", "in_batch"]


class Item:
    """One item of the task: its index in the map, its value, where it publishes, where its files go."""

    __slots__ = ("index", "value", "publish_file", "out_dir", "needs")

    def __init__(self, index, value, publish_file, out_dir, needs):
        self.index = index
        self.value = value
        self.publish_file = publish_file
        self.out_dir = out_dir
        self.needs = needs

    def publish(self, key, value):
        """Publishes KEY=VALUE for the item's later steps (a value is one line)."""
        text = str(value)
        if "\n" in text or "\r" in text or "=" in key:
            raise ValueError(f"cannot publish {key!r}: keys have no '=', values no newline")
        with open(self.publish_file, "a", encoding="utf-8") as f:
            f.write(f"{key}={text}\n")

    def __repr__(self):
        return f"Item({self.index}, {self.value!r})"


def in_batch():
    """True when this process is a batch step's command."""
    return bool(os.environ.get("HPCPIPE_BATCH_ITEMS"))


def _read_needs(path):
    needs = {}
    if path and os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if "=" in line:
                    k, v = line.split("=", 1)
                    needs[k] = v
    return needs


def _single_item():
    task = int(os.environ["HPCPIPE_TASK"])
    step = os.environ.get("HPCPIPE_STEP", "")
    parts = step.split(".")
    # The map key is the step key up to its item index: <map key>.<index>.<step>.
    cut = max((i for i, p in enumerate(parts) if p == str(task)), default=None)
    if cut is None:
        raise RuntimeError(f"step {step!r} is not inside a map (no item index {task} in its key)")
    out_dir = os.path.join(os.getcwd(), "out", ".".join(parts[:cut]), str(task))
    os.makedirs(out_dir, exist_ok=True)
    return Item(task, os.environ.get("HPCPIPE_ITEM", ""), os.environ.get("HPCPIPE_PUBLISH", os.devnull), out_dir, dict(os.environ))


def items():
    """The items this command handles, in order."""
    path = os.environ.get("HPCPIPE_BATCH_ITEMS")
    if not path:
        return [_single_item()]
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 5:
                raise RuntimeError(f"{path}: expected 5 tab-separated fields, got {len(fields)}")
            index, value, publish_file, out_dir, needs_file = fields
            out.append(Item(int(index), value, publish_file, out_dir, _read_needs(needs_file)))
    return out


def report(item, ok, message=""):
    """Reports one finished item (one line, one write: safe to call as each item finishes)."""
    path = os.environ.get("HPCPIPE_BATCH_REPORT")
    if not path:
        return
    text = " ".join(str(message).split())[:1000]
    line = f"{item.index}\t{'ok' if ok else 'failed'}\t{text}\n".encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def run(handler):
    """Calls handler(item) for every item and reports it: ok when it returns, failed when it raises.
    Returns the exit status: 0 in a batch (each item's outcome is in its report), else 1 when the item failed."""
    failed = 0
    for item in items():
        try:
            handler(item)
        except Exception as e:  # noqa: BLE001 - one item's failure must not stop the others
            traceback.print_exc()
            print(f"hpcpipe_batch: item {item.index} ({item.value}) failed: {e}", file=sys.stderr, flush=True)
            report(item, False, f"{type(e).__name__}: {e}")
            failed += 1
            continue
        report(item, True)
    sys.stdout.flush()
    sys.stderr.flush()
    return 0 if in_batch() else min(failed, 1)
