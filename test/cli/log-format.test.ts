/**
 * Logs for people on a terminal, JSON when piped or asked for: `inspect`
 * and `run -v`, never a mix of JSON lines and plain lines on one stream.
 * "A terminal" is stderr's isTTY, set here as a terminal sets it.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { formatLogLine } from "../../src/core/logger.js";
import { cli } from "./helpers.js";

let dir: string;
let wasTTY: boolean | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "hpcpipe-logs-"));
  wasTTY = process.stderr.isTTY;
});
afterEach(async () => {
  process.stderr.isTTY = wasTTY as boolean;
  await rm(dir, { recursive: true, force: true });
});

const lines = (text: string): string[] => text.split("\n").filter((l) => l !== "");
const isJson = (line: string): boolean => {
  try {
    return typeof JSON.parse(line) === "object";
  } catch {
    return false;
  }
};
const MODEL = "examples/mini-inspector/models/cube.glb";

describe("inspect", () => {
  test("piped (stderr not a terminal): every log line is JSON", async () => {
    process.stderr.isTTY = false;
    const result = await cli("inspect", MODEL, "--out", join(dir, "r.json"));
    expect(result.code).toBe(0);
    expect(lines(result.stderr).length).toBeGreaterThan(5);
    expect(lines(result.stderr).every(isJson)).toBe(true);
  });

  test("on a terminal: compact lines for people, no JSON; --log-format json asks for JSON there", async () => {
    process.stderr.isTTY = true;
    const result = await cli("inspect", MODEL, "--out", join(dir, "r.json"));
    expect(result.code).toBe(0);
    const human = lines(result.stderr);
    expect(human.length).toBeGreaterThan(5);
    expect(human.some(isJson)).toBe(false);
    expect(human.some((l) => /^\d\d:\d\d:\d\d\.\d{3} INFO +step succeeded .*step=mini_inspector_e2e\.scene_prep\.import_model duration_s=/.test(l))).toBe(true);
    const asked = await cli("inspect", MODEL, "--out", join(dir, "r2.json"), "--log-format", "json");
    expect(lines(asked.stderr).every(isJson)).toBe(true);
  });
});

describe("run -v", () => {
  async function failing(): Promise<string> {
    const spec = join(dir, "v.yaml");
    await writeFile(spec, ["name: v", "steps:", "  - step: a", "    run: echo oops >&2; exit 3", ""].join("\n"));
    return spec;
  }

  test("piped: JSON lines only (executor events, the failure with its stderr, the run directory)", async () => {
    process.stderr.isTTY = false;
    const result = await cli("run", await failing(), "--runs-dir", join(dir, "runs"), "-v");
    expect(result.code).toBe(4);
    const all = lines(result.stderr);
    expect(all.filter((l) => !isJson(l))).toEqual([]);
    const records = all.map((l) => JSON.parse(l) as { msg: string; step?: string; stderr_tail?: string[]; run_dir?: string });
    expect(records.some((r) => r.msg === "job started")).toBe(true);
    expect(records.find((r) => r.msg === "step failed")).toMatchObject({ step: "v.a", stderr_tail: ["oops"] });
    expect(records.some((r) => r.msg === "run directory" && typeof r.run_dir === "string")).toBe(true);
  });

  test("on a terminal: lines for people only", async () => {
    process.stderr.isTTY = true;
    const result = await cli("run", await failing(), "--runs-dir", join(dir, "runs"), "-v");
    expect(result.code).toBe(4);
    const all = lines(result.stderr);
    expect(all.some(isJson)).toBe(false);
    expect(all.some((l) => / INFO +job started /.test(l))).toBe(true);
    expect(result.stderr).toContain("v.a failed");
  });
});

describe("the compact log line", () => {
  test("shows time, level, message and fields; escapes control characters; leaves out pino's own fields", () => {
    const line = formatLogLine(
      JSON.stringify({ level: 40, time: Date.UTC(2026, 0, 2, 3, 4, 5, 678), name: "pipeline", pid: 1, hostname: "h", msg: "unusable\x1b[2J state", file: "states/a b.json", n: 3, ok: true, obj: { a: 1 } }),
    );
    expect(line).toMatch(/^\d\d:\d\d:\d\d\.678 WARN {2}unusable\\u001b\[2J state {2}file="states\/a b\.json" n=3 ok=true obj=\{"a":1\}\n$/);
    expect(formatLogLine("not json\n")).toBe("not json\n");
    expect(formatLogLine(JSON.stringify({ level: 30, time: 0, msg: "m", duration_s: 0.0018295470000000479, big: 12.34567 }))).toMatch(/ INFO {2}m {2}duration_s=0\.002 big=12\.346\n$/);
  });
});
