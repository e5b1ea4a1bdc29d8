/**
 * Runs rendered job scripts with real bash in a throwaway run directory,
 * the way a compute node (or the local executor) would.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import type { ChildProcess } from "node:child_process";
import { stateFileSchema } from "../../src/plan/state-file.js";
import type { StateFile } from "../../src/plan/state-file.js";
import { libScript, renderJobScript } from "../../src/render/render.js";
import type { ClusterRenderSettings, RenderableJob } from "../../src/render/render.js";
import { context, MINIMAL_CLUSTER } from "./fixtures.js";

export interface Run {
  /** Everything a test creates lives here: run dir, HOME, TMPDIR, the cwd of the job. */
  sandbox: string;
  runDir: string;
  home: string;
}

export function makeRun(
  options: { runDirName?: string; context?: Record<string, string>; items?: Record<string, string[]> } = {},
): Run {
  const sandbox = mkdtempSync(join(tmpdir(), "hpcpipe-render-"));
  const runDir = join(sandbox, options.runDirName ?? "run");
  const home = join(sandbox, "home");
  for (const d of [runDir, join(runDir, "scripts"), join(runDir, "items"), home, join(sandbox, "tmp"), join(sandbox, "cwd")]) {
    mkdirSync(d, { recursive: true });
  }
  writeFileSync(join(runDir, "scripts", "lib.sh"), libScript());
  const records = Object.entries(options.context ?? {}).map(([k, v]) => `${k}=${v}\0`);
  writeFileSync(join(runDir, "context.env0"), records.join(""));
  for (const [key, lines] of Object.entries(options.items ?? {})) {
    writeFileSync(join(runDir, "items", `${key}.txt`), lines.map((l) => `${l}\n`).join(""));
  }
  return { sandbox, runDir, home };
}

export function removeRun(run: Run): void {
  rmSync(run.sandbox, { recursive: true, force: true });
}

export const shellcheckAvailable = spawnSync("shellcheck", ["--version"]).status === 0;

/** `bash -n` and, when installed, `shellcheck -s bash`; returns the problems found. */
export function lintScript(text: string): string[] {
  const problems: string[] = [];
  const syntax = spawnSync("bash", ["-n"], { input: text, encoding: "utf8" });
  if (syntax.status !== 0) problems.push(`bash -n: ${syntax.stderr}`);
  if (shellcheckAvailable) {
    const sc = spawnSync("shellcheck", ["-s", "bash", "-"], { input: text, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
    if (sc.status !== 0) problems.push(`shellcheck: ${sc.stdout}${sc.stderr}`);
  }
  return problems;
}

/** Renders a job into the run directory (after checking the script with bash -n and shellcheck); returns the script path. */
export function writeJob(run: Run, job: RenderableJob, cluster: ClusterRenderSettings = MINIMAL_CLUSTER): string {
  const text = renderJobScript(job, context(run.runDir, cluster));
  const problems = lintScript(text);
  if (problems.length > 0) throw new Error(`rendered script of ${job.id} does not pass the checks:\n${problems.join("\n")}`);
  const path = join(run.runDir, job.scriptPath);
  writeFileSync(path, text);
  return path;
}

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function startScript(
  run: Run,
  script: string,
  env: Record<string, string> = {},
  options: { detached?: boolean } = {},
): { child: ChildProcess; done: Promise<Result> } {
  const child = spawn("bash", [script], {
    // detached: the job gets its own process group, so a test can signal all of it as SLURM does.
    detached: options.detached ?? false,
    cwd: join(run.sandbox, "cwd"),
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: run.home,
      TMPDIR: join(run.sandbox, "tmp"),
      LANG: "C.UTF-8",
      SLURM_JOB_ID: "4242",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Result>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

export function runScript(run: Run, script: string, env: Record<string, string> = {}): Promise<Result> {
  return startScript(run, script, env).done;
}

/** An array task as SLURM would start it. */
export function arrayEnv(taskId: number): Record<string, string> {
  return { SLURM_ARRAY_JOB_ID: "4200", SLURM_ARRAY_TASK_ID: String(taskId), SLURM_JOB_ID: String(4300 + taskId) };
}

/** The pack files (states/<map>.items-<first>-<last>.jsonl) under states/, sorted. */
export function packFiles(run: Run): string[] {
  return readdirSync(join(run.runDir, "states"))
    .filter((n) => n.endsWith(".jsonl") && !n.startsWith("."))
    .sort();
}

/** The complete lines (a last line without its newline is torn: left out) of a state pack file. */
export function packFileLines(path: string): string[] {
  const text = readFileSync(path, "utf8");
  const lines = text.split("\n");
  lines.pop();
  return lines;
}

/** The state line of every key in the pack files (the last line of a key wins), as the readers take them. */
export function packLines(run: Run): Map<string, { file: string; line: string }> {
  const out = new Map<string, { file: string; line: string }>();
  for (const file of packFiles(run)) {
    for (const line of packFileLines(join(run.runDir, "states", file))) {
      const key = stateFileSchema.parse(JSON.parse(line)).key;
      out.set(key, { file, line });
    }
  }
  return out;
}

/** Reads and validates a key's state: its line in a pack file if there is one, else states/<key>.json (whose key must match its name). */
export function readState(run: Run, key: string): StateFile {
  const packed = packLines(run).get(key);
  if (packed !== undefined) return stateFileSchema.parse(JSON.parse(packed.line));
  const raw = readFileSync(join(run.runDir, "states", `${key}.json`), "utf8");
  const state = stateFileSchema.parse(JSON.parse(raw));
  if (state.key !== key) throw new Error(`state file ${key}.json has key ${state.key}`);
  return state;
}

/** The text that holds a key's state: its pack line, else states/<key>.json. */
export function stateText(run: Run, key: string): string {
  return packLines(run).get(key)?.line ?? readFileSync(join(run.runDir, "states", `${key}.json`), "utf8");
}

export function stateExists(run: Run, key: string): boolean {
  return packLines(run).has(key) || existsSync(join(run.runDir, "states", `${key}.json`));
}

/** The per-key state files (states/<key>.json) there are, by key, sorted. */
export function perKeyStates(run: Run): string[] {
  return readdirSync(join(run.runDir, "states"))
    .filter((n) => n.endsWith(".json") && !n.startsWith("."))
    .map((n) => n.slice(0, -".json".length))
    .sort();
}

/**
 * A step's stdout or stderr: the section after its last marker line (`\n\x1ehpcpipe KEY\n`) in the slot
 * log its state's meta.log names, up to the next marker; logs/<key>.out|.err when its state has no meta.log.
 */
export function readStepLog(run: Run, key: string, stream: "out" | "err"): string {
  const log = (readState(run, key).meta as { log?: unknown } | undefined)?.log;
  if (typeof log !== "string") return readFileSync(join(run.runDir, "logs", `${key}.${stream}`), "utf8");
  const text = readFileSync(join(run.runDir, `${log}.${stream}`), "utf8");
  const marker = `\n\x1ehpcpipe ${key}\n`;
  const at = text.lastIndexOf(marker);
  if (at < 0) throw new Error(`${log}.${stream} has no section for ${key}`);
  const start = at + marker.length;
  const end = text.indexOf("\n\x1e", start);
  return text.slice(start, end < 0 ? undefined : end);
}

export function readOut(run: Run, name: string): string {
  return readFileSync(join(run.runDir, "out", name), "utf8");
}

/** Every file and directory under dir, relative to it, sorted. */
export function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      out.push(relative(dir, p));
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

/** Every state (per-key file or pack line) under states/ validates and no temp file or slot directory is left behind. */
export function allStates(run: Run): { keys: string[]; leftovers: string[] } {
  const names = readdirSync(join(run.runDir, "states"));
  const keys = new Set(perKeyStates(run));
  for (const k of packLines(run).keys()) keys.add(k);
  for (const k of keys) readState(run, k);
  return { keys: [...keys].sort(), leftovers: names.filter((n) => n.startsWith(".")) };
}

export async function waitFor(predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > timeoutMs) throw new Error("timed out waiting for a condition");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Whether a process still runs (a zombie waiting to be reaped by init does not count). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z/s.test(stat);
  } catch {
    return true;
  }
}
