// Watching by state-file events (src/app/watch-events.ts) with a scripted watcher in place of the
// one on the cluster, fed through the real line parser, and a fake scheduler: the end comes from the
// files without a scheduler query, stale files of an earlier submission do not count, a failure
// event asks the scheduler at once, a bad line is dropped, a watcher whose channel ends gives way to
// polling and comes back, and a simulated 2,000-task run of 16 minutes asks the scheduler at most
// once a minute on average.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { buildStepIndex } from "../../src/collect/job-index.js";
import { withRun } from "../../src/app/connect.js";
import type { RunExecutor } from "../../src/app/executor.js";
import { slurmExecutor } from "../../src/app/slurm-executor.js";
import { watchRun } from "../../src/app/status.js";
import type { WatchOptions, WatchOutcome } from "../../src/app/status.js";
import type { CompiledPlan } from "../../src/plan/plan.js";
import { WatchLineSplitter } from "../../src/watch/events.js";
import type { WatchEvent } from "../../src/watch/events.js";
import type { RemoteWatcher, WatcherEnd } from "../../src/watch/remote-watcher.js";
import { FakeTransport, squeueJob, squeueTask, tempRun } from "./fakes.js";
import type { TempRun } from "./fakes.js";

let run: TempRun | undefined;
let scratch: string | undefined;
afterEach(() => {
  run?.cleanup();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  run = undefined;
  scratch = undefined;
});

/** A watcher the test writes lines into, as the cluster's would send them. */
class ScriptedWatcher implements RemoteWatcher {
  readonly ended: Promise<WatcherEnd>;
  closed = false;
  #end!: (end: WatcherEnd) => void;
  constructor(readonly splitter: WatchLineSplitter) {
    this.ended = new Promise((resolve) => (this.#end = resolve));
  }
  send(...lines: string[]): void {
    this.splitter.write(Buffer.from(lines.map((l) => `${l}\n`).join("")));
  }
  drop(): void {
    this.#end({ reason: "failed", error: new Error("the SSH connection dropped") });
  }
  async close(): Promise<void> {
    this.closed = true;
    this.#end({ reason: "closed" });
  }
}

interface Harness {
  fake: FakeTransport;
  watchers: ScriptedWatcher[];
  debug: string[];
  /** The state line of a step or unit key, written by the current submission (or by SLURM job `jobId`). */
  line(key: string, options?: { success?: boolean; jobId?: string; reason?: string }): string;
  watch(options?: WatchOptions, onStart?: (w: ScriptedWatcher) => void): Promise<WatchOutcome>;
}

function harness(r: TempRun): Harness {
  const fake = new FakeTransport();
  const watchers: ScriptedWatcher[] = [];
  const debug: string[] = [];
  const slots = buildStepIndex(r.plan);
  const units = new Map<string, { job: string; task: number; array: boolean }>();
  for (const slot of slots.values()) if (slot.unitKey !== null) units.set(slot.unitKey, { job: slot.job.id, task: slot.taskId, array: slot.job.array !== null });
  let inode = 1000;
  return {
    fake,
    watchers,
    debug,
    line(key, options = {}) {
      const slot = slots.get(key);
      const where = slot ? { job: slot.job.id, task: slot.taskId, array: slot.job.array !== null } : units.get(key);
      if (where === undefined) throw new Error(`no key ${key} in the plan`);
      const id = options.jobId ?? r.record.jobs[where.job] ?? "";
      const slurm = where.array ? { job_id: `${id}9${where.task}`, array_job_id: id, array_task_id: String(where.task), task: where.task } : { job_id: id, task: 0 };
      const success = options.success ?? true;
      const state = {
        success,
        timestamp: "2026-01-01T00:00:01.000Z",
        duration_s: 0.1,
        provides: [],
        outputs: {},
        error: success ? null : "exit 3",
        meta: options.reason ? { reason: options.reason } : {},
        signature: "000000000000",
        failure: success ? null : "STEP_FAILED",
        key,
        slurm,
        host: "node1",
        exit_code: success ? 0 : 3,
        attempt: 1,
      };
      const text = JSON.stringify(state);
      inode += 1;
      return `S ${inode}:${Buffer.byteLength(text)}:1796620107:1796620107 ${key}.json ${text}`;
    },
    async watch(options = {}, onStart) {
      return withRun(r.record.run_id, { store: r.store, connect: async () => fake }, (ctx) => {
        const base = slurmExecutor(ctx);
        const executor: RunExecutor = Object.assign(Object.create(null) as RunExecutor, base, {
          record: base.record,
          watchStates: (handlers: { onEvent: (e: WatchEvent) => void; onBad: (p: string) => void }) => {
            const w = new ScriptedWatcher(new WatchLineSplitter(handlers.onEvent, handlers.onBad));
            watchers.push(w);
            // The watcher's first lines come asynchronously, as from the network.
            setImmediate(() => onStart?.(w));
            return w;
          },
        });
        return watchRun(executor, { events: true, onDebug: (m) => debug.push(m), ...options });
      });
    },
  };
}

/** Every step and unit key of the plan, by plan job. */
function keysOf(plan: CompiledPlan): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [key, slot] of buildStepIndex(plan)) {
    const list = out.get(slot.job.id) ?? [];
    if (!list.includes(key)) list.push(key);
    if (slot.unitKey !== null && !list.includes(slot.unitKey)) list.push(slot.unitKey);
    out.set(slot.job.id, list);
  }
  return out;
}

function pendingRun(fake: FakeTransport): void {
  fake.squeue.set("100", [squeueJob("100", "PENDING", "Priority")]);
  fake.squeue.set("200", [0, 1, 2, 3].map((t) => squeueTask("200", t, "PENDING", "Dependency")));
  fake.squeue.set("300", [squeueJob("300", "PENDING", "Dependency")]);
}

describe("watching by state-file events (a scripted watcher, a fake scheduler)", () => {
  it("learns the end from the files alone: one scheduler query (the first), no state-file fetch, the merged result from the events", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const h = harness(run);
    pendingRun(h.fake);
    const keys = keysOf(run.plan);
    const all = [...keys.values()].flat();
    const outcome = await h.watch({}, (w) => w.send("H 2 4242", "E", "R scan", ...all.map((k) => h.line(k)), "E"));
    expect(outcome.mode).toBe("events");
    expect(outcome.status.final).toBe(true);
    expect(outcome.merged?.success).toBe(true);
    expect(Object.keys(outcome.merged?.step_states ?? {})).toEqual(expect.arrayContaining(all));
    expect(outcome.queries).toBe(1);
    expect(h.fake.schedulerCalls()).toEqual(["squeue"]);
    expect(h.fake.gets).toEqual([]);
    expect(h.watchers[0]?.closed).toBe(true);
    expect(outcome.status.jobs.map((j) => j.state)).toEqual(["COMPLETED", "COMPLETED", "COMPLETED"]);
  });

  it("keeps no state file's text past HPCPIPE_WATCH_KEEP_FILES: the end still comes from the files, and the merge fetches them once", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const h = harness(run);
    pendingRun(h.fake);
    const all = [...keysOf(run.plan).values()].flat();
    expect(all.length).toBeGreaterThan(3);
    const before = process.env.HPCPIPE_WATCH_KEEP_FILES;
    process.env.HPCPIPE_WATCH_KEEP_FILES = "3";
    try {
      const outcome = await h.watch({}, (w) => w.send("H 2 4242", "E", "R scan", ...all.map((k) => h.line(k)), "E"));
      expect(outcome.status.final).toBe(true);
      expect(outcome.queries).toBe(1);
      expect(h.fake.gets).toHaveLength(1);
      expect(h.debug.some((m) => m.includes("more than 3 state files"))).toBe(true);
    } finally {
      if (before === undefined) delete process.env.HPCPIPE_WATCH_KEEP_FILES;
      else process.env.HPCPIPE_WATCH_KEEP_FILES = before;
    }
  });

  it("applies a scan's files together: an item's unit file sent before its step's file (glob order) does not end the watch without the step", async () => {
    run = await tempRun("examples/specs/batch-map.yaml");
    const h = harness(run);
    h.fake.squeue.set("100", [squeueJob("100", "PENDING", "Priority")]);
    h.fake.squeue.set("200", Array.from({ length: 12 }, (_, t) => squeueTask("200", t, "PENDING", "Dependency")));
    h.fake.squeue.set("300", [squeueJob("300", "PENDING", "Dependency")]);
    const all = [...keysOf(run.plan).values()].flat();
    // A step of a map item: its item's unit file is written after it, but sorts before it ("x.3.json" < "x.3.look.json").
    const step = [...buildStepIndex(run.plan)].find(([, slot]) => slot.unitKey !== null)?.[0];
    expect(step).toBeDefined();
    const outcome = await h.watch({}, (w) => {
      w.send("H 2 1", "E", "R scan", ...all.filter((k) => k !== step).map((k) => h.line(k)));
      // The rest of the same scan reaches the client in a later chunk.
      setTimeout(() => w.send(h.line(step ?? ""), "E"), 40);
    });
    expect(outcome.mode).toBe("events");
    expect(outcome.merged?.success).toBe(true);
    // The step's own state, not a "job ended without writing this step's state" made up for it.
    expect(outcome.merged?.step_states?.[step ?? ""]).toMatchObject({ success: true, error: null });
    expect(h.fake.gets).toEqual([]);
  });

  it("drops a malformed line with a debug message and goes on", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const h = harness(run);
    pendingRun(h.fake);
    const all = [...keysOf(run.plan).values()].flat();
    const outcome = await h.watch({}, (w) => {
      w.send("H 2 1", "E", "R scan", "S nonsense", `S 1:5:1:1 ${all[0] ?? ""}.json {not json`, ...all.map((k) => h.line(k)), "E");
    });
    expect(outcome.merged?.success).toBe(true);
    expect(h.debug.some((m) => m.includes('ignored a line that is not valid: "S nonsense"'))).toBe(true);
    expect(h.debug.some((m) => m.includes("not valid JSON"))).toBe(true);
  });

  it("does not end on stale files of an earlier submission (another SLURM job id): the scheduler decides, then the files are fetched", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const h = harness(run);
    pendingRun(h.fake);
    const all = [...keysOf(run.plan).values()].flat();
    let answers = 0;
    const outcome = await h.watch({ cadence: { everyMs: 50, maxMs: 50, followUpMs: 10 } }, (w) => {
      w.send("H 2 1", ...all.map((k) => h.line(k, { jobId: "99" })), "E", "R scan");
      // Once the scheduler has been asked twice, it says every job ended.
      const timer = setInterval(() => {
        answers = h.fake.schedulerCalls().length;
        if (answers < 2) return;
        clearInterval(timer);
        h.fake.squeue.set("100", [squeueJob("100", "COMPLETED")]);
        h.fake.squeue.set("200", [0, 1, 2, 3].map((t) => squeueTask("200", t, "COMPLETED")));
        h.fake.squeue.set("300", [squeueJob("300", "COMPLETED")]);
      }, 5);
    });
    expect(outcome.status.final).toBe(true);
    expect(outcome.queries).toBeGreaterThanOrEqual(3);
    expect(h.fake.gets).toHaveLength(1); // the end came from the scheduler: the files are fetched once
  });

  it("asks the scheduler right after a failure event, follows up while the downstream job waits on it, and ends when SLURM cancels it", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const h = harness(run);
    pendingRun(h.fake);
    const keys = keysOf(run.plan);
    const prep = keys.get("j000") ?? [];
    const renders = keys.get("j001") ?? [];
    const started = Date.now();
    const outcome = await h.watch({ cadence: { followUpMs: 20 } }, (w) => {
      w.send("H 2 1", "E", "R scan", ...prep.map((k) => h.line(k)), "E");
      h.fake.squeue.set("100", [squeueJob("100", "COMPLETED")]);
      h.fake.squeue.set("200", [0, 1, 2, 3].map((t) => squeueTask("200", t, t === 2 ? "FAILED" : "COMPLETED", t === 2 ? "NonZeroExitCode" : "None")));
      setTimeout(() => w.send(...renders.map((k, i) => h.line(k, { success: i !== 2 })), "E"), 30);
      // SLURM cancels the downstream job a little later (--kill-on-invalid-dep=yes).
      setTimeout(() => h.fake.squeue.set("300", [squeueJob("300", "CANCELLED", "DependencyNeverSatisfied")]), 150);
    });
    expect(Date.now() - started).toBeLessThan(30_000); // not the 60 s of the routine cadence
    expect(outcome.status.final).toBe(true);
    expect(outcome.merged?.success).toBe(false);
    expect(outcome.status.jobs.find((j) => j.job === "j002")).toMatchObject({ state: "CANCELLED", reason: "DependencyNeverSatisfied" });
    expect(outcome.queries).toBeGreaterThanOrEqual(3); // the first, the one right after the failure, follow-ups
  });

  it("falls back to polling when the watcher's channel ends, and starts a new watcher after the next answered poll", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const h = harness(run);
    pendingRun(h.fake);
    const all = [...keysOf(run.plan).values()].flat();
    const outcome = await h.watch({ policy: { initialMs: 10, factor: 1, maxMs: 10, jitter: 0 } }, (w) => {
      if (h.watchers.length === 1) {
        w.send("H 2 1", "E", "R scan");
        setTimeout(() => w.drop(), 20);
      } else w.send("H 2 2", "E", "R scan", ...all.map((k) => h.line(k)), "E");
    });
    expect(h.watchers).toHaveLength(2);
    expect(outcome.mode).toBe("events");
    expect(outcome.merged?.success).toBe(true);
    expect(h.debug.some((m) => /state watcher ended \(the SSH connection dropped\); polling/.test(m))).toBe(true);
    expect(h.debug.some((m) => /starting a new state watcher/.test(m))).toBe(true);
  });

  it("polls for the whole watch when no watcher can be started", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const fake = new FakeTransport();
    fake.squeue.set("100", [squeueJob("100", "COMPLETED")]);
    fake.squeue.set("200", [0, 1, 2, 3].map((t) => squeueTask("200", t, "COMPLETED")));
    fake.squeue.set("300", [squeueJob("300", "COMPLETED")]);
    const debug: string[] = [];
    const outcome = await withRun(run.record.run_id, { store: run.store, connect: async () => fake }, (ctx) => {
      const base = slurmExecutor(ctx);
      const executor: RunExecutor = Object.assign(Object.create(null) as RunExecutor, base, {
        record: base.record,
        watchStates: () => {
          throw new Error("cannot read templates/watch-states.sh");
        },
      });
      return watchRun(executor, { events: true, onDebug: (m) => debug.push(m), policy: { initialMs: 10, factor: 1, maxMs: 10, jitter: 0 } });
    });
    expect(outcome.mode).toBe("polling");
    expect(outcome.status.final).toBe(true);
    expect(debug.some((m) => m.includes("state watcher not started: cannot read templates/watch-states.sh"))).toBe(true);
    expect(fake.gets).toHaveLength(1);
  });

  it("a 2,000-task run of 16 minutes (simulated clock): at most one scheduler query a minute on average, the end seen within a second", { timeout: 180_000 }, async () => {
    scratch = mkdtempSync(path.join(tmpdir(), "hpcpipe-watch-events-"));
    writeFileSync(path.join(scratch, "items.txt"), Array.from({ length: 2000 }, (_, i) => `item${i}`).join("\n") + "\n");
    const spec = path.join(scratch, "big.yaml");
    writeFileSync(spec, "name: big\nsteps:\n  - map: each\n    items_file: items.txt\n    as: item\n    steps:\n      - step: work\n        run: sleep 1\n");
    run = await tempRun(spec);
    const h = harness(run);
    const ids = Object.values(run.record.jobs);
    const RUN_S = 16 * 60;
    // Tasks end four at a time (the 4 CPUs of the test cluster), the last at RUN_S; each writes its step and its item's unit.
    const ends: Array<{ s: number; lines: string[] }> = [];
    const slots = buildStepIndex(run.plan);
    const order = [...slots.entries()].sort((a, b) => a[1].index - b[1].index);
    for (const [key, slot] of order) ends.push({ s: ((Math.floor(slot.index / 4) + 1) * RUN_S) / 500, lines: [h.line(key), ...(slot.unitKey ? [h.line(slot.unitKey)] : [])] });
    let clockMs = 0;
    let sent = 0;
    let watcher: ScriptedWatcher | undefined;
    let answeredAt = -Infinity;
    const answer = (): void => {
      const s = clockMs / 1000;
      // The fake scheduler's answer is rebuilt every 10 simulated seconds (2,000 lines each time).
      if (s - answeredAt < 10 && s < RUN_S) return;
      answeredAt = s;
      for (const job of run?.plan.jobs ?? []) {
        const id = run?.record.jobs[job.id] ?? "";
        const count = job.array?.count ?? 1;
        const offset = job.array?.offset ?? 0;
        h.fake.squeue.set(id, Array.from({ length: count }, (_, t) => squeueTask(id, t, s >= ((Math.floor((offset + t) / 4) + 1) * RUN_S) / 500 ? "COMPLETED" : "RUNNING")));
      }
    };
    answer();
    let endSeenAt = 0;
    const outcome = await h.watch(
      {
        clock: () => clockMs,
        now: () => new Date(Date.UTC(2026, 0, 1) + clockMs).toISOString(),
        sleep: async (ms) => {
          await new Promise((resolve) => setImmediate(resolve)); // the watcher's first lines arrive
          // Time runs to the next file written or the end of the wait, whichever comes first.
          const next = ends[sent]?.s;
          clockMs = next !== undefined ? Math.min(clockMs + ms, Math.max(clockMs, next * 1000)) : clockMs + ms;
          for (let due = ends[sent]; due !== undefined && due.s * 1000 <= clockMs; due = ends[++sent]) watcher?.send(...due.lines, "E");
          answer();
          await new Promise((resolve) => setImmediate(resolve));
        },
        onUpdate: (status) => {
          if (status.final) endSeenAt = clockMs;
        },
      },
      (w) => {
        watcher = w;
        w.send("H 2 1", "E", "R scan");
      },
    );
    expect(outcome.status.final).toBe(true);
    expect(outcome.merged?.success, `${outcome.merged?.error ?? ""} gets=${h.fake.gets.length} q=${outcome.queries}`).toBe(true);
    expect(sent).toBe(ends.length);
    const minutes = RUN_S / 60;
    const queries = h.fake.schedulerCalls().length;
    expect(ids.length).toBeGreaterThan(1); // chunked over MaxArraySize
    expect(queries).toBe(outcome.queries * 1); // squeue only: no sacct for tasks the files ended
    expect(queries / minutes).toBeLessThanOrEqual(1);
    expect(endSeenAt - RUN_S * 1000).toBeLessThan(1000);
    expect(h.fake.gets).toEqual([]);
  });
});
