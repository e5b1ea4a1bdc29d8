/**
 * When a watch that learns from state-file events asks the scheduler, which
 * it does only for what the files cannot say (pending reasons, jobs that
 * died without a state). Pure: the caller passes the clock.
 * - at once when the watch starts and right after a failure event;
 * - after a failure, again after 1, 2, 4 ... s while its consequences are
 *   unsettled (a job still waiting on a dependency that failed: SLURM
 *   cancels it about 2 s later);
 * - otherwise every `everyMs` (60 s), easing off by `factor` to `maxMs`
 *   while the answers tell nothing the files had not already said.
 */

export interface CadencePolicy {
  /** The shortest interval between routine queries (ms). */
  everyMs: number;
  /** Growth of the routine interval after an answer that taught nothing new. */
  factor: number;
  /** Cap of the routine interval (ms). */
  maxMs: number;
  /** First follow-up after a failure's query while it is unsettled; doubles up to `everyMs` (ms). */
  followUpMs: number;
}

export const DEFAULT_CADENCE: Readonly<CadencePolicy> = { everyMs: 60_000, factor: 1.5, maxMs: 180_000, followUpMs: 1_000 };

export function cadencePolicy(overrides: Partial<CadencePolicy> = {}): CadencePolicy {
  const p = { ...DEFAULT_CADENCE, ...overrides };
  if (!(p.everyMs > 0 && p.maxMs >= p.everyMs)) throw new Error(`scheduler cadence: everyMs must be > 0 and maxMs >= everyMs (got ${p.everyMs}, ${p.maxMs})`);
  if (!(p.factor >= 1)) throw new Error(`scheduler cadence: factor must be >= 1 (got ${p.factor})`);
  if (!(p.followUpMs > 0 && p.followUpMs <= p.everyMs)) throw new Error(`scheduler cadence: followUpMs must be in (0, everyMs] (got ${p.followUpMs})`);
  return p;
}

/** What a scheduler answer taught, as the watch judges it. */
export interface AnswerFacts {
  /** It showed a task ended or failed that the files had not explained (a death without a state). */
  learned: boolean;
  /** A job still waits on a dependency that has failed: ask again soon. */
  unsettled: boolean;
}

export class SchedulerCadence {
  #due: number;
  #interval: number;
  #followUp: number | null = null;

  constructor(
    private readonly policy: CadencePolicy,
    nowMs: number,
    /** Ask at once (a watch that starts without knowing the jobs' states). */
    askNow = true,
  ) {
    this.#interval = policy.everyMs;
    this.#due = askNow ? nowMs : nowMs + policy.everyMs;
  }

  /** When the next query is due (ms, the caller's clock). */
  get dueAt(): number {
    return this.#due;
  }

  /** A failure event arrived: ask now. */
  failure(nowMs: number): void {
    this.#due = Math.min(this.#due, nowMs);
    this.#followUp ??= this.policy.followUpMs;
  }

  /** A query was answered at `nowMs`. */
  answered(nowMs: number, facts: AnswerFacts): void {
    if (facts.unsettled && this.#followUp !== null) {
      this.#due = nowMs + this.#followUp;
      this.#followUp = Math.min(this.#followUp * 2, this.policy.everyMs);
      return;
    }
    if (facts.unsettled) {
      // Unsettled without a failure event (a death without a state): follow it up the same way.
      this.#followUp = this.policy.followUpMs;
      this.#due = nowMs + this.#followUp;
      this.#followUp *= 2;
      return;
    }
    this.#followUp = null;
    if (facts.learned) this.#interval = this.policy.everyMs;
    this.#due = nowMs + this.#interval;
    this.#interval = Math.min(this.#interval * this.policy.factor, this.policy.maxMs);
  }
}
