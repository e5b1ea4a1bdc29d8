// A run whose every step was restored from the step cache submits no job: its states/ holds only what the
// submitting process uploaded, so the collect that follows reads those (src/app/submit-send.ts) instead of
// fetching them back; any run with a job still reads the cluster.
import { afterEach, describe, expect, it } from "vitest";
import { schedulerOver } from "../../src/app/connect.js";
import { parseFetchedStates } from "../../src/app/collect.js";
import { slurmExecutor } from "../../src/app/slurm-executor.js";
import { FakeTransport, tempRun } from "./fakes.js";
import type { TempRun } from "./fakes.js";

let run: TempRun | undefined;
afterEach(() => {
  run?.cleanup();
  run = undefined;
});

const STATE = { success: true, timestamp: "2026-01-01T00:00:01.000Z", duration_s: 0, provides: [], outputs: {}, error: null, meta: {}, signature: "abc", failure: null, key: "p.a" };
const sent = parseFetchedStates(new Map([["states/p.a.json", Buffer.from(`${JSON.stringify(STATE)}\n`)]]));

describe("the states a fully restored run uploaded", () => {
  it("are what its collect reads: no state file is fetched from the cluster", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const fake = new FakeTransport();
    const record = { ...run.record, jobs: {} };
    const executor = slurmExecutor({ store: run.store, record, plan: run.plan, config: { name: "c" } as never, transport: fake, scheduler: schedulerOver(fake), sentStates: sent });
    const states = await executor.readStates();
    expect([...states.states.keys()]).toEqual(["p.a"]);
    expect(fake.gets).toEqual([]);
  });

  it("are ignored for a run that submitted jobs: its states are read from the cluster", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const fake = new FakeTransport();
    const executor = slurmExecutor({ store: run.store, record: run.record, plan: run.plan, config: { name: "c" } as never, transport: fake, scheduler: schedulerOver(fake), sentStates: sent });
    await executor.readStates();
    expect(fake.gets).toHaveLength(1);
  });
});
