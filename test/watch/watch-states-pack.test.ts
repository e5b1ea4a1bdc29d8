// The state watcher (templates/watch-states.sh) under real bash, on pack files (a packed map task's
// states/<map>.items-<first>-<last>.jsonl): one `S <sig> <key>.json <line>` per complete line, parsed by
// src/watch/events.ts unchanged; the key is the line's LAST "key" member; a torn last line is not sent; a
// line over MAX or with control characters is announced without content; a rewritten pack is sent again.
import { spawn } from "node:child_process";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseWatchLine } from "../../src/watch/events.js";
import type { WatchEvent } from "../../src/watch/events.js";

const SCRIPT = readFileSync(join(import.meta.dirname, "..", "..", "templates", "watch-states.sh"), "utf8");

let dir = "";
let child: ChildProcessWithoutNullStreams | undefined;
afterEach(() => {
  child?.stdin.end();
  child?.kill();
  child = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = "";
});

/** A state line as the wrapper writes it: outputs and meta before the key (here a published value named "key"). */
const line = (key: string, extra = ""): string =>
  `{"success":true,"outputs":{"published":{"key":"not.it"},"files":[]},"error":null,"meta":{"item":"x${extra}"},"signature":"s","failure":null,"key":"${key}","slurm":{"task":0},"host":"h","exit_code":0,"attempt":1}`;

function start(states: string, max: number): { lines: string[]; events: () => WatchEvent[] } {
  child = spawn("bash", ["-c", SCRIPT, "hpcpipe-state-watcher", states, "0.05", "0", String(max), "1"]);
  const lines: string[] = [];
  let pending = "";
  child.stdout.on("data", (d: Buffer) => {
    pending += d.toString();
    const parts = pending.split("\n");
    pending = parts.pop() ?? "";
    lines.push(...parts);
  });
  return { lines, events: () => lines.map((l) => parseWatchLine(l)).filter((e): e is WatchEvent => e !== null) };
}

async function until(what: string, check: () => boolean): Promise<void> {
  const end = Date.now() + 20_000;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe("the state watcher on pack files", () => {
  it("sends one state event per complete line, named by the line's key, with the pack's signature", async () => {
    dir = mkdtempSync(join(tmpdir(), "hpcpipe-watch-pack-"));
    const states = join(dir, "run", "states");
    mkdirSync(states, { recursive: true });
    const long = line("m.2.s", "y".repeat(600));
    writeFileSync(join(states, "m.items-0-2.jsonl"), `${line("m.0.s")}\n${line("m.0")}\n${long}\n${line("m.1.s", "\u0001")}\n${line("m.3.s").slice(0, -1)}`);
    writeFileSync(join(states, "p.a.json"), `${line("p.a")}\n`);
    // Slot files of a running task and temp files are never sent.
    mkdirSync(join(states, ".pack-m.items-3-5"));
    writeFileSync(join(states, ".pack-m.items-3-5", "s0.jsonl"), `${line("m.3.s")}\n`);
    writeFileSync(join(states, ".m.items-3-5.jsonl.tmp.1"), `${line("m.4.s")}\n`);
    const w = start(states, 500);
    await until("the first scan", () => w.lines.includes("R scan"));
    expect(w.lines.filter((l) => l.startsWith("S ")).length).toBe(w.events().filter((e) => e.kind === "state").length);
    const sent = w.events().filter((e) => e.kind === "state");
    const packSig = sent.find((e) => e.kind === "state" && e.name === "m.0.s.json")?.signature;
    expect(sent.map((e) => (e.kind === "state" ? [e.name, e.text] : null)).sort()).toEqual(
      [
        ["m.0.s.json", line("m.0.s")],
        ["m.0.json", line("m.0")],
        ["m.2.s.json", null],
        ["m.1.s.json", null],
        ["p.a.json", line("p.a")],
      ].sort(),
    );
    for (const e of sent) if (e.kind === "state" && e.name.startsWith("m.")) expect(e.signature).toBe(packSig);
    expect(Number(packSig?.split(":")[1])).toBe(readFileSync(join(states, "m.items-0-2.jsonl")).length);

    // The task is rerun: its pack is renamed into place again, and every line of it is sent again.
    const before = w.lines.length;
    writeFileSync(join(states, ".m.items-0-2.jsonl.tmp.2"), `${line("m.0.s", "again")}\n`);
    renameSync(join(states, ".m.items-0-2.jsonl.tmp.2"), join(states, "m.items-0-2.jsonl"));
    await until("the rewritten pack", () => w.lines.slice(before).some((l) => l.startsWith("S ")));
    await until("its scan's end", () => w.lines.slice(before).includes("E"));
    const again = w.lines.slice(before).filter((l) => l.startsWith("S "));
    expect(again.map((l) => parseWatchLine(l))).toMatchObject([{ kind: "state", name: "m.0.s.json", text: line("m.0.s", "again") }]);
  });
});
