// The watch printer (cli/watch-printer.ts) on a fake stream with a fake clock: off a terminal, plain
// lines rate-limited per row with a failure and a row's end printed at once; with --json, every line
// an event of the declared schema and the end event last; on a terminal, a line for people printed
// above the frame (never through it) and the frame redrawn in place.
import { afterEach, describe, expect, it } from "vitest";
import { watchPrinter } from "../../cli/watch-printer.js";
import { watchEventSchema } from "../../src/app/progress-events.js";
import type { RunStatus } from "../../src/app/status.js";
import { totalCounts } from "../../src/runs/index.js";
import type { TaskStatus } from "../../src/runs/index.js";
import type { StateFile } from "../../src/plan/state-file.js";
import { phasedJob as job, tempRun } from "../app/fakes.js";
import type { TempRun } from "../app/fakes.js";

let run: TempRun | undefined;
afterEach(() => {
  run?.cleanup();
  run = undefined;
});


function snapshot(done: number, running: number, failed = 0, last: TaskStatus["phase"] = "pending"): RunStatus {
  const items: Array<TaskStatus["phase"]> = [...Array<TaskStatus["phase"]>(done).fill("done"), ...Array<TaskStatus["phase"]>(failed).fill("failed"), ...Array<TaskStatus["phase"]>(running).fill("running")];
  while (items.length < 12) items.push("pending");
  const jobs = [job("j000", "batch_map.setup", "100", ["done"], false), job("j001", "batch_map.check_all [12 tasks]", "200", items, true), job("j002", "batch_map.aggregate", "300", [last], false)];
  const final = jobs.every((j) => j.final);
  return {
    run_id: "20260101-000000-abcdef", pipeline: "batch_map", cluster: "localcluster", phase: "submitted", remote_dir: "/runs/r1", error: null, polled_at: "2026-01-01T12:00:05.000Z",
    final, counts: totalCounts(jobs), jobs, steps: final ? { "batch_map.check_all.3": { success: false, failure: "STEP_FAILED", error: "x", not_run: false, slurm_state: null, slurm_reason: null } } : null,
    result: final ? { success: false, failure: "STEP_FAILED", error: "x", exit_code: 4 } : null, state_problems: [],
  };
}

class FakeStream {
  text = "";
  columns = 120;
  isTTY: boolean;
  constructor(tty: boolean) {
    this.isTTY = tty;
  }
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

function unit(i: number, extra: Partial<StateFile> = {}): StateFile {
  return { success: true, timestamp: `2026-01-01T12:00:0${i % 10}.000Z`, duration_s: 2, provides: [], outputs: {}, error: null, meta: {}, signature: "0", failure: null, key: `batch_map.check_all.${i}`, slurm: { array_job_id: "200", job_id: `20${i}`, task: i }, ...extra };
}

describe("the watch printer", () => {
  it("off a terminal: plain lines, at most one per row every 5 s, but a failure and a row's end at once", async () => {
    run = await tempRun("examples/specs/batch-map.yaml");
    let now = 0;
    const stream = new FakeStream(false);
    const p = watchPrinter(run, stream as unknown as NodeJS.WriteStream, { clock: () => now });
    p.options.onUpdate?.(snapshot(0, 2), true);
    expect(stream.text.split("\n").filter(Boolean)).toHaveLength(3);
    stream.text = "";
    now = 1_000;
    p.options.onUpdate?.(snapshot(2, 2), true);
    expect(stream.text).toBe("");
    now = 2_000;
    p.options.onUpdate?.(snapshot(2, 2, 1), true);
    expect(stream.text).toMatch(/batch_map\.check_all \[12 tasks\]: 3\/12 ended \(2 done, 1 failed, 2 running, 7 pending\)/);
    stream.text = "";
    now = 3_000;
    p.options.onUpdate?.(snapshot(4, 2, 1), true);
    expect(stream.text).toBe("");
    now = 7_500;
    p.options.onUpdate?.(snapshot(5, 2, 1), true);
    expect(stream.text).toMatch(/5 done, 1 failed/);
    stream.text = "";
    now = 8_000;
    p.options.onUpdate?.(snapshot(11, 0, 1, "done"), true);
    expect(stream.text).toMatch(/check_all \[12 tasks\]: 12\/12 ended .*ended, FAILED/);
    expect(stream.text).toMatch(/batch_map\.aggregate: 1\/1 ended/);
    p.finish(snapshot(11, 0, 1, "done"), false);
  });

  it("with --json: every line an event of the schema, state events for this submission's files, the end last", async () => {
    run = await tempRun("examples/specs/batch-map.yaml");
    let now = 0;
    const stream = new FakeStream(true);
    const p = watchPrinter(run, stream as unknown as NodeJS.WriteStream, { json: true, clock: () => now });
    p.options.onUpdate?.(snapshot(0, 2), true);
    p.options.onState?.("batch_map.check_all.0", unit(0, { outputs: { files: ["out/f0.png"] } }));
    p.options.onState?.("batch_map.check_all.1", unit(1, { slurm: { array_job_id: "99", task: 1 } }));
    now = 500;
    p.options.onUpdate?.(snapshot(1, 2), true);
    p.message("hpcpipe: this poll failed, retrying at the next one: busy");
    now = 2_000;
    p.options.onUpdate?.(snapshot(11, 0, 1, "done"), true);
    p.finish(snapshot(11, 0, 1, "done"), false);
    const events = stream.text.trimEnd().split("\n").map((l) => watchEventSchema.parse(JSON.parse(l)));
    expect(events[0]?.type).toBe("start");
    expect(events.at(-1)).toMatchObject({ type: "end", aborted: false, final: true, result: { exit_code: 4 }, failed_steps: ["batch_map.check_all.3"] });
    const states = events.filter((e) => e.type === "state");
    expect(states).toEqual([expect.objectContaining({ step: "batch_map.check_all.0", row: "map:batch_map.check_all", outputs: ["out/f0.png"], status: "ok" })]);
    expect(events.filter((e) => e.type === "job").map((e) => (e.type === "job" ? `${e.job}:${e.state}` : ""))).toEqual(["j000:COMPLETED", "j001:RUNNING", "j002:PENDING", "j001:FAILED", "j002:COMPLETED"]);
    expect(events.some((e) => e.type === "message" && e.text.includes("busy"))).toBe(true);
    const progress = events.filter((e) => e.type === "progress");
    // At most one a second while it runs, plus the final one.
    expect(progress.length).toBeLessThanOrEqual(3);
    expect(progress.at(-1)).toMatchObject({ rows: expect.arrayContaining([expect.objectContaining({ key: "map:batch_map.check_all", final: true, latest_image: "$HOME/hpcpipe-runs/batch_map/20260101-000000-abcdef/work/out/f0.png" })]) });
  });

  it("on a terminal: a line for people goes above the frame, which is redrawn below it; the final frame stays", async () => {
    run = await tempRun("examples/specs/batch-map.yaml");
    let now = 0;
    const stream = new FakeStream(true);
    const p = watchPrinter(run, stream as unknown as NodeJS.WriteStream, { clock: () => now });
    p.options.onUpdate?.(snapshot(0, 2), true);
    const first = stream.text;
    expect(first).toContain("batch_map.check_all [12 tasks]");
    const frameLines = (first.match(/\n/g) ?? []).length;
    stream.text = "";
    p.message("hpcpipe: this poll failed, retrying at the next one: busy");
    expect(stream.text.startsWith(`\x1b[${frameLines}A\r\x1b[2Khpcpipe: this poll failed, retrying at the next one: busy\n\r\x1b[2Krun `)).toBe(true);
    stream.text = "";
    // Within a quarter of a second of the last frame: drawn later, not now.
    now = 100;
    p.options.onUpdate?.(snapshot(1, 2), true);
    expect(stream.text).toBe("");
    now = 2_000;
    p.options.onUpdate?.(snapshot(11, 0, 1, "done"), true);
    expect(stream.text).toContain("[finished: failed, exit 4]");
    stream.text = "";
    p.finish(snapshot(11, 0, 1, "done"), false);
    // The final frame, drawn over the last one.
    expect(stream.text.startsWith("\x1b[5A\r\x1b[2Krun ")).toBe(true);
    expect(stream.text).not.toContain("Ctrl-C");
    expect(stream.text).toContain("[finished: failed, exit 4]");
    stream.text = "";
    p.message("after the end");
    expect(stream.text).toBe("after the end\n");
  });

  it("on a terminal resized since the last frame: the new frame goes below the old one, never over what is above it", async () => {
    run = await tempRun("examples/specs/batch-map.yaml");
    let now = 0;
    const stream = new FakeStream(true);
    const p = watchPrinter(run, stream as unknown as NodeJS.WriteStream, { clock: () => now });
    p.options.onUpdate?.(snapshot(0, 2), true);
    stream.text = "";
    stream.columns = 70;
    now = 1_000;
    p.options.onUpdate?.(snapshot(1, 2), true);
    expect(stream.text.startsWith("\r\x1b[2Krun ")).toBe(true);
    for (const line of stream.text.split("\n")) expect(line.replace("\r\x1b[2K", "").length).toBeLessThanOrEqual(70);
    stream.text = "";
    now = 2_000;
    p.options.onUpdate?.(snapshot(2, 2), true);
    expect(stream.text.startsWith("\x1b[5A")).toBe(true);
    expect(stream.text).toContain("(Ctrl-C stops watching)");
    stream.text = "";
    // Stopped before the end (Ctrl-C): the last frame stays, without the hint.
    p.finish(null, true);
    expect(stream.text).toContain("[running]");
    expect(stream.text).not.toContain("Ctrl-C");
  });
});
