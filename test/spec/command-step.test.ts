import { existsSync, mkdirSync, readFileSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Pipeline, StepDefinitionError } from "../../src/core/index.js";
import type { Context } from "../../src/core/index.js";
import { CommandStep } from "../../src/spec/command-step.js";
import type { CommandStepOptions } from "../../src/spec/command-step.js";
import { OUTPUT_TAIL_BYTES, parsePublished } from "../../src/spec/run-command.js";
import { tempDir } from "./helpers.js";

let dir: string;
let cleanup: () => void;
beforeEach(() => {
  ({ dir, cleanup } = tempDir("hpcpipe-cmd-test-"));
  dir = realpathSync(dir);
});
afterEach(() => cleanup());

/** Running (not gone, not a zombie waiting for a parent that never reaps it). */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

function cmd(name: string, command: string, options: Partial<CommandStepOptions> = {}): CommandStep {
  return new CommandStep({ ...options, name, command });
}

/** Runs one step under a pipeline named `p` in the temp dir; returns the step's state and the context. */
async function runOne(step: CommandStep, context: Context = {}): Promise<{ state: NonNullable<Context["step_states"]>[string]; context: Context }> {
  await new Pipeline({ name: "p", steps: [step] }).run(context, { workDir: dir });
  const state = context.step_states?.[`p.${step.name}`];
  if (!state) throw new Error("no state");
  return { state, context };
}

describe("CommandStep run in-process", () => {
  it("succeeds with exit code 0 in meta and empty published values", async () => {
    const { state } = await runOne(cmd("ok", "true"));
    expect(state.success).toBe(true);
    expect(state.meta.exit_code).toBe(0);
    expect(state.outputs).toEqual({ published: {}, files: [] });
  });

  it("fails with the exit status when the command exits non-zero, keeping its stderr", async () => {
    const { state } = await runOne(cmd("bad", "echo oops >&2; exit 3"));
    expect(state.success).toBe(false);
    expect(state.failure).toBe("STEP_FAILED");
    expect(state.error).toBe("command exited with status 3");
    expect(state.meta.exit_code).toBe(3);
    expect(state.meta.stderr_tail).toBe("oops\n");
  });

  it("fails with the signal's name when bash itself is killed", async () => {
    const { state } = await runOne(cmd("killed", "kill -KILL $$"));
    expect(state.success).toBe(false);
    expect(state.error).toBe("command killed by signal SIGKILL");
    expect(state.meta).toMatchObject({ exit_code: null, signal: "SIGKILL", reason: "SIGNAL" });
  });

  it("runs in the work directory with the HPCPIPE_* variables of the runtime contract", async () => {
    const step = cmd("env", 'printf "%s|%s|%s|%s|%s|%s" "$PWD" "$HPCPIPE_STEP" "$HPCPIPE_OUT_DIR" "$HPCPIPE_TASK" "$HPCPIPE_ATTEMPT" "${HPCPIPE_ITEM-unset}"');
    const { state } = await runOne(step);
    expect(state.meta.stdout_tail).toBe(`${dir}|p.env|${dir}|0|1|unset`);
  });

  it("exports context values (numbers and booleans as text) and the step's env, but not reserved or non-scalar keys", async () => {
    const step = cmd("ctx", 'printf "%s|%s|%s|%s|%s|%s" "$name" "$count" "$flag" "$MODE" "${obj-unset}" "$PATH"', { env: { MODE: "fast" } });
    const { state } = await runOne(step, { name: "cube", count: 8, flag: true, obj: { a: 1 }, PATH: "/nonexistent" });
    expect(state.meta.stdout_tail).toBe(`cube|8|true|fast|unset|${process.env.PATH ?? ""}`);
  });

  it("lets the step's env override a context value of the same name", async () => {
    const { state } = await runOne(cmd("over", 'printf %s "$mode"', { env: { mode: "from-env" } }), { mode: "from-context" });
    expect(state.meta.stdout_tail).toBe("from-env");
  });

  it("reads nothing from stdin", async () => {
    const { state } = await runOne(cmd("stdin", "cat; echo done"));
    expect(state.meta.stdout_tail).toBe("done\n");
  });

  it("publishes key=value lines to the context and to outputs.published, the last line for a key winning", async () => {
    const step = cmd("pub", 'echo "scene=first" >> "$HPCPIPE_PUBLISH"; echo "scene=out/a=b.blend" >> "$HPCPIPE_PUBLISH"; echo "extra=1" >> "$HPCPIPE_PUBLISH"', {
      provides: ["scene"],
    });
    const { state, context } = await runOne(step);
    expect(state.success).toBe(true);
    expect(context.scene).toBe("out/a=b.blend");
    expect(context.extra).toBe("1");
    expect(state.outputs).toEqual({ published: { scene: "out/a=b.blend", extra: "1" }, files: [] });
  });

  it("hands published values to later steps as environment variables", async () => {
    const context: Context = {};
    const p = new Pipeline({
      name: "p",
      steps: [cmd("a", 'echo "v=hello world" >> "$HPCPIPE_PUBLISH"', { provides: ["v"] }), cmd("b", 'printf %s "$v" > got.txt', { requires: ["v"] })],
    });
    const result = await p.run(context, { workDir: dir });
    expect(result.success).toBe(true);
    expect(readFileSync(join(dir, "got.txt"), "utf8")).toBe("hello world");
  });

  it("fails clearly when a published key is not a valid context key", async () => {
    const { state, context } = await runOne(cmd("badpub", 'echo "a-b=1" >> "$HPCPIPE_PUBLISH"; echo "ok=1" >> "$HPCPIPE_PUBLISH"'));
    expect(state.success).toBe(false);
    expect(state.error).toMatch(/^invalid published value \(\$HPCPIPE_PUBLISH\): line 1: context key "a-b" must be a shell identifier/);
    expect(context.ok).toBeUndefined();
  });

  it("fails clearly when a published line has no '=' or names a reserved key", async () => {
    expect(parsePublished("justtext\n").problems).toEqual(['line 1 is not key=value: "justtext"']);
    expect(parsePublished("PATH=/x\n").problems[0]).toMatch(/reserved/);
    expect(parsePublished("\na=1\n\n").values).toEqual({ a: "1" });
  });

  it("fails validation when a declared provide was not published", async () => {
    const { state } = await runOne(cmd("nopub", "true", { provides: ["scene"] }));
    expect(state.success).toBe(false);
    expect(state.error).toBe("validation failed: did not publish 'scene'");
  });

  it("checks declared outputs relative to the work directory", async () => {
    const { state } = await runOne(cmd("outs", "mkdir -p out && echo x > out/a.txt", { outputs: ["out/a.txt"] }));
    expect(state.success).toBe(true);
    expect(state.outputs.files).toEqual(["out/a.txt"]);
    expect(existsSync(join(dir, "out/a.txt"))).toBe(true);
  });

  it("fails validation naming a missing output file", async () => {
    const { state } = await runOne(cmd("miss", "true", { outputs: ["out/missing.txt"] }));
    expect(state.success).toBe(false);
    expect(state.failure).toBe("STEP_FAILED");
    expect(state.error).toBe("validation failed: missing output file out/missing.txt");
  });

  it("does not run the command when a requirement is missing (via Pipeline)", async () => {
    const context: Context = {};
    const result = await new Pipeline({ name: "p", steps: [cmd("needs", "touch ran", { requires: ["model"] })] }).run(context, { workDir: dir });
    expect(result.success).toBe(false);
    expect(result.failure).toBe("MISSING_REQUIREMENT");
    expect(result.error).toContain("missing requirement 'model'");
    expect(existsSync(join(dir, "ran"))).toBe(false);
  });

  it("does not run the command when a requirement is missing (run directly)", async () => {
    const state = await cmd("needs", "touch ran", { requires: ["model"] }).run({}, { workDir: dir });
    expect(state.failure).toBe("MISSING_REQUIREMENT");
    expect(existsSync(join(dir, "ran"))).toBe(false);
  });

  it("keeps only the last 64 KiB of stdout", async () => {
    const { state } = await runOne(cmd("loud", 'for i in $(seq 1 20000); do echo "line $i of output"; done'));
    const tail = String(state.meta.stdout_tail);
    expect(Buffer.byteLength(tail)).toBe(OUTPUT_TAIL_BYTES);
    expect(tail.endsWith("line 20000 of output\n")).toBe(true);
  });

  it("logs the output tails at debug level", async () => {
    const lines: string[] = [];
    const logger = pino({ level: "debug", base: undefined }, { write: (s: string) => void lines.push(s) });
    await new Pipeline({ name: "p", steps: [cmd("talk", "echo hi; echo err >&2")] }).run({}, { workDir: dir, logger });
    const entry = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === "command output");
    expect(entry).toMatchObject({ level: 20, step: "p.talk", stdout_tail: "hi\n", stderr_tail: "err\n", exit_code: 0 });
  });

  it("does not wait for a background process that keeps the output pipes open", async () => {
    const started = Date.now();
    const { state } = await runOne(cmd("bg", "sleep 3 & echo started"));
    expect(state.success).toBe(true);
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it("kills the whole process group when the run is aborted", async () => {
    const controller = new AbortController();
    const step = cmd("long", 'sleep 30 & echo $! > bg.pid; echo started > started; wait');
    const running = new Pipeline({ name: "p", steps: [step] }).run({}, { workDir: dir, signal: controller.signal });
    while (!existsSync(join(dir, "started"))) await new Promise((r) => setTimeout(r, 20));
    const started = Date.now();
    controller.abort();
    const result = await running;
    expect(Date.now() - started).toBeLessThan(3000);
    expect(result.success).toBe(false);
    const state = result.step_states?.["p.long"];
    expect(state?.error).toMatch(/^aborted: command stopped/);
    expect(state?.meta).toMatchObject({ aborted: true, reason: "SIGNAL" });
    const pid = Number(readFileSync(join(dir, "bg.pid"), "utf8"));
    await new Promise((r) => setTimeout(r, 100));
    expect(isAlive(pid)).toBe(false);
  });

  it("fails clearly when the work directory does not exist", async () => {
    const state = await cmd("nowhere", "true").run({}, { workDir: join(dir, "missing") });
    expect(state.success).toBe(false);
    expect(state.error).toMatch(/working directory .*missing does not exist/);
  });

  it("runs in the process's cwd when no work directory is given", async () => {
    const state = await cmd("here", 'printf %s "$PWD"').run({});
    expect(state.meta.stdout_tail).toBe(realpathSync(process.cwd()));
  });
});

describe("CommandStep definition", () => {
  it("refuses an empty command, outputs outside the work directory and reserved env names", () => {
    expect(() => cmd("e", " ")).toThrow(StepDefinitionError);
    expect(() => cmd("o", "true", { outputs: ["/etc/passwd"] })).toThrow(/output "\/etc\/passwd" must be relative/);
    expect(() => cmd("o", "true", { outputs: ["a/../../x"] })).toThrow(/no '\.\.'/);
    expect(() => cmd("v", "true", { env: { PATH: "/x" } })).toThrow(/reserved/);
    expect(() => cmd("r", "true", { resources: { cpus: 0 } })).toThrow(/resources: cpus/);
  });

  it("puts its command, outputs, env and resources in its signature data", () => {
    const a = cmd("s", "echo a", { outputs: ["x"], env: { A: "1" }, resources: { cpus: 2 } });
    expect(a.signatureData()).toEqual({ command: "echo a", outputs: ["x"], env: { A: "1" }, resources: { cpus: 2 } });
  });

  it("keeps working when a relative output directory is created by the command", async () => {
    mkdirSync(join(dir, "pre"));
    const { state } = await runOne(cmd("d", "true", { outputs: ["pre"] }));
    expect(state.success).toBe(true);
  });
});
