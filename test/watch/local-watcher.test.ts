// The state watcher run on this machine for a local run (src/watch/local-watcher.ts): the real
// templates/watch-states.sh under real bash, on a states directory that does not exist yet; a state
// file written (temp + rename, as the job wrapper does) arrives with its content; closing the handle
// ends the script (stdin EOF), and no process of it is left.
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { WatchEvent } from "../../src/watch/events.js";
import { startLocalWatcher } from "../../src/watch/local-watcher.js";

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("the local state watcher", () => {
  it("streams a state file written after it started, with its content, and ends when closed", async () => {
    dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-local-watcher-"));
    const states = path.join(dir, "states");
    const events: WatchEvent[] = [];
    const bad: string[] = [];
    const watcher = startLocalWatcher(states, { onEvent: (e) => events.push(e), onBad: (p) => bad.push(p) }, { tickS: 0.05, inotify: false });
    await until("its hello and first scan", () => events.some((e) => e.kind === "ready"));
    const hello = events.find((e) => e.kind === "hello");
    const pid = hello?.kind === "hello" ? hello.pid : 0;
    expect(alive(pid)).toBe(true);
    mkdirSync(states);
    const text = JSON.stringify({ success: true, key: "p.a", duration_s: 1 });
    writeFileSync(path.join(states, ".p.a.json.tmp.1"), text);
    renameSync(path.join(states, ".p.a.json.tmp.1"), path.join(states, "p.a.json"));
    await until("the state event", () => events.some((e) => e.kind === "state"));
    expect(events.find((e) => e.kind === "state")).toMatchObject({ kind: "state", name: "p.a.json", text });
    await watcher.close();
    expect(await watcher.ended).toEqual({ reason: "closed" });
    expect(alive(pid)).toBe(false);
    expect(bad).toEqual([]);
  });
});
