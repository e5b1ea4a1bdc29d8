import { describe, expect, it } from "vitest";
import {
  AccountingDisabledError,
  AccountingUnavailableError,
  SchedulerError,
  SlurmScheduler,
  sacctRunsArgvOf,
  type CommandExecutor,
} from "../../src/slurm/index.js";
import { queryName } from "../support/sacct-filter.js";
import { fixture, idsOf, jobOf, replay } from "./fixtures.js";

/** The squeue argv hpcpipe sends now: the fixture's, captured with -r, without it (see commands.test.ts). */
const asSent = (argv: readonly string[]): string[] => argv.filter((a) => a !== "-r");

describe("SlurmScheduler.status", () => {
  it("makes exactly one squeue query when squeue knows every id", async () => {
    const squeue = fixture("squeue-all");
    const fake = replay(squeue);
    const scheduler = new SlurmScheduler(fake.execute);

    const status = await scheduler.status(idsOf(squeue));

    expect(scheduler.queries).toBe(1);
    expect(fake.calls).toEqual([asSent(squeue.argv)]);
    expect(status.get(jobOf("ok"))?.map((record) => record.state)).toEqual(["COMPLETED"]);
    expect(status.get(jobOf("fail"))?.[0]).toMatchObject({ state: "FAILED", reason: "NonZeroExitCode" });
    expect(status.get(jobOf("depkill"))?.[0]).toMatchObject({ state: "CANCELLED", reason: "DependencyNeverSatisfied" });
    expect(status.get(jobOf("array4"))).toHaveLength(4);
    expect(status.get(jobOf("throttled"))).toHaveLength(10);
  });

  it("returns the ids in the order asked, one entry per id", async () => {
    const squeue = fixture("squeue-all");
    const ids = idsOf(squeue).reverse();
    const status = await new SlurmScheduler(replay(squeue).execute).status(ids);
    expect([...status.keys()]).toEqual(ids);
  });

  it("makes two queries when some ids left squeue: one squeue, then one sacct for just those", async () => {
    const squeue = fixture("squeue-some-purged");
    const sacct = fixture("sacct-purged");
    const fake = replay(squeue, sacct);
    const scheduler = new SlurmScheduler(fake.execute);

    const status = await scheduler.status(idsOf(squeue));

    expect(scheduler.queries).toBe(2);
    // sacct goes through the cluster-side filter (src/slurm/sacct-runs.ts): the captured argv, inside it.
    expect(fake.calls).toEqual([asSent(squeue.argv), sacctRunsArgvOf(sacct.argv)]);
    expect(status.get(jobOf("ok"))?.[0]?.source).toBe("squeue");
    expect(status.get(jobOf("purged"))?.[0]).toMatchObject({ source: "sacct", jobId: jobOf("purged") });
  });

  it("treats squeue's 'Invalid job id specified' for a single purged id as 'not in squeue' and asks sacct", async () => {
    const fake = replay(fixture("squeue-invalid-id"), fixture("sacct-purged"));
    const scheduler = new SlurmScheduler(fake.execute);

    const status = await scheduler.status([jobOf("purged")]);

    expect(scheduler.queries).toBe(2);
    expect(status.get(jobOf("purged"))?.[0]?.source).toBe("sacct");
  });

  it("reports ids that neither squeue nor sacct lists as UNKNOWN instead of failing (sacct lag)", async () => {
    const sacct = fixture("sacct-all"); // real answer with fewer rows than ids: it never had 4000000
    const fake = replay(fixture("squeue-unknown-ids"), sacct);
    const status = await new SlurmScheduler(fake.execute).status([jobOf("ok"), "4000000"]);

    expect(fake.calls[1]?.at(-1)).toBe(`${jobOf("ok")},4000000`);
    expect(status.get(jobOf("ok"))?.[0]).toMatchObject({ state: "COMPLETED", source: "sacct" });
    expect(status.get("4000000")).toEqual([expect.objectContaining({ jobId: "4000000", state: "UNKNOWN", source: "none" })]);
  });

  it("keeps only the asked-for jobs from an answer that lists more", async () => {
    const fake = replay(fixture("squeue-unknown-ids"), fixture("sacct-all"));
    const status = await new SlurmScheduler(fake.execute).status([jobOf("fail")]);
    expect([...status.keys()]).toEqual([jobOf("fail")]);
    expect(status.get(jobOf("fail"))?.map((record) => record.jobId)).toEqual([jobOf("fail")]);
  });

  it("uses one scontrol query when accounting is disabled, and skips sacct on later polls", async () => {
    const squeue = fixture("squeue-unknown-ids");
    const fake = replay(squeue, fixture("sacct-accounting-disabled"), fixture("scontrol-all"), squeue, fixture("scontrol-all"));
    const scheduler = new SlurmScheduler(fake.execute);
    const ids = [jobOf("ok"), jobOf("fail")];

    const first = await scheduler.status(ids);
    expect(fake.calls.map(queryName)).toEqual(["squeue", "sacct", "scontrol"]);
    expect(scheduler.accountingDisabled).toBe(true);
    expect(first.get(jobOf("fail"))?.[0]).toMatchObject({ state: "FAILED", exitCode: 3, source: "scontrol" });
    expect(first.get(jobOf("ok"))?.[0]).toMatchObject({ state: "COMPLETED", exitCode: 0 });

    const before = scheduler.queries;
    await scheduler.status(ids);
    expect(scheduler.queries - before).toBe(2);
    expect(fake.calls.slice(3).map((argv) => argv[0])).toEqual(["squeue", "scontrol"]);
  });

  it("goes straight to scontrol when told accounting is off, and reports a purged id as UNKNOWN", async () => {
    const fake = replay(fixture("squeue-invalid-id"), fixture("scontrol-invalid-id"));
    const scheduler = new SlurmScheduler(fake.execute, { accounting: "off" });

    const status = await scheduler.status([jobOf("purged")]);

    expect(fake.calls.map((argv) => argv[0])).toEqual(["squeue", "scontrol"]);
    expect(fake.calls[1]).toEqual(fixture("scontrol-invalid-id").argv);
    expect(status.get(jobOf("purged"))?.[0]?.state).toBe("UNKNOWN");
  });

  it("throws AccountingDisabledError when told accounting is on", async () => {
    const fake = replay(fixture("squeue-unknown-ids"), fixture("sacct-accounting-disabled"));
    await expect(new SlurmScheduler(fake.execute, { accounting: "on" }).status(["4000000"])).rejects.toBeInstanceOf(
      AccountingDisabledError,
    );
  });

  it("throws AccountingUnavailableError when slurmdbd cannot be reached", async () => {
    const fake = replay(fixture("squeue-unknown-ids"), fixture("sacct-dbd-unreachable"));
    await expect(new SlurmScheduler(fake.execute).status(["4000000"])).rejects.toBeInstanceOf(AccountingUnavailableError);
  });

  it("asks sacct for the tasks an array's squeue answer left out (cut short while slurmctld restarts), keeping squeue's live rows", async () => {
    // The real squeue answer for a throttled 10-task array, with its 8 PENDING rows gone, as a
    // squeue answered during a slurmctld restart was seen to do; sacct then lists them (a range row).
    const full = fixture("squeue-throttled-array");
    const cut = { ...full, stdout: full.stdout.split("\n").filter((l) => !l.includes("PENDING")).join("\n") };
    const sacct = fixture("sacct-throttled-array");
    const id = idsOf(full)[0] as string;
    const all = Array.from({ length: 10 }, (_, i) => i);

    const alone = await new SlurmScheduler(replay(cut).execute).status([id]);
    expect(alone.get(id)?.map((r) => r.taskId)).toEqual([1, 0]);

    const fake = replay(cut, sacct);
    const scheduler = new SlurmScheduler(fake.execute);
    const status = await scheduler.status([id], { expect: new Map([[id, all]]) });
    expect(scheduler.queries).toBe(2);
    expect(fake.calls).toEqual([asSent(cut.argv), sacctRunsArgvOf(sacct.argv)]);
    const byTask = new Map(status.get(id)?.map((r) => [r.taskId, r]));
    expect([...byTask.keys()].sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual(all);
    expect(byTask.get(0)).toMatchObject({ state: "RUNNING", source: "squeue" });
    expect(byTask.get(1)).toMatchObject({ state: "RUNNING", source: "squeue" });
    for (let t = 2; t < 10; t++) expect(byTask.get(t), `task ${t}`).toMatchObject({ state: "PENDING", source: "sacct" });
  });

  it("asks nothing more when squeue shows every task still expected", async () => {
    const full = fixture("squeue-throttled-array");
    const id = idsOf(full)[0] as string;
    const scheduler = new SlurmScheduler(replay(full).execute);
    await scheduler.status([id], { expect: new Map([[id, Array.from({ length: 10 }, (_, i) => i)]]) });
    expect(scheduler.queries).toBe(1);
  });

  it("makes no query for an empty id list", async () => {
    const scheduler = new SlurmScheduler(replay().execute);
    expect((await scheduler.status([])).size).toBe(0);
    expect(scheduler.queries).toBe(0);
  });

  it("wraps output it cannot read in a SchedulerError that keeps argv and stdout", async () => {
    const execute: CommandExecutor = async () => ({ code: 0, stdout: "this is not squeue output\n", stderr: "" });
    const error = await new SlurmScheduler(execute).status(["5"]).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(SchedulerError);
    expect(error).toMatchObject({ argv: expect.arrayContaining(["squeue"]), stdout: "this is not squeue output\n" });
  });
});

describe("SlurmScheduler.cancel and submit", () => {
  it("cancels many jobs with one scancel", async () => {
    const fake = replay(fixture("scancel-many"));
    await new SlurmScheduler(fake.execute).cancel(["5", "6", "7"]);
    expect(fake.calls).toEqual([["scancel", "5", "6", "7"]]);
  });

  it("runs nothing to cancel no jobs", async () => {
    const fake = replay();
    await new SlurmScheduler(fake.execute).cancel([]);
    expect(fake.calls).toEqual([]);
  });

  it("returns the job id sbatch printed", async () => {
    const captured = fixture("sbatch-parsable");
    const fake = replay(captured);
    expect(await new SlurmScheduler(fake.execute).submit({ script: "a.sh" })).toBe(captured.stdout.trim());
  });

  it("throws a SchedulerError with sbatch's message when submission fails", async () => {
    const fake = replay(fixture("sbatch-array-too-large"));
    await expect(new SlurmScheduler(fake.execute).submit({ script: "a.sh", array: "0-5000" })).rejects.toThrow(
      /Invalid job array specification/,
    );
  });
});
