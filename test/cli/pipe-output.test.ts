// The CLI as a real process writing more than a pipe holds (`hpcpipe ... --json | jq`, a parent
// process reading its stdout): the whole output arrives even when the reader is slower than the
// CLI, and a reader that goes away early (`| head`) is not an error. Before cli/main.ts waited for
// its output to be flushed, process.exit cut it at the pipe's 64 KiB.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCli } from "../support/build-cli.js";

interface Exit {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

let dir: string;
let main: string;
let spec: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-pipe-output-"));
  main = await buildCli(dir);
  // 300 jobs (fuse: false), each with its script in the plan: far more JSON than a pipe holds.
  const steps = Array.from({ length: 300 }, (_, i) => `  - step: s${i}\n    run: "true"`).join("\n");
  spec = path.join(dir, "big.yaml");
  writeFileSync(spec, `name: big\nfuse: false\nsteps:\n${steps}\n`);
}, 300_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Runs the CLI and reads its stdout only once it has exited or `holdMs` passed (a slow reader):
 * a CLI that exits without flushing has exited by then with its output cut.
 */
function slowReader(args: string[], holdMs: number): Promise<Exit> {
  const child = spawn(process.execPath, [main, ...args], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  const chunks: Buffer[] = [];
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const start = new Promise<void>((resolve) => setTimeout(resolve, holdMs));
  void Promise.race([exited, start]).then(() => child.stdout.on("data", (d: Buffer) => chunks.push(d)));
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout: Buffer.concat(chunks), stderr }));
  });
}

describe("the CLI's output to a pipe", () => {
  it("arrives whole when the reader is slower than the CLI", async () => {
    const exit = await slowReader(["plan", spec, "--format", "json"], 3_000);
    expect(exit.code, exit.stderr).toBe(0);
    expect(exit.stdout.length).toBeGreaterThan(256 * 1024);
    const plan = JSON.parse(exit.stdout.toString("utf8")) as { jobs: unknown[] };
    expect(plan.jobs).toHaveLength(300);
  });

  it("a reader that goes away early is no error: no stack trace, the command's own exit status", async () => {
    const child = spawn(process.execPath, [main, "plan", spec, "--format", "json"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdout.once("data", () => child.stdout.destroy()); // like `| head -c 100`
    const code = await new Promise<number | null>((resolve) => child.once("close", (c) => resolve(c)));
    expect(stderr).not.toMatch(/EPIPE|Unhandled/);
    expect(code).toBe(0);
  });
});
