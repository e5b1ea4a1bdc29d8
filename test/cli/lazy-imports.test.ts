/**
 * Startup: `submit`, `status`, `run`, `pull` and the other cluster commands never load the report,
 * the mini inspector or the glTF libraries (a loader hook in the real CLI child process lists every
 * module it resolves); `inspect` and `report` load theirs when they run.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCli } from "../support/build-cli.js";
import { writeLoadHook } from "../support/load-hook.js";

const HEAVY = /gltf-transform|gltf-validator|\/src\/report\/|\/mini-inspector\/inspector\.js/;
let dir: string;
let main: string;
let hook: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-lazy-"));
  main = await buildCli(dir);
  hook = writeLoadHook(dir);
}, 300_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function loaded(args: string[]): Promise<string[]> {
  const r = await promisify(execFile)(process.execPath, ["--import", hook, main, ...args], { cwd: dir, env: { ...process.env, HPCPIPE_HOME: path.join(dir, "home") } }).catch((e: { stderr: string }) => e);
  return r.stderr.split("\n").filter((l) => l.startsWith("LOADED ")).map((l) => l.slice(7));
}

describe("lazy imports", () => {
  const commands = [["submit", "--help"], ["status", "--help"], ["run", "--help"], ["pull", "--help"], ["collect", "--help"], ["logs", "--help"], ["--version"]];
  it.each(commands.map((args) => [args.join(" "), args] as const))("%s loads none of the report, the inspector or the glTF libraries", async (_name, args) => {
    const urls = await loaded([...args]);
    expect(urls.length).toBeGreaterThan(20);
    expect(urls.filter((u) => HEAVY.test(u))).toEqual([]);
  });
  it("inspect loads them when it runs (the check above can fail)", async () => {
    const urls = await loaded(["inspect", path.resolve("examples/mini-inspector/models/scene.glb"), "--out", path.join(dir, "r.json")]);
    expect(urls.some((u) => /gltf-transform/.test(u))).toBe(true);
    expect(urls.some((u) => /mini-inspector\/inspector\.js/.test(u))).toBe(true);
  });
});
