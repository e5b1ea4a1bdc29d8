/**
 * Starts the state watcher (templates/watch-states.sh) on the cluster over
 * the transport's open connection: ONE exec channel whose stdin stays open
 * for as long as the client watches. Closing the handle ends stdin; the
 * watcher exits at that EOF (and if the client dies, the channel closes and
 * it exits the same way).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { RemotePath } from "../transport/quote.js";
import type { Transport } from "../transport/transport.js";
import { packageRoot } from "../version.js";
import { WatchLineSplitter } from "./events.js";
import type { WatchEvent } from "./events.js";

/** A word on the watcher's command line (`ps` finds it). */
export const WATCHER_NAME = "hpcpipe-state-watcher";

export interface RemoteWatcherOptions {
  /** Seconds between scans (default 0.25). */
  tickS?: number;
  /** Let inotifywait wake a scan early when the cluster has it (default true; HPCPIPE_WATCH_INOTIFY=0 turns it off). */
  inotify?: boolean;
  /** Largest state file sent inline (default 64 KiB); bigger ones are fetched at the end. */
  maxInlineBytes?: number;
  /** Scan every file every N ticks even when the directory looks unchanged (default 8). */
  fullEvery?: number;
}

/** How a watcher's channel ended. */
export type WatcherEnd =
  | { reason: "closed" }
  | { reason: "exited"; code: number | null; signal: string | null; stderr: string }
  | { reason: "failed"; error: Error };

export interface RemoteWatcher {
  /** Settles (never rejects) when the channel has ended. */
  readonly ended: Promise<WatcherEnd>;
  /** Ends the watcher (stdin EOF), then waits for its channel, killing it after `graceMs`. */
  close(graceMs?: number): Promise<void>;
}

let scriptText: string | undefined;

/** The watcher's bash text (read once). */
export function watcherScript(): string {
  scriptText ??= readFileSync(join(packageRoot(), "templates", "watch-states.sh"), "utf8");
  return scriptText;
}

/** The argv that runs the watcher on `statesDir`: the script text and every value as separate words. */
export function watcherArgv(statesDir: string, options: RemoteWatcherOptions = {}): Array<string | RemotePath> {
  const tick = options.tickS ?? 0.25;
  if (!(tick > 0 && tick <= 60)) throw new RangeError(`watcher tick must be in (0, 60] s (got ${tick})`);
  const max = options.maxInlineBytes ?? 64 * 1024;
  const full = options.fullEvery ?? 8;
  return ["bash", "-c", watcherScript(), WATCHER_NAME, RemotePath.of(statesDir), tick.toFixed(3), options.inotify === false ? "0" : "1", String(Math.floor(max)), String(Math.floor(full))];
}

/** Whether the environment turns inotify off (HPCPIPE_WATCH_INOTIFY=0). */
export function inotifyAllowed(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.HPCPIPE_WATCH_INOTIFY !== "0";
}

/** Runs the watcher on the run's `states/` under `remoteDir`, handing every valid line to `onEvent` and every bad one to `onBad`. */
export function startRemoteWatcher(
  transport: Transport,
  remoteDir: string,
  handlers: { onEvent: (event: WatchEvent) => void; onBad: (preview: string) => void },
  options: RemoteWatcherOptions = {},
): RemoteWatcher {
  const stdin = new PassThrough();
  const abort = new AbortController();
  let closing = false;
  const argv = watcherArgv(`${remoteDir.replace(/\/+$/, "")}/states`, { ...options, inotify: options.inotify ?? inotifyAllowed() });
  const ended: Promise<WatcherEnd> = transport
    .exec(argv, {
      stdin,
      signal: abort.signal,
      retrySafe: false,
      maxOutputBytes: 256 * 1024,
      stdoutSink: () => new WatchLineSplitter(handlers.onEvent, handlers.onBad),
    })
    .then(
      (result): WatcherEnd => (closing && result.code === 0 ? { reason: "closed" } : { reason: "exited", code: result.code, signal: result.signal, stderr: result.stderr }),
      (error: unknown): WatcherEnd => (closing ? { reason: "closed" } : { reason: "failed", error: error instanceof Error ? error : new Error(String(error)) }),
    );
  return {
    ended,
    close: async (graceMs = 2_000) => {
      if (!closing) {
        closing = true;
        stdin.end();
      }
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          abort.abort();
          resolve();
        }, graceMs);
      });
      await Promise.race([ended, late]);
      clearTimeout(timer);
      await ended;
    },
  };
}
