/**
 * One job script (one array task) run by bash in its own process group, as
 * slurmstepd would: the warning signal before the time limit, TERM to the
 * whole job at the limit, KILL after the kill wait, and no process left
 * behind once the batch shell exits.
 */
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import type { WarnSignal } from "./sbatch-directives.js";

export interface TaskSpec {
  script: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  stdoutPath: string;
  stderrPath: string;
  /** Seconds, or null for no limit. */
  timeLimitS: number | null;
  warn: WarnSignal | null;
  killWaitS: number;
}

export interface TaskOutcome {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** The time limit was reached and the job was terminated. */
  timedOut: boolean;
  /** Cancelled through `cancel()`. */
  cancelled: boolean;
  /** bash could not be started. */
  launchError: string | null;
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

/** When the warning signal goes out: `seconds` before the limit, but never before the script can have set its traps. */
export function warnDelayS(limitS: number, warnS: number): number {
  return Math.max(limitS - warnS, Math.min(1, limitS / 2));
}

/** Node's longest timer (2^31-1 ms, about 24.8 days); a longer delay fires at once with a TimeoutOverflowWarning. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A timer that may be cleared. */
export interface Timer {
  clear(): void;
}

/** setTimeout for any delay: waits longer than Node's timers allow in steps of at most MAX_TIMER_MS. */
export function setLongTimeout(fn: () => void, ms: number): Timer {
  let handle: NodeJS.Timeout;
  const arm = (left: number): void => {
    const step = Math.min(Math.max(0, left), MAX_TIMER_MS);
    handle = setTimeout(() => (left > MAX_TIMER_MS ? arm(left - MAX_TIMER_MS) : fn()), step);
  };
  arm(ms);
  return { clear: () => clearTimeout(handle) };
}

export class TaskProcess {
  readonly pid: number | undefined;
  readonly done: Promise<TaskOutcome>;
  private timedOut = false;
  private cancelled = false;
  private exited = false;
  private readonly timers: Timer[] = [];

  constructor(private readonly spec: TaskSpec) {
    const fds: number[] = [];
    let child;
    try {
      const out = openSync(spec.stdoutPath, "a", 0o600);
      fds.push(out);
      const err = spec.stderrPath === spec.stdoutPath ? out : openSync(spec.stderrPath, "a", 0o600);
      if (err !== out) fds.push(err);
      // detached: its own process group, so TERM/KILL reach everything the job started.
      child = spawn("bash", [spec.script], { cwd: spec.cwd, env: spec.env, detached: true, stdio: ["ignore", out, err] });
    } finally {
      for (const fd of fds) closeSync(fd);
    }
    this.pid = child.pid;
    this.done = new Promise<TaskOutcome>((resolveDone) => {
      let launchError: string | null = null;
      child.once("error", (e) => {
        launchError = e.message;
        if (child.pid === undefined) this.finish(resolveDone, null, null, launchError);
      });
      child.once("exit", (code, signal) => this.finish(resolveDone, code, signal, launchError));
    });
    if (this.pid !== undefined) this.armTimers();
  }

  private armTimers(): void {
    const pid = this.pid as number;
    const { timeLimitS, warn } = this.spec;
    if (timeLimitS === null) return;
    if (warn !== null) {
      this.timers.push(
        setLongTimeout(() => {
          if (this.exited) return;
          if (warn.batchOnly) {
            try {
              process.kill(pid, warn.signal);
            } catch {
              // already gone
            }
          } else killGroup(pid, warn.signal);
        }, warnDelayS(timeLimitS, warn.seconds) * 1000),
      );
    }
    this.timers.push(
      setLongTimeout(() => {
        if (this.exited || this.cancelled) return;
        this.timedOut = true;
        this.terminate();
      }, timeLimitS * 1000),
    );
  }

  /** TERM to the whole process group, KILL after the kill wait. */
  private terminate(): void {
    const pid = this.pid;
    if (pid === undefined || this.exited) return;
    killGroup(pid, "SIGTERM");
    const t = setLongTimeout(() => {
      if (!this.exited) killGroup(pid, "SIGKILL");
    }, this.spec.killWaitS * 1000);
    this.timers.push(t);
  }

  /** Like scancel: TERM, then KILL after the kill wait. */
  cancel(): void {
    if (this.exited || this.cancelled) return;
    this.cancelled = true;
    this.terminate();
  }

  private finish(
    resolveDone: (o: TaskOutcome) => void,
    code: number | null,
    signal: NodeJS.Signals | null,
    launchError: string | null,
  ): void {
    if (this.exited) return;
    this.exited = true;
    for (const t of this.timers) t.clear();
    // The batch shell is gone: like slurmstepd, kill whatever it left behind in the job.
    if (this.pid !== undefined) killGroup(this.pid, "SIGKILL");
    resolveDone({ exitCode: code, signal, timedOut: this.timedOut, cancelled: this.cancelled, launchError });
  }
}
