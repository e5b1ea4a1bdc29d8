/**
 * A local run's retry controller (src/local/retries.ts) over packed tasks: what an attempt left is read from
 * the pack files as well as per-key files, and the attempt's pack file and slot logs are kept under attempts/<n>/.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { attemptFiles, keepAttempt } from "../../src/local/retries.js";
import { stateFile } from "./helpers.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("local retries over pack files", () => {
  it("reads a packed task's keys and failure from its pack file (its line winning over a per-key file), and keeps the pack file and its slot logs", () => {
    const runDir = mkdtempSync(join(tmpdir(), "hpcpipe-retries-pack-"));
    dirs.push(runDir);
    mkdirSync(join(runDir, "states"));
    mkdirSync(join(runDir, "logs"));
    const slurm = (task: number) => ({ job_id: `10${task}`, array_job_id: "100", array_task_id: String(Math.floor(task / 2)), task });
    const line = (key: string, ok: boolean, task: number, slot: number | null) =>
      `${JSON.stringify(stateFile(key, ok, { slurm: slurm(task), ...(slot === null ? {} : { meta: { exit_code: ok ? 0 : 3, reason: null, log: `logs/t.m.items-2-3.s${slot}` } }) }))}\n`;
    // Task 1 (items 2 and 3), packed: item 3 failed. Its per-key file from a restore said success: the pack line wins.
    writeFileSync(join(runDir, "states", "t.m.items-2-3.jsonl"), line("t.m.2.w", true, 2, 0) + line("t.m.2", true, 2, null) + line("t.m.3.w", false, 3, 1) + line("t.m.3", false, 3, null));
    writeFileSync(join(runDir, "states", "t.m.3.w.json"), line("t.m.3.w", true, 3, null));
    // Task 0 in the per-key layout, succeeded.
    writeFileSync(join(runDir, "states", "t.m.0.w.json"), line("t.m.0.w", true, 0, null));
    writeFileSync(join(runDir, "logs", "t.m.0.w.out"), "zero\n");
    for (const s of [0, 1]) for (const ext of ["out", "err"]) writeFileSync(join(runDir, "logs", `t.m.items-2-3.s${s}.${ext}`), `slot ${s} ${ext}\n`);
    writeFileSync(join(runDir, "logs", "t.m.items-2-3.s7.out"), "a slot no line names\n");

    const files = attemptFiles(runDir, "100", true, 2, () => 1);
    expect(files.failure).toEqual(new Map([[1, "exit 3"]]));
    expect(files.keys.get(1)?.sort()).toEqual(["t.m.2", "t.m.2.w", "t.m.3", "t.m.3.w"]);
    expect(files.keys.get(0)).toEqual(["t.m.0.w"]);

    keepAttempt(runDir, 1, [...(files.keys.get(1) ?? []), ...(files.keys.get(0) ?? [])]);
    const kept = join(runDir, "attempts", "1");
    expect(readFileSync(join(kept, "states", "t.m.items-2-3.jsonl"), "utf8")).toBe(readFileSync(join(runDir, "states", "t.m.items-2-3.jsonl"), "utf8"));
    expect(existsSync(join(kept, "states", "t.m.3.w.json"))).toBe(false);
    expect(readFileSync(join(kept, "logs", "t.m.items-2-3.s1.err"), "utf8")).toBe("slot 1 err\n");
    expect(existsSync(join(kept, "logs", "t.m.items-2-3.s0.out"))).toBe(true);
    expect(existsSync(join(kept, "logs", "t.m.items-2-3.s7.out"))).toBe(false);
    expect(readFileSync(join(kept, "logs", "t.m.0.w.out"), "utf8")).toBe("zero\n");
    expect(existsSync(join(kept, "states", "t.m.0.w.json"))).toBe(true);
  });
});
