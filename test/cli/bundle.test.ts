/**
 * The CLI as `npm run build` makes it: bundled into main.js and chunks/ (scripts/bundle-cli.mjs), so that
 * starting it reads a handful of files instead of hundreds. The bundle must still start the programs
 * that run as processes of their own (the detached local supervisor here; the connection holder in
 * test/e2e/otp-holder.test.ts), and keep the report and the inspector out of the commands that do not
 * use them.
 */
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCli } from "../support/build-cli.js";
import { writeLoadHook } from "../support/load-hook.js";

const run = promisify(execFile);
let dir: string;
let main: string;
let hook: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-bundle-"));
  main = await buildCli(dir, { bundle: true });
  hook = writeLoadHook(dir);
}, 300_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const env = (): NodeJS.ProcessEnv => ({ ...process.env, HPCPIPE_HOME: path.join(dir, "home") });

async function loaded(args: string[]): Promise<string[]> {
  const r = await run(process.execPath, ["--import", hook, main, ...args], { cwd: dir, env: env() }).catch((e: { stderr: string }) => e);
  return [...new Set(r.stderr.split("\n").filter((l) => l.startsWith("LOADED file:")).map((l) => l.slice(7)))];
}

describe("the bundled CLI", () => {
  it("is one executable main.js with its chunks", () => {
    expect(readFileSync(main, "utf8").split("\n", 1)[0]).toBe("#!/usr/bin/env node");
    expect(readdirSync(path.join(path.dirname(main), "chunks")).some((f) => f.endsWith(".js"))).toBe(true);
  });

  it("submit loads a handful of the package's files, none of the report or the inspector", async () => {
    const ours = (await loaded(["submit", "--help"])).filter((u) => !u.includes("/node_modules/"));
    expect(ours.every((u) => u.includes("/pkg/cli/"))).toBe(true);
    expect(ours.length).toBeLessThan(12);
    expect(ours.filter((u) => /chunks\/(report|inspector)-/.test(u))).toEqual([]);
  });

  it("inspect loads the inspector's chunk when it runs (the check above can fail)", async () => {
    const urls = await loaded(["inspect", path.resolve("examples/mini-inspector/models/scene.glb"), "--out", path.join(dir, "r.json")]);
    expect(urls.some((u) => /chunks\/inspector-/.test(u))).toBe(true);
  });

  it("starts a detached local supervisor that runs the pipeline to the end", async () => {
    const work = path.join(dir, "work");
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    writeFileSync(path.join(work, "hello.yaml"), "name: hello\nsteps:\n  - step: greet\n    run: echo hi > out.txt\n    outputs: [out.txt]\n");
    const submitted = await run(process.execPath, [main, "submit", "hello.yaml", "--cluster", "local", "--json"], { cwd: work, env: env() });
    const runId = (JSON.parse(submitted.stdout) as { run_id: string }).run_id;
    let phase = "";
    for (let i = 0; i < 300 && phase !== "collected"; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const status = await run(process.execPath, [main, "runs", "--json"], { cwd: work, env: env() });
      phase = ((JSON.parse(status.stdout) as { run_id: string; phase: string }[]).find((r) => r.run_id === runId)?.phase ?? "");
    }
    expect(phase).toBe("collected");
    const runDirs = readdirSync(path.join(work, ".hpcpipe", "runs", "hello"));
    expect(runDirs).toHaveLength(1);
    expect(readFileSync(path.join(work, ".hpcpipe", "runs", "hello", runDirs[0]!, "work", "out.txt"), "utf8")).toBe("hi\n");
  }, 60_000);
});

