// The state watcher's line protocol (src/watch/events.ts): every line validated with zod, bad lines
// dropped and reported, never thrown; a byte stream split into lines however it is chunked.
import { describe, expect, it } from "vitest";
import { MAX_LINE_BYTES, parseWatchLine, WatchLineSplitter } from "../../src/watch/events.js";
import type { WatchEvent } from "../../src/watch/events.js";

const SIG = "1548692:27:1796620107:1796620108";

describe("parseWatchLine", () => {
  it("reads a state line with its content, keeping the JSON's spaces", () => {
    expect(parseWatchLine(`S ${SIG} p.prep.json {"success": true, "key": "p.prep"}`)).toEqual({
      kind: "state",
      name: "p.prep.json",
      signature: SIG,
      size: 27,
      text: '{"success": true, "key": "p.prep"}',
    });
  });

  it("reads a state line without content ('-': too big or not text) as text null", () => {
    expect(parseWatchLine(`S ${SIG} p.renders.3.json -`)).toMatchObject({ kind: "state", name: "p.renders.3.json", text: null });
  });

  it("reads the hello, mode and ready lines", () => {
    expect(parseWatchLine("H 1 4242")).toEqual({ kind: "hello", protocol: 1, pid: 4242 });
    expect(parseWatchLine("M inotify")).toEqual({ kind: "mode", mode: "inotify" });
    expect(parseWatchLine("R scan")).toEqual({ kind: "ready", mode: "scan" });
  });

  it.each([
    ["an empty line", ""],
    ["an unknown tag", "X 1 2"],
    ["a state line without content", `S ${SIG} p.prep.json`],
    ["a state line with empty content", `S ${SIG} p.prep.json `],
    ["a bad signature", "S 12:ab:3:4 p.prep.json {}"],
    ["a name that is not a state file", `S ${SIG} ../etc/passwd.json {}`],
    ["a dot file (a temp file of the atomic write)", `S ${SIG} .p.prep.json.tmp.77 {}`],
    ["a name without .json", `S ${SIG} p.prep {}`],
    ["a hello without a pid", "H 1"],
    ["a hello with words after it", "H 1 2 3"],
    ["an unknown mode", "M fanotify"],
    ["a ready line with a trailing space", "R scan "],
    ["lower-case tags", "s 1:2:3:4 a.json {}"],
  ])("refuses %s", (_what, line) => {
    expect(parseWatchLine(line)).toBeNull();
  });
});

describe("WatchLineSplitter", () => {
  function collect(chunks: Array<string | Buffer>): { events: WatchEvent[]; bad: string[] } {
    const events: WatchEvent[] = [];
    const bad: string[] = [];
    const splitter = new WatchLineSplitter((e) => events.push(e), (b) => bad.push(b));
    for (const c of chunks) splitter.write(Buffer.isBuffer(c) ? c : Buffer.from(c));
    return { events, bad };
  }

  it("gives the same events however the stream is cut, a line split across chunks included", () => {
    const text = `H 1 7\nS ${SIG} a.json {"k":"ü"}\nR scan\n`;
    const whole = collect([text]);
    const bytes = Buffer.from(text);
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(collect([bytes.subarray(0, cut), bytes.subarray(cut)])).toEqual(whole);
    }
    expect(whole.events.map((e) => e.kind)).toEqual(["hello", "state", "ready"]);
    expect(whole.bad).toEqual([]);
  });

  it("drops a malformed line and reports it, and goes on with the next", () => {
    const { events, bad } = collect(["garbage here\n", "M scan\n", "S 1 2\n"]);
    expect(events).toEqual([{ kind: "mode", mode: "scan" }]);
    expect(bad).toEqual(['"garbage here"', '"S 1 2"']);
  });

  it("keeps an unfinished last line until its newline comes", () => {
    const { events } = collect(["R sc"]);
    expect(events).toEqual([]);
  });

  it("skips a line longer than the cap without holding it, then reads the next", () => {
    const huge = "S ".padEnd(MAX_LINE_BYTES + 10, "x");
    const { events, bad } = collect([huge.slice(0, 1000), huge.slice(1000), "\nR scan\n"]);
    expect(bad).toEqual([`a line longer than ${MAX_LINE_BYTES} bytes`]);
    expect(events).toEqual([{ kind: "ready", mode: "scan" }]);
  });

  it("never throws on random bytes", () => {
    let seed = 7;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const chunks = Array.from({ length: 200 }, () => Buffer.from(Array.from({ length: 64 }, () => Math.floor(random() * 256))));
    expect(() => collect(chunks)).not.toThrow();
  });
});
