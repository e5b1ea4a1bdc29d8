/**
 * Watching a run by its state files: a watcher on the cluster streams an
 * event for each new state file (src/watch/), finished work is learned from
 * those events, and the run's end is decided from them (every task of every
 * submitted job has its state files) within a fraction of a second. The
 * scheduler is asked only for what files cannot say, on the cadence of
 * src/watch/cadence.ts. When the watcher's channel ends (the connection
 * dropped), the watch falls back to polling and starts a new watcher after
 * the next answered poll. No event line can crash it: a bad line is dropped
 * with a debug message.
 */
import { markTiming } from "../core/timing.js";
import { parseStateText } from "../collect/read-states.js";
import type { StateProblem } from "../collect/read-states.js";
import type { StateFile } from "../plan/state-file.js";
import { carryFinalStates, mapJobStatuses } from "../runs/job-status.js";
import type { JobStatus } from "../runs/job-status.js";
import { PollInterval } from "../slurm/index.js";
import { cadencePolicy, SchedulerCadence } from "../watch/cadence.js";
import type { AnswerFacts } from "../watch/cadence.js";
import type { WatchEvent } from "../watch/events.js";
import type { RemoteWatcher, WatcherEnd } from "../watch/remote-watcher.js";
import { TaskEnds } from "../watch/task-ends.js";
import { controllersDue, hasRetries } from "../runs/retries.js";
import { mergeRun, statesForMerge } from "./collect.js";
import type { RemoteStates } from "./collect.js";
import type { RunExecutor } from "./executor.js";
import { abortableSleep, resultsOf, retryable, snapshot, statusKey } from "./status.js";
import type { RunStatus, WatchOptions, WatchOutcome } from "./status.js";

/**
 * The reason a wait is cut short with. abort() without one builds a DOMException (a stack trace) on
 * every call, even on a signal already aborted: once per state line of a watched run (0.35 s of CPU
 * for 60,000 lines).
 */
const WOKEN = Object.freeze({ name: "Woken", message: "a watch event arrived" });

/** Wakes the wait of `wake`, once. */
function wakeUp(wake: AbortController | null): void {
  if (wake !== null && !wake.signal.aborted) wake.abort(WOKEN);
}

/** Consecutive watchers that ended before their first scan after which the watch stays with polling. */
const WATCHER_GIVE_UP = 3;

interface FileEntry {
  text: string | null;
  parsed: { ok: true; key: string; state: StateFile } | { ok: false; error: string } | null;
}

/** Most state files whose texts a watch keeps for the merge at its end (HPCPIPE_WATCH_KEEP_FILES; default 20,000). */
export function keptFilesMax(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.HPCPIPE_WATCH_KEEP_FILES;
  if (text === undefined || text === "") return 20_000;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new Error(`HPCPIPE_WATCH_KEEP_FILES must be a whole number >= 0 (got '${text}')`);
  return n;
}

/** Whether the environment asks for polling only (HPCPIPE_WATCH=poll). */
export function eventsAllowed(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.HPCPIPE_WATCH !== "poll";
}

/** The state files the events brought, as a collect would have read them; null when one came without content (fetch them). */
function statesFromEvents(files: ReadonlyMap<string, FileEntry>): RemoteStates | null {
  const states = new Map<string, StateFile>();
  const problems: StateProblem[] = [];
  for (const [name, entry] of files) {
    if (entry.parsed === null) return null;
    if (entry.parsed.ok) states.set(entry.parsed.key, entry.parsed.state);
    else problems.push({ file: name, error: entry.parsed.error });
  }
  return { states, problems, files: files.size };
}

/** Failed tasks in a job list, as `job:task` strings. */
function failedTasks(jobs: readonly JobStatus[]): Set<string> {
  const out = new Set<string>();
  for (const j of jobs) for (const t of j.tasks) if (t.phase === "failed") out.add(`${j.job}:${t.taskId}`);
  return out;
}

/** What an answer taught beyond the files, and whether a failure's consequences are still unsettled. */
function judge(run: RunExecutor, before: readonly JobStatus[], after: readonly JobStatus[]): AnswerFacts {
  const known = failedTasks(before);
  const learned = [...failedTasks(after)].some((t) => !known.has(t));
  const failedJobs = new Set(after.filter((j) => j.counts.failed > 0).map((j) => j.job));
  const byId = new Map(after.map((j) => [j.job, j]));
  // A retry controller about to act (what it waits on has ended) is followed up like a failure.
  const unsettled = run.plan.jobs.some((job) => !(byId.get(job.id)?.final ?? true) && job.dependencies.some((d) => failedJobs.has(d.job))) || controllersDue(run.plan, after).length > 0;
  return { learned, unsettled };
}

export async function watchByEvents(run: RunExecutor, options: WatchOptions): Promise<WatchOutcome> {
  const startWatcher = run.watchStates;
  if (startWatcher === undefined) throw new Error("watchByEvents: this executor has no state watcher");
  const now = options.now ?? (() => new Date().toISOString());
  const clock = options.clock ?? Date.now;
  const sleep = options.sleep ?? abortableSleep;
  const debug = options.onDebug ?? (() => undefined);
  let tracker = new TaskEnds(run.plan, run.record.jobs);
  let trackedPlan = run.plan;
  let due = "";
  // A query may have learned retries the controllers submitted (new jobs): the files are laid over them too.
  const retrack = (): void => {
    if (run.plan === trackedPlan) return;
    trackedPlan = run.plan;
    const next = new TaskEnds(run.plan, run.record.jobs);
    next.adopt(tracker);
    tracker = next;
  };
  // The files' texts, for a merge at the end without fetching them again; not kept for a large run (its
  // merge fetches them: holding a million items' files would take gigabytes).
  const files = new Map<string, FileEntry>();
  const keepMax = keptFilesMax();
  let kept = true;
  const queue: WatchEvent[] = [];
  const cadence = new SchedulerCadence(cadencePolicy(options.cadence), clock(), true);
  const polling = new PollInterval(options.policy ?? run.pollPolicy, options.random);
  let wake: AbortController | null = null;
  let watcher: RemoteWatcher | null = null;
  let ended: WatcherEnd | null = null;
  let ready = false;
  let failedStarts = 0;
  let starts = 0;
  let mode: "events" | "polling" = "events";
  let answered: JobStatus[] | null = null;
  let queries = 0;
  let events = 0;
  let lastKey: string | null = null;
  let last: RunStatus | null = null;

  const poke = (): void => wakeUp(wake);
  const start = (): void => {
    starts += 1;
    ready = false;
    ended = null;
    scanning = false;
    let w: RemoteWatcher;
    try {
      w = startWatcher(
        {
          onEvent: (event) => {
            if (watcher !== w) return;
            queue.push(event);
            poke();
          },
          onBad: (preview) => debug(`state watcher: ignored a line that is not valid: ${preview}`),
        },
        options.watcher,
      );
    } catch (error) {
      // No watcher can be started here (its script unreadable, a bad setting): poll for the rest of the watch.
      debug(`state watcher not started: ${(error as Error).message}`);
      failedStarts = WATCHER_GIVE_UP;
      ended = { reason: "failed", error: error as Error };
      return;
    }
    watcher = w;
    void w.ended.then((end) => {
      if (watcher !== w) return;
      ended = end;
      poke();
    });
  };

  /**
   * A scan is in progress: some of its state lines have arrived, not its end ("E", or "R" after the first
   * scan). Its lines are applied as they come (a scan of a million items' files is three million lines: held
   * until its end, they took gigabytes), but the watch does not end on what the files say until the scan
   * has ended: a scan sends names in glob order, so an item's unit file comes before its step's file, and a
   * task ended by the unit file alone would be merged without the step's state.
   */
  let scanning = false;
  const apply = (event: Extract<WatchEvent, { kind: "state" }>): boolean => {
    const entry: FileEntry = { text: event.text, parsed: event.text === null ? null : parseStateText(event.name, event.text) };
    if (kept && files.size >= keepMax && !files.has(event.name)) {
      kept = false;
      files.clear();
      debug(`more than ${keepMax} state files: the merge at the end will fetch them`);
    }
    if (kept) files.set(event.name, entry);
    const key = event.name.slice(0, -".json".length);
    if (entry.parsed !== null && !entry.parsed.ok) debug(`state watcher: ${event.name}: ${entry.parsed.error}`);
    const state = entry.parsed?.ok ? entry.parsed.state : null;
    if (entry.parsed === null || entry.parsed.ok) tracker.apply(key, { state, fresh: ready });
    if (state !== null && (ready || starts === 1)) options.onState?.(key, state);
    return tracker.isFailure(key);
  };

  const take = (event: WatchEvent): boolean => {
    events += 1;
    if (event.kind === "hello") debug(`state watcher started (protocol ${event.protocol}, pid ${event.pid})`);
    else if (event.kind === "mode") debug(`state watcher: woken by ${event.mode === "inotify" ? "inotify and its scan" : "its scan alone"}`);
    else if (event.kind === "state") {
      scanning = true;
      return apply(event);
    } else if (event.kind === "scanned") scanning = false;
    else {
      // The first scan's files are not fresh (they may be an earlier attempt's): applied while not "ready".
      scanning = false;
      ready = true;
      failedStarts = 0;
      markTiming("watcher-ready");
      debug(`state watcher: first scan done (${event.mode})`);
    }
    return false;
  };

  const finish = async (status: RunStatus, changed: boolean): Promise<WatchOutcome> => {
    markTiming("end-detected");
    // The events hold every state file only when the files ended the run (the scheduler may have seen a job end
    // before its last file reached the watcher) and the watcher that sent them is still the live one.
    // With retries, the merge also needs the controllers' records, which only readStates brings.
    const complete = tracker.allEnded() && mode === "events" && ready && !scanning && ended === null && !hasRetries(run.plan);
    // Not awaited: the watcher ends at its stdin's EOF within a tick, and nothing here needs it any more.
    void watcher?.close();
    watcher = null;
    const remote = (complete && kept ? statesFromEvents(files) : null) ?? (await statesForMerge(run));
    const merged = mergeRun(run.plan, remote, status.jobs, status.polled_at, await run.store.resultDir(run.record.run_id));
    const done = { ...status, ...resultsOf(merged, remote) };
    options.onUpdate?.(done, changed);
    debug(`watch ended: ${queries} scheduler quer${queries === 1 ? "y" : "ies"}, ${events} watcher line(s), learning by ${mode}`);
    return { status: done, merged, remote, aborted: false, polls: queries, queries, events, mode };
  };

  start();
  try {
    for (;;) {
      if (options.signal?.aborted) {
        const status = last ?? snapshot(run.record, mapJobStatuses(run.plan, run.record.jobs, new Map()), now());
        return { status, merged: null, remote: null, aborted: true, polls: queries, queries, events, mode };
      }
      let failure = false;
      for (const event of queue.splice(0)) if (take(event)) failure = true;
      if (failure) cadence.failure(clock());
      if (ended !== null && mode === "events") {
        const why: WatcherEnd = ended;
        if (!ready) failedStarts += 1;
        debug(`state watcher ended (${why.reason === "failed" ? why.error.message.split("\n")[0] : why.reason === "exited" ? `exit ${String(why.code ?? why.signal)}${why.stderr ? `: ${why.stderr.trim().slice(0, 200)}` : ""}` : "closed"}); polling until it can be started again`);
        watcher = null;
        mode = "polling";
        // A scan it left unfinished ends no task: the scheduler says, and the merge fetches the files.
        scanning = false;
        polling.reset();
      }

      let changedByQuery = false;
      if (mode === "polling" || clock() >= cadence.dueAt) {
        try {
          queries += 1;
          const before = tracker.overlay(answered ?? mapJobStatuses(run.plan, run.record.jobs, new Map()));
          const answer = carryFinalStates(answered, await run.query(answered));
          const facts = judge(run, before, tracker.overlay(answer));
          answered = answer;
          changedByQuery = true;
          cadence.answered(clock(), facts);
          if (mode === "polling" && failedStarts < WATCHER_GIVE_UP) {
            debug("the connection answers again: starting a new state watcher");
            mode = "events";
            start();
          }
        } catch (error) {
          if (!retryable(error)) throw error;
          options.onRetry?.(error);
          cadence.answered(clock(), { learned: false, unsettled: true });
        }
      }

      retrack();
      const jobs = tracker.overlay(answered ?? mapJobStatuses(run.plan, run.record.jobs, new Map()));
      // A controller whose job has just ended (by its files) is about to act: ask the scheduler soon.
      const dueNow = controllersDue(run.plan, jobs).join(",");
      if (dueNow !== "" && dueNow !== due) cadence.failure(clock());
      due = dueNow;
      const key = statusKey(jobs);
      const changed = key !== lastKey;
      lastKey = key;
      const status = snapshot(run.record, jobs, now());
      // Not in the middle of a scan of the live watcher (see `scanning`).
      if (status.final && !(scanning && mode === "events" && ended === null)) return await finish(status, changed);
      last = status;
      if (changed || changedByQuery) options.onUpdate?.(status, changed);
      if (options.signal?.aborted) return { status, merged: null, remote: null, aborted: true, polls: queries, queries, events, mode };

      if (queue.length > 0 || (ended !== null && mode === "events")) continue;
      const waitMs = mode === "polling" ? polling.next(changed) : Math.max(0, cadence.dueAt - clock());
      wake = new AbortController();
      const stop = (): void => wakeUp(wake);
      options.signal?.addEventListener("abort", stop, { once: true });
      try {
        await sleep(waitMs, wake.signal);
      } finally {
        options.signal?.removeEventListener("abort", stop);
        wake = null;
      }
    }
  } finally {
    const w = watcher as RemoteWatcher | null;
    watcher = null;
    await w?.close();
  }
}
