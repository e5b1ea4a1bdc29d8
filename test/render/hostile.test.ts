import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RenderValueError } from "../../src/render/quote.js";
import { renderJobScript, renderSubmitScript } from "../../src/render/render.js";
import { context, mapJob, MINIMAL_CLUSTER, plainJob, step } from "./fixtures.js";
import { allStates, arrayEnv, lintScript, listTree, makeRun, readState, removeRun, runScript, writeJob } from "./harness.js";
import type { Run } from "./harness.js";

const PWNED = "/tmp/pwned";

/** Values that would run code, split words or break quoting if they were ever spliced into shell text. */
const HOSTILE_LINE: readonly string[] = [
  `$(touch ${PWNED})`,
  `\`touch ${PWNED}\``,
  "'",
  '"',
  `'; touch ${PWNED}; echo '`,
  `"; touch ${PWNED}; echo "`,
  `; touch ${PWNED}`,
  `&& touch ${PWNED} || touch ${PWNED} | cat > ${PWNED}`,
  "\\",
  "\\'",
  "$HOME ${PATH} $0 $1 $@ $$ !! !-1",
  "* ? [a-z] ~ ~root {a,b} %s %n",
  "# not a comment",
  "Grüße, 世界 🚀 \u202Eevil\u202C",
  "\tleading tab and trailing space ",
  "x".repeat(100_000) + `$(touch ${PWNED})`,
  "",
];
/** Values that also carry newlines (not allowed in items or published values, which are line-based). */
const HOSTILE_MULTILINE: readonly string[] = [`line1\n$(touch ${PWNED})\nline3`, `\n'\n"\n`, "cr\r\nlf"];
const HOSTILE = [...HOSTILE_LINE, ...HOSTILE_MULTILINE];

let runs: Run[] = [];
beforeEach(() => rmSync(PWNED, { force: true }));
afterEach(() => {
  for (const r of runs) removeRun(r);
  runs = [];
  expect(existsSync(PWNED), `${PWNED} was created: a hostile value was executed`).toBe(false);
});

function newRun(options: Parameters<typeof makeRun>[0] = {}): Run {
  const run = makeRun(options);
  runs.push(run);
  return run;
}

/** Runs a job and checks that nothing executed, every state is valid, and nothing was written outside the run directory. */
async function runContained(run: Run, script: string, env: Record<string, string> = {}): Promise<number | null> {
  const outside = listTree(run.sandbox).filter((p) => !p.startsWith(run.runDir.slice(run.sandbox.length + 1)));
  const res = await runScript(run, script, env);
  const after = listTree(run.sandbox).filter((p) => !p.startsWith(run.runDir.slice(run.sandbox.length + 1)));
  expect(after, "files appeared outside the run directory").toEqual(outside);
  expect(existsSync(PWNED)).toBe(false);
  expect(allStates(run).leftovers).toEqual([]);
  if (res.code !== 0) {
    const logs = listTree(join(run.runDir, "logs")).map((f) => `${f}: ${readFileSync(join(run.runDir, "logs", f), "utf8")}`);
    throw new Error(`job failed (${res.code}):\n${res.stderr}\n${logs.join("\n")}`);
  }
  return res.code;
}

describe("hostile values", () => {
  it("reach step commands byte for byte through env entries, and nothing executes", async () => {
    const run = newRun();
    const env = Object.fromEntries(HOSTILE.map((v, i) => [`HOSTILE_${i}`, v]));
    const cmd = HOSTILE.map((_, i) => `printf '%s' "$HOSTILE_${i}" > "$HPCPIPE_OUT_DIR/env-${i}"`).join("\n");
    const script = writeJob(run, plainJob([step("envs", cmd, { env })]));
    await runContained(run, script);
    HOSTILE.forEach((v, i) => expect(readFileSync(join(run.runDir, "out", `env-${i}`), "utf8")).toBe(v));
  });

  it("reach step commands byte for byte through the initial context", async () => {
    const run = newRun({ context: Object.fromEntries(HOSTILE.map((v, i) => [`ctx_${i}`, v])) });
    const keys = HOSTILE.map((_, i) => `ctx_${i}`);
    const cmd = keys.map((k) => `printf '%s' "$${k}" > "$HPCPIPE_OUT_DIR/${k}"`).join("\n");
    const script = writeJob(run, plainJob([step("ctx", cmd, { requires: keys, needs: keys.map((key) => ({ key, from: "context" })) })]));
    await runContained(run, script);
    keys.forEach((k, i) => expect(readFileSync(join(run.runDir, "out", k), "utf8")).toBe(HOSTILE[i]));
  });

  it("reach a step as its command text exactly, and the text is never run by the job script itself", async () => {
    const run = newRun();
    const body = HOSTILE.join("\n");
    // The hostile text sits in a quoted heredoc: inert for the step's bash, but it would run if spliced into the job script.
    const cmd = `: <<'HPCPIPE_EOF'\n${body}\nHPCPIPE_EOF\nprintf '%s' "$BASH_EXECUTION_STRING" > "$HPCPIPE_OUT_DIR/cmd"`;
    const script = writeJob(run, plainJob([step("cmd", cmd)]));
    await runContained(run, script);
    expect(readFileSync(join(run.runDir, "out", "cmd"), "utf8")).toBe(cmd);
  });

  it("reach map steps as items, and published values reach later steps and valid state JSON", async () => {
    const items = HOSTILE_LINE.filter((v) => v !== "" && !v.startsWith("\t") && v.length < 1000);
    const run = newRun({ items: { evil: items } });
    const job = mapJob(
      "evil",
      "item_value",
      [
        step("evil.{i}.pub", String.raw`printf "got=%s\n" "$item_value" >> "$HPCPIPE_PUBLISH"; printf 'ctl=a\001b\033c\177d\\e"f\tg\n' >> "$HPCPIPE_PUBLISH"`, {
          requires: ["item_value"],
          provides: ["got"],
          needs: [{ key: "item_value", from: "context" }],
        }),
        step("evil.{i}.use", 'printf "%s|%s" "$got" "$HPCPIPE_ITEM" > "$HPCPIPE_OUT_DIR/$HPCPIPE_TASK"', {
          requires: ["got"],
          needs: [{ key: "got", from: "evil.{i}.pub" }],
        }),
      ],
      { count: items.length },
    );
    const script = writeJob(run, job);
    for (let i = 0; i < items.length; i++) {
      await runContained(run, script, arrayEnv(i));
      const item = items[i] as string;
      expect(readFileSync(join(run.runDir, "out", String(i)), "utf8")).toBe(`${item}|${item}`);
      const s = readState(run, `evil.${i}.pub`);
      expect(s.outputs).toEqual({ published: { got: item, ctl: 'a\u0001b\u001bc\u007fd\\e"f\tg' }, files: [] });
      expect(s.meta.item).toBe(item);
      expect(readState(run, `evil.${i}`).meta.item).toBe(item);
    }
  });

  it("in the run directory path and in output file names stay literal, and nothing lands outside the run directory", async () => {
    const dirName = `run $(touch ${PWNED}) 'q' "d" \`x\` ; ü & | <>`;
    const run = newRun({ runDirName: dirName });
    const outName = `it's $(touch pwned) "x" \`touch pwned\`.txt`;
    const script = writeJob(
      run,
      plainJob([step("paths", 'touch -- "$HPCPIPE_OUT_DIR/$OUT_NAME"; printf "%s" "$HPCPIPE_RUN_DIR" > run-dir', { env: { OUT_NAME: outName }, outputs: [`../out/${outName}`] })]),
      { ...MINIMAL_CLUSTER, signal_grace_s: 60 },
    );
    expect(readFileSync(script, "utf8")).toContain(`#SBATCH --output="${run.runDir.replace(/["\\]/g, "\\$&")}/logs/slurm-%j.out"`);
    await runContained(run, script);
    expect(readFileSync(join(run.runDir, "work", "run-dir"), "utf8")).toBe(run.runDir);
    expect(readState(run, "paths").outputs).toEqual({ published: {}, files: [`../out/${outName}`] });
    expect(listTree(run.runDir).filter((p) => p.includes("pwned") && !p.includes("$(touch pwned)"))).toEqual([]);
  });

  it("with a run directory under $SCRATCH expand only the leading variable", async () => {
    const run = newRun({ runDirName: "scratch/p/run $(touch /tmp/pwned)" });
    const scratch = join(run.sandbox, "scratch");
    const job = plainJob([step("s", 'printf "%s" "$HPCPIPE_RUN_DIR" > where')]);
    const text = renderJobScript(job, context("$SCRATCH/p/run $(touch /tmp/pwned)"));
    expect(text).toContain(`export HPCPIPE_RUN_DIR="\${SCRATCH}"'/p/run $(touch /tmp/pwned)'\n`);
    expect(text).toContain("#SBATCH --output=logs/slurm-%j.out\n");
    const path = join(run.runDir, "scripts", "j001.sbatch");
    expect(lintScript(text)).toEqual([]);
    writeFileSync(path, text);
    await runContained(run, path, { SCRATCH: scratch });
    expect(readFileSync(join(run.runDir, "work", "where"), "utf8")).toBe(run.runDir);
  });
});

describe("names that cannot be safe", () => {
  const ctx = context("/scratch/run");
  const refuse = (job: Parameters<typeof renderJobScript>[0], pattern: RegExp, c = ctx) => {
    expect(() => renderJobScript(job, c)).toThrow(RenderValueError);
    expect(() => renderJobScript(job, c)).toThrow(pattern);
  };

  it("refuse step keys, context keys, env names and item keys that are not plain names, naming the job and the field", () => {
    refuse(plainJob([step(`a;touch ${PWNED}`, "true")]), /^job j001: step key "a;touch \/tmp\/pwned" is not a safe step key/);
    refuse(plainJob([step("../../etc", "true")]), /not a safe step key/);
    refuse(plainJob([step("s", "true", { requires: ["$(x)"] })]), /requires: context key "\$\(x\)" must be a shell identifier/);
    refuse(plainJob([step("s", "true", { env: { "A B": "x" } })]), /env: context key "A B" must be a shell identifier/);
    refuse(plainJob([step("s", "true", { env: { PATH: "/evil" } })]), /env: context key 'PATH' is reserved/);
    refuse(plainJob([step("s", "true", { needs: [{ key: "k", from: "x;y" }] })]), /source of 'k'/);
    refuse(mapJob("m", "bad key", [step("m.{i}.s", "true")], { count: 1 }), /map item key/);
    refuse(plainJob([step("m.{i}.s", "true")]), /contains \{i\} outside a map job/);
    refuse(plainJob([step("s", "true")], { id: "j1; rm -rf /" }), /job id/);
    refuse(plainJob([step("s", "true")], { scriptPath: "../../x.sbatch" }), /script path/);
    const m = mapJob("m", "it", [step("m.{i}.s", "true")], { count: 1 });
    refuse({ ...m, map: { key: "m", itemsFile: "../../etc/passwd", itemKey: "it", continueOnItemError: false } }, /items file/);
    refuse(plainJob([step("s", "true\0")]), /NUL/);
    refuse(plainJob([step("s", "true", { env: { BIG: "x".repeat(200_000) } })]), /longer than the 131072 bytes/);
  });

  it("refuse a newline or control character in any #SBATCH value, naming the field", () => {
    refuse(plainJob([step("s", "true")], { name: "job\n#SBATCH --wrap=evil" }), /#SBATCH job name: must not contain a newline or control character/);
    refuse(plainJob([step("s", "true")], { resources: { partition: "gpu\rx" } }), /#SBATCH partition: must not contain a newline/);
    refuse(plainJob([step("s", "true")], { resources: { account: "a\u001bb" } }), /#SBATCH account/);
    refuse(plainJob([step("s", "true")], { resources: { sbatch: ["--mail-user=a\nb"] } }), /#SBATCH extra sbatch option|must look like --name/);
    refuse(plainJob([step("s", "true")]), /#SBATCH output/, context("/scratch/run\n#SBATCH --wrap=x"));
    refuse(plainJob([step("s", "true")]), /#SBATCH output.*'%'/, context("/scratch/100%/run"));
    refuse(plainJob([step("s", "true")]), /#SBATCH qos/, { ...ctx, cluster: { ...MINIMAL_CLUSTER, qos: "a\nb" } });
    refuse(plainJob([step("s", "true")], { resources: { sbatch: ["--array=0-5"] } }), /--array is set by hpcpipe itself/);
    refuse(plainJob([step("s", "true")]), /run directory/, context("relative/run"));
    refuse(plainJob([step("s", "true")]), /run id/, { ...ctx, runId: "r1; rm -rf ~" });
  });

  it("quote #SBATCH values that need it for sbatch's own parser", () => {
    const text = renderJobScript(plainJob([step("s", "true")], { name: `my "job" #1 \\ it's` }), ctx);
    expect(text).toContain(`#SBATCH --job-name="my \\"job\\" #1 \\\\ it's"\n`);
  });

  it("refuse a submit plan with a hostile run id or a dependency on a job not submitted before", () => {
    const plan = { runId: "r1", pipeline: "p", layout: { runDir: "/scratch/run" }, jobs: [{ id: "j1", scriptPath: "scripts/j1.sbatch", dependencies: [] }] };
    expect(() => renderSubmitScript({ ...plan, runId: "$(touch /tmp/pwned)" })).toThrow(/^submit script: run id/);
    expect(() =>
      renderSubmitScript({ ...plan, jobs: [{ id: "j1", scriptPath: "scripts/j1.sbatch", dependencies: [{ job: "j2", type: "afterok" }] }] }),
    ).toThrow(/j1 depends on "j2", which is not submitted before it/);
  });
});
