import { closeSync, fstatSync, openSync, readFileSync } from "node:fs";
import type { Stats } from "node:fs";
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
const planCoreSchema = z.looseObject({
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
});
const savedPlanSchema = planCoreSchema.extend({ items: z.record(z.string(), z.array(z.string())) });

/** The parts of a plan that grow with its maps' items: kept out of the plan index. */
type PerItemField = "items" | "itemHashes" | "files";

/**
 * `plan-index.json`: the plan without what grows with the items (`items`, `itemHashes`, `files`: about
 * 125 MB for a million items), written after plan.json, so that a status poll, a cancel or a watch reads
 * a few kilobytes, not the whole plan. It names the plan.json it was made from (inode, size, modification
 * time of the file as written): an index that does not name the plan.json in place (a plan written again,
 * a writer stopped between the two files, a run saved before the index) is not used.
 */
const planIndexSchema = z.object({
  format: z.literal(1),
  run_id: z.string(),
  plan_file: z.object({ ino: z.number(), size: z.number().int().nonnegative(), mtime_ms: z.number() }),
  /** The plan has `itemHashes` (maps of staged files). */
  item_hashes: z.boolean(),
  plan: planCoreSchema,
});

const PLAN_FILE = "plan.json";
const PLAN_INDEX_FILE = "plan-index.json";

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

  /** Writes plan.json, then its index (plan-index.json, see planIndexSchema). */
  async writePlan(plan: CompiledPlan): Promise<void> {
    const dir = await this.ensureDir(plan.runId);
    const written = await writeJsonAtomic(join(dir, PLAN_FILE), plan, { mode: 0o600 });
    // Taken apart without reading them: a plan from readPlan loads its items only when they are read.
    const { items: _items, itemHashes, files: _files, ...core } = plan;
    const index: Omit<PlanIndex, "plan"> & { plan: Omit<CompiledPlan, PerItemField> } = {
      format: 1,
      run_id: plan.runId,
      plan_file: { ino: written.ino, size: written.size, mtime_ms: written.mtimeMs },
      item_hashes: itemHashes !== undefined,
      plan: core,
    };
    await writeJsonAtomic(join(dir, PLAN_INDEX_FILE), index, { mode: 0o600 });
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

  /**
   * The plan as saved at submission, checked for the parts later commands rely on. From its index when
   * the index names the plan.json in place: then the plan's `items`, `itemHashes` and `files` are read
   * from plan.json (and checked) only when something reads them (a merge, `logs --task`, a resume), not
   * by a status poll. Otherwise (a run saved before the index) from plan.json, whole.
   */
  async readPlan(runId: string): Promise<CompiledPlan> {
    const dir = this.runDir(runId);
    const path = join(dir, PLAN_FILE);
    const missing = (): Error => new RunStoreError(`run ${runId}: its plan is missing (${path}); the record cannot be used`);
    const info = await stat(path).catch(() => null);
    if (info === null) throw missing();
    const indexed = await readPlanIndex(join(dir, PLAN_INDEX_FILE), runId, info);
    if (indexed !== null) return lazyPlan(indexed, () => checkedPlan(readJsonSync(path, missing, indexed.plan_file), path, runId));
    return checkedPlan(await readJson(path, missing), path, runId);
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

/** A parsed plan.json, checked: the plan, or a RunStoreError naming the file and the field. */
function checkedPlan(json: unknown, path: string, runId: string): CompiledPlan {
  const parsed = savedPlanSchema.safeParse(json);
  if (!parsed.success) {
    throw new RunStoreError(`${path}: not a valid plan: ${issuesText(parsed.error.issues)}`);
  }
  if (parsed.data.runId !== runId) throw new RunStoreError(`${path}: the plan is of run ${preview(parsed.data.runId)}, not ${preview(runId)}`);
  return parsed.data as unknown as CompiledPlan;
}

type PlanIndex = z.infer<typeof planIndexSchema>;

/** The plan's index, checked; null when there is none or it was made from another plan.json than `planInfo`'s. */
async function readPlanIndex(path: string, runId: string, planInfo: Stats): Promise<PlanIndex | null> {
  const json = await readJson(path, () => NO_INDEX).catch((error: unknown) => {
    if (error === NO_INDEX) return null;
    throw error;
  });
  if (json === null) return null;
  const parsed = planIndexSchema.safeParse(json);
  if (!parsed.success) throw new RunStoreError(`${path}: not a valid plan index: ${issuesText(parsed.error.issues)} (remove it: the plan is then read from ${PLAN_FILE})`);
  const index = parsed.data;
  const of = index.run_id !== runId ? index.run_id : index.plan.runId;
  if (of !== runId) throw new RunStoreError(`${path}: the plan index is of run ${preview(of)}, not ${preview(runId)}`);
  return samePlanFile(index.plan_file, planInfo) ? index : null;
}

const NO_INDEX = new Error("no plan index");

function samePlanFile(recorded: PlanIndex["plan_file"], info: Pick<Stats, "ino" | "size" | "mtimeMs">): boolean {
  return recorded.ino === info.ino && recorded.size === info.size && recorded.mtime_ms === info.mtimeMs;
}

/**
 * The plan of an index, whose per-item fields are read (with `load`, once) on their first use: each is an
 * object that stands for the plan's own (any read, key listing or write goes to it), so code reading
 * `plan.items[key]` is the same whichever way the plan was read, and copying the plan (`{ ...plan }`)
 * reads nothing.
 */
function lazyPlan(index: PlanIndex, load: () => CompiledPlan): CompiledPlan {
  let full: CompiledPlan | null = null;
  const part = (field: PerItemField): Record<string, unknown> => {
    const get = (): Record<string, unknown> => {
      full ??= load();
      const value = full[field];
      if (value === undefined) throw new RunStoreError(`run ${index.run_id}: its plan has no ${field}, its index says it has`);
      return value;
    };
    return new Proxy({} as Record<string, unknown>, {
      get: (_, key) => Reflect.get(get(), key),
      has: (_, key) => Reflect.has(get(), key),
      ownKeys: () => Reflect.ownKeys(get()),
      getOwnPropertyDescriptor: (_, key) => Reflect.getOwnPropertyDescriptor(get(), key),
      set: (_, key, value) => Reflect.set(get(), key, value),
      deleteProperty: (_, key) => Reflect.deleteProperty(get(), key),
      defineProperty: (_, key, descriptor) => Reflect.defineProperty(get(), key, descriptor),
    });
  };
  const plan = { ...index.plan, items: part("items"), files: part("files") } as Record<string, unknown>;
  if (index.item_hashes) plan.itemHashes = part("itemHashes");
  return plan as unknown as CompiledPlan;
}

/**
 * readJson for a plan read lazily (inside a property read, so synchronously): the file must still be the
 * one the index was made from, or the items could be another plan's than the jobs.
 */
function readJsonSync(path: string, missing: () => Error, expected: PlanIndex["plan_file"]): unknown {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    throw missing();
  }
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) throw new RunStoreError(`${path} is not a regular file`);
    if (!samePlanFile(expected, info)) throw new RunStoreError(`${path} was written again while this command was using it (a resume of the run?); run the command again`);
    if (info.size > MAX_FILE_BYTES) throw new RunStoreError(`${path} is ${info.size} bytes, over the ${MAX_FILE_BYTES}-byte limit`);
    const text = readFileSync(fd, "utf8");
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new RunStoreError(`${path}: not valid JSON (${err instanceof Error ? err.message : String(err)}); the file is damaged`);
    }
  } finally {
    closeSync(fd);
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
