// The polling budget of a watch (`hpcpipe status --watch`, `submit --wait`): simulated 10-minute
// watches of a run through the real watchRun with its default poll policy (the CLI passes none), a
// simulated clock advanced by the injected sleep, and a fake transport answering squeue/sacct from
// that clock. Polls and scheduler queries must stay under the documented cap (README, "Tests and
// benchmarks"): at most 11 polls in the 60 s from the start of a watch or from a change of the
// run's state; at most 19 in any 60 s while every poll sees a change; at most 3 in any 60 s once
// 45 s have passed without a change; at most 2 queries a poll. bench/load.ts measures the same on the real cluster.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { pollBudget, QUERIES_PER_POLL } from "../../bench/lib/poll-budget.js";
import { withRun } from "../../src/app/connect.js";
import { watchRun } from "../../src/app/status.js";
import { DEFAULT_POLL_POLICY } from "../../src/slurm/index.js";
import type { ExecOptions, ExecResult, ShellWord } from "../../src/transport/index.js";
import { FakeTransport, squeueJob, squeueTask, tempRun } from "./fakes.js";
import { queryName } from "../support/sacct-filter.js";
import type { TempRun } from "./fakes.js";

/** The documented cap (README). */
const FIRST_MINUTE_POLLS = 11;
const LATER_MINUTE_POLLS = 3;
/** While every poll sees a change (a run whose tasks keep finishing). */
const BUSY_MINUTE_POLLS = 19;
const SETTLE_S = 45;
const MINUTES = 10;
const JOB_ENDS_S = MINUTES * 60;

let run: TempRun | undefined;
let scratch: string | undefined;
afterEach(() => {
  run?.cleanup();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  run = undefined;
  scratch = undefined;
});

/** A FakeTransport that notes the simulated time of every command. */
class ClockedTransport extends FakeTransport {
  readonly at: Array<{ s: number; command: string }> = [];
  constructor(private readonly clock: { ms: number }) {
    super();
  }
  override exec(argv: readonly ShellWord[], opts?: ExecOptions): Promise<ExecResult> {
    this.at.push({ s: this.clock.ms / 1000, command: queryName(argv.map(String)) });
    return super.exec(argv, opts);
  }
}

/** A deterministic random in [0, 1) (mulberry32), for jitter. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Poll {
  s: number;
  /** Scheduler queries this poll made. */
  queries: number;
  /** The state it saw differs from the poll before (the first poll counts as one: the watch starts there). */
  changed: boolean;
}

interface Watched {
  polls: Poll[];
  final: boolean;
}

/**
 * Watches `r` with the default policy on a simulated clock; `answer(fake, s)` sets what the
 * scheduler says at simulated second s (called before every poll) and returns a fingerprint of it.
 */
async function simulatedWatch(r: TempRun, random: () => number, answer: (fake: FakeTransport, s: number) => string): Promise<Watched> {
  const clock = { ms: 0 };
  const fake = new ClockedTransport(clock);
  const seen: string[] = [answer(fake, 0)];
  const outcome = await withRun(r.record.run_id, { store: r.store, connect: async () => fake }, (ctx) =>
    watchRun(ctx, {
      random,
      now: () => new Date(Date.UTC(2026, 0, 1) + clock.ms).toISOString(),
      sleep: async (ms) => {
        clock.ms += ms;
        seen.push(answer(fake, clock.ms / 1000));
      },
    }),
  );
  // A poll starts with its squeue; the queries up to the next squeue are its own.
  const polls: Poll[] = [];
  for (const call of fake.at) {
    if (call.command === "squeue") polls.push({ s: call.s, queries: 0, changed: polls.length === 0 || seen[polls.length] !== seen[polls.length - 1] });
    const poll = polls.at(-1);
    if (poll && ["squeue", "sacct", "scontrol"].includes(call.command)) poll.queries += 1;
  }
  expect(polls).toHaveLength(outcome.polls);
  return { polls, final: outcome.status.final };
}

/**
 * The cap, on every 60 s window that starts at a poll (the fullest windows start at one) and in
 * which no later poll saw a change: at most FIRST_MINUTE_POLLS polls, and at most
 * LATER_MINUTE_POLLS when it starts SETTLE_S or more after the last poll that saw a change.
 */
function expectUnderCap(w: Watched, queriesPerPoll: number): void {
  for (const [i, p] of w.polls.entries()) {
    expect(p.queries, `poll at ${p.s} s`).toBeLessThanOrEqual(queriesPerPoll);
    const inWindow = w.polls.slice(i).filter((q) => q.s < p.s + 60);
    if (inWindow.slice(1).some((q) => q.changed)) continue;
    const lastChange = w.polls.slice(0, i + 1).filter((q) => q.changed).at(-1)?.s ?? 0;
    const cap = p.s - lastChange >= SETTLE_S ? LATER_MINUTE_POLLS : FIRST_MINUTE_POLLS;
    expect(inWindow.length, `60 s from ${p.s} s (last change ${lastChange} s): ${inWindow.map((q) => q.s.toFixed(1)).join(" ")}`).toBeLessThanOrEqual(cap);
  }
}

/** Polls (or, with `queries`, scheduler queries) per minute from the watch's first poll. */
function perMinute(w: Watched, what: "polls" | "queries" = "polls"): number[] {
  const out = Array.from({ length: MINUTES + 1 }, () => 0);
  for (const p of w.polls) out[Math.floor(p.s / 60)] = (out[Math.floor(p.s / 60)] ?? 0) + (what === "polls" ? 1 : p.queries);
  return out;
}

const RANDOMS: Array<[string, () => number]> = [
  ["the fastest jitter (every delay 20% short)", () => 0],
  ["no jitter", () => 0.5],
  ...[1, 2, 3, 4, 5, 6, 7, 8].map((seed): [string, () => number] => [`random jitter (seed ${seed})`, seeded(seed)]),
];

function longJobRun(): Promise<TempRun> {
  scratch = mkdtempSync(path.join(tmpdir(), "hpcpipe-poll-budget-"));
  const spec = path.join(scratch, "long.yaml");
  writeFileSync(spec, 'name: long\nsteps:\n  - step: wait\n    run: sleep 600\n    resources: { time: "15:00" }\n');
  return tempRun(spec);
}

/** One job: PENDING until `startS`, RUNNING until JOB_ENDS_S, then COMPLETED. */
function longJob(startS: number): (fake: FakeTransport, s: number) => string {
  return (fake, s) => {
    const state = s < startS ? "PENDING" : s < JOB_ENDS_S ? "RUNNING" : "COMPLETED";
    fake.squeue.set("100", [squeueJob("100", state, state === "PENDING" ? "Priority" : "None")]);
    return state;
  };
}

describe("the polling budget of a watch (default poll policy, simulated 10 minutes)", () => {
  it("the documented cap is what the default policy allows at its fastest", () => {
    expect(pollBudget(DEFAULT_POLL_POLICY)).toEqual({
      firstMinute: FIRST_MINUTE_POLLS,
      laterMinute: LATER_MINUTE_POLLS,
      settleMs: 44_932,
      minDelayAtCapMs: 24_000,
      busyMinute: BUSY_MINUTE_POLLS,
    });
    expect(Math.ceil(pollBudget().settleMs / 1000)).toBe(SETTLE_S);
    expect(QUERIES_PER_POLL).toBe(2);
  });

  for (const [label, random] of RANDOMS) {
    it(`one long job, running from the first poll: ONE squeue a poll, at most ${FIRST_MINUTE_POLLS} in the first minute and ${LATER_MINUTE_POLLS} in every later one; ${label}`, async () => {
      run = await longJobRun();
      expect(Object.values(run.record.jobs)).toEqual(["100"]);
      const w = await simulatedWatch(run, random, longJob(0));
      expect(w.final).toBe(true);
      expect(w.polls.every((p) => p.queries === 1)).toBe(true); // the job stays in squeue: no sacct
      expectUnderCap(w, 1);
      const [first = 0, ...later] = perMinute(w);
      expect(first).toBeLessThanOrEqual(FIRST_MINUTE_POLLS);
      for (const n of later) expect(n).toBeLessThanOrEqual(LATER_MINUTE_POLLS);
      // It did watch all along (a poll every 30 s at most once backed off) and saw the end within one interval.
      expect(w.polls.length).toBeGreaterThanOrEqual(MINUTES * 2);
      const last = w.polls.at(-1)?.s ?? NaN;
      expect(last).toBeGreaterThanOrEqual(JOB_ENDS_S);
      expect(last - JOB_ENDS_S).toBeLessThanOrEqual(DEFAULT_POLL_POLICY.maxMs / 1000);
    });
  }

  for (const [label, random] of RANDOMS.slice(0, 4)) {
    it(`one long job that waits in the queue for 1 s, then 100 s: the change starts the fast polls again, still under the cap; ${label}`, async () => {
      for (const startS of [1, 100]) {
        run?.cleanup();
        run = await longJobRun();
        const w = await simulatedWatch(run, random, longJob(startS));
        expect(w.final).toBe(true);
        expect(w.polls.filter((p) => p.changed).map((p) => p.s >= startS)).toEqual([false, true, true]); // start, RUNNING, COMPLETED
        expectUnderCap(w, 1);
      }
    });
  }

  for (const [label, random] of RANDOMS.slice(0, 4)) {
    it(`a run that changes at every poll for 5 minutes (tasks finishing all the time): at most ${BUSY_MINUTE_POLLS} polls in any 60 s, not one every 0.5 s; then the quiet cap; ${label}`, async () => {
      run = await longJobRun();
      const BUSY_UNTIL_S = 300;
      // The job's reason changes before every poll until BUSY_UNTIL_S: every poll sees a change.
      let answers = 0;
      const w = await simulatedWatch(run, random, (fake, s) => {
        answers += 1;
        const state = s < JOB_ENDS_S ? "RUNNING" : "COMPLETED";
        const reason = s < BUSY_UNTIL_S ? `step${answers}` : "None";
        fake.squeue.set("100", [squeueJob("100", state, reason)]);
        return `${state}/${reason}`;
      });
      expect(w.final).toBe(true);
      const busy = w.polls.filter((p) => p.s < BUSY_UNTIL_S);
      expect(busy.every((p) => p.changed)).toBe(true);
      for (const [i, p] of busy.entries()) {
        const inWindow = busy.slice(i).filter((q) => q.s < p.s + 60);
        if (p.s + 60 <= BUSY_UNTIL_S) expect(inWindow.length, `60 s from ${p.s} s`).toBeLessThanOrEqual(BUSY_MINUTE_POLLS);
      }
      // Five busy minutes at 5 s: about 60 polls, not the 600 of a poll every 0.5 s.
      expect(busy.length).toBeLessThanOrEqual(5 * BUSY_MINUTE_POLLS);
      expect(busy.length).toBeGreaterThanOrEqual(5 * 10);
      const quiet = w.polls.filter((p) => p.s >= BUSY_UNTIL_S + SETTLE_S + 60 && p.s < JOB_ENDS_S);
      for (const [i, p] of quiet.entries()) expect(quiet.slice(i).filter((q) => q.s < p.s + 60).length).toBeLessThanOrEqual(LATER_MINUTE_POLLS);
    });
  }

  for (const [label, random] of RANDOMS.slice(0, 3)) {
    it(`a run with a job squeue has forgotten (squeue + sacct a poll): at most ${QUERIES_PER_POLL} queries a poll, under the cap; ${label}`, async () => {
      run = await tempRun("examples/specs/thumbnail-shape.yaml");
      const w = await simulatedWatch(run, random, (fake, s) => {
        const done = s >= JOB_ENDS_S;
        // Job 100 ended long ago: only sacct knows it. 200 (an array of 4) runs, 300 waits for it.
        fake.sacct.set("100", ["100|100|COMPLETED|0:0|None"]);
        fake.squeue.set("200", [0, 1, 2, 3].map((t) => squeueTask("200", t, done ? "COMPLETED" : "RUNNING")));
        fake.squeue.set("300", [squeueJob("300", done ? "COMPLETED" : "PENDING", done ? "None" : "Dependency")]);
        return String(done);
      });
      expect(w.final).toBe(true);
      expect(w.polls.every((p) => p.queries === 2)).toBe(true);
      expectUnderCap(w, QUERIES_PER_POLL);
      const [first = 0, ...later] = perMinute(w, "queries");
      expect(first).toBeLessThanOrEqual(FIRST_MINUTE_POLLS * QUERIES_PER_POLL);
      for (const n of later) expect(n).toBeLessThanOrEqual(LATER_MINUTE_POLLS * QUERIES_PER_POLL);
    });
  }
});
