import { access, readFile, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readStateDir } from "../../src/collect/read-states.js";
import { ExitCode, exitCodeFrom } from "../../src/core/index.js";
import { runPlanLocally } from "../../src/local/executor.js";
import type { LocalRunEvent } from "../../src/local/executor.js";
import { compilePlan, listDir, makeRunDir, map, pipeline, step } from "./helpers.js";

let dirs: { base: string; runDir: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  dirs = await makeRunDir();
});
afterEach(async () => {
  await dirs.cleanup();
});

/** Appends `<word>` to out/trace (a step command). */
const mark = (word: string): string => `echo ${word} >> "$HPCPIPE_RUN_DIR/out/trace"`;
const trace = async (runDir: string): Promise<string[]> =>
  (await readFile(join(runDir, "out", "trace"), "utf8").catch(() => "")).split("\n").filter((l) => l !== "");
const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);

/** Most tasks running at once, from the executor's start/finish events in the order they happened. */
function maxConcurrency(events: LocalRunEvent[], job?: (id: string) => boolean): number {
  let now = 0;
  let max = 0;
  for (const e of events) {
    if (job !== undefined && !job(e.job)) continue;
    if (e.type === "task-started") max = Math.max(max, ++now);
    else if (e.type === "task-finished" && e.started) now--;
  }
  return max;
}

describe("local executor: dependencies", () => {
  it("runs an afterok chain one job after another, in dependency order", async () => {
    const root = pipeline("chain", [
      step("a", { command: `${mark("a-start")}; sleep 0.2; ${mark("a-end")}` }),
      step("b", { command: `${mark("b-start")}; sleep 0.2; ${mark("b-end")}` }),
      step("c", { command: mark("c") }),
    ]);
    const plan = compilePlan(root, dirs.runDir);
    const result = await runPlanLocally(plan, { runDir: dirs.runDir });

    expect(await trace(dirs.runDir)).toEqual(["a-start", "a-end", "b-start", "b-end", "c"]);
    expect(result.state.success).toBe(true);
    expect(exitCodeFrom(result.state)).toBe(ExitCode.OK);
    expect(Object.keys(result.state.step_states ?? {}).sort()).toEqual(["chain.a", "chain.b", "chain.c"]);
    expect([...result.jobs.values()].map((j) => j.state)).toEqual(["COMPLETED", "COMPLETED", "COMPLETED"]);
  });

  it("a failed job cancels its afterok dependents transitively with DependencyNeverSatisfied, and the merged state says so", async () => {
    const root = pipeline("p", [step("a"), step("b", { fail: true }), step("c", { command: mark("c-ran") }), step("d", { command: mark("d-ran") })]);
    const plan = compilePlan(root, dirs.runDir);
    const result = await runPlanLocally(plan, { runDir: dirs.runDir });

    expect(await trace(dirs.runDir)).toEqual([]);
    const jobs = result.jobs;
    expect(jobs.get("j002")).toMatchObject({ state: "FAILED", reason: "NonZeroExitCode", exitCode: 1 });
    expect(jobs.get("j003")).toMatchObject({ state: "CANCELLED", reason: "DependencyNeverSatisfied" });
    expect(jobs.get("j004")).toMatchObject({ state: "CANCELLED", reason: "DependencyNeverSatisfied" });

    const s = result.state;
    expect(s.success).toBe(false);
    expect(s.failure).toBe("STEP_FAILED");
    expect(exitCodeFrom(s)).toBe(ExitCode.STEP_FAILED);
    expect(s.meta.failed_step).toBe("p.b");
    expect(s.error).toBe("p.b: command exited with status 3");
    const c = s.step_states?.["p.c"];
    expect(c?.success).toBe(false);
    expect(c?.meta).toMatchObject({ not_run: true, slurm_state: "CANCELLED", slurm_reason: "DependencyNeverSatisfied", job: "j003" });
    expect(c?.error).toMatch(/^job j003 \(SLURM \d+\) ended CANCELLED \(DependencyNeverSatisfied\) before this step wrote its state$/);
    expect(s.step_states?.["p.d"]?.meta.not_run).toBe(true);
  });

  it("a continue_on_error step that fails lets its dependents run and the run still succeeds", async () => {
    const root = pipeline("p", [step("a", { fail: true, continue_on_error: true }), step("b", { command: mark("b-ran") })]);
    const plan = compilePlan(root, dirs.runDir);
    expect(plan.jobs[1]?.dependencies).toEqual([{ job: "j001", type: "afterany" }]);
    const result = await runPlanLocally(plan, { runDir: dirs.runDir });

    expect(await trace(dirs.runDir)).toEqual(["b-ran"]);
    expect(result.jobs.get("j002")?.state).toBe("COMPLETED");
    expect(result.state.success).toBe(true);
    expect(exitCodeFrom(result.state)).toBe(ExitCode.OK);
    expect(result.state.meta.failed_allowed).toEqual(["p.a"]);
    expect(result.state.step_states?.["p.a"]?.success).toBe(false);
  });

  it("afterany runs a dependent after its upstream job FAILED or was CANCELLED; afterok does not", async () => {
    const root = pipeline("p", [step("a", { fail: true }), step("b", { command: mark("b-ran") }), step("c", { command: mark("c-ran") })]);
    const plan = compilePlan(root, dirs.runDir);
    const [, b, c] = plan.jobs;
    if (b === undefined || c === undefined) throw new Error("jobs missing");
    // b waits afterok on the failed a (so it is cancelled); c waits afterany on the cancelled b.
    c.dependencies = [{ job: b.id, type: "afterany" }];
    const result = await runPlanLocally(plan, { runDir: dirs.runDir });
    expect(await trace(dirs.runDir)).toEqual(["c-ran"]);
    expect([...result.jobs.values()].map((j) => j.state)).toEqual(["FAILED", "CANCELLED", "COMPLETED"]);

    const plan2 = compilePlan(pipeline("q", [step("a", { fail: true }), step("b", { command: mark("b2-ran") })]), dirs.runDir);
    const b2 = plan2.jobs[1];
    if (b2) b2.dependencies = [{ job: "j001", type: "afterany" }];
    const result2 = await runPlanLocally(plan2, { runDir: dirs.runDir });
    expect(await trace(dirs.runDir)).toEqual(["c-ran", "b2-ran"]);
    expect([...result2.jobs.values()].map((j) => j.state)).toEqual(["FAILED", "COMPLETED"]);
  });

  it("reports job started and finished events with the final state of every job", async () => {
    const events: LocalRunEvent[] = [];
    const plan = compilePlan(pipeline("p", [step("a"), step("b", { fail: true }), step("c")]), dirs.runDir);
    await runPlanLocally(plan, { runDir: dirs.runDir, onEvent: (e) => events.push(e) });
    const finished = events.filter((e) => e.type === "job-finished").map((e) => (e.type === "job-finished" ? [e.job, e.state] : []));
    expect(finished).toEqual([
      ["j001", "COMPLETED"],
      ["j002", "FAILED"],
      ["j003", "CANCELLED"],
    ]);
    expect(events.filter((e) => e.type === "job-started").map((e) => e.job)).toEqual(["j001", "j002"]);
    expect(events.filter((e) => e.type === "job-submitted")).toHaveLength(3);
  });
});

describe("local executor: arrays", () => {
  it("runs the tasks of an array at the same time (each waits at a barrier until all four arrived)", async () => {
    const barrier = [
      'mkdir -p "$HPCPIPE_RUN_DIR/out/barrier"',
      'touch "$HPCPIPE_RUN_DIR/out/barrier/$HPCPIPE_TASK"',
      "for _ in $(seq 200); do",
      '  [ "$(ls "$HPCPIPE_RUN_DIR/out/barrier" | wc -l)" -ge 4 ] && exit 0',
      "  sleep 0.05",
      "done",
      "exit 9",
    ].join("\n");
    const plan = compilePlan(pipeline("p", [map("m", ["a", "b", "c", "d"], [step("wait", { command: barrier })])]), dirs.runDir);
    const result = await runPlanLocally(plan, { runDir: dirs.runDir, cpus: 4 });
    expect(result.jobs.get("j001")?.state).toBe("COMPLETED");
    expect(result.state.success).toBe(true);
    expect(Object.keys(result.state.step_states ?? {}).sort()).toEqual(
      ["p.m", "p.m.0", "p.m.0.wait", "p.m.1", "p.m.1.wait", "p.m.2", "p.m.2.wait", "p.m.3", "p.m.3.wait"].sort(),
    );
  });

  it("with a %2 throttle never runs more than two tasks of the array at once", async () => {
    const events: LocalRunEvent[] = [];
    const record = [
      'echo "start $(date +%s%N)" >> "$HPCPIPE_RUN_DIR/out/t$HPCPIPE_TASK"',
      "sleep 0.3",
      'echo "end $(date +%s%N)" >> "$HPCPIPE_RUN_DIR/out/t$HPCPIPE_TASK"',
    ].join("\n");
    const items = ["0", "1", "2", "3", "4", "5"];
    const plan = compilePlan(pipeline("p", [map("m", items, [step("rec", { command: record })], { throttle: 2 })]), dirs.runDir);
    const result = await runPlanLocally(plan, { runDir: dirs.runDir, cpus: 8, onEvent: (e) => events.push(e) });
    expect(result.state.success).toBe(true);
    expect(maxConcurrency(events)).toBe(2);

    // The tasks' own timestamps agree: sweep over start (+1) and end (-1) instants.
    const marks: Array<[number, number]> = [];
    for (const i of items) {
      for (const line of (await readFile(join(dirs.runDir, "out", `t${i}`), "utf8")).trim().split("\n")) {
        const [what, ns] = line.split(" ");
        marks.push([Number(BigInt(ns as string) / 1000n), what === "start" ? 1 : -1]);
      }
    }
    marks.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    let running = 0;
    let most = 0;
    for (const [, d] of marks) most = Math.max(most, (running += d));
    expect(most).toBeLessThanOrEqual(2);
  });

  it("never runs more tasks at once than the CPU cap, counting each task's cpus", async () => {
    const events: LocalRunEvent[] = [];
    const items = ["a", "b", "c", "d", "e"];
    const plan = compilePlan(
      pipeline("p", [
        map("one", items, [step("s", { command: "sleep 0.1" })]),
        map("two", items, [step("s", { command: "sleep 0.1" })], { resources: { cpus: 2 } }),
      ]),
      dirs.runDir,
    );
    const result = await runPlanLocally(plan, { runDir: dirs.runDir, cpus: 4, onEvent: (e) => events.push(e) });
    expect(result.state.success).toBe(true);
    expect(maxConcurrency(events, (j) => j === "j001")).toBe(4);
    expect(maxConcurrency(events, (j) => j === "j002")).toBe(2);
  });

  it("runs chunked arrays with the right logical indices (SLURM_ARRAY_TASK_ID + offset)", async () => {
    const record = 'echo "$SLURM_ARRAY_TASK_ID $HPCPIPE_TASK $HPCPIPE_ITEM" > "$HPCPIPE_RUN_DIR/out/item$HPCPIPE_TASK"';
    const items = ["i0", "i1", "i2", "i3", "i4"];
    const plan = compilePlan(pipeline("p", [map("m", items, [step("rec", { command: record })], { maxArraySize: 2 })]), dirs.runDir);
    expect(plan.jobs.map((j) => [j.array?.count, j.array?.offset])).toEqual([
      [2, 0],
      [2, 2],
      [1, 4],
    ]);
    const result = await runPlanLocally(plan, { runDir: dirs.runDir, cpus: 4 });
    expect(result.state.success).toBe(true);
    const seen = await Promise.all(items.map((_, i) => readFile(join(dirs.runDir, "out", `item${i}`), "utf8")));
    expect(seen.map((s) => s.trim())).toEqual(["0 0 i0", "1 1 i1", "0 2 i2", "1 3 i3", "0 4 i4"]);
    expect(Object.keys(result.state.step_states ?? {}).filter((k) => k.endsWith(".rec")).sort()).toEqual(items.map((_, i) => `p.m.${i}.rec`));
  });

  it("runs a remapped rerun as array task ids 0..n-1, each task keyed by its logical task, with SLURM's array variables for the ids", async () => {
    const record = 'echo "$SLURM_ARRAY_TASK_ID $SLURM_ARRAY_TASK_COUNT $SLURM_ARRAY_TASK_MIN $SLURM_ARRAY_TASK_MAX" > "$HPCPIPE_RUN_DIR/out/t$SLURM_ARRAY_TASK_ID"';
    const plan = compilePlan(pipeline("p", [map("m", ["a", "b", "c", "d"], [step("rec", { command: record })])]), dirs.runDir);
    const job = plan.jobs[0];
    if (job?.array) job.array.indices = [1, 3];
    const result = await runPlanLocally(plan, { runDir: dirs.runDir });
    expect(await listDir(join(dirs.runDir, "out"))).toEqual(["t0", "t1"]);
    expect((await readFile(join(dirs.runDir, "out", "t1"), "utf8")).trim()).toBe("1 2 0 1");
    expect(result.jobs.get("j001")?.tasks.map((t) => [t.taskId, t.task, t.state])).toEqual([
      [0, 1, "COMPLETED"],
      [1, 3, "COMPLETED"],
    ]);
  });

  it("gives every job the SLURM environment; an array's last task runs under the array's own job id", async () => {
    const dump = 'env | grep -E "^SLURM_" | sort > "$HPCPIPE_RUN_DIR/out/env$HPCPIPE_TASK-$SLURM_JOB_NAME"';
    const plan = compilePlan(pipeline("p", [step("single", { command: dump }), map("m", ["x", "y"], [step("s", { command: dump })])]), dirs.runDir);
    const result = await runPlanLocally(plan, { runDir: dirs.runDir });
    const env = async (f: string): Promise<Record<string, string>> =>
      Object.fromEntries((await readFile(join(dirs.runDir, "out", f), "utf8")).trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
    const single = await env("env0-single");
    expect(single).toMatchObject({
      SLURM_JOB_ID: result.jobs.get("j001")?.slurmJobId,
      SLURM_JOB_NAME: "single",
      SLURM_SUBMIT_DIR: dirs.runDir,
      SLURM_CLUSTER_NAME: "local",
      SLURM_CPUS_PER_TASK: "1",
      SLURM_JOB_PARTITION: "local",
    });
    expect(single.SLURM_ARRAY_TASK_ID).toBeUndefined();
    const arrayId = result.jobs.get("j002")?.slurmJobId;
    const t0 = await env("env0-m-0");
    const t1 = await env("env1-m-0");
    expect(t0).toMatchObject({ SLURM_ARRAY_JOB_ID: arrayId, SLURM_ARRAY_TASK_ID: "0", SLURM_ARRAY_TASK_COUNT: "2", SLURM_ARRAY_TASK_MIN: "0", SLURM_ARRAY_TASK_MAX: "1" });
    expect(t1).toMatchObject({ SLURM_ARRAY_JOB_ID: arrayId, SLURM_ARRAY_TASK_ID: "1", SLURM_JOB_ID: arrayId });
    expect(t0.SLURM_JOB_ID).not.toBe(arrayId);
    expect(await exists(join(dirs.runDir, "logs", `slurm-${arrayId}_1.out`))).toBe(true);
  });
});

describe("local executor: time limits and cancellation", () => {
  it("ends a step over its 2 s time limit as TIMEOUT, warned with USR1 first, and returns within a few seconds", async () => {
    const plan = compilePlan(pipeline("p", [step("slow", { command: "sleep 30", resources: { time: "0:02" } }), step("after")]), dirs.runDir);
    const started = Date.now();
    const result = await runPlanLocally(plan, { runDir: dirs.runDir, killWaitS: 1 });
    const elapsed = (Date.now() - started) / 1000;

    expect(elapsed).toBeGreaterThanOrEqual(1.9);
    expect(elapsed).toBeLessThan(6);
    expect(result.jobs.get("j001")).toMatchObject({ state: "TIMEOUT", reason: "TimeLimit" });
    expect(result.jobs.get("j002")).toMatchObject({ state: "CANCELLED", reason: "DependencyNeverSatisfied" });
    const slow = result.state.step_states?.["p.slow"];
    // Written by the wrapper's TERM trap, which had seen the USR1 warning.
    expect(slow?.success).toBe(false);
    expect(slow?.meta.reason).toBe("TIMEOUT");
    expect(result.state.meta.failed_step).toBe("p.slow");
    expect(exitCodeFrom(result.state)).toBe(ExitCode.STEP_FAILED);
  });

  it("kills a job that ignores TERM after the kill wait; its step becomes a not-run TIMEOUT failure", async () => {
    const plan = compilePlan(pipeline("p", [step("stubborn", { command: "exit 0", resources: { time: "0:01" } })]), dirs.runDir);
    const job = plan.jobs[0];
    if (job === undefined) throw new Error("no job");
    job.script = "#!/bin/bash\ntrap '' TERM USR1\nsleep 30 & wait\nsleep 30\n";
    const started = Date.now();
    const result = await runPlanLocally(plan, { runDir: dirs.runDir, killWaitS: 1 });
    expect((Date.now() - started) / 1000).toBeLessThan(5);
    expect(result.jobs.get("j001")).toMatchObject({ state: "TIMEOUT", reason: "TimeLimit", exitCode: null });
    const s = result.state.step_states?.["p.stubborn"];
    expect(s?.meta).toMatchObject({ not_run: true, slurm_state: "TIMEOUT", slurm_reason: "TimeLimit" });
    expect(s?.error).toMatch(/ended TIMEOUT \(TimeLimit\) before this step wrote its state/);
  });

  it("sends the warning signal as many seconds before the limit as the script's --signal says", async () => {
    const plan = compilePlan(pipeline("p", [step("warned", { resources: { time: "0:03" } })]), dirs.runDir, { signalGrace: 2 });
    const job = plan.jobs[0];
    if (job === undefined) throw new Error("no job");
    expect(job.script).toContain("#SBATCH --signal=B:USR1@2");
    const out = join(dirs.runDir, "out");
    job.script = job.script.replace(
      /HPCPIPE_RUN_DIR=[\s\S]*$/,
      `date +%s%N > ${out}/start\ntrap 'date +%s%N > ${out}/usr1; exit 0' USR1\nsleep 10 & wait\n`,
    );
    const result = await runPlanLocally(plan, { runDir: dirs.runDir, killWaitS: 1 });
    const ns = async (f: string): Promise<bigint> => BigInt((await readFile(join(out, f), "utf8")).trim());
    const after = Number((await ns("usr1")) - (await ns("start"))) / 1e9;
    expect(after).toBeGreaterThan(0.7);
    expect(after).toBeLessThan(1.8);
    // The script ended by itself before the limit: the job's own exit decides its state, as on SLURM.
    expect(result.jobs.get("j001")?.state).toBe("COMPLETED");
  });

  it("refuses a CPU cap that is not a whole number >= 1", async () => {
    const plan = compilePlan(pipeline("p", [step("a")]), dirs.runDir);
    await expect(runPlanLocally(plan, { runDir: dirs.runDir, cpus: 0 })).rejects.toThrow(/cpus must be a whole number >= 1/);
  });

  it("an aborted run TERMs running jobs, cancels the rest, and leaves no half-written state file", async () => {
    const events: LocalRunEvent[] = [];
    const controller = new AbortController();
    const plan = compilePlan(
      pipeline("p", [map("m", ["a", "b", "c"], [step("slow", { command: "sleep 30" })]), step("stubborn"), step("after")]),
      dirs.runDir,
    );
    // A task killed in the middle of writing its state: a temp file, then it ignores TERM.
    const stubborn = plan.jobs[1];
    if (stubborn === undefined) throw new Error("no job");
    stubborn.dependencies = [];
    stubborn.script = [
      "#!/bin/bash",
      `printf '{"success":tr' > "${dirs.runDir}/states/.p.stubborn.json.tmp.$$"`,
      // And as a packed task leaves them: the pack file's temp, and its slot directory (kept for a resume).
      `printf '{"success":tr' > "${dirs.runDir}/states/.p.m.items-0-2.jsonl.tmp.$$"`,
      `mkdir "${dirs.runDir}/states/.pack-p.m.items-0-2" && printf '{"success":tr' > "${dirs.runDir}/states/.pack-p.m.items-0-2/s0.jsonl"`,
      "trap '' TERM",
      "sleep 30 & wait",
      "",
    ].join("\n");
    const started = Date.now();
    const run = runPlanLocally(plan, {
      runDir: dirs.runDir,
      cpus: 4,
      killWaitS: 1,
      signal: controller.signal,
      onEvent: (e) => {
        events.push(e);
        if (events.filter((x) => x.type === "task-started").length === 4) setTimeout(() => controller.abort(), 300);
      },
    });
    const result = await run;
    expect((Date.now() - started) / 1000).toBeLessThan(6);

    expect([...result.jobs.values()].map((j) => j.state)).toEqual(["CANCELLED", "CANCELLED", "CANCELLED"]);
    const states = await listDir(join(dirs.runDir, "states"));
    expect(states.filter((n) => n.includes(".tmp"))).toEqual([]);
    expect(states.filter((n) => n.startsWith(".pack-"))).toEqual([".pack-p.m.items-0-2"]);
    const read = await readStateDir(join(dirs.runDir, "states"));
    expect(read.problems).toEqual([]);
    // The wrapper's TERM trap wrote a complete failed state for every slow task.
    for (const i of [0, 1, 2]) expect(read.states.get(`p.m.${i}.slow`)).toMatchObject({ success: false, meta: { reason: "SIGNAL" } });
    expect(result.state.success).toBe(false);
    expect(result.state.step_states?.["p.after"]?.meta).toMatchObject({ not_run: true, slurm_state: "CANCELLED" });
  });

  it("an already aborted signal runs nothing and marks every job CANCELLED", async () => {
    const plan = compilePlan(pipeline("p", [step("a", { command: mark("a") })]), dirs.runDir);
    const result = await runPlanLocally(plan, { runDir: dirs.runDir, signal: AbortSignal.abort() });
    expect(await trace(dirs.runDir)).toEqual([]);
    expect(result.jobs.get("j001")?.state).toBe("CANCELLED");
    expect(result.state.success).toBe(false);
  });
});

describe("local executor: the bundle", () => {
  it("creates the run directory with mode 700, its layout, and executable job scripts", async () => {
    const plan = compilePlan(pipeline("p", [step("a")]), dirs.runDir);
    await runPlanLocally(plan, { runDir: dirs.runDir });
    expect((await stat(dirs.runDir)).mode & 0o777).toBe(0o700);
    for (const d of ["scripts", "states", "logs", "ctx", "out", "work", "items"]) expect((await stat(join(dirs.runDir, d))).isDirectory()).toBe(true);
    expect((await stat(join(dirs.runDir, "scripts", "j001.sbatch"))).mode & 0o100).toBe(0o100);
    expect(await readFile(join(dirs.runDir, "scripts", "lib.sh"), "utf8")).toContain("hp_write_state");
  });

  it.each([
    ["../evil.sh", /escapes the run directory/],
    ["scripts/../../evil.sh", /escapes the run directory/],
    ["/tmp/evil.sh", /must be relative/],
    ["", /empty/],
  ])("refuses the bundle path %j and writes nothing", async (path, message) => {
    const plan = compilePlan(pipeline("p", [step("a", { command: mark("a") })]), dirs.runDir);
    plan.files[path] = "echo pwned\n";
    await expect(runPlanLocally(plan, { runDir: dirs.runDir })).rejects.toThrow(message);
    expect(await exists(dirs.runDir)).toBe(false);
    expect(await listDir(dirs.base)).toEqual([]);
  });

  it("refuses a job script path that escapes the run directory", async () => {
    const plan = compilePlan(pipeline("p", [step("a")]), dirs.runDir);
    const job = plan.jobs[0];
    if (job) job.scriptPath = "../j001.sbatch";
    await expect(runPlanLocally(plan, { runDir: dirs.runDir })).rejects.toThrow(/escapes the run directory/);
  });

  it("refuses a plan compiled for another run directory", async () => {
    const plan = compilePlan(pipeline("p", [step("a")]), join(dirs.base, "elsewhere"));
    await expect(runPlanLocally(plan, { runDir: dirs.runDir })).rejects.toThrow(/compiled for run directory .*elsewhere/);
  });

  it("refuses a dependency on a job that is not in the plan", async () => {
    const plan = compilePlan(pipeline("p", [step("a"), step("b")]), dirs.runDir);
    const job = plan.jobs[1];
    if (job) job.dependencies = [{ job: "j999", type: "afterok" }];
    await expect(runPlanLocally(plan, { runDir: dirs.runDir })).rejects.toThrow(/unknown job j999/);
  });

  it("keeps the job's own output in logs/ as #SBATCH --output says", async () => {
    const plan = compilePlan(pipeline("p", [step("a")]), dirs.runDir);
    const job = plan.jobs[0];
    if (job) job.script = job.script.replace("hp_job_begin", 'echo "hello from the batch shell"\nhp_job_begin');
    const result = await runPlanLocally(plan, { runDir: dirs.runDir });
    const id = result.jobs.get("j001")?.slurmJobId ?? "";
    expect(await readFile(join(dirs.runDir, "logs", `slurm-${id}.out`), "utf8")).toContain("hello from the batch shell");
    expect((await readdir(join(dirs.runDir, "logs"))).sort()).toContain("p.a.out");
  });
});
