/**
 * Helpers for the end-to-end tests of the real pieces: YAML spec files
 * written to a temp directory, loaded with loadSpec, run in-process by the
 * core (CommandStep with a workDir) or compiled by the real compiler,
 * rendered through the Handlebars templates and run by the local executor
 * (preparePlan + runLocal), whose state files are merged into one result.
 */
import { mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { preparePlan } from "../../src/app/prepare.js";
import type { PrepareOptions, PreparedPlan } from "../../src/app/prepare.js";
import { runLocal } from "../../src/app/run-local.js";
import type { LocalRunOutcome } from "../../src/app/run-local.js";
import type { CompletedState } from "../../src/core/index.js";
import type { LocalRunEvent } from "../../src/local/index.js";
import { loadSpec } from "../../src/spec/load.js";

/** A fresh directory under the system temp directory (symlinks resolved); `cleanup` removes it. */
export function tempBase(prefix: string): { dir: string; cleanup: () => void } {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes `doc` as YAML to `<dir>/<name>.yaml` and returns the path. */
export function writeYaml(dir: string, name: string, doc: unknown): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify(doc, { lineWidth: 0 }));
  return path;
}

/** A cluster config for the local executor with its own work directory (and any other field). */
export function writeLocalCluster(dir: string, name: string, fields: Record<string, unknown> = {}): string {
  return writeYaml(dir, name, { name, executor: "local", workdir: join(dir, "runs"), ...fields });
}

/** Runs the spec in this process, as `loadSpec` + `pipeline.run(context, { workDir })`. */
export async function runInProcess(specPath: string, workDir: string, set: Record<string, string> = {}): Promise<CompletedState> {
  mkdirSync(workDir, { recursive: true });
  const loaded = loadSpec(specPath, { set });
  return loaded.pipeline.run({ ...loaded.context }, { workDir });
}

export interface CompiledRun {
  prepared: PreparedPlan;
  outcome: LocalRunOutcome;
  events: LocalRunEvent[];
}

/** Compiles the spec with the real compiler and templates and runs it with the local executor. */
export async function runCompiled(
  options: PrepareOptions & { cpus?: number; signal?: AbortSignal; onEvent?: (e: LocalRunEvent) => void },
): Promise<CompiledRun> {
  const { cpus, signal, onEvent, ...prepare } = options;
  const prepared = preparePlan(prepare);
  const events: LocalRunEvent[] = [];
  const outcome = await runLocal(prepared, {
    ...(cpus !== undefined ? { cpus } : {}),
    ...(signal ? { signal } : {}),
    onEvent: (e) => {
      events.push(e);
      onEvent?.(e);
    },
  });
  return { prepared, outcome, events };
}

/** `key -> "ok" | failure kind` for every state, sorted by key; `withoutNotRun` drops the executor's `meta.not_run` states. */
export function outcomeKinds(states: Record<string, CompletedState> | undefined, opts: { withoutNotRun?: boolean } = {}): Record<string, string> {
  const out: [string, string][] = [];
  for (const [k, v] of Object.entries(states ?? {})) {
    if (opts.withoutNotRun && v.meta.not_run === true) continue;
    out.push([k, v.success ? "ok" : (v.failure ?? "STEP_FAILED")]);
  }
  return Object.fromEntries(out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The most tasks running at once, from the executor's task-started / task-finished events (in emission order). */
export function maxConcurrency(events: readonly LocalRunEvent[], filter: (job: string) => boolean = () => true): number {
  let running = 0;
  let max = 0;
  for (const e of events) {
    if (!filter(e.job)) continue;
    if (e.type === "task-started") {
      running += 1;
      max = Math.max(max, running);
    } else if (e.type === "task-finished" && e.started) running -= 1;
  }
  return max;
}

/** Every file and directory under `dir`, as sorted relative paths. */
export function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    let names: string[];
    try {
      names = readdirSync(join(dir, rel));
    } catch {
      return;
    }
    for (const name of names) {
      const path = rel === "" ? name : `${rel}/${name}`;
      out.push(path);
      walk(path);
    }
  };
  walk("");
  return out.sort();
}
