/**
 * State files for the progress display while a watch polls (a local run,
 * whose end comes from its supervisor's job table): the executor's state
 * watcher, with every valid state handed on and nothing decided from it.
 */
import { parseStateText } from "../collect/read-states.js";
import type { StateFile } from "../plan/state-file.js";
import type { RemoteWatcherOptions } from "../watch/remote-watcher.js";
import type { RunExecutor } from "./executor.js";

export interface StateFeed {
  close(): Promise<void>;
}

/** Starts the feed, or returns null when the executor has no watcher (or it cannot start: the display goes without). */
export function startStateFeed(run: RunExecutor, onState: (key: string, state: StateFile) => void, debug: (message: string) => void, options?: RemoteWatcherOptions): StateFeed | null {
  if (run.watchStates === undefined) return null;
  try {
    const watcher = run.watchStates(
      {
        onEvent: (event) => {
          if (event.kind !== "state" || event.text === null) return;
          const parsed = parseStateText(event.name, event.text);
          if (parsed.ok) onState(parsed.key, parsed.state);
          else debug(`state feed: ${event.name}: ${parsed.error}`);
        },
        onBad: (preview) => debug(`state feed: ignored a line that is not valid: ${preview}`),
      },
      options,
    );
    void watcher.ended.then((end) => {
      if (end.reason !== "closed") debug(`state feed ended (${end.reason === "failed" ? end.error.message : `exit ${String(end.code ?? end.signal)}`}); the display goes on without durations`);
    });
    return { close: () => watcher.close() };
  } catch (error) {
    debug(`state feed not started: ${(error as Error).message}`);
    return null;
  }
}
