import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { groupJob, mapJob, plainJob, step } from "./fixtures.js";
import {
  allStates,
  arrayEnv,
  makeRun,
  processAlive,
  readOut,
  readState,
  removeRun,
  runScript,
  startScript,
  stateExists,
  waitFor,
  writeJob,
} from "./harness.js";
import type { Run } from "./harness.js";

let runs: Run[] = [];
function newRun(options: Parameters<typeof makeRun>[0] = {}): Run {
  const run = makeRun(options);
  runs.push(run);
  return run;
}
afterEach(() => {
  for (const r of runs) removeRun(r);
  runs = [];
});

describe("the job wrapper", () => {
  it("records a successful step with timings, SLURM ids, host, attempt and its logs", async () => {
    const run = newRun();
    const script = writeJob(run, plainJob([step("hello", 'echo "hi from $HPCPIPE_STEP in $PWD"; echo oops >&2')]));
    const res = await runScript(run, script);
    expect(res.code).toBe(0);
    const s = readState(run, "hello");
    expect(s).toMatchObject({
      success: true,
      failure: null,
      error: null,
      key: "hello",
      signature: "0123456789ab",
      provides: [],
      outputs: { published: {}, files: [] },
      meta: { exit_code: 0, reason: null },
      exit_code: 0,
      attempt: 1,
      slurm: { job_id: "4242", task: 0 },
    });
    expect(s.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(Math.abs(Date.parse(s.timestamp) - Date.now())).toBeLessThan(60_000);
    expect(s.duration_s).toBeGreaterThanOrEqual(0);
    expect(s.host).toBeTruthy();
    expect(readFileSync(join(run.runDir, "logs", "hello.out"), "utf8")).toBe(`hi from hello in ${join(run.runDir, "work")}\n`);
    expect(readFileSync(join(run.runDir, "logs", "hello.err"), "utf8")).toBe("oops\n");
    expect(allStates(run)).toEqual({ keys: ["hello"], leftovers: [] });
  });

  it("records a non-zero exit as STEP_FAILED with the exit code and stops the rest of the body", async () => {
    const run = newRun();
    const script = writeJob(run, plainJob([step("boom", "exit 3"), step("after", "touch ran")]));
    const res = await runScript(run, script);
    expect(res.code).toBe(1);
    expect(readState(run, "boom")).toMatchObject({
      success: false,
      failure: "STEP_FAILED",
      error: "command exited with status 3",
      meta: { exit_code: 3 },
      exit_code: 3,
    });
    expect(stateExists(run, "after")).toBe(false);
    expect(existsSync(join(run.runDir, "work", "ran"))).toBe(false);
  });

  it("fails a step whose required key has no value with MISSING_REQUIREMENT without running its command", async () => {
    const run = newRun({ context: { present: "yes" } });
    const script = writeJob(
      run,
      plainJob([
        step("needy", "touch ran", {
          requires: ["present", "absent", "gone"],
          needs: [
            { key: "present", from: "context" },
            { key: "absent", from: "context" },
            { key: "gone", from: "upstream" },
          ],
          continue_on_error: true,
        }),
        step("next", "touch next-ran"),
      ]),
    );
    const res = await runScript(run, script, { absent: "set in the environment, but not by the context" });
    expect(readState(run, "needy")).toMatchObject({
      success: false,
      failure: "MISSING_REQUIREMENT",
      error: "missing requirements 'absent', 'gone'",
      meta: { missing: ["absent", "gone"] },
      exit_code: null,
    });
    expect(existsSync(join(run.runDir, "work", "ran"))).toBe(false);
    // Like the in-process core: a missing requirement stops the body even with continue_on_error.
    expect(existsSync(join(run.runDir, "work", "next-ran"))).toBe(false);
    expect(res.code).toBe(1);
  });

  it("fails validation when a declared output file is missing or a provide was not published", async () => {
    const run = newRun();
    const script = writeJob(
      run,
      plainJob([
        step("maker", "touch made.txt", { outputs: ["made.txt", "missing.txt", "../out/also-missing"], provides: ["result", "other"] }),
      ]),
    );
    const res = await runScript(run, script);
    expect(res.code).toBe(1);
    const s = readState(run, "maker");
    expect(s.failure).toBe("STEP_FAILED");
    expect(s.error).toBe(
      "validation failed: missing output file 'missing.txt'; missing output file '../out/also-missing'; did not provide 'result', 'other'",
    );
    expect(s.outputs).toEqual({ published: {}, files: ["made.txt"] });
    expect(s.exit_code).toBe(0);
  });

  it("hands a later step the value an earlier step published, the last line for a key winning", async () => {
    const run = newRun({ context: { greeting: "from context" } });
    const script = writeJob(
      run,
      plainJob([
        step("prep", 'printf "answer=41\\nanswer=42 = the answer\\nextra=x\\n" >> "$HPCPIPE_PUBLISH"', { provides: ["answer"] }),
        step("use", 'printf "%s|%s" "$answer" "$greeting" > "$HPCPIPE_OUT_DIR/seen"', {
          requires: ["answer", "greeting"],
          needs: [
            { key: "answer", from: "prep" },
            { key: "greeting", from: "context" },
          ],
        }),
      ]),
    );
    const res = await runScript(run, script);
    expect(res.code).toBe(0);
    expect(readOut(run, "seen")).toBe("42 = the answer|from context");
    expect(readState(run, "prep")).toMatchObject({
      success: true,
      provides: ["answer"],
      outputs: { published: { answer: "42 = the answer", extra: "x" }, files: [] },
    });
    expect(readFileSync(join(run.runDir, "ctx", "prep.pub"), "utf8")).toContain("answer=42 = the answer\n");
  });

  it("refuses published lines whose key is not a usable variable name", async () => {
    const run = newRun();
    const script = writeJob(run, plainJob([step("pub", 'echo "PATH=/evil" >> "$HPCPIPE_PUBLISH"; echo "ok=1" >> "$HPCPIPE_PUBLISH"')]));
    await runScript(run, script);
    const s = readState(run, "pub");
    expect(s.failure).toBe("STEP_FAILED");
    expect(s.error).toMatch(/^validation failed: line 1 of the published values/);
  });

  it("lets the body go on after a step with continue_on_error fails, and the job still succeeds", async () => {
    const run = newRun();
    const script = writeJob(run, plainJob([step("flaky", "exit 7", { continue_on_error: true }), step("after", "touch ran")]));
    const res = await runScript(run, script);
    expect(res.code).toBe(0);
    expect(readState(run, "flaky")).toMatchObject({ success: false, exit_code: 7 });
    expect(readState(run, "after").success).toBe(true);
  });

  it("runs group task i's body, writes a unit state, and exits 0 after a failure only when the child may fail", async () => {
    const run = newRun();
    const job = groupJob([
      { unitKey: null, steps: [step("g.a", "echo a > a")] },
      { unitKey: "g.b", unitSignature: "bbbbbbbbbbbb", continue_on_error: true, steps: [step("g.b.one", "exit 2"), step("g.b.two", "touch two")] },
      { unitKey: "g.c", steps: [step("g.c.one", "exit 2")] },
      { unitKey: "g.d", steps: [step("g.d.one", "exit 2", { continue_on_error: true }), step("g.d.two", "true")] },
    ]);
    const script = writeJob(run, job);
    expect((await runScript(run, script, arrayEnv(0))).code).toBe(0);
    expect(readState(run, "g.a")).toMatchObject({ success: true, slurm: { array_job_id: "4200", array_task_id: "0", job_id: "4300", task: 0 } });
    expect(stateExists(run, "g.b")).toBe(false);

    expect((await runScript(run, script, arrayEnv(1))).code).toBe(0);
    expect(readState(run, "g.b")).toMatchObject({
      success: false,
      failure: "STEP_FAILED",
      error: "g.b.one: command exited with status 2",
      meta: { failed_step: "g.b.one" },
      signature: "bbbbbbbbbbbb",
    });
    expect(stateExists(run, "g.b.two")).toBe(false);

    expect((await runScript(run, script, arrayEnv(2))).code).toBe(1);
    expect(readState(run, "g.c")).toMatchObject({ success: false, meta: { failed_step: "g.c.one" } });

    expect((await runScript(run, script, arrayEnv(3))).code).toBe(0);
    expect(readState(run, "g.d")).toMatchObject({ success: true, meta: { failed_allowed: ["g.d.one"] } });

    const bad = await runScript(run, script, arrayEnv(9));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("no body for task 9");
    expect(allStates(run).leftovers).toEqual([]);
  });

  it("runs a group chunk's logical task whether the job carries every body or only its chunk's", async () => {
    const run = newRun();
    const bodies = [0, 1, 2, 3, 4].map((i) => ({ unitKey: null, steps: [step(`g.c${i}`, `echo ${i} > "$HPCPIPE_OUT_DIR/ran"`)] }));
    const array = { count: 2, offset: 3, throttle: null, chunk: 1, chunks: 2, total: 5, indices: null };
    const all = writeJob(run, groupJob(bodies, { array }));
    const text = readFileSync(all, "utf8");
    expect(text).toContain("\n3)\n");
    expect(text).not.toContain("\n2)\n");
    expect((await runScript(run, all, arrayEnv(1))).code).toBe(0);
    expect(readOut(run, "ran")).toBe("4\n");
    const own = writeJob(run, groupJob(bodies.slice(3), { array, id: "j005", scriptPath: "scripts/j005.sbatch" }));
    expect((await runScript(run, own, arrayEnv(0))).code).toBe(0);
    expect(readOut(run, "ran")).toBe("3\n");
    expect(readState(run, "g.c3").slurm?.task).toBe(3);
  });

  it("runs a map chunk's task on the item at SLURM_ARRAY_TASK_ID plus the chunk offset", async () => {
    const items = ["m0.glb", "m1.glb", "m2.glb", "m3.glb", "m 4 ü.glb"];
    const run = newRun({ items: { thumbs: items }, context: { size: "256" } });
    const job = mapJob(
      "thumbs",
      "model_path",
      [
        step("thumbs.{i}.prep", 'echo "thumb_in=$model_path@$HPCPIPE_ITEM#$HPCPIPE_TASK" >> "$HPCPIPE_PUBLISH"', {
          requires: ["model_path"],
          provides: ["thumb_in"],
          needs: [{ key: "model_path", from: "context" }],
        }),
        step("thumbs.{i}.render", 'printf "%s %s" "$thumb_in" "$size" > "$HPCPIPE_OUT_DIR/$HPCPIPE_TASK.txt"', {
          requires: ["thumb_in", "size"],
          needs: [
            { key: "thumb_in", from: "thumbs.{i}.prep" },
            { key: "size", from: "context" },
          ],
        }),
      ],
      { count: 2, offset: 3, throttle: 1, total: 5 },
    );
    const script = writeJob(run, job);
    expect(readFileSync(script, "utf8")).toContain("#SBATCH --array=0-1%1\n");
    const res = await runScript(run, script, arrayEnv(1));
    expect(res.code).toBe(0);
    expect(readOut(run, "4.txt")).toBe("m 4 ü.glb@m 4 ü.glb#4 256");
    expect(readState(run, "thumbs.4.prep")).toMatchObject({ success: true, meta: { item: "m 4 ü.glb" }, slurm: { task: 4 } });
    expect(readState(run, "thumbs.4")).toMatchObject({ success: true, signature: "fedcba987654", meta: { item: "m 4 ü.glb" } });
    expect(allStates(run).keys).toEqual(["thumbs.4", "thumbs.4.prep", "thumbs.4.render"]);
  });

  it("lets a map task exit 0 after its item failed only with continue_on_item_error", async () => {
    const run = newRun({ items: { m: ["a", "b"] } });
    const failing = [step("m.{i}.s", "exit 5")];
    const tolerant = writeJob(run, mapJob("m", "it", failing, { count: 2 }, { continueOnItemError: true }));
    expect((await runScript(run, tolerant, arrayEnv(0))).code).toBe(0);
    expect(readState(run, "m.0")).toMatchObject({ success: false, meta: { failed_step: "m.0.s", item: "a" } });
    const strict = writeJob(run, mapJob("m", "it", failing, { count: 2 }, { id: "j009", scriptPath: "scripts/j009.sbatch" }));
    expect((await runScript(run, strict, arrayEnv(1))).code).toBe(1);
    expect(readState(run, "m.1").success).toBe(false);
  });

  it("takes the attempt from HPCPIPE_ATTEMPT, else from SLURM_RESTART_COUNT", async () => {
    const run = newRun();
    // Not idempotent: a second attempt of an idempotent step that succeeded would be skipped.
    const script = writeJob(run, plainJob([step("s", 'echo "$HPCPIPE_ATTEMPT" > attempt', { idempotent: false })]));
    await runScript(run, script, { HPCPIPE_ATTEMPT: "3" });
    expect(readState(run, "s").attempt).toBe(3);
    await runScript(run, script, { SLURM_RESTART_COUNT: "1" });
    expect(readState(run, "s").attempt).toBe(2);
    expect(readFileSync(join(run.runDir, "work", "attempt"), "utf8")).toBe("2\n");
  });

  for (const [signal, reason, code] of [
    ["SIGTERM", "TERMINATED", 143],
    ["SIGUSR1", "TIMEOUT", 138],
    ["SIGINT", "SIGNAL", 130],
  ] as const) {
    it(`leaves a complete failed state with reason ${reason} and no temp file when the job gets ${signal} during a step`, async () => {
      const run = newRun({ items: { m: ["only"] } });
      const job = mapJob("m", "it", [step("m.{i}.first", "true"), step("m.{i}.slow", 'sleep 30 & echo $! > sleep.pid; touch started; wait')], { count: 1 });
      const script = writeJob(run, job);
      const { child, done } = startScript(run, script, arrayEnv(0));
      await waitFor(() => existsSync(join(run.runDir, "work", "started")));
      const sleepPid = Number(readFileSync(join(run.runDir, "work", "sleep.pid"), "utf8"));
      child.kill(signal);
      const res = await done;
      expect(res.code).toBe(code);
      expect(readState(run, "m.0.slow")).toMatchObject({
        success: false,
        failure: "STEP_FAILED",
        meta: { reason, exit_code: null, item: "only" },
        exit_code: null,
      });
      expect(readState(run, "m.0.slow").error).toContain(`killed by ${signal}`);
      expect(readState(run, "m.0")).toMatchObject({ success: false, meta: { reason, failed_step: "m.0.slow" } });
      expect(readState(run, "m.0.first").success).toBe(true);
      expect(allStates(run).leftovers).toEqual([]);
      // The whole process group of the step was stopped, not only its bash.
      await waitFor(() => !processAlive(sleepPid), 5_000);
    });
  }

  it("a cancel that kills the command before the wrapper's own trap runs is still recorded as the signal, not as the command's exit status", async () => {
    // SLURM signals every process of a cancelled job in no set order. Here the command dies of SIGTERM
    // first, and the wrapper (the command's parent) gets its own SIGTERM 150 ms later.
    const run = newRun({ items: { m: ["only"] } });
    const cmd = 'w=$PPID; touch started; (sleep 0.15; kill -TERM "$w") & kill -TERM $$';
    const job = mapJob("m", "it", [step("m.{i}.first", "true"), step("m.{i}.slow", cmd)], { count: 1 });
    const script = writeJob(run, job);
    const { done } = startScript(run, script, arrayEnv(0));
    const res = await done;
    expect(res.code).toBe(143);
    const slow = readState(run, "m.0.slow");
    expect(slow).toMatchObject({ success: false, failure: "STEP_FAILED", meta: { reason: "TERMINATED", exit_code: null } });
    expect(slow.error).toContain("killed by SIGTERM");
    expect(readState(run, "m.0")).toMatchObject({ success: false, meta: { reason: "TERMINATED", failed_step: "m.0.slow" } });
    expect(allStates(run).leftovers).toEqual([]);
  });

  it("a command that exits 143 on its own, with no signal to the wrapper, is a failure with that status", async () => {
    const run = newRun();
    const script = writeJob(run, plainJob([step("self", "kill -TERM $$"), step("after", "touch ran")]));
    const res = await runScript(run, script);
    expect(res.code).toBe(1);
    expect(readState(run, "self")).toMatchObject({ success: false, failure: "STEP_FAILED", error: "command exited with status 143", exit_code: 143 });
    expect(existsSync(join(run.runDir, "work", "ran"))).toBe(false);
  });

  it("ignores context records whose key is not a usable variable name", async () => {
    const run = newRun();
    writeFileSync(join(run.runDir, "context.env0"), "good=1\0PATH=/nowhere\0bad key=2\0a[$(touch pwned)]=3\0last=tail");
    const script = writeJob(run, plainJob([step("s", 'printf "%s %s" "$good" "$last" > seen')]));
    const res = await runScript(run, script);
    expect(res.code).toBe(0);
    expect(readFileSync(join(run.runDir, "work", "seen"), "utf8")).toBe("1 tail");
    expect(res.stderr).toContain("ignoring a context record");
    expect(existsSync(join(run.runDir, "work", "pwned"))).toBe(false);
  });

  it("gives the command each context value and need under its own name, even a name the wrapper uses inside", async () => {
    // Names of variables the wrapper used while loading the context and starting a step.
    const names = ["cmd", "key", "pub", "sig", "k", "i", "rec", "file", "from", "template", "offset", "id"];
    const run = newRun({ context: Object.fromEntries(names.map((n) => [n, `ctx-${n}`])) });
    const print = names.map((n) => `${n}=\${${n}-unset}`).join(" ");
    const script = writeJob(
      run,
      plainJob([
        step("s", `printf '%s\\n' "own command" "${print}" "$HPCPIPE_STEP" "$HPCPIPE_PUBLISH" > seen`, {
          requires: ["cmd", "key", "pub"],
          needs: ["cmd", "key", "pub"].map((key) => ({ key, from: "context" })),
        }),
      ]),
    );
    const res = await runScript(run, script);
    expect(res.code).toBe(0);
    expect(readFileSync(join(run.runDir, "work", "seen"), "utf8")).toBe(
      ["own command", names.map((n) => `${n}=ctx-${n}`).join(" "), "s", join(run.runDir, "ctx", "s.pub"), ""].join("\n"),
    );
    expect(readState(run, "s")).toMatchObject({ success: true, key: "s" });
  });
});

describe("resuming in the same run directory", () => {
  it("skips an idempotent step whose state records a success of the same signature, and reruns the rest", async () => {
    const run = newRun();
    const counter = 'n=$(cat "$HPCPIPE_RUN_DIR/out/count-$HPCPIPE_STEP" 2>/dev/null || echo 0); echo $((n + 1)) > "$HPCPIPE_RUN_DIR/out/count-$HPCPIPE_STEP"';
    const job = plainJob([
      step("make", `${counter}; echo "v=1" >> "$HPCPIPE_PUBLISH"`, { provides: ["v"], idempotent: true }),
      step("again", counter, { idempotent: false }),
      step("changed", counter, { idempotent: true }),
    ]);
    expect((await runScript(run, writeJob(run, job))).code).toBe(0);
    // Second attempt: same definitions, except `changed` now has another signature.
    const second = plainJob([
      step("make", `${counter}; echo "v=1" >> "$HPCPIPE_PUBLISH"`, { provides: ["v"], idempotent: true }),
      step("again", counter, { idempotent: false }),
      step("changed", counter, { idempotent: true, signature: "ffffffffffff" }),
    ]);
    expect((await runScript(run, writeJob(run, second))).code).toBe(0);
    expect(readOut(run, "count-make").trim()).toBe("1");
    expect(readOut(run, "count-again").trim()).toBe("2");
    expect(readOut(run, "count-changed").trim()).toBe("2");
    expect(readState(run, "changed").signature).toBe("ffffffffffff");
  });

  it("reruns a step that succeeded when a value it must provide is gone from its published file", async () => {
    const run = newRun();
    const counter = 'n=$(cat "$HPCPIPE_RUN_DIR/out/count" 2>/dev/null || echo 0); echo $((n + 1)) > "$HPCPIPE_RUN_DIR/out/count"';
    const job = plainJob([step("make", `${counter}; echo "v=1" >> "$HPCPIPE_PUBLISH"`, { provides: ["v"], idempotent: true })]);
    expect((await runScript(run, writeJob(run, job))).code).toBe(0);
    writeFileSync(join(run.runDir, "ctx", "make.pub"), "");
    expect((await runScript(run, writeJob(run, job))).code).toBe(0);
    expect(readOut(run, "count").trim()).toBe("2");
  });

  it("reruns a step whose previous attempt failed", async () => {
    const run = newRun();
    const flaky = 'if [ -e "$HPCPIPE_RUN_DIR/out/ok" ]; then exit 0; fi; touch "$HPCPIPE_RUN_DIR/out/ok"; exit 3';
    const job = plainJob([step("flaky", flaky, { idempotent: true })]);
    expect((await runScript(run, writeJob(run, job))).code).not.toBe(0);
    expect(readState(run, "flaky").success).toBe(false);
    expect((await runScript(run, writeJob(run, job))).code).toBe(0);
    expect(readState(run, "flaky").success).toBe(true);
    expect(existsSync(join(run.runDir, "out", "ok"))).toBe(true);
  });
});
