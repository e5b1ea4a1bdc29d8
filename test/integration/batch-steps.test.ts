/**
 * Batch steps (`batch: true` inside a map) with the real compiler, templates,
 * job wrapper (templates/lib.sh) and bash: one command per array task for all
 * its items, a line per item on $HPCPIPE_BATCH_REPORT, per-item states.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { preparePlan } from "../../src/app/prepare.js";
import { SpecError } from "../../src/spec/index.js";
import { stateFileSchema } from "../../src/plan/state-file.js";
import { outcomeKinds, runCompiled, runInProcess, tempBase, writeYaml } from "./helpers.js";

let dir: string;
let cleanup: () => void;
beforeEach(() => {
  ({ dir, cleanup } = tempBase("hpcpipe-batch-"));
});
afterEach(() => cleanup());

type Doc = Record<string, unknown>;
const runsDir = (): string => join(dir, "runs");

/** A bash batch command: every item listed is logged to calls.txt, then handled by CASE (a bash `case` body on "$value"). */
function batchCommand(caseBody: string): string {
  return [
    'echo "call $(cut -f1 "$HPCPIPE_BATCH_ITEMS" | tr "\\n" " ")" >> "$HPCPIPE_RUN_DIR/calls.txt"',
    'while IFS=$\'\\t\' read -r index value publish outdir needs; do',
    '  case "$value" in',
    caseBody,
    '    *) echo "made $value" > "$outdir/made.txt"; echo "made=$value-made" >> "$publish"; hp_batch_report "$index" ok ;;',
    "  esac",
    'done < "$HPCPIPE_BATCH_ITEMS"',
  ].join("\n");
}

function mapSpec(name: string, items: string[], caseBody: string, extra: Doc = {}, after: Doc[] = []): string {
  return writeYaml(dir, name, {
    name,
    steps: [
      {
        map: "m",
        items,
        ...extra,
        steps: [
          { step: "make", batch: true, provides: ["made"], outputs: [`out/${name}.m/{i}/made.txt`], run: batchCommand(caseBody) },
          ...after,
        ],
      },
    ],
  });
}

function calls(runDir: string): string[] {
  const file = join(runDir, "calls.txt");
  return existsSync(file) ? readFileSync(file, "utf8").trim().split("\n").map((l) => l.trim()) : [];
}

function stateOf(runDir: string, key: string): ReturnType<typeof stateFileSchema.parse> {
  return stateFileSchema.parse(JSON.parse(readFileSync(join(runDir, "states", `${key}.json`), "utf8")));
}

describe("batch steps on the local executor (real bash)", () => {
  it("one command per task reports items ok, failed, or never: each item gets its own state, an unreported one fails as 'not reported'", async () => {
    const spec = mapSpec("report", ["a", "b", "c"], `    b) hp_batch_report "$index" failed "b is broken" ;;\n    c) ;;`, { items_per_task: 3, continue_on_item_error: true });
    const { outcome } = await runCompiled({ spec, localRunsDir: runsDir(), runId: "r1" });
    const runDir = outcome.runDir;
    expect(calls(runDir)).toEqual(["call 0 1 2"]);
    const kinds = outcomeKinds(outcome.state.step_states, { withoutNotRun: true });
    expect(kinds["report.m.0.make"]).toBe("ok");
    expect(kinds["report.m.1.make"]).toBe("STEP_FAILED");
    expect(kinds["report.m.2.make"]).toBe("STEP_FAILED");
    expect(kinds["report.m.0"]).toBe("ok");
    expect(kinds["report.m.1"]).toBe("STEP_FAILED");
    const a = stateOf(runDir, "report.m.0.make");
    expect(a.outputs).toEqual({ published: { made: "a-made" }, files: ["out/report.m/0/made.txt"] });
    expect(a.meta.item).toBe("a");
    expect(stateOf(runDir, "report.m.1.make").error).toBe("the batch command reported it failed: b is broken");
    expect(stateOf(runDir, "report.m.2.make").error).toBe("not reported by the batch command (it exited with status 0)");
    expect(readFileSync(join(runDir, "work/out/report.m/0/made.txt"), "utf8")).toBe("made a\n");
    // Each item's log is the batch command's log.
    expect(existsSync(join(runDir, "logs/report.m.2.make.out"))).toBe(true);
  });

  it("an item reported ok whose declared output is missing fails validation; lines that are not the protocol are ignored", async () => {
    const spec = mapSpec("valid", ["a", "b"], `    b) printf 'garbage\\n7\\tok\\n%s\\tmaybe\\n' "$index" >> "$HPCPIPE_BATCH_REPORT"; hp_batch_report "$index" ok ;;`, {
      items_per_task: 2,
    });
    const { outcome } = await runCompiled({ spec, localRunsDir: runsDir(), runId: "r1" });
    expect(stateOf(outcome.runDir, "valid.m.0.make").success).toBe(true);
    const b = stateOf(outcome.runDir, "valid.m.1.make");
    expect(b.success).toBe(false);
    expect(b.error).toContain("missing output file 'out/valid.m/1/made.txt'");
    expect(b.error).toContain("did not provide 'made'");
    expect(readFileSync(join(outcome.runDir, "logs", readdirSync(join(outcome.runDir, "logs")).find((f) => f.startsWith("slurm-")) ?? ""), "utf8")).toContain("ignored 3 report line(s)");
  });

  it("item and unit states reach states/ through one bulk rename (no bulk directory left); per-item logs are the batch log (hard links), an empty one an empty file; an oversized publish file fails its item only", async () => {
    const spec = mapSpec("bulk", ["a", "b", "c"], `    b) echo "b says hello"; printf 'big=%0140000d\\n' 0 >> "$publish"; echo "made=b" >> "$publish"; echo made > "$outdir/made.txt"; hp_batch_report "$index" ok ;;`, {
      items_per_task: 3,
      continue_on_item_error: true,
    });
    const { outcome } = await runCompiled({ spec, localRunsDir: runsDir(), runId: "r1" });
    const runDir = outcome.runDir;
    expect(stateOf(runDir, "bulk.m.0.make").success).toBe(true);
    expect(stateOf(runDir, "bulk.m.2.make").success).toBe(true);
    const b = stateOf(runDir, "bulk.m.1.make");
    expect(b.success).toBe(false);
    expect(b.error).toContain("validation failed: published values exceed 131072 bytes");
    expect([0, 1, 2].map((i) => stateOf(runDir, `bulk.m.${i}`).success)).toEqual([true, false, true]);
    expect(readdirSync(join(runDir, "states")).filter((n) => !n.endsWith(".json"))).toEqual([]);
    const batchLog = join(runDir, "logs/bulk.m.task0.make.out");
    for (const i of [0, 1, 2]) {
      const out = join(runDir, `logs/bulk.m.${i}.make.out`);
      expect(readFileSync(out, "utf8")).toBe("b says hello\n");
      expect(statSync(out).ino, "a hard link to the batch log").toBe(statSync(batchLog).ino);
      expect(statSync(join(runDir, `logs/bulk.m.${i}.make.err`)).size).toBe(0);
    }
  });

  it("a crash in the middle of a batch keeps the items already reported; the rest fail with the exit status", async () => {
    const spec = mapSpec("crash", ["a", "b", "c"], `    b) exit 7 ;;`, { items_per_task: 3, continue_on_item_error: true });
    const { outcome } = await runCompiled({ spec, localRunsDir: runsDir(), runId: "r1" });
    expect(stateOf(outcome.runDir, "crash.m.0.make").success).toBe(true);
    for (const i of [1, 2]) {
      const s = stateOf(outcome.runDir, `crash.m.${i}.make`);
      expect(s.success).toBe(false);
      expect(s.error).toBe("not reported by the batch command (it exited with status 7)");
      expect(s.exit_code).toBe(7);
    }
  });

  it("a map mixing batch and per-item steps runs each step across the task's items, leaving out items whose earlier step failed", async () => {
    const second = { step: "check", requires: ["made", "item"], run: 'echo "$item:$made" >> "$HPCPIPE_RUN_DIR/checked.txt"' };
    const third = { step: "again", batch: true, requires: ["made"], run: batchCommand("") };
    const spec = mapSpec("mixed", ["a", "b", "c", "d"], `    c) hp_batch_report "$index" failed ;;`, { items_per_task: 2, continue_on_item_error: true }, [second, third]);
    const { outcome } = await runCompiled({ spec, localRunsDir: runsDir(), runId: "r1", cpus: 1 });
    const runDir = outcome.runDir;
    expect(readFileSync(join(runDir, "checked.txt"), "utf8").trim().split("\n").sort()).toEqual(["a:a-made", "b:b-made", "d:d-made"]);
    expect(calls(runDir).sort()).toEqual(["call 0 1", "call 0 1", "call 2 3", "call 3"]);
    expect(existsSync(join(runDir, "states/mixed.m.2.check.json"))).toBe(false);
    expect(existsSync(join(runDir, "states/mixed.m.2.again.json"))).toBe(false);
    expect(stateOf(runDir, "mixed.m.2").error).toBe("mixed.m.2.make: the batch command reported it failed");
    expect(stateOf(runDir, "mixed.m.3.again").success).toBe(true);
    const merged = outcome.state.step_states?.["mixed.m"];
    expect(merged?.success, "continue_on_item_error: the map succeeds").toBe(true);
    expect(merged?.meta.failed_allowed).toEqual(["mixed.m.2"]);
  });

  it("an unpacked map gives each task's batch command its one item; tasks run as an array", async () => {
    const spec = mapSpec("single", ["a", "b", "c"], "");
    const { outcome } = await runCompiled({ spec, localRunsDir: runsDir(), runId: "r1" });
    expect(calls(outcome.runDir).sort()).toEqual(["call 0", "call 1", "call 2"]);
    expect(outcome.state.success).toBe(true);
  });

  it("resuming reruns only the failed items of a packed task: done items are skipped, their states untouched", async () => {
    const spec = mapSpec("resume", ["a", "b", "c"], `    b) [ -e "$HPCPIPE_RUN_DIR/fixed" ] || { hp_batch_report "$index" failed "not yet"; continue; } ; echo made > "$outdir/made.txt"; echo "made=b-made" >> "$publish"; hp_batch_report "$index" ok ;;`, {
      items_per_task: 3,
    });
    const first = await runCompiled({ spec, localRunsDir: runsDir(), runId: "r1" });
    const runDir = first.outcome.runDir;
    expect(first.outcome.state.success).toBe(false);
    const before = readFileSync(join(runDir, "states/resume.m.0.make.json"), "utf8");
    writeFileSync(join(runDir, "fixed"), "");
    const done = new Set(Object.entries(first.outcome.state.step_states ?? {}).filter(([, s]) => s.success).map(([k]) => k));
    const second = await runCompiled({ spec, localRunsDir: runsDir(), runId: "r1", done });
    expect(second.outcome.state.success).toBe(true);
    expect(calls(runDir)).toEqual(["call 0 1 2", "call 1"]);
    expect(readFileSync(join(runDir, "states/resume.m.0.make.json"), "utf8")).toBe(before);
    expect(stateOf(runDir, "resume.m.1.make").success).toBe(true);
  });

  it("a signal in the middle of a batch keeps the reported items and records the others as killed", async () => {
    const spec = mapSpec("killed", ["a", "b"], `    b) sleep 30 ;;`, { items_per_task: 2 });
    const prepared = preparePlan({ spec, localRunsDir: runsDir(), runId: "r1" });
    const runDir = prepared.plan.layout.runDir;
    const { mkdirSync } = await import("node:fs");
    mkdirSync(runDir, { recursive: true });
    for (const [path, text] of Object.entries(prepared.plan.files)) {
      mkdirSync(join(runDir, path, ".."), { recursive: true });
      writeFileSync(join(runDir, path), text);
    }
    const job = prepared.plan.jobs[0];
    if (!job) throw new Error("no job");
    const child = spawn("bash", [join(runDir, job.scriptPath)], { env: { ...process.env, SLURM_ARRAY_TASK_ID: "0" }, stdio: "ignore" });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const report = join(runDir, "batch/killed.m.task0.make/report.tsv");
    for (let i = 0; i < 200 && !(existsSync(report) && readFileSync(report, "utf8").includes("\tok")); i++) await new Promise((r) => setTimeout(r, 50));
    child.kill("SIGTERM");
    expect(await exited).toBe(143);
    expect(stateOf(runDir, "killed.m.0.make").success).toBe(true);
    const b = stateOf(runDir, "killed.m.1.make");
    expect(b.success).toBe(false);
    expect(b.error).toContain("killed by SIGTERM");
    expect(b.meta.reason).toBe("TERMINATED");
    expect(stateOf(runDir, "killed.m.1").success).toBe(false);
    expect(stateOf(runDir, "killed.m.0").success).toBe(false);
    expect(readdirSync(join(runDir, "states")).filter((n) => !n.endsWith(".json")), "no bulk directory or temp file left").toEqual([]);
  });
});

describe("batch steps in-process (Pipeline.run)", () => {
  it("each item runs as a one-item batch with the same protocol and outcomes as the job wrapper's", async () => {
    const spec = mapSpec("inproc", ["a", "b", "c"], `    b) hp_batch_report "$index" failed "b is broken" ;;\n    c) ;;`, { continue_on_item_error: true }, [
      { step: "check", requires: ["made"], run: 'test "$made" = "$item-made"' },
    ]);
    const work = join(dir, "work");
    const state = await runInProcess(spec, work);
    const states = state.step_states ?? {};
    expect(states["inproc.m.0.make"]?.success).toBe(true);
    expect(states["inproc.m.0.make"]?.outputs).toEqual({ published: { made: "a-made" }, files: ["out/inproc.m/0/made.txt"] });
    expect(states["inproc.m.0.check"]?.success).toBe(true);
    expect(states["inproc.m.1.make"]?.error).toBe("the batch command reported it failed: b is broken");
    expect(states["inproc.m.2.make"]?.error).toBe("not reported by the batch command (it exited with status 0)");
    expect(states["inproc.m.1.check"]).toBeUndefined();
    expect(readFileSync(join(work, "out/inproc.m/0/made.txt"), "utf8")).toBe("made a\n");
  });
});

describe("batch: true is refused where it makes no sense", () => {
  it("a batch step outside a map is refused, naming the step and the field", () => {
    const spec = writeYaml(dir, "outside", { name: "outside", steps: [{ step: "lonely", batch: true, run: "true" }] });
    expect(() => preparePlan({ spec, localRunsDir: runsDir() })).toThrow(SpecError);
    expect(() => preparePlan({ spec, localRunsDir: runsDir() })).toThrow(/steps\[0\]\.batch.*step 'lonely': batch: true/s);
  });

  it("a batch step in a parallel group is refused too; batch must be a boolean", () => {
    const inGroup = writeYaml(dir, "group", { name: "group", steps: [{ group: "g", parallel: true, steps: [{ step: "x", batch: true, run: "true" }] }] });
    expect(() => preparePlan({ spec: inGroup, localRunsDir: runsDir() })).toThrow(/step 'x': batch: true/);
    const notBool = writeYaml(dir, "nb", { name: "nb", steps: [{ map: "m", items: ["a"], steps: [{ step: "x", batch: "yes", run: "true" }] }] });
    expect(() => preparePlan({ spec: notBool, localRunsDir: runsDir() })).toThrow(/batch/);
  });
});
