import { chmod, mkdir, readdir, readFile, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { writeJsonAtomic } from "../core/atomic-json.js";
import type { CompiledPlan } from "../plan/plan.js";
import { runRecordSchema } from "./record.js";
import type { RunRecord } from "./record.js";

/** Largest record or plan file the store reads back. */
const MAX_FILE_BYTES = 64 * 1024 * 1024;

export class RunStoreError extends Error {
  override name = "RunStoreError";
}

/** The default home of run records: $HPCPIPE_HOME, else ~/.hpcpipe. */
export function defaultStoreDir(): string {
  return process.env.HPCPIPE_HOME ?? join(homedir(), ".hpcpipe");
}

/**
 * Local run records, one directory per run (mode 700) holding `run.json`
 * (the record, mode 600), `plan.json` (the compiled plan, for merging
 * results later) and `result.json` (the collected result).
 */
export class RunStore {
  constructor(readonly root: string = defaultStoreDir()) {}

  runDir(runId: string): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(runId)) throw new RunStoreError(`invalid run id ${JSON.stringify(runId)}`);
    return join(this.root, "runs", runId);
  }

  private async ensureDir(runId: string): Promise<string> {
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

  async writePlan(plan: CompiledPlan): Promise<void> {
    const dir = await this.ensureDir(plan.runId);
    await writeJsonAtomic(join(dir, "plan.json"), plan, { mode: 0o600 });
  }

  async writeResult(runId: string, result: unknown): Promise<string> {
    const dir = await this.ensureDir(runId);
    const path = join(dir, "result.json");
    await writeJsonAtomic(path, result, { mode: 0o600 });
    return path;
  }

  async readRecord(runId: string): Promise<RunRecord> {
    const path = join(this.runDir(runId), "run.json");
    const json = await readJson(path, `run ${runId}`);
    const parsed = runRecordSchema.safeParse(json);
    if (!parsed.success) {
      throw new RunStoreError(`${path}: not a valid run record: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
    }
    return parsed.data;
  }

  /** The plan as saved at submission. Its shape was produced by this tool; it is checked only for its format marker. */
  async readPlan(runId: string): Promise<CompiledPlan> {
    const path = join(this.runDir(runId), "plan.json");
    const json = (await readJson(path, `run ${runId}`)) as Partial<CompiledPlan>;
    if (json.format !== 1 || json.runId !== runId || !Array.isArray(json.jobs)) throw new RunStoreError(`${path}: not a plan of run ${runId}`);
    return json as CompiledPlan;
  }

  /** Every run record, newest first; unreadable ones are reported, not fatal. */
  async list(): Promise<{ records: RunRecord[]; problems: string[] }> {
    const dir = join(this.root, "runs");
    const names = await readdir(dir).catch(() => [] as string[]);
    const records: RunRecord[] = [];
    const problems: string[] = [];
    for (const name of names) {
      try {
        records.push(await this.readRecord(name));
      } catch (err) {
        problems.push(err instanceof Error ? err.message : String(err));
      }
    }
    records.sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : 0));
    return { records, problems };
  }
}

async function readJson(path: string, what: string): Promise<unknown> {
  const info = await stat(path).catch(() => null);
  if (info === null) throw new RunStoreError(`${what}: no record at ${path}`);
  if (info.size > MAX_FILE_BYTES) throw new RunStoreError(`${path} is ${info.size} bytes, over the ${MAX_FILE_BYTES}-byte limit`);
  const text = await readFile(path, "utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new RunStoreError(`${path}: not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
}
