// Retries on the cluster at compile time: the spec's fields, the retry controller job, its script.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { templateRenderer } from "../../src/app/renderer.js";
import { CompileError } from "../../src/compiler/errors.js";
import { pipelineFromSpecObject } from "../../src/spec/load.js";
import { specErrorOf, HEAD, loadText } from "../spec/helpers.js";
import { shellcheckAvailable } from "../render/harness.js";
import { compileTree as compileWith, structureRenderer, target } from "./helpers.js";

const compileTree = (...args: Parameters<typeof compileWith>) => compileWith(args[0], { renderer: { ...structureRenderer, retryLib: () => "# retry\n" }, ...args[1] });

const MAP = `${HEAD}  - step: prep\n    run: echo p\n  - map: m\n    items: [a, b]\n    RETRY\n    steps:\n      - step: w\n        resources: { time: "10:00", mem: 1G }\n        run: echo w\n  - step: after\n    run: echo a\n`;
const withRetry = (fields: string): string => MAP.replace("RETRY", fields.split("\n").join("\n    "));

describe("the spec's retry fields are validated, naming the file and the field", () => {
  const refused = (fields: string, path: string, expected: RegExp): void => {
    const err = specErrorOf(withRetry(fields));
    expect(err.file).toMatch(/spec\.yaml$/);
    expect(err.path).toBe(path);
    expect(err.expected).toMatch(expected);
  };
  it("refuses retries above 10 or below 0", () => {
    refused("retries: 11", "steps[1].retries", /10/);
    refused("retries: -1", "steps[1].retries", /0/);
  });
  it("refuses unknown retry_on names and exit codes outside 1-255", () => {
    refused("retries: 2\nretry_on: [FOO]", "steps[1].retry_on[0]", /exit code 1-255 or one of NODE_FAIL, TIMEOUT, OUT_OF_MEMORY, PREEMPTED/);
    refused("retries: 2\nretry_on: [0]", "steps[1].retry_on[0]", /exit code 1-255/);
    refused("retries: 2\nretry_on: [256]", "steps[1].retry_on[0]", /exit code 1-255/);
  });
  it("refuses escalation factors that are not x<number> above 1", () => {
    refused("retries: 2\non_timeout: { time: 2 }", "steps[1].on_timeout.time", /"x2"/);
    refused("retries: 2\non_oom: { mem: x1 }", "steps[1].on_oom.mem", /above 1/);
    refused("retries: 2\non_oom: { mem: x100 }", "steps[1].on_oom.mem", /at most x16/);
  });
  it("refuses retry_on and escalations without retries", () => {
    refused("retry_on: [3]", "steps[1].retry_on", /add retries/);
  });
  it("accepts exit codes, names and factors", () => {
    const loaded = loadText(withRetry('retries: 3\nretry_on: [3, "4", TIMEOUT, NODE_FAIL]\non_timeout: { time: x2 }\non_oom: { mem: x1.5 }'));
    const plan = compileTree(loaded.pipeline, { target: target({ partitions: { main: { max_time: "30:00", max_mem: "2G" } }, defaults: { partition: "main" } }) });
    const controller = plan.jobs.find((j) => j.retry !== undefined);
    expect(controller?.retry).toMatchObject({ of: "j001", retries: 3, on: "3,4,TIMEOUT,NODE_FAIL", timeFactorPermille: 2000, memFactorPermille: 1500, timeS: 600, memMb: 1024, maxTimeS: 1800, maxMemMb: 2048, partition: "main", isArray: 1 });
  });
});

describe("a step or map with retries gets a retry controller that its dependents wait on", () => {
  it("puts the controller afterany the map and the next step afterok the controller", () => {
    const plan = compileTree(loadText(withRetry("retries: 2")).pipeline);
    expect(plan.jobs.map((j) => [j.id, j.dependencies.map((d) => `${d.type}:${d.job}`).join(" ")])).toEqual([
      ["j000", ""],
      ["j001", "afterok:j000"],
      ["j002", "afterany:j001"],
      ["j003", "afterok:j002"],
    ]);
    expect(plan.jobs[2]?.steps).toEqual([]);
    expect(plan.files["scripts/retry.sh"]).toBe("# retry\n");
  });

  it("compiles a pipeline without retries with no controller and no scripts/retry.sh", () => {
    const plan = compileTree(loadText(MAP.replace("RETRY", "throttle: 2")).pipeline, { renderer: templateRenderer() });
    expect(plan.jobs.some((j) => j.retry !== undefined)).toBe(false);
    expect(Object.keys(plan.files)).not.toContain("scripts/retry.sh");
  });

  it("gives the controller 5 minutes, or less when the partition allows less", () => {
    const root = loadText(withRetry("retries: 2")).pipeline;
    const time = (maxTime: string): string | undefined =>
      compileTree(root, { target: target({ partitions: { main: { max_time: maxTime } }, defaults: { partition: "main" } }) }).jobs.find((j) => j.retry !== undefined)?.resources.time;
    expect(time("1:00:00")).toBe("00:05:00");
    expect(time("3:00")).toBe("00:03:00");
  });

  it("never fuses a step with retries into its neighbours", () => {
    const yaml = `${HEAD}  - step: a\n    run: echo a\n  - step: b\n    run: echo b\n    retries: 1\n  - step: c\n    run: echo c\n`;
    const plan = compileTree(loadText(yaml).pipeline);
    expect(plan.jobs.map((j) => j.steps.join("+") || `retry of ${j.retry?.of ?? "?"}`)).toEqual(["t.a", "t.b", "retry of j001", "t.c"]);
  });

  it("refuses retries where no controller can run (the local executor), naming the step", () => {
    const yaml = `${HEAD}  - step: a\n    run: echo a\n    retries: 1\n`;
    expect(() => compileTree(loadText(yaml).pipeline, { target: target({ retriesAllowed: false }) })).toThrow(/t\.a: retries run on a SLURM cluster.*local executor, which does not retry/);
  });

  it("refuses retries on a step inside a map or a parallel group, naming the step", () => {
    const inMap = `${HEAD}  - map: m\n    items: [a]\n    steps:\n      - step: w\n        run: echo\n        retries: 1\n`;
    expect(() => compileTree(loadText(inMap).pipeline)).toThrow(/t\.m\.\{i\}\.w: retries inside map t\.m go on the map itself/);
    const inGroup = `${HEAD}  - group: g\n    parallel: true\n    steps:\n      - step: w\n        run: echo\n        retries: 1\n      - step: v\n        run: echo\n`;
    expect(() => compileTree(loadText(inGroup).pipeline)).toThrow(CompileError);
  });

  it("keeps the controller with its job on a resume, and drops it when the job is left out", () => {
    const root = pipelineFromSpecObject({ name: "t", steps: [{ step: "a", run: "echo a", retries: 1 }, { step: "b", run: "echo b" }] }, "spec.yaml").pipeline;
    const kept = compileTree(root, { done: new Set(["t.b"]) });
    expect(kept.jobs.map((j) => j.retry?.of ?? j.steps.join())).toEqual(["t.a", "j000"]);
    const dropped = compileTree(root, { done: new Set(["t.a"]) });
    expect(dropped.jobs.map((j) => [j.steps.join(), j.dependencies.length])).toEqual([["t.b", 0]]);
  });
});

describe("the controller's script", () => {
  it("is rendered from retry.hbs with every value quoted, submitted afterany with the watched job's id, and is shellcheck-clean", () => {
    const plan = compileTree(loadText(withRetry("retries: 2\nretry_on: [3]")).pipeline, { renderer: templateRenderer() });
    const script = plan.files["scripts/j002.sbatch"] ?? "";
    expect(script).toContain("source \"$HPCPIPE_RUN_DIR/scripts/retry.sh\"");
    expect(script).toMatch(/--job j001 \\\n/);
    expect(plan.files["scripts/retry.sh"]).toContain("hp_retry_control()");
    expect(plan.files["scripts/submit.sh"]).toContain("submit_controller j002 scripts/j002.sbatch j001\n");
    expect(plan.files["scripts/submit.sh"]).toContain("submit_job j003 scripts/j003.sbatch afterok:j002\n");
    if (!shellcheckAvailable) return;
    const dir = mkdtempSync(join(tmpdir(), "hpcpipe-retry-sc-"));
    try {
      for (const name of ["j002.sbatch", "submit.sh", "retry.sh"]) writeFileSync(join(dir, name), plan.files[`scripts/${name}`] ?? "");
      execFileSync("shellcheck", ["-x", join(dir, "j002.sbatch"), join(dir, "submit.sh"), join(dir, "retry.sh")]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
