/**
 * The state watcher (templates/watch-states.sh) for a run on this machine:
 * the same script, run with bash as a child process whose stdin stays open
 * for as long as the watch lasts. Closing the handle ends stdin; the script
 * exits at that EOF (and when this process dies, its stdin closes the same way).
 */
import { spawn } from "node:child_process";
import { WatchLineSplitter } from "./events.js";
import type { WatchEvent } from "./events.js";
import { inotifyAllowed, watcherArgv } from "./remote-watcher.js";
import type { RemoteWatcher, RemoteWatcherOptions, WatcherEnd } from "./remote-watcher.js";

/** The most of the watcher's stderr kept for the reason it ended. */
const STDERR_KEPT = 4096;

export function startLocalWatcher(
  statesDir: string,
  handlers: { onEvent: (event: WatchEvent) => void; onBad: (preview: string) => void },
  options: RemoteWatcherOptions = {},
): RemoteWatcher {
  const argv = watcherArgv(statesDir, { ...options, inotify: options.inotify ?? inotifyAllowed() }).map((word) => (typeof word === "string" ? word : word.path));
  const [command = "bash", ...args] = argv;
  const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
  const splitter = new WatchLineSplitter(handlers.onEvent, handlers.onBad);
  let stderr = "";
  let closing = false;
  child.stdout.on("data", (chunk: Buffer) => splitter.write(chunk));
  child.stderr.on("data", (chunk: Buffer) => {
    if (stderr.length < STDERR_KEPT) stderr += chunk.toString("utf8").slice(0, STDERR_KEPT - stderr.length);
  });
  // A watcher that already exited makes writing its stdin fail: that is its end, told by "close".
  child.stdin.on("error", () => undefined);
  const ended = new Promise<WatcherEnd>((resolve) => {
    child.once("error", (error) => resolve(closing ? { reason: "closed" } : { reason: "failed", error }));
    child.once("close", (code, signal) => resolve(closing && (code === 0 || signal !== null) ? { reason: "closed" } : { reason: "exited", code, signal, stderr }));
  });
  return {
    ended,
    close: async (graceMs = 2_000) => {
      if (!closing) {
        closing = true;
        child.stdin.end();
      }
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          child.kill("SIGKILL");
          resolve();
        }, graceMs);
      });
      await Promise.race([ended, late]);
      clearTimeout(timer);
      await ended;
    },
  };
}
