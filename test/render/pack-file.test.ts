/**
 * The pack layout of a packed map task (issue 16, docs/runtime-contract.md "Packed tasks"), with real
 * bash: one state file per task (states/<map>.items-<first>-<last>.jsonl, renamed into place once) and
 * one log pair per slot with marker lines; slot files while it runs (a torn last line is dropped); a
 * rerun keeps the lines of the items it skips; a signal or a killed attempt loses no finished item.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { packedMapJob, step } from "./fixtures.js";
import {
  allStates,
  arrayEnv,
  makeRun,
  packFileLines,
  packFiles,
  perKeyStates,
  processAlive,
  readState,
  readStepLog,
  removeRun,
  runScript,
  startScript,
  stateText,
  waitFor,
  writeJob,
} from "./harness.js";
import type { Run } from "./harness.js";

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
const keysOf = (lines: string[]): string[] => lines.map((l) => (JSON.parse(l) as { key: string }).key);
const packPath = (run: Run, name: string): string => join(run.runDir, "states", name);

describe("a packed map task with its map key", () => {
  it("writes one pack file with every item's unit and step lines, one log pair per slot, no per-item file", async () => {
    const run = newRun({ items: { m: letters(6) } });
    // m.{i}.a publishes v, except on item 2 (which fails with "did not provide").
    const publish = '[ "$HPCPIPE_TASK" = 2 ] || echo "v=val-$HPCPIPE_TASK" >> "$HPCPIPE_PUBLISH"';
    const steps = [
      step("m.{i}.a", `echo "a out $it"; printf "a err %s" "$HPCPIPE_TASK" >&2; ${publish}`, { provides: ["v"] }),
      step("m.{i}.b", 'printf "b out $v"', { needs: [{ key: "v", from: "m.{i}.a" }], requires: ["v"] }),
    ];
    const res = await runScript(run, writeJob(run, packedMapJob("m", "it", steps, { itemsPerTask: 6 }, { count: 1 }, { continueOnItemError: true })), {
      ...arrayEnv(0),
      SLURM_CPUS_PER_TASK: "2",
    });
    expect(res.code).toBe(0);
    expect(packFiles(run)).toEqual(["m.items-0-5.jsonl"]);
    const lines = packFileLines(packPath(run, "m.items-0-5.jsonl"));
    const expected = [0, 1, 2, 3, 4, 5].flatMap((i) => (i === 2 ? [`m.${i}`, `m.${i}.a`] : [`m.${i}`, `m.${i}.a`, `m.${i}.b`]));
    expect(keysOf(lines).sort()).toEqual(expected.sort());
    expect(perKeyStates(run)).toEqual([]);
    // No temp file, no slot directory left.
    expect(allStates(run).leftovers).toEqual([]);
    // Two slots: at most two log pairs, and nothing per item.
    const logs = readdirSync(join(run.runDir, "logs")).sort();
    expect(logs.length).toBeGreaterThanOrEqual(2);
    for (const name of logs) expect(name).toMatch(/^m\.items-0-5\.s[01]\.(out|err)$/);
    for (const i of [0, 1, 3, 4, 5]) {
      const a = readState(run, `m.${i}.a`);
      expect(a).toMatchObject({ success: true, meta: { log: expect.stringMatching(/^logs\/m\.items-0-5\.s[01]$/), item: letters(6)[i] } });
      expect(readStepLog(run, `m.${i}.a`, "out")).toBe(`a out ${letters(6)[i]}\n`);
      expect(readStepLog(run, `m.${i}.a`, "err")).toBe(`a err ${i}`);
      expect(readStepLog(run, `m.${i}.b`, "out")).toBe(`b out val-${i}`);
      expect(readStepLog(run, `m.${i}.b`, "err")).toBe("");
      expect(readState(run, `m.${i}.b`).outputs).toEqual({ published: {}, files: [] });
    }
    expect(readState(run, "m.2.a")).toMatchObject({ success: false, error: "validation failed: did not provide 'v'" });
    // A step that published nothing leaves no empty ctx/<key>.pub behind.
    expect(readdirSync(join(run.runDir, "ctx")).sort()).toEqual(["m.0.a.pub", "m.1.a.pub", "m.3.a.pub", "m.4.a.pub", "m.5.a.pub"]);
  });

  it("marks every step's section in its slot's logs with `\\n\\x1ehpcpipe KEY\\n`, even at the start of the file", async () => {
    const run = newRun({ items: { m: letters(2) } });
    const job = packedMapJob("m", "it", [step("m.{i}.s", 'printf "no newline $HPCPIPE_TASK"'), step("m.{i}.t", "echo two; echo three")], { itemsPerTask: 2 }, { count: 1 });
    expect((await runScript(run, writeJob(run, job), { ...arrayEnv(0), SLURM_CPUS_PER_TASK: "1" })).code).toBe(0);
    expect(readFileSync(join(run.runDir, "logs", "m.items-0-1.s0.out"), "utf8")).toBe(
      "\n\x1ehpcpipe m.0.s\nno newline 0\n\x1ehpcpipe m.0.t\ntwo\nthree\n\n\x1ehpcpipe m.1.s\nno newline 1\n\x1ehpcpipe m.1.t\ntwo\nthree\n",
    );
    expect(readFileSync(join(run.runDir, "logs", "m.items-0-1.s0.err"), "utf8")).toBe(
      "\n\x1ehpcpipe m.0.s\n\n\x1ehpcpipe m.0.t\n\n\x1ehpcpipe m.1.s\n\n\x1ehpcpipe m.1.t\n",
    );
    expect(readStepLog(run, "m.1.s", "out")).toBe("no newline 1");
  });

  it("on a rerun keeps the lines of the items it skips and replaces those it runs again (a key once)", async () => {
    const run = newRun({ items: { m: letters(3) } });
    const steps = [step("m.{i}.a", "true"), step("m.{i}.b", '[ "$HPCPIPE_TASK" != 1 ] || [ -e "$HPCPIPE_OUT_DIR/fixed" ]')];
    const script = writeJob(run, packedMapJob("m", "it", steps, { itemsPerTask: 3 }, { count: 1 }, { continueOnItemError: true }));
    expect((await runScript(run, script, { ...arrayEnv(0), SLURM_JOB_ID: "501" })).code).toBe(0);
    const first = new Map(packFileLines(packPath(run, "m.items-0-2.jsonl")).map((l) => [(JSON.parse(l) as { key: string }).key, l]));
    expect(readState(run, "m.1").success).toBe(false);
    writeFileSync(join(run.runDir, "out", "fixed"), "");
    expect((await runScript(run, script, { ...arrayEnv(0), SLURM_JOB_ID: "502" })).code).toBe(0);
    const lines = packFileLines(packPath(run, "m.items-0-2.jsonl"));
    const keys = keysOf(lines);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys.sort()).toEqual(["m.0", "m.0.a", "m.0.b", "m.1", "m.1.a", "m.1.b", "m.2", "m.2.a", "m.2.b"]);
    for (const k of ["m.0", "m.0.a", "m.0.b", "m.1.a", "m.2", "m.2.a", "m.2.b"]) expect(stateText(run, k), k).toBe(first.get(k));
    for (const k of ["m.1", "m.1.b"]) expect(readState(run, k)).toMatchObject({ success: true, slurm: { job_id: "502" } });
  });

  it("removes the per-key state files of the keys it holds once its pack file is in place", async () => {
    const run = newRun({ items: { m: letters(2) } });
    mkdirSync(join(run.runDir, "states"));
    // Left by an older layout (or a restore) for keys the task now writes; m.9.s is not the task's.
    for (const k of ["m.0.s", "m.1", "m.9.s"]) writeFileSync(join(run.runDir, "states", `${k}.json`), `{"success":false,"key":"${k}"}\n`);
    const job = packedMapJob("m", "it", [step("m.{i}.s", "true")], { itemsPerTask: 2 }, { count: 1 });
    expect((await runScript(run, writeJob(run, job), arrayEnv(0))).code).toBe(0);
    expect(perKeyStates(run)).toEqual(["m.9.s"]);
    expect(readState(run, "m.0.s").success).toBe(true);
  });

  it("takes a step restored from the step cache at submission (states/<key>.json) over its line from an earlier attempt, into the pack", async () => {
    const run = newRun({ items: { m: letters(2) } });
    const job = packedMapJob("m", "it", [step("m.{i}.s", 'echo "$HPCPIPE_STEP" >> "$HPCPIPE_OUT_DIR/ran"; [ -e "$HPCPIPE_OUT_DIR/fixed" ]', { idempotent: false })], { itemsPerTask: 2 }, { count: 1 }, { continueOnItemError: true });
    const script = writeJob(run, job);
    expect((await runScript(run, script, arrayEnv(0))).code).toBe(0);
    expect(readState(run, "m.1.s").success).toBe(false);
    // The resubmission found m.1.s in the cache and restored it (the cached state of this signature).
    const restored = JSON.stringify({ ...JSON.parse(stateText(run, "m.1.s")), success: true, failure: null, error: null, exit_code: 0, cached: { run: "other", step: "m.1.s", key: "ab".padEnd(64, "0") } });
    writeFileSync(join(run.runDir, "states", "m.1.s.json"), `${restored}\n`);
    writeFileSync(join(run.runDir, "out", "ran"), "");
    expect((await runScript(run, script, arrayEnv(0))).code).toBe(0);
    // m.0.s is not idempotent: it ran again; m.1.s was restored: it did not.
    expect(readFileSync(join(run.runDir, "out", "ran"), "utf8")).toBe("m.0.s\n");
    expect(stateText(run, "m.1.s")).toBe(restored);
    expect(perKeyStates(run)).toEqual([]);
  });

  it("drops a torn last line of a killed attempt's slot file and takes its complete lines as done", async () => {
    const run = newRun({ items: { m: letters(3) } });
    const job = packedMapJob("m", "it", [step("m.{i}.s", 'echo "$HPCPIPE_STEP" >> "$HPCPIPE_OUT_DIR/ran"', { idempotent: true })], { itemsPerTask: 3 }, { count: 1 });
    const script = writeJob(run, job);
    // A first run gives the exact lines a killed attempt would have left in its slot files.
    expect((await runScript(run, script, { ...arrayEnv(0), SLURM_JOB_ID: "601" })).code).toBe(0);
    const byKey = new Map(packFileLines(packPath(run, "m.items-0-2.jsonl")).map((l) => [(JSON.parse(l) as { key: string }).key, l]));
    const slots = join(run.runDir, "states", ".pack-m.items-0-2");
    mkdirSync(slots);
    writeFileSync(join(slots, "s0.jsonl"), `${byKey.get("m.0.s")}\n${byKey.get("m.0")}\n${(byKey.get("m.1.s") as string).slice(0, -1)}`);
    writeFileSync(join(slots, "s1.jsonl"), `${byKey.get("m.2.s")}\n`);
    // The killed attempt never wrote its pack file.
    for (const f of packFiles(run)) writeFileSync(packPath(run, f), "");
    writeFileSync(join(run.runDir, "out", "ran"), "");

    expect((await runScript(run, script, { ...arrayEnv(0), SLURM_JOB_ID: "602" })).code).toBe(0);
    // m.0 and m.2.s were done (complete lines); m.1.s was torn: it runs again (m.2's unit line was never written: it is written now).
    expect(readFileSync(join(run.runDir, "out", "ran"), "utf8")).toBe("m.1.s\n");
    const lines = packFileLines(packPath(run, "m.items-0-2.jsonl"));
    expect(keysOf(lines).sort()).toEqual(["m.0", "m.0.s", "m.1", "m.1.s", "m.2", "m.2.s"]);
    expect(stateText(run, "m.0.s")).toBe(byKey.get("m.0.s"));
    expect(stateText(run, "m.2.s")).toBe(byKey.get("m.2.s"));
    expect(readState(run, "m.1.s").slurm?.job_id).toBe("602");
    expect(existsSync(slots)).toBe(false);
  });

  it("on TERM mid-task writes the pack file with the finished items and the killed item's failure", async () => {
    const run = newRun({ items: { m: letters(4) } });
    const slow = step("m.{i}.s", '[ "$HPCPIPE_TASK" != 2 ] || { touch started; sleep 30 & wait; }');
    const job = packedMapJob("m", "it", [slow], { itemsPerTask: 4 }, { count: 1 });
    const { child, done } = startScript(run, writeJob(run, job), { ...arrayEnv(0), SLURM_CPUS_PER_TASK: "1" });
    await waitFor(() => existsSync(join(run.runDir, "work", "started")));
    // While it runs: nothing in states/ but the slot directory (the readers' files come at the end).
    expect(packFiles(run)).toEqual([]);
    expect(readdirSync(join(run.runDir, "states"))).toEqual([".pack-m.items-0-3"]);
    child.kill("SIGTERM");
    expect((await done).code).toBe(143);
    expect(packFiles(run)).toEqual(["m.items-0-3.jsonl"]);
    expect(allStates(run)).toEqual({ keys: ["m.0", "m.0.s", "m.1", "m.1.s", "m.2", "m.2.s"], leftovers: [] });
    for (const i of [0, 1]) expect(readState(run, `m.${i}`).success).toBe(true);
    expect(readState(run, "m.2.s")).toMatchObject({ success: false, meta: { reason: "TERMINATED", log: "logs/m.items-0-3.s0" } });
    expect(readState(run, "m.2")).toMatchObject({ success: false, meta: { reason: "TERMINATED", failed_step: "m.2.s" } });
  });

  it("after a killed attempt (SIGKILL to the whole task), the next one keeps its finished items from the slot files", async () => {
    const run = newRun({ items: { m: letters(3) } });
    // The running step writes its pid (its process group's: the wrapper starts each command in its own).
    const cmd = 'echo "$HPCPIPE_STEP" >> "$HPCPIPE_OUT_DIR/ran"; [ "$HPCPIPE_TASK" != 1 ] || [ -e "$HPCPIPE_OUT_DIR/go" ] || { echo $$ > "$HPCPIPE_OUT_DIR/started"; sleep 30 & wait; }';
    const job = packedMapJob("m", "it", [step("m.{i}.s", cmd, { idempotent: true })], { itemsPerTask: 3 }, { count: 1 });
    const script = writeJob(run, job);
    const { child, done } = startScript(run, script, { ...arrayEnv(0), SLURM_CPUS_PER_TASK: "1" }, { detached: true });
    await waitFor(() => existsSync(join(run.runDir, "out", "started")) && readFileSync(join(run.runDir, "out", "started"), "utf8").endsWith("\n"));
    const stepGroup = Number(readFileSync(join(run.runDir, "out", "started"), "utf8"));
    // As a node that dies or SLURM's KillWait would: no trap runs.
    process.kill(-(child.pid as number), "SIGKILL");
    process.kill(-stepGroup, "SIGKILL");
    await done;
    expect(packFiles(run)).toEqual([]);
    const slots = join(run.runDir, "states", ".pack-m.items-0-2");
    expect(keysOf(packFileLines(join(slots, "s0.jsonl")))).toEqual(["m.0.s", "m.0"]);

    writeFileSync(join(run.runDir, "out", "go"), "");
    expect((await runScript(run, script, { ...arrayEnv(0), SLURM_CPUS_PER_TASK: "1" })).code).toBe(0);
    expect(readFileSync(join(run.runDir, "out", "ran"), "utf8")).toBe("m.0.s\nm.1.s\nm.1.s\nm.2.s\n");
    expect(allStates(run)).toEqual({ keys: ["m.0", "m.0.s", "m.1", "m.1.s", "m.2", "m.2.s"], leftovers: [] });
    for (const i of [0, 1, 2]) expect(readState(run, `m.${i}`).success).toBe(true);
    await waitFor(() => !processAlive(stepGroup), 5_000);
  });

  it("keeps the per-key layout for job scripts that do not pass the map key (templates from before the pack file)", async () => {
    const run = newRun({ items: { m: letters(2) } });
    const script = writeJob(run, packedMapJob("m", "it", [step("m.{i}.s", "echo hi")], { itemsPerTask: 2 }, { count: 1 }));
    writeFileSync(script, readFileSync(script, "utf8").replace(/^(hp_map_pack .* hp_item) m$/m, "$1"));
    expect((await runScript(run, script, arrayEnv(0))).code).toBe(0);
    expect(packFiles(run)).toEqual([]);
    expect(perKeyStates(run)).toEqual(["m.0", "m.0.s", "m.1", "m.1.s"]);
    expect(readFileSync(join(run.runDir, "logs", "m.1.s.out"), "utf8")).toBe("hi\n");
    expect(readState(run, "m.1.s").meta).not.toHaveProperty("log");
  });

  it("refuses a pack name that is not a step key", async () => {
    const run = newRun({ items: { m: letters(2) } });
    const script = writeJob(run, packedMapJob("m", "it", [step("m.{i}.s", "true")], { itemsPerTask: 2 }, { count: 1 }));
    writeFileSync(script, readFileSync(script, "utf8").replace(/^(hp_map_pack .* hp_item) m$/m, "$1 '../x'"));
    const res = await runScript(run, script, arrayEnv(0));
    expect(res.code).toBe(1);
    expect(res.stderr).toContain("hp_map_pack: pack name '../x' is not a valid step key");
  });
});
