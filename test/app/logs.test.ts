import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { withRun } from "../../src/app/connect.js";
import { followLog, readLog, resolveLogTarget } from "../../src/app/logs.js";
import { pollPolicy } from "../../src/slurm/index.js";
import { FakeTransport, ok, smallArrayConfig, squeueJob, tempRun } from "./fakes.js";
import type { TempRun } from "./fakes.js";

let run: TempRun | undefined;
afterEach(() => run?.cleanup());

describe("finding a step's log", () => {
  it("accepts a full key, a unique end of one, and needs --task for a map's steps", async () => {
    const cfg = mkdtempSync(path.join(tmpdir(), "hpcpipe-cfg-"));
    run = await tempRun("examples/specs/batch-map.yaml", { cluster: smallArrayConfig(cfg, 5) });
    rmSync(cfg, { recursive: true, force: true });
    const plan = run.plan;
    expect(resolveLogTarget(plan, "batch_map.setup").path).toBe("logs/batch_map.setup.out");
    expect(resolveLogTarget(plan, "setup", undefined, "stderr").path).toBe("logs/batch_map.setup.err");
    const item = resolveLogTarget(plan, "check", 7);
    expect(item.key).toBe("batch_map.check_all.7.check");
    expect(item.slot.job.id).toBe("j002"); // the second chunk: tasks 5-9
    expect(item.slot.taskId).toBe(2);
    expect(resolveLogTarget(plan, "check_all.check", 11).slot.job.id).toBe("j003");
    expect(resolveLogTarget(plan, "batch_map.check_all.3.check").slot.task).toBe(3);
    expect(resolveLogTarget(plan, "check_all", 4).key).toBe("batch_map.check_all.4.check");
    expect(() => resolveLogTarget(plan, "check")).toThrow(/runs once per item: give --task 0\.\.11/);
    expect(() => resolveLogTarget(plan, "check", 12)).toThrow(/has no task 12/);
    expect(() => resolveLogTarget(plan, "nope")).toThrow(/no step "nope" in the plan \(steps: batch_map\.setup, /);
  });

  it("finds a group child by key or by the group and --task, and reports ambiguity", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    expect(resolveLogTarget(run.plan, "front").key).toBe("thumbnail_shape.renders.front");
    expect(resolveLogTarget(run.plan, "renders", 2).key).toBe("thumbnail_shape.renders.top");
    expect(resolveLogTarget(run.plan, "renders.iso").slot.taskId).toBe(3);
    expect(() => resolveLogTarget(run!.plan, "renders")).toThrow(/no step "renders"/);
  });
});

describe("reading and following a log", () => {
  it("reads the whole log in one round trip, and null when there is none yet", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const fake = new FakeTransport();
    fake.files.set("logs/thumbnail_shape.prep.out", Buffer.from("hello\n"));
    fake.handler = (argv) => {
      const found = fake.files.get(String(argv[10]));
      const file = Buffer.isBuffer(found) ? found : undefined;
      return ok(`${String(argv[4])}\n${file ? `hpcpipe-report ok ${file.length}\n${file.toString("base64")}\n` : "hpcpipe-report absent\n"}`);
    };
    await withRun(run.record.run_id, { store: run.store, connect: async () => fake }, async (ctx) => {
      expect((await readLog(ctx, resolveLogTarget(ctx.plan, "prep")))?.toString()).toBe("hello\n");
      expect(await readLog(ctx, resolveLogTarget(ctx.plan, "prep", undefined, "stderr"))).toBeNull();
    });
    expect(fake.execs.filter((e) => e.argv[0] === "bash").map((e) => e.argv[10])).toEqual(["logs/thumbnail_shape.prep.out", "logs/thumbnail_shape.prep.err"]);
  });

  it("follows new bytes from the last offset, restarts when the file was rewritten, and stops after the job ended and the rest was read", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const fake = new FakeTransport();
    let content = Buffer.from("");
    const offsets: number[] = [];
    // The transport's one remote read (src/transport/read-files.ts): marker, dir, caps, then "from:<offset>" and the path.
    fake.handler = (argv) => {
      const offset = Number(String(argv[9]).slice("from:".length));
      offsets.push(offset);
      const marker = String(argv[4]);
      if (content.length === 0) return ok(`${marker}\nhpcpipe-report absent\n`);
      const from = offset > content.length ? 0 : offset;
      return ok(`${marker}\nhpcpipe-report ok ${content.length}${offset > content.length ? " restarted" : ""}\n${content.subarray(from).toString("base64")}\n`);
    };
    fake.squeue.set("100", [squeueJob("100", "RUNNING")]);
    const steps = [
      () => (content = Buffer.from("line 1\n")),
      () => (content = Buffer.from("line 1\nline 2 ✓\n")),
      () => (content = Buffer.from("new\n")), // rewritten (a rerun truncates the log)
      () => {
        content = Buffer.from("new\nlast\n");
        fake.squeue.set("100", [squeueJob("100", "COMPLETED")]);
      },
    ];
    const written: Buffer[] = [];
    const notes: string[] = [];
    const ended = await withRun(run.record.run_id, { store: run.store, connect: async () => fake }, (ctx) =>
      followLog(ctx, resolveLogTarget(ctx.plan, "prep"), {
        write: (d) => written.push(d),
        note: (n) => notes.push(n),
        policy: pollPolicy({ initialMs: 1, maxMs: 1 }),
        sleep: async () => void steps.shift()?.(),
      }),
    );
    expect(Buffer.concat(written).toString()).toBe("line 1\nline 2 ✓\nnew\nlast\n");
    expect(notes.join()).toContain("was rewritten");
    expect(ended).toEqual({ state: "COMPLETED", reason: null });
    expect(offsets[0]).toBe(0);
    const argv = fake.execs.find((e) => e.argv[0] === "bash")?.argv ?? [];
    expect(argv.slice(0, 2)).toEqual(["bash", "-c"]);
    expect([argv[5], argv[10]]).toEqual([run.record.remote_dir, "logs/thumbnail_shape.prep.out"]);
    expect(fake.execs.filter((e) => e.argv[0] === "bash").every((e) => e.opts.retrySafe)).toBe(true);
  });
});
