// How long to wait between status polls: fast when something starts changing, easing
// off to a few seconds while the run keeps changing (a big array whose tasks keep
// finishing), backing off to a cap while nothing does, with jitter so many clients
// do not poll in step.
import type { TaskRecord } from "./parse.js";

export interface PollPolicy {
  /** First interval, and the interval after a change that ends a quiet spell (ms). */
  initialMs: number;
  /** Growth of the interval per poll without change. */
  factor: number;
  /** Cap of the interval, jitter included (ms). */
  maxMs: number;
  /** Relative jitter: 0.2 spreads each delay over ±20% of its base. */
  jitter: number;
  /**
   * While the run keeps changing (a change at a poll whose base was at most this), the
   * interval still grows by `factor` up to this instead of going back to `initialMs`:
   * a run whose tasks keep finishing is not polled twice a second for its whole life (ms;
   * default 5 s or half of `maxMs`, whichever is less).
   */
  busyMaxMs?: number;
}

export const DEFAULT_POLL_POLICY: Readonly<PollPolicy> = { initialMs: 500, factor: 1.5, maxMs: 30_000, jitter: 0.2 };

/** The policy with overrides applied; throws on values that would poll in a tight loop or never back off. */
export function pollPolicy(overrides: Partial<PollPolicy> = {}): PollPolicy {
  const policy = { ...DEFAULT_POLL_POLICY, ...overrides };
  if (!(policy.initialMs > 0)) throw new Error(`poll initialMs must be > 0 (got ${policy.initialMs})`);
  if (!(policy.maxMs >= policy.initialMs)) throw new Error(`poll maxMs must be >= initialMs (got ${policy.maxMs})`);
  if (!(policy.factor >= 1)) throw new Error(`poll factor must be >= 1 (got ${policy.factor})`);
  if (!(policy.jitter >= 0 && policy.jitter < 1)) throw new Error(`poll jitter must be in [0, 1) (got ${policy.jitter})`);
  if (overrides.busyMaxMs !== undefined && !(overrides.busyMaxMs >= policy.initialMs && overrides.busyMaxMs <= policy.maxMs)) {
    throw new Error(`poll busyMaxMs must be between initialMs and maxMs (got ${overrides.busyMaxMs})`);
  }
  return policy;
}

export interface PollStep {
  /** The interval before jitter; pass it back as `previousBaseMs` next time. */
  baseMs: number;
  /** How long to wait now: the base with jitter, never above the cap. */
  delayMs: number;
}

/**
 * The next poll delay. Starts at `initialMs` and grows by `factor` per poll
 * without change up to `maxMs`. A change after a quiet spell (the base above
 * `busyMaxMs`) goes back to `initialMs`; a change while polling fast (base at
 * most `busyMaxMs`) keeps growing the interval, up to `busyMaxMs`. Pure:
 * `random` returns a number in [0, 1).
 */
export function nextPollDelay(
  previousBaseMs: number | null,
  changed: boolean,
  random: () => number,
  policy: PollPolicy = DEFAULT_POLL_POLICY,
): PollStep {
  let baseMs: number;
  if (previousBaseMs === null) baseMs = policy.initialMs;
  else if (!changed) baseMs = Math.min(previousBaseMs * policy.factor, policy.maxMs);
  else {
    const busyMaxMs = busyCapOf(policy);
    baseMs = previousBaseMs <= busyMaxMs ? Math.min(Math.max(previousBaseMs * policy.factor, policy.initialMs), busyMaxMs) : policy.initialMs;
  }
  const spread = policy.jitter * (2 * random() - 1);
  const delayMs = Math.min(Math.max(baseMs * (1 + spread), 1), policy.maxMs);
  return { baseMs, delayMs: Math.round(delayMs) };
}

/** The interval a run that keeps changing eases off to: `busyMaxMs`, by default 5 s but at most half of `maxMs`; never below `initialMs`. */
export function busyCapOf(policy: PollPolicy): number {
  return Math.max(policy.initialMs, Math.min(policy.busyMaxMs ?? Math.min(5_000, policy.maxMs / 2), policy.maxMs));
}

/** Stateful wrapper of nextPollDelay for a polling loop. */
export class PollInterval {
  private baseMs: number | null = null;

  constructor(
    private readonly policy: PollPolicy = DEFAULT_POLL_POLICY,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next poll, given whether the poll just made saw a change. */
  next(changed: boolean): number {
    const step = nextPollDelay(this.baseMs, changed, this.random, this.policy);
    this.baseMs = step.baseMs;
    return step.delayMs;
  }

  reset(): void {
    this.baseMs = null;
  }
}

/** A string that changes exactly when some task's state or reason changes: compare it between polls. */
export function statusFingerprint(status: ReadonlyMap<string, readonly TaskRecord[]>): string {
  const parts: string[] = [];
  for (const [id, records] of status) {
    for (const record of records) {
      parts.push(`${id}/${record.arrayJobId ?? record.jobId}_${record.taskId ?? ""}=${record.state}:${record.reason ?? ""}`);
    }
  }
  return parts.sort().join("\n");
}
