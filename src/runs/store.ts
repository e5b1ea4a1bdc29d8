import { chmod, mkdir, readdir, readFile, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { writeJsonAtomic } from "../core/atomic-json.js";
import { writeResultFile } from "../core/result-file.js";
import { systemClock } from "../core/clock.js";
import type { Clock } from "../core/clock.js";
import type { CompiledPlan } from "../plan/plan.js";
import { RunStoreError, UnknownRunError } from "./errors.js";
import { RUN_ID_PATTERN, runRecordSchema } from "./record.js";
import type { RunRecord } from "./record.js";
import { issuesText, preview } from "../core/preview.js";

/** Largest record or plan file the store reads back: a plan holds its maps' items (a million 60-byte paths make about 70 MB). */
const MAX_FILE_BYTES = 512 * 1024 * 1024;

/** The default home of run records: $HPCPIPE_HOME, else ~/.hpcpipe. */
export function defaultStoreDir(): string {
  return process.env.HPCPIPE_HOME ?? join(homedir(), ".hpcpipe");
}

/**
 * The parts of a saved plan the cluster workflow relies on; the rest is kept
 * as is. Checked so a damaged plan.json is a clear error, not a crash later.
 */
const savedPlanSchema = z.looseObject({
  format: z.literal(1),
  runId: z.string(),
  pipeline: z.string(),
  layout: z.looseObject({ runDir: z.string().min(1) }),
  tree: z.looseObject({ key: z.string(), kind: z.string(), children: z.array(z.unknown()) }),
  jobs: z.array(
    z.looseObject({
      id: z.string().min(1),
      shape: z.enum(["single", "group", "map"]),
      steps: z.array(z.string()),
      bodies: z.array(z.looseObject({ steps: z.array(z.looseObject({ key: z.string() })) })),
      array: z
        .looseObject({
          count: z.number().int().nonnegative(),
          offset: z.number().int().nonnegative(),
          total: z.number().int().nonnegative(),
          indices: z.array(z.number().int().nonnegative()).nullable(),
        })
        .nullable(),
    }),
  ),
  items: z.record(z.string(), z.array(z.string())),
});

/**
 * Local run records, one directory per run (mode 700) holding `run.json`
 * (the record, mode 600), `plan.json` (the compiled plan, for merging
 * results later) and `result.json` (the collected result). Every write is
 * atomic (temp file + rename), so concurrent writers never leave a torn file.
 */
export class RunStore {
  constructor(
    readonly root: string = defaultStoreDir(),
    private readonly clock: Clock = systemClock,
  ) {}

  runDir(runId: string): string {
    if (!RUN_ID_PATTERN.test(runId)) {
      throw new UnknownRunError(runId, this.root, "not a run id (letters, digits, '_', '.', '-', at most 64, not starting with '.', '_' or '-')");
    }
    return join(this.root, "runs", runId);
  }

  private async ensureDir(runId: string): Promise<string> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    await mkdir(join(this.root, "runs"), { recursive: true, mode: 0o700 });
    const dir = this.runDir(runId);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    return dir;
  }

  async writeRecord(record: RunRecord): Promise<void> {
    const checked = runRecordSchema.parse(record);
    const dir = await this.ensureDir(checked.run_id);
    await writeJsonAtomic(join(dir, "run.json"), checked, { mode: 0o600 });
  }

  /** Reads the record, applies `patch`, stamps `updated` and writes it back atomically. */
  async updateRecord(runId: string, patch: Partial<Omit<RunRecord, "run_id" | "format">>): Promise<RunRecord> {
    const current = await this.readRecord(runId);
    const next: RunRecord = { ...current, ...patch, run_id: current.run_id, format: 1, updated: this.clock.isoNow() };
    await this.writeRecord(next);
    return next;
  }

  /** The current time as records store it. */
  now(): string {
    return this.clock.isoNow();
  }

  async writePlan(plan: CompiledPlan): Promise<void> {
    const dir = await this.ensureDir(plan.runId);
    await writeJsonAtomic(join(dir, "plan.json"), plan, { mode: 0o600 });
  }

  /** Writes result.json, with the lines file of its large maps beside it (src/core/result-file.ts). */
  async writeResult(runId: string, result: unknown): Promise<string> {
    const dir = await this.ensureDir(runId);
    const path = join(dir, "result.json");
    await writeResultFile(path, result, { mode: 0o600 });
    return path;
  }

  /** The run's directory in the store, made when missing: where a merge writes its lines file before result.json. */
  async resultDir(runId: string): Promise<string> {
    return this.ensureDir(runId);
  }

  resultPath(runId: string): string {
    return join(this.runDir(runId), "result.json");
  }

  async readRecord(runId: string): Promise<RunRecord> {
    const path = join(this.runDir(runId), "run.json");
    const json = await readJson(path, () => new UnknownRunError(runId, join(this.root, "runs")));
    const parsed = runRecordSchema.safeParse(json);
    if (!parsed.success) {
      throw new RunStoreError(`${path}: not a valid run record: ${issuesText(parsed.error.issues)}`);
    }
    if (parsed.data.run_id !== runId) throw new RunStoreError(`${path}: the record is of run ${preview(parsed.data.run_id)}, not ${preview(runId)}`);
    return parsed.data;
  }

  /** The plan as saved at submission, checked for the parts later commands rely on. */
  async readPlan(runId: string): Promise<CompiledPlan> {
    const path = join(this.runDir(runId), "plan.json");
    const json = await readJson(path, () => new RunStoreError(`run ${runId}: its plan is missing (${path}); the record cannot be used`));
    const parsed = savedPlanSchema.safeParse(json);
    if (!parsed.success) {
      throw new RunStoreError(`${path}: not a valid plan: ${issuesText(parsed.error.issues)}`);
    }
    if (parsed.data.runId !== runId) throw new RunStoreError(`${path}: the plan is of run ${preview(parsed.data.runId)}, not ${preview(runId)}`);
    return parsed.data as unknown as CompiledPlan;
  }

  /** Every run record, newest first; unreadable ones are reported, not fatal. */
  async list(): Promise<{ records: RunRecord[]; problems: string[] }> {
    const dir = join(this.root, "runs");
    const names = await readdir(dir).catch(() => [] as string[]);
    const records: RunRecord[] = [];
    const problems: string[] = [];
    for (const name of names.sort()) {
      if (!RUN_ID_PATTERN.test(name)) continue;
      try {
        records.push(await this.readRecord(name));
      } catch (err) {
        problems.push(err instanceof Error ? err.message : String(err));
      }
    }
    records.sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : a.run_id < b.run_id ? 1 : -1));
    return { records, problems };
  }
}

async function readJson(path: string, missing: () => Error): Promise<unknown> {
  const info = await stat(path).catch(() => null);
  if (info === null) throw missing();
  if (!info.isFile()) throw new RunStoreError(`${path} is not a regular file`);
  if (info.size > MAX_FILE_BYTES) throw new RunStoreError(`${path} is ${info.size} bytes, over the ${MAX_FILE_BYTES}-byte limit`);
  const text = await readFile(path, "utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new RunStoreError(`${path}: not valid JSON (${err instanceof Error ? err.message : String(err)}); the file is damaged`);
  }
}
