/**
 * Logs of a packed map item (issue 16): its step's output is a section of one of its task's slot logs,
 * after the marker `\n\x1ehpcpipe <KEY>\n`, found through its line (meta.log) in the task's pack file.
 */
import { describe, expect, it } from "vitest";
import { followLog, packFileOf, readLog, resolveLogTarget, slotLogsOf } from "../../src/app/logs.js";
import type { RunExecutor } from "../../src/app/executor.js";
import { compile } from "../../src/compiler/compile.js";
import { logSection, SectionFilter, slotLogOf } from "../../src/core/log-section.js";
import { pollPolicy } from "../../src/slurm/index.js";
import { pipelineFromSpecObject } from "../../src/spec/load.js";
import { stateFile } from "../local/helpers.js";
import { structureRenderer, target } from "../compiler/helpers.js";

const plan = compile({
  root: pipelineFromSpecObject({ name: "t", steps: [{ map: "m", items: ["a", "b", "c", "d", "e"], items_per_task: 2, steps: [{ step: "w", run: "echo" }] }] }, "spec.yaml").pipeline,
  context: {},
  runId: "run1",
  target: target(),
  renderer: structureRenderer,
});

const M = (key: string): string => `\n\x1ehpcpipe ${key}\n`;
const SLOT1 = `${M("t.m.2.w")}item 2 out\n${M("t.m.3.w")}first run of 3\n${M("t.m.3.w")}item 3 out\nline 2\n`;
const packLine = (key: string, log: string | null): string => `${JSON.stringify(stateFile(key, true, { meta: { exit_code: 0, reason: null, ...(log === null ? {} : { log }) } }))}\n`;

/** A run executor over files in memory: readFileFrom gives at most `step` bytes per read; the task ends once its log was read. */
function filesRun(files: Map<string, string>, step = 1 << 20): RunExecutor & { reads: string[] } {
  const reads: string[] = [];
  let served = 0;
  const run = {
    reads,
    record: { run_id: "run1", jobs: { j000: "100" } },
    plan,
    readFile: async (path: string) => {
      reads.push(path);
      const text = files.get(path);
      return text === undefined ? null : Buffer.from(text);
    },
    readFileFrom: async (path: string, offset: number, max: number) => {
      reads.push(`${path}@${offset}`);
      const text = files.get(path);
      if (text === undefined) return { absent: true, restarted: false, data: Buffer.alloc(0) };
      const data = Buffer.from(text).subarray(offset, offset + Math.min(max, step));
      served = offset + data.length;
      return { absent: false, restarted: false, data };
    },
    query: async () => [{ job: "j000", final: true, state: "COMPLETED", tasks: { at: () => ({ state: served >= (files.get("logs/t.m.items-2-3.s1.out")?.length ?? 0) ? "COMPLETED" : "RUNNING", reason: null, final: served >= (files.get("logs/t.m.items-2-3.s1.out")?.length ?? 0) }) } }],
  };
  return run as unknown as RunExecutor & { reads: string[] };
}

describe("a packed item's log section", () => {
  it("is the bytes after the key's last marker up to the next marker or the end; a slot log is named only by a checked meta.log", () => {
    const data = Buffer.from(SLOT1);
    expect(logSection(data, "t.m.3.w")?.toString()).toBe("item 3 out\nline 2\n");
    expect(logSection(data, "t.m.2.w")?.toString()).toBe("item 2 out\n");
    expect(logSection(data, "t.m.4.w")).toBeNull();
    expect(logSection(Buffer.from(`${M("t.m.2.w")}${M("t.m.20.w")}twenty\n`), "t.m.2.w")?.toString()).toBe("");
    expect(slotLogOf({ log: "logs/t.m.items-2-3.s1" })).toBe("logs/t.m.items-2-3.s1");
    expect(slotLogOf({ log: "logs/../../etc/passwd" })).toBeNull();
    expect(slotLogOf({ log: "logs/t.m.items-2-3.s1.out" })).toBeNull();
    expect(slotLogOf({})).toBeNull();
  });

  it("read as a stream in any chunks (markers split between them), gives what a whole read gives, each section of the key", () => {
    const data = Buffer.from(`${SLOT1}${M("t.m.30.w")}not ours\n\n${M("t.m.3.w")}again\n`);
    for (const size of [1, 2, 3, 7, 1000]) {
      const filter = new SectionFilter("t.m.3.w");
      const out: Buffer[] = [];
      for (let at = 0; at < data.length; at += size) out.push(filter.push(data.subarray(at, at + size)));
      out.push(filter.flush());
      expect(Buffer.concat(out).toString()).toBe("first run of 3\nitem 3 out\nline 2\nagain\n");
      expect(filter.sections).toBe(3);
    }
  });

  it("logs reads the item's pack line, then its slot log, and prints its section; the old layout reads logs/<key>.out", async () => {
    const item = resolveLogTarget(plan, "w", 3);
    expect(item.key).toBe("t.m.3.w");
    expect(item.packFile).toBe("states/t.m.items-2-3.jsonl");
    // The last task holds one item: its pack file is named by that item alone.
    expect(packFileOf(plan, resolveLogTarget(plan, "w", 4).slot)).toBe("states/t.m.items-4-4.jsonl");
    const files = new Map([
      ["states/t.m.items-2-3.jsonl", packLine("t.m.2.w", "logs/t.m.items-2-3.s1") + packLine("t.m.3.w", "logs/t.m.items-2-3.s0") + packLine("t.m.3.w", "logs/t.m.items-2-3.s1")],
      ["logs/t.m.items-2-3.s1.out", SLOT1],
      ["logs/t.m.items-2-3.s1.err", `${M("t.m.3.w")}oops\n`],
    ]);
    const run = filesRun(files);
    expect((await readLog(run, item))?.toString()).toBe("item 3 out\nline 2\n");
    expect(run.reads).toEqual(["states/t.m.items-2-3.jsonl", "logs/t.m.items-2-3.s1.out"]);
    expect((await readLog(run, resolveLogTarget(plan, "w", 3, "stderr")))?.toString()).toBe("oops\n");

    const old = filesRun(new Map([["logs/t.m.3.w.out", "per-key log\n"]]));
    expect((await readLog(old, item))?.toString()).toBe("per-key log\n");
    expect(await readLog(old, resolveLogTarget(plan, "w", 2))).toBeNull();
  });

  it("logs --follow prints only the item's section of the slot log, read in small chunks", async () => {
    const files = new Map([
      ["states/t.m.items-2-3.jsonl", packLine("t.m.3.w", "logs/t.m.items-2-3.s1")],
      ["logs/t.m.items-2-3.s1.out", SLOT1],
    ]);
    const run = filesRun(files, 5);
    const out: Buffer[] = [];
    const ended = await followLog(run, resolveLogTarget(plan, "w", 3), { write: (d) => out.push(d), policy: pollPolicy({ initialMs: 1, maxMs: 1 }), sleep: async () => undefined });
    expect(ended).toEqual({ state: "COMPLETED", reason: null });
    expect(Buffer.concat(out).toString()).toBe("first run of 3\nitem 3 out\nline 2\n");
  });

  // While the task runs there is no pack file yet: the item is found by its marker in one of the task's slot logs.
  const twoSlots = compile({
    root: pipelineFromSpecObject({ name: "t", steps: [{ map: "m", items: ["a", "b", "c", "d", "e"], items_per_task: 2, task_cpus: 2, steps: [{ step: "w", run: "echo" }] }] }, "spec.yaml").pipeline,
    context: {},
    runId: "run1",
    target: target(),
    renderer: structureRenderer,
  });

  it("of a running task (no pack file yet): logs finds the item's marker in one of the task's slot logs, one per slot it may use", async () => {
    const item = resolveLogTarget(twoSlots, "w", 3);
    expect(slotLogsOf(item)).toEqual(["logs/t.m.items-2-3.s0", "logs/t.m.items-2-3.s1"]);
    // The last task holds one item: one slot.
    expect(slotLogsOf(resolveLogTarget(twoSlots, "w", 4))).toEqual(["logs/t.m.items-4-4.s0"]);
    expect(slotLogsOf(resolveLogTarget(plan, "w", 3))).toEqual(["logs/t.m.items-2-3.s0"]);
    // The map named with --task: the step its item runs (looked up by key, with no row per item).
    expect(resolveLogTarget(twoSlots, "m", 3).key).toBe("t.m.3.w");
    const files = new Map([
      ["logs/t.m.items-2-3.s0.out", `${M("t.m.2.w")}item 2 out\n`],
      ["logs/t.m.items-2-3.s1.out", `${M("t.m.3.w")}item 3 so far\n`],
    ]);
    const run = filesRun(files);
    (run as unknown as { plan: unknown }).plan = twoSlots;
    expect((await readLog(run, item))?.toString()).toBe("item 3 so far\n");
    expect((await readLog(run, resolveLogTarget(twoSlots, "w", 2)))?.toString()).toBe("item 2 out\n");
    // An item that has not started yet has no log.
    expect(await readLog(run, resolveLogTarget(twoSlots, "w", 4))).toBeNull();
  });

  it("logs --follow of an item whose task runs prints its section of the slot log as it grows", async () => {
    const files = new Map([["logs/t.m.items-2-3.s1.out", `${M("t.m.2.w")}not this one\n${M("t.m.3.w")}item 3 out\nline 2\n`]]);
    const run = filesRun(files, 7);
    // RUNNING until its slot log was read to the end (filesRun's query), then COMPLETED.
    const out: Buffer[] = [];
    const ended = await followLog(run, resolveLogTarget(twoSlots, "w", 3), { write: (d) => out.push(d), policy: pollPolicy({ initialMs: 1, maxMs: 1 }), sleep: async () => undefined });
    expect(ended).toEqual({ state: "COMPLETED", reason: null });
    expect(Buffer.concat(out).toString()).toBe("item 3 out\nline 2\n");
    // The slot logs are searched from where the last poll stopped, in small reads, never read whole.
    expect(run.reads.filter((r) => r.startsWith("logs/") && !r.includes("@"))).toEqual([]);
  });
});
