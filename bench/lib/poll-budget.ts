// The polling budget of a watch (`hpcpipe status --watch`, `submit --wait`), derived from its poll
// policy (src/slurm/poll.ts): delays start at `initialMs`, grow by `factor` per poll without change up
// to `maxMs`, each spread by ±jitter (never above maxMs), and start again at `initialMs` after a
// change that ends a quiet spell; while every poll sees a change they still grow, up to the busy
// cap (5 s by default). Each poll is ONE squeue, plus ONE sacct (or scontrol without accounting) when some of the
// run's jobs have left squeue. test/app/poll-budget.test.ts holds a simulated 10-minute watch to
// these numbers; bench/load.ts measures a real one.
import { busyCapOf, DEFAULT_POLL_POLICY } from "../../src/slurm/index.js";
import type { PollPolicy } from "../../src/slurm/index.js";

/** Scheduler queries in one poll at most: squeue, then sacct or scontrol for the jobs squeue no longer shows. */
export const QUERIES_PER_POLL = 2;

const WINDOW_MS = 60_000;

export interface PollBudget {
  /** The most polls in the 60 s from the watch's first poll, or from the poll that saw a change (its ramp from initialMs). */
  firstMinute: number;
  /** The most polls in any 60 s window once the ramp is over (delays at their cap). */
  laterMinute: number;
  /** The ramp is over, at the latest, this long after the watch's first poll or the poll that saw a change (ms). */
  settleMs: number;
  /** The shortest delay once backed off to the cap (ms). */
  minDelayAtCapMs: number;
  /** The most polls in any 60 s while every poll sees a change (a run whose tasks keep finishing). */
  busyMinute: number;
}

/** The polling budget the policy allows at its fastest (every delay at the short end of its jitter). */
export function pollBudget(policy: PollPolicy = DEFAULT_POLL_POLICY): PollBudget {
  // The delay bases after a change: initial, x factor, ... up to the cap (then the cap for ever).
  const bases: number[] = [];
  for (let b = policy.initialMs; bases.length < 1000; b = Math.min(b * policy.factor, policy.maxMs)) {
    bases.push(b);
    if (b === policy.maxMs) break;
  }
  const base = (i: number): number => bases[Math.min(i, bases.length - 1)] ?? policy.maxMs;
  // As nextPollDelay computes them: rounded, at least 1 ms, never above the cap.
  const shortest = (i: number): number => Math.round(Math.min(Math.max(base(i) * (1 - policy.jitter), 1), policy.maxMs));
  const longest = (i: number): number => Math.round(Math.min(base(i) * (1 + policy.jitter), policy.maxMs));
  /** The most polls in 60 s from poll k of a ramp (poll k included). */
  const fromPoll = (k: number): number => {
    let n = 1;
    for (let i = k, span = shortest(i); span < WINDOW_MS; i++, span += shortest(i)) n++;
    return n;
  };
  const capIndex = bases.length - 1;
  const laterMinute = fromPoll(capIndex);
  let k = 0;
  while (fromPoll(k) > laterMinute) k++;
  let settleMs = 0;
  for (let i = 0; i < k; i++) settleMs += longest(i);
  // Every poll a change: initial, x factor, ... up to the busy cap, then the busy cap for ever.
  const busyCap = busyCapOf(policy);
  const busyBases: number[] = [];
  for (let b = policy.initialMs; busyBases.length < 1000; b = Math.min(b * policy.factor, busyCap)) {
    busyBases.push(b);
    if (b === busyCap) break;
  }
  const busyShortest = (i: number): number =>
    Math.round(Math.min(Math.max((busyBases[Math.min(i, busyBases.length - 1)] ?? busyCap) * (1 - policy.jitter), 1), policy.maxMs));
  let busyMinute = 1;
  for (let i = 0, span = busyShortest(0); span < WINDOW_MS; i++, span += busyShortest(i)) busyMinute++;
  return { firstMinute: fromPoll(0), laterMinute, settleMs, minDelayAtCapMs: shortest(capIndex), busyMinute };
}
