/**
 * The local job table's compact file (format 2, issue 16): what is written
 * is read back task for task, older files (format 1, one object per task)
 * still read the same, a damaged file is an error naming it and the field,
 * and status sees the same records as from the old per-task table.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { applyEvent, encodeJobTable, JOB_TABLE_FILE, JobTableError, JobTasks, orphanedTable, parseJobTable, readJobTable, tableToStatusMap, writeJobTable } from "../../src/local/job-table.js";
import type { JobTable, LocalTaskKind } from "../../src/local/job-table.js";
import type { CompiledPlan } from "../../src/plan/plan.js";
import { mapJobStatuses } from "../../src/runs/index.js";
import type { TaskRecord } from "../../src/slurm/index.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "hpcpipe-job-table-"));
  dirs.push(d);
  return d;
}

const N = 10_000;
const KINDS: LocalTaskKind[] = [
  { state: "PENDING", reason: null, exitCode: null },
  { state: "RUNNING", reason: null, exitCode: null },
  { state: "COMPLETED", reason: null, exitCode: 0 },
  { state: "FAILED", reason: "NonZeroExitCode", exitCode: 3 },
  { state: "FAILED", reason: "NonZeroExitCode", exitCode: 7 },
  { state: "CANCELLED", reason: "DependencyNeverSatisfied", exitCode: null },
];

/** A deterministic mix: long runs, scattered failures, own ids with gaps, some tasks never started. */
function sampleTable(): JobTable {
  const big = new JobTasks(N);
  let seed = 7;
  const rand = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  let own = 100;
  for (let t = 0; t < N; t++) {
    const kind = t < 4000 ? (rand() < 0.02 ? KINDS[3 + Math.floor(rand() * 2)] : KINDS[2]) : t < 4100 ? KINDS[1] : t < 9000 ? KINDS[0] : KINDS[5];
    const started = t < 4100;
    if (started && rand() < 0.05) own += 3; // another job's tasks took ids in between
    big.set(t, kind as LocalTaskKind, started ? String(own++) : null);
  }
  const plain = new JobTasks(1);
  plain.set(0, KINDS[2] as LocalTaskKind, "99");
  return { run_id: "20261207-000000-abcd", attempt: 2, finished: false, cancelled: false, jobs: { j000: { slurmJobId: "1", tasks: big }, j001: { slurmJobId: "2", tasks: plain } } };
}

/** A plan of the table's two jobs: an array of N tasks and a plain job. */
const PLAN = {
  runId: "20261207-000000-abcd",
  jobs: [
    { id: "j000", array: { count: N, offset: 0, throttle: null, chunk: 0, chunks: 1, total: N, indices: null }, steps: ["p.each.{i}.a"], shape: "map", bodies: [], dependencies: [] },
    { id: "j001", array: null, steps: ["p.end"], shape: "step", bodies: [], dependencies: [] },
  ],
} as unknown as CompiledPlan;

/** The records hpcpipe built from a format-1 table before format 2: one per task (the reference). */
function oldRecords(table: JobTable): Map<string, TaskRecord[]> {
  const out = new Map<string, TaskRecord[]>();
  for (const job of PLAN.jobs) {
    const row = table.jobs[job.id];
    if (row === undefined) continue;
    const isArray = job.array !== null;
    const list: TaskRecord[] = [];
    for (let t = 0; t < row.tasks.size; t++) {
      const k = row.tasks.kindAt(t) as LocalTaskKind;
      list.push({ jobId: row.tasks.ownAt(t) ?? row.slurmJobId, arrayJobId: isArray ? row.slurmJobId : null, taskId: isArray ? t : null, rawId: isArray ? `${row.slurmJobId}_${t}` : row.slurmJobId, state: k.state, rawState: k.state, reason: k.reason, exitCode: k.exitCode, signal: null, source: "local" });
    }
    out.set(row.slurmJobId, list);
  }
  return out;
}

function sameTasks(a: JobTable, b: JobTable): void {
  expect(Object.keys(b.jobs)).toEqual(Object.keys(a.jobs));
  for (const [id, row] of Object.entries(a.jobs)) {
    const other = b.jobs[id];
    expect(other?.slurmJobId).toBe(row.slurmJobId);
    expect(other?.tasks.size).toBe(row.tasks.size);
    for (let t = 0; t < row.tasks.size; t++) {
      if (JSON.stringify(other?.tasks.kindAt(t)) !== JSON.stringify(row.tasks.kindAt(t)) || other?.tasks.ownAt(t) !== row.tasks.ownAt(t)) {
        throw new Error(`job ${id} task ${t}: ${JSON.stringify([other?.tasks.kindAt(t), other?.tasks.ownAt(t)])} != ${JSON.stringify([row.tasks.kindAt(t), row.tasks.ownAt(t)])}`);
      }
    }
  }
}

describe("local job table, format 2", () => {
  it("reads back every task's state, reason, exit code and own job id, from a file of runs", async () => {
    const dir = tempDir();
    const table = sampleTable();
    await writeJobTable(dir, table);
    const back = await readJobTable(dir);
    expect(back).not.toBeNull();
    expect({ ...back, jobs: null }).toEqual({ ...table, jobs: null });
    sameTasks(table, back as JobTable);
    const file = encodeJobTable(table);
    expect(file.format).toBe(2);
    // Runs, not tasks: the 5,900 tasks after the finished ones are 2 runs; ids are runs of consecutive ids.
    expect(file.jobs.j000?.runs.length).toBeLessThan(2 * 300);
    expect(file.jobs.j000?.ids.length).toBeLessThan(3 * 300);
  });

  it("keeps a million pending tasks in a few bytes", () => {
    const table: JobTable = { run_id: "r", attempt: 1, finished: false, cancelled: false, jobs: { j000: { slurmJobId: "1", tasks: new JobTasks(1_000_000) } } };
    const text = JSON.stringify(encodeJobTable(table));
    expect(text.length).toBeLessThan(300);
    expect(parseJobTable(text, "x").jobs.j000?.tasks.size).toBe(1_000_000);
  });

  it("applies executor events per task, and an orphaned table fails only the tasks that had not ended", () => {
    const table = sampleTable();
    expect(applyEvent(table, { type: "task-started", job: "j000", task: 9500, taskId: 9500, slurmJobId: "77777", pid: null, time: 0 })).toBe(true);
    expect(table.jobs.j000?.tasks.kindAt(9500)?.state).toBe("RUNNING");
    expect(applyEvent(table, { type: "task-finished", job: "j000", task: 9500, taskId: 9500, slurmJobId: "77777", started: true, state: "TIMEOUT", reason: "TimeLimit", exitCode: null, time: 0 })).toBe(true);
    expect(table.jobs.j000?.tasks.kindAt(9500)).toEqual({ state: "TIMEOUT", reason: "TimeLimit", exitCode: null });
    expect(table.jobs.j000?.tasks.ownAt(9500)).toBe("77777");
    expect(applyEvent(table, { type: "task-started", job: "j000", task: N, taskId: N, slurmJobId: "1", pid: null, time: 0 })).toBe(false);
    const orphan = orphanedTable(table, "SupervisorLost: gone");
    const states = new Set<string>();
    for (let t = 0; t < N; t++) {
      const before = table.jobs.j000?.tasks.kindAt(t);
      const after = orphan.jobs.j000?.tasks.kindAt(t);
      if (before?.state === "PENDING" || before?.state === "RUNNING") expect(after).toEqual({ state: "FAILED", reason: "SupervisorLost: gone", exitCode: before.exitCode });
      else expect(after).toEqual(before);
      states.add(after?.state ?? "");
    }
    expect([...states].sort()).toEqual(["CANCELLED", "COMPLETED", "FAILED", "TIMEOUT"]);
    // The original is unchanged.
    expect(table.jobs.j000?.tasks.kindAt(9000)?.state).toBe("CANCELLED");
    expect(table.jobs.j000?.tasks.kindAt(5000)?.state).toBe("PENDING");
  });

  it("gives status the same records, task for task, as the per-task table did", () => {
    const table = sampleTable();
    const compact = tableToStatusMap(table, PLAN);
    const old = oldRecords(table);
    for (const [id, records] of old) expect(compact.get(id)?.records()).toEqual(records);
    // And the mapped status is the same whichever form the answer has.
    const jobs = { j000: "1", j001: "2" };
    expect(JSON.stringify(mapJobStatuses(PLAN, jobs, compact))).toEqual(JSON.stringify(mapJobStatuses(PLAN, jobs, old)));
    const array = mapJobStatuses(PLAN, jobs, compact)[0];
    expect(array?.counts).toEqual({ pending: 4900, running: 100, done: expect.any(Number) as number, failed: expect.any(Number) as number });
    expect((array?.counts.done ?? 0) + (array?.counts.failed ?? 0)).toBe(5000);
  });

  it("reads a format-1 file (one object per task) as before", async () => {
    const dir = tempDir();
    const table = sampleTable();
    const v1 = {
      format: 1,
      run_id: table.run_id,
      attempt: table.attempt,
      finished: false,
      cancelled: false,
      jobs: Object.fromEntries(
        Object.entries(table.jobs).map(([id, row]) => [
          id,
          { slurmJobId: row.slurmJobId, tasks: Array.from({ length: row.tasks.size }, (_, t) => ({ taskId: t, slurmJobId: row.tasks.ownAt(t), ...(row.tasks.kindAt(t) as LocalTaskKind) })) },
        ]),
      ),
    };
    writeFileSync(join(dir, JOB_TABLE_FILE), JSON.stringify(v1));
    const back = await readJobTable(dir);
    sameTasks(table, back as JobTable);
  });
});

describe("a damaged job table is an error naming the file and the field", () => {
  const path = "/runs/x/local-jobs.json";
  const good = (): Record<string, unknown> => JSON.parse(JSON.stringify(encodeJobTable(sampleTable()))) as Record<string, unknown>;
  const job = (file: Record<string, unknown>): Record<string, unknown> => (file.jobs as Record<string, Record<string, unknown>>).j000 as Record<string, unknown>;
  const fails = (file: unknown, message: RegExp): void => {
    expect(() => parseJobTable(typeof file === "string" ? file : JSON.stringify(file), path)).toThrow(JobTableError);
    expect(() => parseJobTable(typeof file === "string" ? file : JSON.stringify(file), path)).toThrow(message);
  };

  it("refuses torn JSON, an unknown format and a wrong field", () => {
    fails(JSON.stringify(good()).slice(0, 200), /^\/runs\/x\/local-jobs\.json: not valid JSON/);
    fails({ ...good(), format: 3 }, /^\/runs\/x\/local-jobs\.json: not a job table this hpcpipe reads \(format 3; it reads formats 1 and 2\)/);
    const badState = good();
    (job(badState).kinds as Array<Record<string, unknown>>)[0] = { state: "SLEEPING", reason: null, exitCode: null };
    fails(badState, /local-jobs\.json: not a valid job table: jobs\.j000\.kinds\.0\.state/);
  });

  it("refuses runs that do not cover the job, a kind out of range, ids outside the job", () => {
    const short = good();
    const runs = job(short).runs as number[];
    runs[runs.length - 1] = (runs[runs.length - 1] as number) - 1;
    fails(short, /local-jobs\.json: jobs\.j000\.runs: cover 9999 tasks, the job has 10000/);
    const long = good();
    (job(long).runs as number[])[1] = N + 1;
    fails(long, /local-jobs\.json: jobs\.j000\.runs\[1\]: a run of 10001 tasks from task 0 does not fit the job's 10000 tasks/);
    const kind = good();
    (job(kind).runs as number[])[0] = 40;
    fails(kind, /local-jobs\.json: jobs\.j000\.runs\[0\]: kind 40 is not one of the \d kinds/);
    const odd = good();
    (job(odd).runs as number[]).push(1);
    fails(odd, /jobs\.j000\.runs: not pairs of kind and count/);
    const ids = good();
    job(ids).ids = [N - 1, 2, 5];
    fails(ids, /local-jobs\.json: jobs\.j000\.ids\[0\]: 2 tasks from task 9999 do not fit the job's 10000 tasks/);
    const zero = good();
    job(zero).ids = [0, 1, 0];
    fails(zero, /jobs\.j000\.ids\[2\]: job id 0 is out of range/);
    const twice = good();
    job(twice).kinds = [...(job(twice).kinds as unknown[]), (job(twice).kinds as unknown[])[0]];
    fails(twice, /jobs\.j000\.kinds: the same state is listed twice/);
  });
});
