/**
 * Shows a watch on a stream, in one of three forms:
 * - a terminal: a frame per step, group and map (bar, counts, throughput,
 *   ETA, latest image), redrawn in place at most 4 times a second and once a
 *   second while nothing arrives (the ETA and elapsed time move on); other
 *   lines for people are printed above it, never through it; the final frame
 *   stays on screen;
 * - a pipe or a file: plain timestamped lines when a row changes, at most one
 *   per row every 5 s, but a failure or a row's end at once;
 * - `--json`: events, one JSON object per line (src/app/progress-events.ts).
 */
import { isAbsolute, relative } from "node:path";
import type { RunExecutor } from "../src/app/executor.js";
import { ProgressTracker } from "../src/app/progress.js";
import type { RowProgress } from "../src/app/progress.js";
import { endEvent, jobEvent, progressEvent, startEvent, stateEvent } from "../src/app/progress-events.js";
import type { WatchStreamEvent } from "../src/app/progress-events.js";
import { plainLine, progressFrame } from "../src/app/progress-view.js";
import type { RunStatus, WatchOptions } from "../src/app/status.js";
import type { StateFile } from "../src/plan/state-file.js";
import { eventsAllowed } from "../src/app/watch-events.js";
import { redrawFrame } from "../src/app/watch-view.js";

/** Fastest redraw of the terminal frame (ms): 4 Hz. */
const FRAME_MS = 250;
/** The frame is redrawn this often while nothing arrives (ms), so that the ETA and elapsed time move on. */
const TICK_MS = 1_000;
/** Plain lines: at most one per row this often (ms), unless it failed or ended. */
const PLAIN_EVERY_MS = 5_000;
/** JSON progress events: at most one this often (ms). */
const JSON_PROGRESS_MS = 1_000;

export interface WatchPrinter {
  /** What to hand to watchRun / waitAndCollect. */
  readonly options: Pick<WatchOptions, "onUpdate" | "onRetry" | "onDebug" | "events" | "onState">;
  /** A line for people while the watch shows (above the frame on a terminal; a `message` event with --json). */
  message(text: string): void;
  /** The watch is over: the final frame (or lines, or the `end` event), with the latest images from `states` when given; timers stop. */
  finish(status: RunStatus | null, aborted: boolean, states?: ReadonlyMap<string, StateFile>): void;
}

export interface PrinterMode {
  json?: boolean;
  /** Default: whether the stream is a terminal. */
  tty?: boolean;
  /** Milliseconds (default Date.now). */
  clock?: () => number;
  /** Where debug lines (HPCPIPE_DEBUG=1) go when they are not part of the view (default stderr). */
  debugSink?: Pick<NodeJS.WriteStream, "write">;
}

/** A local run's directory relative to the current one when it is inside it (shorter image paths); else as recorded. */
function shownRunDir(record: RunExecutor["record"]): string {
  if (record.executor !== "local") return record.remote_dir;
  const rel = relative(process.cwd(), record.remote_dir);
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel) ? rel : record.remote_dir;
}

export function watchPrinter(run: Pick<RunExecutor, "plan" | "record">, stream: NodeJS.WriteStream, mode: PrinterMode = {}): WatchPrinter {
  const clock = mode.clock ?? Date.now;
  const tty = !mode.json && (mode.tty ?? stream.isTTY === true);
  const tracker = new ProgressTracker(run.plan, run.record.jobs, shownRunDir(run.record));
  const startedAt = clock();
  let latest: RunStatus | null = null;
  let finished = false;
  /** The last frame is being drawn: no Ctrl-C hint. */
  let stopping = false;
  let drawn = 0;
  let drawnWidth = 0;
  let lastDraw = -Infinity;
  let pending: NodeJS.Timeout | null = null;
  let ticker: NodeJS.Timeout | null = null;
  // Plain lines: per row, the text last printed, when, and whether it changed since.
  const printed = new Map<string, { key: string; at: number; failed: number; failedItems: number; final: boolean }>();
  // JSON: each job's state last told, and when progress was last told.
  const jobsTold = new Map<string, string>();
  let progressToldAt = -Infinity;
  let progressDirty = false;
  let started = false;

  const iso = (): string => new Date(clock()).toISOString();
  const emit = (event: WatchStreamEvent): void => {
    stream.write(`${JSON.stringify(event)}\n`);
  };

  /** Draws the frame over the previous one, with `above` (lines for people) printed where the old one began. */
  const draw = (above: readonly string[] = []): void => {
    if (pending !== null) clearTimeout(pending);
    pending = null;
    const now = clock();
    const width = stream.columns ?? 100;
    const lines = latest === null ? [] : progressFrame(latest, tracker.rows(now), { width, ...(stream.rows ? { height: stream.rows } : {}), elapsedS: (now - startedAt) / 1000, stopped: stopping });
    // A terminal resized since the last frame may have rewrapped it: how far up it begins is unknown, so the
    // new frame goes below it rather than over what is above it.
    stream.write(redrawFrame(lines, width === drawnWidth ? drawn : 0, above));
    drawn = lines.length;
    drawnWidth = width;
    lastDraw = now;
  };
  const drawSoon = (): void => {
    if (finished || pending !== null) return;
    const wait = lastDraw + FRAME_MS - clock();
    if (wait <= 0) draw();
    else pending = setTimeout(() => draw(), wait);
  };

  const rowKeyText = (r: RowProgress): string => `${r.counts.done}/${r.counts.failed}/${r.counts.running}/${r.counts.pending}/${r.failedItems}/${r.state}/${r.latestImage ?? ""}`;
  const plain = (force: boolean): void => {
    const now = clock();
    for (const row of tracker.rows(now)) {
      const key = rowKeyText(row);
      const before = printed.get(row.key);
      if (before?.key === key) continue;
      const urgent = before === undefined || row.counts.failed > before.failed || row.failedItems > before.failedItems || (row.final && !before.final);
      if (!force && !urgent && now - before.at < PLAIN_EVERY_MS) continue;
      stream.write(`${plainLine(row, now)}\n`);
      printed.set(row.key, { key, at: now, failed: row.counts.failed, failedItems: row.failedItems, final: row.final });
    }
  };

  const progressNow = (force: boolean): void => {
    const now = clock();
    if (!progressDirty || (!force && now - progressToldAt < JSON_PROGRESS_MS)) return;
    emit(progressEvent(tracker.rows(now), iso()));
    progressToldAt = now;
    progressDirty = false;
  };

  const tick = (): void => {
    if (tty) draw();
    else if (mode.json) progressNow(false);
    else plain(false);
  };
  const startTicker = (): void => {
    if (ticker !== null || finished) return;
    ticker = setInterval(tick, TICK_MS);
    ticker.unref();
  };

  const onUpdate = (status: RunStatus): void => {
    if (finished) return;
    latest = status;
    tracker.observe(status, clock());
    startTicker();
    if (mode.json) {
      if (!started) {
        started = true;
        emit(startEvent(status, tracker.rows(clock()), iso()));
      }
      for (const j of status.jobs) {
        const told = `${j.state}\u0000${j.reason ?? ""}\u0000${j.final}`;
        if (jobsTold.get(j.job) === told) continue;
        jobsTold.set(j.job, told);
        emit(jobEvent(j, iso()));
      }
      progressDirty = true;
      progressNow(status.final);
    } else if (tty) {
      if (status.final) draw();
      else drawSoon();
    } else plain(status.final);
  };

  const message = (text: string): void => {
    if (mode.json) {
      emit({ type: "message", at: iso(), text });
      return;
    }
    if (tty && drawn > 0 && !finished) {
      // The line where the frame began, the frame again below it.
      draw(text.split("\n"));
      return;
    }
    stream.write(`${text}\n`);
  };

  // Debug lines for people debugging a watch: above the frame on a terminal, a message event in an event stream on
  // stderr, else on stderr as they always were (scripts and tests read them there).
  const debugSink = mode.debugSink ?? process.stderr;
  const debug = (text: string): void => {
    if (tty || (mode.json && stream === debugSink)) message(text);
    else debugSink.write(`${text}\n`);
  };

  return {
    options: {
      // State-file events from a watcher on the cluster unless HPCPIPE_WATCH=poll; HPCPIPE_DEBUG=1 shows what it does.
      events: eventsAllowed(),
      ...(process.env.HPCPIPE_DEBUG === "1" ? { onDebug: (text: string) => debug(`hpcpipe: debug: ${text}`) } : {}),
      onUpdate,
      onState: (key, state) => {
        if (finished) return;
        const arrival = tracker.state(key, state);
        if (arrival === null) return;
        if (mode.json) {
          emit(stateEvent(arrival, iso()));
          progressDirty = true;
        } else if (tty) drawSoon();
      },
      onRetry: (error) => message(`hpcpipe: this poll failed, retrying at the next one: ${error.message.split("\n")[0] ?? ""}`),
    },
    message,
    finish: (status, aborted, states) => {
      if (finished) return;
      if (states !== undefined) tracker.imagesFrom(states);
      if (status !== null && status !== latest) {
        latest = status;
        tracker.observe(status, clock());
      }
      stopping = true;
      if (tty) draw();
      else if (mode.json) {
        if (latest !== null) {
          progressDirty = true;
          progressNow(true);
          emit(endEvent(latest, aborted, iso()));
        }
      } else plain(true);
      finished = true;
      if (pending !== null) clearTimeout(pending);
      if (ticker !== null) clearInterval(ticker);
      pending = null;
      ticker = null;
    },
  };
}
