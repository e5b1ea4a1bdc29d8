/**
 * Runs a CommandStep in this process with the environment contract of the
 * cluster job wrapper (docs/runtime-contract.md): context values as
 * environment variables (never spliced into the command text), a file to
 * publish values for later steps, declared outputs checked after the run.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { CompletedState } from "../core/completed-state.js";
import type { Context, RunOptions } from "../core/step.js";
import type { CommandStep } from "./command-step.js";
import { contextKeyProblem } from "./context-keys.js";
import { itemScopeOf } from "./item-scope.js";
import { itemOutputPath } from "./output-patterns.js";
import { prepareBatch, readReport } from "./batch-in-process.js";
import { preview } from "../core/preview.js";

/** How much of each of stdout and stderr is kept (the end of it). */
export const OUTPUT_TAIL_BYTES = 64 * 1024;
/** Largest publish file read; a step that writes more fails. */
export const PUBLISH_MAX_BYTES = 128 * 1024; // the same cap as the cluster wrapper (templates/lib.sh)
/** After an abort, how long the process group has between SIGTERM and SIGKILL. */
export const KILL_GRACE_MS = 5_000;
/** After bash exits, how long to wait for its pipes to close (a background child may hold them). */
const PIPE_CLOSE_GRACE_MS = 500;

/** Keeps the last `limit` bytes written to it. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  total = 0;
  constructor(private readonly limit = OUTPUT_TAIL_BYTES) {}

  push(chunk: Buffer): void {
    this.total += chunk.length;
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.chunks.length > 1 && this.size - (this.chunks[0]?.length ?? 0) >= this.limit) {
      this.size -= this.chunks.shift()?.length ?? 0;
    }
  }

  text(): string {
    const all = Buffer.concat(this.chunks);
    return (all.length > this.limit ? all.subarray(all.length - this.limit) : all).toString("utf8");
  }
}

/** The environment a command sees: ours, then context values, the step's env, then the HPCPIPE_* contract. */
export function commandEnvironment(
  step: CommandStep,
  context: Context,
  extra: { key: string; publishFile: string; outDir: string; task: number; item?: string | undefined },
): { env: Record<string, string>; problems: string[] } {
  const env: Record<string, string> = {};
  const problems: string[] = [];
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  for (const [k, v] of Object.entries(context)) {
    if (contextKeyProblem(k) !== null) continue;
    if (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean") continue;
    const text = String(v);
    if (text.includes("\0")) {
      // Only a problem for keys this step needs; other values are simply not exported.
      if (step.requires.includes(k)) problems.push(`context value '${k}' contains a NUL byte, which no environment variable can hold`);
      continue;
    }
    env[k] = text;
  }
  Object.assign(env, step.env);
  env.HPCPIPE_STEP = extra.key;
  env.HPCPIPE_PUBLISH = extra.publishFile;
  env.HPCPIPE_OUT_DIR = extra.outDir;
  env.HPCPIPE_TASK = String(extra.task);
  env.HPCPIPE_ATTEMPT = "1";
  if (extra.item !== undefined) env.HPCPIPE_ITEM = extra.item;
  else delete env.HPCPIPE_ITEM;
  return { env, problems };
}

/** Parses `key=value` lines; the last line for a key wins; blank lines are ignored. */
export function parsePublished(text: string): { values: Record<string, string>; problems: string[] } {
  const values: Record<string, string> = {};
  const problems: string[] = [];
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    const eq = line.indexOf("=");
    if (eq < 0) {
      problems.push(`line ${i + 1} is not key=value: ${preview(line, 80)}`);
      return;
    }
    const key = line.slice(0, eq);
    const problem = contextKeyProblem(key);
    if (problem !== null) {
      problems.push(`line ${i + 1}: ${problem}`);
      return;
    }
    values[key] = line.slice(eq + 1);
  });
  return { values, problems };
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  spawnError?: Error;
}

/** Spawns `bash -c <command>` in its own process group and waits for it; abort kills the group. */
function runBash(
  command: string,
  cwd: string,
  env: Record<string, string>,
  signal: AbortSignal | undefined,
  stdout: TailBuffer,
  stderr: TailBuffer,
): Promise<Exit> {
  return new Promise((resolvePromise) => {
    const child = spawn("bash", ["-c", command], { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let settled = false;
    let killTimer: NodeJS.Timeout | undefined;
    const killGroup = (sig: NodeJS.Signals): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        // the group is already gone
      }
    };
    const onAbort = (): void => {
      killGroup("SIGTERM");
      killTimer = setTimeout(() => killGroup("SIGKILL"), KILL_GRACE_MS);
      killTimer.unref();
    };
    const done = (exit: Exit): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      if (killTimer) clearTimeout(killTimer);
      resolvePromise(exit);
    };
    child.stdout.on("data", (c: Buffer) => stdout.push(c));
    child.stderr.on("data", (c: Buffer) => stderr.push(c));
    child.on("error", (err) => done({ code: null, signal: null, spawnError: err }));
    child.on("close", (code, sig) => done({ code, signal: sig }));
    child.on("exit", (code, sig) => {
      // Normally "close" follows at once; a background process holding the pipes must not hold us.
      setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        done({ code, signal: sig });
      }, PIPE_CLOSE_GRACE_MS).unref();
    });
    if (signal) {
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    }
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs the step's command with bash and returns its state. Never throws for
 * the command's failure: a non-zero exit, a signal, a bad publish file or a
 * missing output are failed states with a clear error.
 */
export async function runCommandInProcess(step: CommandStep, context: Context, options: RunOptions = {}): Promise<CompletedState> {
  const key = options.key ?? step.name;
  const cwd = resolve(options.workDir ?? process.cwd());
  const missing = step.requires.filter((k) => context[k] === undefined);
  if (missing.length > 0) {
    return CompletedState.fail(`missing requirement${missing.length > 1 ? "s" : ""} ${missing.map((k) => `'${k}'`).join(", ")}`, {
      failure: "MISSING_REQUIREMENT",
      meta: { missing },
    });
  }
  if (options.signal?.aborted) return CompletedState.fail(`${key}: aborted before it started`, { meta: { aborted: true, reason: "SIGNAL" } });
  if (!(await exists(cwd))) return CompletedState.fail(`working directory ${cwd} does not exist`, { meta: { exit_code: null } });

  const scope = itemScopeOf(context);
  const pubDir = await mkdtemp(join(tmpdir(), "hpcpipe-publish-"));
  const publishFile = join(pubDir, "publish");
  try {
    await writeFile(publishFile, "", { mode: 0o600 });
    const { env, problems } = commandEnvironment(step, context, {
      key,
      publishFile,
      outDir: cwd,
      task: scope?.index ?? 0,
      item: scope?.item,
    });
    if (problems.length > 0) return CompletedState.fail(problems.join("; "), { meta: { exit_code: null } });
    // A batch step in-process: the wrapper's protocol for this one item.
    let batch: Awaited<ReturnType<typeof prepareBatch>> | null = null;
    if (step.batch) {
      if (scope === undefined) return CompletedState.fail(`${key}: a batch step runs only inside a map`, { meta: { exit_code: null } });
      const needs = Object.fromEntries(step.requires.filter((k) => env[k] !== undefined).map((k) => [k, env[k] as string]));
      batch = await prepareBatch(pubDir, cwd, key, { index: scope.index, value: scope.item }, publishFile, needs);
      Object.assign(env, batch.env);
      delete env.HPCPIPE_PUBLISH;
      delete env.HPCPIPE_ITEM;
    }

    const stdout = new TailBuffer();
    const stderr = new TailBuffer();
    const exit = await runBash(step.command, cwd, env, options.signal, stdout, stderr);
    const tails = { stdout_tail: stdout.text(), stderr_tail: stderr.text() };
    options.logger?.debug({ step: key, exit_code: exit.code, signal: exit.signal, ...tails }, "command output");

    if (exit.spawnError) {
      return CompletedState.fail(`could not start bash: ${exit.spawnError.message}`, { meta: { exit_code: null, ...tails } });
    }
    if (options.signal?.aborted) {
      const how = exit.code === null ? `signal ${exit.signal ?? "?"}` : `exit status ${exit.code}`;
      return CompletedState.fail(`aborted: command stopped (${how})`, {
        meta: { exit_code: exit.code, signal: exit.signal, reason: "SIGNAL", aborted: true, ...tails },
      });
    }
    if (batch !== null && scope !== undefined) {
      const reported = await readReport(batch.reportFile, scope.index);
      const meta = { exit_code: exit.code, batch: { items: 1, reported: reported !== null }, ...tails };
      if (reported === null) {
        const how = exit.code === null ? `was killed by signal ${exit.signal ?? "?"}` : `exited with status ${exit.code}`;
        return CompletedState.fail(`not reported by the batch command (it ${how})`, { meta });
      }
      if (!reported.ok) return CompletedState.fail(`the batch command reported it failed${reported.message ? `: ${reported.message}` : ""}`, { meta });
    } else if (exit.code === null) {
      return CompletedState.fail(`command killed by signal ${exit.signal ?? "?"}`, {
        meta: { exit_code: null, signal: exit.signal, reason: "SIGNAL", ...tails },
      });
    }
    if (exit.code !== 0 && batch === null) {
      return CompletedState.fail(`command exited with status ${exit.code}`, { meta: { exit_code: exit.code, ...tails } });
    }

    const pubSize = (await stat(publishFile)).size;
    if (pubSize > PUBLISH_MAX_BYTES) {
      return CompletedState.fail(`published values file ($HPCPIPE_PUBLISH) is larger than ${PUBLISH_MAX_BYTES} bytes`, {
        meta: { exit_code: exit.code, ...tails },
      });
    }
    const published = parsePublished(await readFile(publishFile, "utf8"));
    if (published.problems.length > 0) {
      return CompletedState.fail(`invalid published value ($HPCPIPE_PUBLISH): ${published.problems.join("; ")}`, {
        meta: { exit_code: exit.code, ...tails },
      });
    }

    const missingFiles: string[] = [];
    const files: string[] = [];
    const pathProblems: string[] = [];
    for (const pattern of step.outputs) {
      const concrete = scope === undefined ? { path: pattern } : itemOutputPath(pattern, scope.index, scope.item);
      if ("problem" in concrete) pathProblems.push(concrete.problem);
      else if (await exists(resolve(cwd, concrete.path))) files.push(concrete.path);
      else missingFiles.push(concrete.path);
    }
    const unpublished = step.provides.filter((k) => published.values[k] === undefined);
    const problemsAfter: string[] = [];
    problemsAfter.push(...pathProblems);
    if (missingFiles.length > 0) problemsAfter.push(`missing output file${missingFiles.length > 1 ? "s" : ""} ${missingFiles.join(", ")}`);
    if (unpublished.length > 0) problemsAfter.push(`did not publish ${unpublished.map((k) => `'${k}'`).join(", ")}`);
    if (problemsAfter.length > 0) {
      return CompletedState.fail(`validation failed: ${problemsAfter.join("; ")}`, {
        meta: { exit_code: exit.code, ...tails },
        outputs: { published: published.values, files: [...files, ...missingFiles] },
      });
    }

    for (const [k, v] of Object.entries(published.values)) context[k] = v;
    return CompletedState.ok({
      outputs: { published: published.values, files },
      meta: { exit_code: exit.code, ...tails },
    });
  } finally {
    await rm(pubDir, { recursive: true, force: true });
  }
}
