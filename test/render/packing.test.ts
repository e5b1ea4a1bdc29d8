/**
 * Packed map tasks with real bash: one array task runs several items, each
 * in its own subshell with its own index, item, log sections and state lines, at
 * most SLURM_CPUS_PER_TASK / item cpus at once (measured from timestamp
 * files the items write, never from elapsed time); signals leave complete
 * states for every running item; the task's exit status mirrors unpacked
 * tasks; a rerun skips the items already done.
 */
import { appendFileSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultTemplatesDir, loadTemplates } from "../../src/render/environment.js";
import { jobView, renderJobScript } from "../../src/render/render.js";
import { afterEach, describe, expect, it } from "vitest";
import { context, groupJob, mapJob, packedMapJob, step } from "./fixtures.js";
import {
  allStates,
  arrayEnv,
  makeRun,
  packFiles,
  perKeyStates,
  processAlive,
  readState,
  readStepLog,
  removeRun,
  runScript,
  startScript,
  stateExists,
  stateText,
  waitFor,
  writeJob,
} from "./harness.js";
import type { Run } from "./harness.js";

/** The sbatch template without its `{{#if job.isPacked}} ... {{else}}` branch (and that `{{/if}}`): templates from before task packing. */
function withoutPackedBranch(sbatch: string): string {
  const start = sbatch.indexOf("{{#if job.isPacked}}\n");
  let depth = 0;
  let elseAt = -1;
  for (const m of sbatch.slice(start).matchAll(/\{\{(#if [^}]*|else|\/if)\}\}\n/g)) {
    const at = start + (m.index ?? 0);
    if (m[1]?.startsWith("#if")) depth++;
    else if (m[1] === "/if") {
      depth--;
      if (depth === 0) return sbatch.slice(0, start) + sbatch.slice(elseAt + "{{else}}\n".length, at) + sbatch.slice(at + m[0].length);
    } else if (depth === 1 && elseAt < 0) elseAt = at;
  }
  throw new Error("sbatch.hbs: no {{#if job.isPacked}} ... {{else}} ... {{/if}} block");
}

let runs: Run[] = [];
function newRun(options: Parameters<typeof makeRun>[0] = {}): Run {
  const run = makeRun(options);
  runs.push(run);
  return run;
}
afterEach(() => {
  for (const r of runs) removeRun(r);
  runs = [];
});

const letters = (n: number): string[] => Array.from({ length: n }, (_, i) => `item ${String.fromCharCode(97 + i)}`);

/** Each item records `start end` (microseconds) in out/ts-<index>, after waiting (up to 5 s) until `barrier` items have started. */
function timedStep(key: string, barrier: number, sleepS = 0.2) {
  const cmd = [
    'start=${EPOCHREALTIME/./}',
    'touch "$HPCPIPE_OUT_DIR/started-$HPCPIPE_TASK"',
    `for _ in $(seq 250); do [ "$(ls "$HPCPIPE_OUT_DIR" | grep -c '^started-')" -ge ${barrier} ] && break; sleep 0.02; done`,
    `sleep ${sleepS}`,
    'echo "$start ${EPOCHREALTIME/./}" > "$HPCPIPE_OUT_DIR/ts-$HPCPIPE_TASK"',
  ].join("\n");
  return step(key, cmd);
}

/** The most intervals open at once. */
function maxOverlap(run: Run): { max: number; items: number[] } {
  const dir = join(run.runDir, "out");
  const files = readdirSync(dir).filter((f) => f.startsWith("ts-"));
  const events: Array<[number, number]> = [];
  for (const f of files) {
    const [a, b] = readFileSync(join(dir, f), "utf8").trim().split(" ").map(Number);
    events.push([a as number, 1], [b as number, -1]);
  }
  // Ends before starts at the same instant.
  events.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let open = 0;
  let max = 0;
  for (const [, d] of events) {
    open += d;
    max = Math.max(max, open);
  }
  return { max, items: files.map((f) => Number(f.slice(3))).sort((a, b) => a - b) };
}

describe("a packed map task", () => {
  it("runs each of its items with its own index, item, publish file, logs and states", async () => {
    const items = letters(7);
    const run = newRun({ items: { m: items }, context: { size: "64" } });
    const job = packedMapJob(
      "m",
      "model",
      [
        step("m.{i}.prep", 'echo "$HPCPIPE_TASK|$HPCPIPE_ITEM|$model" ; echo "thumb=t-$HPCPIPE_TASK" >> "$HPCPIPE_PUBLISH"', {
          requires: ["model"],
          provides: ["thumb"],
          needs: [{ key: "model", from: "context" }],
        }),
        step("m.{i}.render", 'printf "%s %s %s" "$thumb" "$size" "$HPCPIPE_STEP" > "$HPCPIPE_OUT_DIR/$HPCPIPE_TASK.txt"', {
          requires: ["thumb", "size"],
          needs: [
            { key: "thumb", from: "m.{i}.prep" },
            { key: "size", from: "context" },
          ],
        }),
      ],
      { itemsPerTask: 3 },
      { count: 3 },
    );
    const script = writeJob(run, job);
    const text = readFileSync(script, "utf8");
    expect(text).toContain("#SBATCH --array=0-2\n");
    expect(text).toContain("hp_map_pack items/m.txt model 3 1 hp_item m\n");
    expect(text).not.toContain("hp_map_item ");

    const res = await runScript(run, script, { ...arrayEnv(1), SLURM_CPUS_PER_TASK: "2" });
    expect(res.code).toBe(0);
    expect(res.stderr).toContain("task 1 runs items 3-5, at most 2 at once");
    for (const i of [3, 4, 5]) {
      const item = items[i] as string;
      expect(readStepLog(run, `m.${i}.prep`, "out")).toBe(`${i}|${item}|${item}\n`);
      expect(readFileSync(join(run.runDir, "out", `${i}.txt`), "utf8")).toBe(`t-${i} 64 m.${i}.render`);
      expect(readState(run, `m.${i}.prep`)).toMatchObject({
        success: true,
        meta: { item },
        outputs: { published: { thumb: `t-${i}` } },
        slurm: { array_job_id: "4200", array_task_id: "1", job_id: "4301", task: i },
      });
      expect(readState(run, `m.${i}`)).toMatchObject({ success: true, signature: "fedcba987654", meta: { item }, slurm: { task: i } });
    }
    expect(allStates(run)).toEqual({ keys: ["m.3", "m.3.prep", "m.3.render", "m.4", "m.4.prep", "m.4.render", "m.5", "m.5.prep", "m.5.render"], leftovers: [] });

    // The last task runs what is left (one item); a chunk adds its offset first.
    const last = writeJob(run, { ...job, array: { ...(job.array as NonNullable<typeof job.array>), count: 1, offset: 2, chunk: 1, chunks: 2 } });
    expect((await runScript(run, last, arrayEnv(0))).code).toBe(0);
    expect(readState(run, "m.6.render").success).toBe(true);
    expect(stateExists(run, "m.7")).toBe(false);
    // One pack file per task, named by its items; no per-item state file.
    expect(packFiles(run)).toEqual(["m.items-3-5.jsonl", "m.items-6-6.jsonl"]);
    expect(perKeyStates(run)).toEqual([]);
  });

  it("gives each item's commands the context values under their own names, even names the packing uses inside", async () => {
    const names = ["n", "i", "key", "file", "body", "first", "per", "icpus", "slots", "cpus", "lines", "count"];
    const print = `printf '%s\\n' "${names.map((n) => `${n}=\${${n}-unset}`).join(" ")}" > "$HPCPIPE_OUT_DIR/$HPCPIPE_STEP"`;
    const expected = `${names.map((n) => `${n}=ctx-${n}`).join(" ")}\n`;
    const run = newRun({ items: { m: letters(4) }, context: Object.fromEntries(names.map((n) => [n, `ctx-${n}`])) });
    const map = writeJob(run, packedMapJob("m", "model", [step("m.{i}.s", print)], { itemsPerTask: 3 }, { count: 2 }));
    expect((await runScript(run, map, arrayEnv(1))).code).toBe(0);
    expect(readFileSync(join(run.runDir, "out", "m.3.s"), "utf8")).toBe(expected);
    const bodies = [0, 1, 2].map((c) => ({ unitKey: null, steps: [step(`g.c${c}`, print)] }));
    const group = writeJob(run, groupJob(bodies, { groupPack: { itemsPerTask: 2, itemCpus: 1 }, array: { count: 2, offset: 0, throttle: null, chunk: 0, chunks: 1, total: 2, indices: null } }));
    expect((await runScript(run, group, arrayEnv(1))).code).toBe(0);
    expect(readFileSync(join(run.runDir, "out", "g.c2"), "utf8")).toBe(expected);
  });

  it("dies without states when its task has no items (a bundle that does not match its array)", async () => {
    const run = newRun({ items: { m: letters(4) } });
    const script = writeJob(run, packedMapJob("m", "it", [step("m.{i}.s", "true")], { itemsPerTask: 2 }, { count: 3 }));
    const res = await runScript(run, script, arrayEnv(2));
    expect(res.code).toBe(1);
    expect(res.stderr).toContain("no items for task 2");
    expect(allStates(run).keys).toEqual([]);
  });

  it("runs at most SLURM_CPUS_PER_TASK / item cpus items at once (from the items' own timestamps)", async () => {
    for (const [cpus, itemCpus, expected] of [
      ["3", 1, 3],
      ["5", 2, 2],
      [undefined, 1, 1],
    ] as const) {
      const run = newRun({ items: { m: letters(8) } });
      const job = packedMapJob("m", "it", [timedStep("m.{i}.t", expected)], { itemsPerTask: 8, itemCpus }, { count: 1 });
      const env = { ...arrayEnv(0), ...(cpus === undefined ? {} : { SLURM_CPUS_PER_TASK: cpus }) };
      const res = await runScript(run, writeJob(run, job), env);
      expect(res.code).toBe(0);
      const { max, items } = maxOverlap(run);
      expect(items).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      // The barrier makes the first `expected` items overlap; the bound keeps the rest from exceeding it.
      expect(max, `SLURM_CPUS_PER_TASK=${cpus} item cpus ${itemCpus}`).toBe(expected);
    }
  }, 60_000);

  it("hands each slot's worker the next item as it finishes one: a long item holds one slot while the other runs the rest", async () => {
    const run = newRun({ items: { m: letters(6) } });
    // Item 0 ends only once item 5 has run: the other five must all go through slot 1, one after the other.
    const cmd = [
      'if [ "$HPCPIPE_TASK" = 0 ]; then for _ in $(seq 500); do [ -e "$HPCPIPE_OUT_DIR/done-5" ] && break; sleep 0.02; done; fi',
      'touch "$HPCPIPE_OUT_DIR/done-$HPCPIPE_TASK"',
    ].join("\n");
    const job = packedMapJob("m", "it", [step("m.{i}.s", cmd)], { itemsPerTask: 6 }, { count: 1 });
    const res = await runScript(run, writeJob(run, job), { ...arrayEnv(0), SLURM_CPUS_PER_TASK: "2" });
    expect(res.code).toBe(0);
    const slotOf = (i: number): unknown => (readState(run, `m.${i}.s`).meta as { log?: string }).log;
    expect(slotOf(0)).toBe("logs/m.items-0-5.s0");
    for (const i of [1, 2, 3, 4, 5]) expect(slotOf(i), `item ${i}`).toBe("logs/m.items-0-5.s1");
  }, 30_000);

  it("runs the items one at a time in one slot when it cannot make the workers' pipes", async () => {
    const run = newRun({ items: { m: letters(4) } });
    appendFileSync(join(run.runDir, "scripts", "lib.sh"), "_hp_pack_pipe() { return 1; }\n");
    const job = packedMapJob("m", "it", [timedStep("m.{i}.t", 1, 0.05), step("m.{i}.f", '[ "$HPCPIPE_TASK" != 2 ]')], { itemsPerTask: 4 }, { count: 1 });
    const res = await runScript(run, writeJob(run, job), { ...arrayEnv(0), SLURM_CPUS_PER_TASK: "3" });
    expect(res.stderr).toContain("runs items 0-3, at most 3 at once");
    expect(res.stderr).toContain("cannot make the pipes of 3 workers (/dev/fd); the items run one at a time");
    expect(maxOverlap(run)).toEqual({ max: 1, items: [0, 1, 2, 3] });
    expect(res.code).toBe(1);
    expect(readState(run, "m.2")).toMatchObject({ success: false, meta: { failed_step: "m.2.f" } });
    expect(readState(run, "m.3").success).toBe(true);
    expect(readState(run, "m.3.t").meta).toMatchObject({ log: "logs/m.items-0-3.s0" });
  }, 30_000);

  it("ends, failed, when a worker is killed outright: the other slot runs the rest, and a process a step left behind holds no pipe", async () => {
    const run = newRun({ items: { m: letters(6) } });
    // Item 1 kills its worker (the parent of its command) with SIGKILL: no trap, no message. Item 3 leaves
    // a process behind for a minute; had it kept the pipes, the task would wait for it.
    const cmd = [
      'case $HPCPIPE_TASK in',
      '  1) kill -KILL "$PPID"; sleep 1 ;;',
      '  3) sleep 60 & echo "$!" > "$HPCPIPE_OUT_DIR/left-behind" ;;',
      'esac',
    ].join("\n");
    const job = packedMapJob("m", "it", [step("m.{i}.s", cmd)], { itemsPerTask: 6 }, { count: 1 }, { continueOnItemError: true });
    const res = await runScript(run, writeJob(run, job), { ...arrayEnv(0), SLURM_CPUS_PER_TASK: "2" });
    const leftBehind = Number(readFileSync(join(run.runDir, "out", "left-behind"), "utf8"));
    try {
      expect(res.code).toBe(1);
      expect(res.stderr).toContain("lost its workers");
      expect(stateExists(run, "m.1")).toBe(false);
      for (const i of [0, 2, 3, 4, 5]) expect(readState(run, `m.${i}`).success, `item ${i}`).toBe(true);
      expect(packFiles(run)).toEqual(["m.items-0-5.jsonl"]);
      expect(processAlive(leftBehind)).toBe(true);
    } finally {
      process.kill(leftBehind, "SIGKILL");
    }
  }, 30_000);

  it("a worker that dies in an item (the wrapper's own error) fails the task; the other workers run the rest", async () => {
    const run = newRun({ items: { m: letters(5) } });
    const script = writeJob(run, packedMapJob("m", "it", [step("m.{i}.s", "true")], { itemsPerTask: 5 }, { count: 1 }, { continueOnItemError: true }));
    // The body of item 2 stops its worker as _hp_die does for a broken bundle.
    writeFileSync(script, readFileSync(script, "utf8").replace("hp_item() {\n", 'hp_item() {\n[ "$HPCPIPE_TASK" != 2 ] || _hp_die "broken item"\n'));
    const res = await runScript(run, script, { ...arrayEnv(0), SLURM_CPUS_PER_TASK: "2" });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain("error: broken item");
    expect(stateExists(run, "m.2")).toBe(false);
    for (const i of [0, 1, 3, 4]) expect(readState(run, `m.${i}`).success, `item ${i}`).toBe(true);
  }, 30_000);

  it("exits 1 when an item failed, after running every other item, and 0 with continue_on_item_error", async () => {
    const steps = [step("m.{i}.s", '[ "$it" != "item c" ] || exit 5'), step("m.{i}.after", "true")];
    const strictRun = newRun({ items: { m: letters(4) } });
    const strict = await runScript(strictRun, writeJob(strictRun, packedMapJob("m", "it", steps, { itemsPerTask: 4 }, { count: 1 })), arrayEnv(0));
    expect(strict.code).toBe(1);
    expect(readState(strictRun, "m.2")).toMatchObject({ success: false, failure: "STEP_FAILED", meta: { failed_step: "m.2.s", item: "item c" } });
    expect(stateExists(strictRun, "m.2.after")).toBe(false);
    for (const i of [0, 1, 3]) expect(readState(strictRun, `m.${i}`).success).toBe(true);

    const tolerantRun = newRun({ items: { m: letters(4) } });
    const tolerant = packedMapJob("m", "it", steps, { itemsPerTask: 4 }, { count: 1 }, { continueOnItemError: true });
    expect((await runScript(tolerantRun, writeJob(tolerantRun, tolerant), arrayEnv(0))).code).toBe(0);
    expect(readState(tolerantRun, "m.2").success).toBe(false);
    expect(readState(tolerantRun, "m.3").success).toBe(true);

    // A missing requirement fails the task even with continue_on_item_error, as unpacked.
    const missingRun = newRun({ items: { m: letters(2) } });
    const needy = packedMapJob(
      "m",
      "it",
      [step("m.{i}.s", "true", { requires: ["absent"], needs: [{ key: "absent", from: "context" }] })],
      { itemsPerTask: 2 },
      { count: 1 },
      { continueOnItemError: true },
    );
    expect((await runScript(missingRun, writeJob(missingRun, needy), arrayEnv(0))).code).toBe(1);
    expect(readState(missingRun, "m.1")).toMatchObject({ success: false, failure: "MISSING_REQUIREMENT" });
  });

  it("writes the same state files as the unpacked tasks of the same items (keys, outcomes, items, task index)", async () => {
    const steps = [step("m.{i}.s", '[ "$HPCPIPE_TASK" != 1 ] || exit 3'), step("m.{i}.t", 'echo "$it"')];
    const packedRun = newRun({ items: { m: letters(3) } });
    await runScript(packedRun, writeJob(packedRun, packedMapJob("m", "it", steps, { itemsPerTask: 3 }, { count: 1 }, { continueOnItemError: true })), arrayEnv(0));
    const unpackedRun = newRun({ items: { m: letters(3) } });
    const unpacked = writeJob(unpackedRun, mapJob("m", "it", steps, { count: 3 }, { continueOnItemError: true }));
    for (const t of [0, 1, 2]) await runScript(unpackedRun, unpacked, arrayEnv(t));
    const shape = (run: Run) => {
      const { keys } = allStates(run);
      return keys.map((k) => {
        const s = readState(run, k);
        // The packed states name their slot's log (meta.log); the rest is the same.
        const { log: _log, ...meta } = (s.meta ?? {}) as Record<string, unknown>;
        return { k, success: s.success, failure: s.failure, error: s.error, meta, task: s.slurm?.task, provides: s.provides, outputs: s.outputs };
      });
    };
    expect(shape(packedRun)).toEqual(shape(unpackedRun));
  });

  for (const [signal, reason, code] of [
    ["SIGTERM", "TERMINATED", 143],
    ["SIGUSR1", "TIMEOUT", 138],
    ["SIGINT", "SIGNAL", 130],
  ] as const) {
    it(`passes ${signal} on to its running items: each leaves complete states with reason ${reason}, no temp file, exit ${code}`, async () => {
      const run = newRun({ items: { m: letters(3) } });
      const slow = step("m.{i}.slow", 'sleep 30 & echo $! > "sleep-$HPCPIPE_TASK.pid"; touch "started-$HPCPIPE_TASK"; wait');
      const job = packedMapJob("m", "it", [step("m.{i}.first", "true"), slow], { itemsPerTask: 3 }, { count: 1 });
      const { child, done } = startScript(run, writeJob(run, job), { ...arrayEnv(0), SLURM_CPUS_PER_TASK: "2" });
      const work = join(run.runDir, "work");
      await waitFor(() => existsSync(join(work, "started-0")) && existsSync(join(work, "started-1")));
      const sleepPids = [0, 1].map((i) => Number(readFileSync(join(work, `sleep-${i}.pid`), "utf8")));
      // Only the batch shell gets it (like --signal=B:USR1@N); the wrapper passes it on.
      child.kill(signal);
      const res = await done;
      expect(res.code).toBe(code);
      for (const i of [0, 1]) {
        expect(readState(run, `m.${i}.slow`)).toMatchObject({ success: false, failure: "STEP_FAILED", exit_code: null, meta: { reason, exit_code: null, item: letters(3)[i] } });
        expect(readState(run, `m.${i}.slow`).error).toContain(`killed by ${signal}`);
        expect(readState(run, `m.${i}`)).toMatchObject({ success: false, meta: { reason, failed_step: `m.${i}.slow` } });
        expect(readState(run, `m.${i}.first`).success).toBe(true);
      }
      // The third item had not started: it wrote nothing (the collector reports it as not run).
      expect(allStates(run)).toEqual({ keys: ["m.0", "m.0.first", "m.0.slow", "m.1", "m.1.first", "m.1.slow"], leftovers: [] });
      for (const pid of sleepPids) await waitFor(() => !processAlive(pid), 5_000);
    });
  }

  it("exits 0 after a signal when its items may fail (continue_on_item_error), still with complete states", async () => {
    const run = newRun({ items: { m: letters(2) } });
    const slow = step("m.{i}.slow", 'sleep 30 & touch "started-$HPCPIPE_TASK"; wait');
    const job = packedMapJob("m", "it", [slow], { itemsPerTask: 2 }, { count: 1 }, { continueOnItemError: true });
    const { child, done } = startScript(run, writeJob(run, job), { ...arrayEnv(0), SLURM_CPUS_PER_TASK: "2" });
    await waitFor(() => existsSync(join(run.runDir, "work", "started-0")) && existsSync(join(run.runDir, "work", "started-1")));
    child.kill("SIGUSR1");
    expect((await done).code).toBe(0);
    for (const i of [0, 1]) expect(readState(run, `m.${i}`)).toMatchObject({ success: false, meta: { reason: "TIMEOUT" } });
    expect(allStates(run).leftovers).toEqual([]);
  });

  it("survives TERM sent to the whole process group (as SLURM and the local executor do) with complete states", async () => {
    const run = newRun({ items: { m: letters(4) } });
    const slow = step("m.{i}.slow", 'sleep 30 & touch "started-$HPCPIPE_TASK"; wait');
    const job = packedMapJob("m", "it", [slow], { itemsPerTask: 4 }, { count: 1 });
    const { child, done } = startScript(run, writeJob(run, job), { ...arrayEnv(0), SLURM_CPUS_PER_TASK: "4" }, { detached: true });
    await waitFor(() => [0, 1, 2, 3].every((i) => existsSync(join(run.runDir, "work", `started-${i}`))));
    process.kill(-(child.pid as number), "SIGTERM");
    expect((await done).code).toBe(143);
    for (const i of [0, 1, 2, 3]) {
      expect(readState(run, `m.${i}.slow`)).toMatchObject({ success: false, meta: { reason: "TERMINATED" } });
      expect(readState(run, `m.${i}`)).toMatchObject({ success: false, meta: { reason: "TERMINATED" } });
    }
    expect(allStates(run).leftovers).toEqual([]);
  });
});

describe("rerunning a packed task", () => {
  it("skips the items already done (their step and item states untouched) and reruns only the failed ones", async () => {
    const run = newRun({ items: { m: letters(4) } });
    const count = 'echo "$HPCPIPE_STEP" >> "$HPCPIPE_OUT_DIR/ran"';
    const steps = [
      step("m.{i}.a", count),
      step("m.{i}.b", `${count}; [ "$HPCPIPE_TASK" != 2 ] || [ -e "$HPCPIPE_OUT_DIR/fixed" ]`),
    ];
    const script = writeJob(run, packedMapJob("m", "it", steps, { itemsPerTask: 4 }, { count: 1 }, { continueOnItemError: true }));
    expect((await runScript(run, script, arrayEnv(0))).code).toBe(0);
    expect(readState(run, "m.2").success).toBe(false);
    const before = Object.fromEntries(["m.0", "m.0.a", "m.0.b", "m.2.a"].map((k) => [k, stateText(run, k)]));
    appendFileSync(join(run.runDir, "out", "fixed"), "");
    const ranFile = join(run.runDir, "out", "ran");
    const firstRun = readFileSync(ranFile, "utf8");

    expect((await runScript(run, script, arrayEnv(0))).code).toBe(0);
    expect(readFileSync(ranFile, "utf8").slice(firstRun.length)).toBe("m.2.b\n");
    expect(readState(run, "m.2").success).toBe(true);
    for (const [k, text] of Object.entries(before)) expect(stateText(run, k), k).toBe(text);
  });
});

describe("rendering a packed job", () => {
  it("refuses templates that do not call hp_map_pack (they would run one item per task)", () => {
    const dir = mkdtempSync(join(tmpdir(), "hpcpipe-old-templates-"));
    try {
      cpSync(defaultTemplatesDir(), dir, { recursive: true });
      // Templates from before task packing: no isPacked branch, hp_map_item for every map.
      writeFileSync(join(dir, "sbatch.hbs"), withoutPackedBranch(readFileSync(join(dir, "sbatch.hbs"), "utf8")));
      writeFileSync(join(dir, "partials", "prologue.hbs"), readFileSync(join(dir, "partials", "prologue.hbs"), "utf8").replace(/\{\{#unless job.isPacked\}\}\n|\{\{\/unless\}\}\n/g, ""));
      const old = loadTemplates(dir);
      const packed = packedMapJob("m", "it", [step("m.{i}.s", "true")], { itemsPerTask: 4 }, { count: 2 });
      expect(() => renderJobScript(packed, context("/r"), old)).toThrow(/packs several map items into each task, but the sbatch template does not call hp_map_pack/);
      const bodies = ["a", "b", "c"].map((n) => ({ unitKey: null, steps: [step(`g.${n}`, "true")] }));
      const packedGroup = groupJob(bodies, {
        groupPack: { itemsPerTask: 2, itemCpus: 1 },
        array: { count: 2, offset: 0, throttle: null, chunk: 0, chunks: 1, total: 2, indices: null },
      });
      expect(() => renderJobScript(packedGroup, context("/r"), old)).toThrow(/packs several group children into each task, but the sbatch template does not call hp_group_pack/);
      expect(renderJobScript(packedGroup, context("/r"))).toMatch(/^hp_group_pack 3 2 1 hp_item$/m);
      // Unpacked maps and groups still render with them.
      expect(renderJobScript(mapJob("m", "it", [step("m.{i}.s", "true")], { count: 2 }), context("/r"), old)).toContain("hp_map_item items/m.txt it\n");
      expect(renderJobScript(groupJob(bodies), context("/r"), old)).toContain('case "$HPCPIPE_TASK" in');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("checks the packing numbers and shows them to the templates", () => {
    const job = packedMapJob("m", "it", [step("m.{i}.s", "true")], { itemsPerTask: 4, itemCpus: 2 }, { count: 2 });
    const view = jobView(job, context("/r"));
    expect(view.job.isPacked).toBe(true);
    expect(view.map).toEqual({ key: "m", itemsFile: "items/m.txt", itemKey: "it", itemsPerTask: 4, itemCpus: 2 });
    expect(jobView(mapJob("m", "it", [step("m.{i}.s", "true")], { count: 2 }), context("/r")).job.isPacked).toBe(false);
    const bad = (map: Record<string, unknown>) => () => jobView({ ...job, map: { ...(job.map as NonNullable<typeof job.map>), ...map } }, context("/r"));
    expect(bad({ itemsPerTask: "4; touch pwned" })).toThrow(/map.itemsPerTask must be an integer >= 1/);
    expect(bad({ itemsPerTask: 2.5 })).toThrow(/map.itemsPerTask/);
    expect(bad({ itemCpus: 0 })).toThrow(/map.itemCpus must be an integer >= 1/);
    // itemsPerTask 1 is an unpacked map.
    expect(jobView({ ...job, map: { ...(job.map as NonNullable<typeof job.map>), itemsPerTask: 1 } }, context("/r")).job.isPacked).toBe(false);
  });
});
