import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { renderSubmitScript } from "../../src/render/render.js";
import type { RenderablePlan } from "../../src/render/render.js";
import { goldenPlan } from "./golden-jobs.js";
import { lintScript } from "./harness.js";

/**
 * Fake sbatch and scancel: sbatch answers call n with line n of `answers`
 * ("ok", "ok-cluster", "transient", "timeout", "fail"; "ok" when absent) and
 * logs its arguments, one call per line, NUL-separated.
 */
const FAKE_SBATCH = `#!/bin/bash
n=$(( $(cat "$FAKE_DIR/count" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$FAKE_DIR/count"
printf '%s\\0' "$@" >> "$FAKE_DIR/sbatch.log"; printf '\\n' >> "$FAKE_DIR/sbatch.log"
answer=$(sed -n "\${n}p" "$FAKE_DIR/answers" 2>/dev/null)
case \${answer:-ok} in
  ok) echo $((1000 + n)) ;;
  ok-cluster) echo "$((1000 + n));cluster2" ;;
  transient) echo "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation" >&2; exit 1 ;;
  busy) echo "sbatch: error: Batch job submission failed: Resource temporarily unavailable" >&2; exit 1 ;;
  fail) echo "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified" >&2; exit 1 ;;
esac
`;
const FAKE_SCANCEL = `#!/bin/bash
printf '%s\\n' "$*" >> "$FAKE_DIR/scancel.log"
`;
/** After a transient error the script looks the job up by the run's tag: this queue holds none of them. */
const FAKE_SQUEUE = `#!/bin/bash
printf '%s\\n' "$*" >> "$FAKE_DIR/squeue.log"
`;

interface Fake {
  dir: string;
  runDir: string;
}

let fakes: Fake[] = [];
afterEach(() => {
  for (const f of fakes) rmSync(f.dir, { recursive: true, force: true });
  fakes = [];
});

function makeFake(answers: string[], runDirName = "run"): Fake {
  const dir = mkdtempSync(join(tmpdir(), "hpcpipe-submit-"));
  const bin = join(dir, "bin");
  const runDir = join(dir, runDirName);
  mkdirSync(bin);
  mkdirSync(join(runDir, "scripts"), { recursive: true });
  writeFileSync(join(bin, "sbatch"), FAKE_SBATCH);
  writeFileSync(join(bin, "scancel"), FAKE_SCANCEL);
  writeFileSync(join(bin, "squeue"), FAKE_SQUEUE);
  for (const tool of ["sbatch", "scancel", "squeue"]) chmodSync(join(bin, tool), 0o755);
  writeFileSync(join(dir, "answers"), answers.map((a) => `${a}\n`).join(""));
  const fake = { dir, runDir };
  fakes.push(fake);
  return fake;
}

function runSubmit(fake: Fake, plan: RenderablePlan): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const text = renderSubmitScript(plan);
  expect(lintScript(text)).toEqual([]);
  const path = join(fake.runDir, "scripts", "submit.sh");
  writeFileSync(path, text);
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [path], {
      cwd: fake.dir,
      env: { PATH: `${join(fake.dir, "bin")}:${process.env.PATH ?? ""}`, FAKE_DIR: fake.dir, HPCPIPE_SUBMIT_DELAY_S: "0", HOME: fake.dir },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

function sbatchCalls(fake: Fake): string[][] {
  if (!existsSync(join(fake.dir, "sbatch.log"))) return [];
  return readFileSync(join(fake.dir, "sbatch.log"), "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => l.split("\0").filter((a) => a !== ""));
}

function scancelCalls(fake: Fake): string[] {
  const path = join(fake.dir, "scancel.log");
  return existsSync(path) ? readFileSync(path, "utf8").trim().split("\n") : [];
}

describe("the submit script", () => {
  it("submits every job in plan order with its dependencies and the run tag, printing one line per job", async () => {
    const fake = makeFake(["ok", "ok-cluster"]);
    const res = await runSubmit(fake, goldenPlan(fake.runDir));
    expect(res.code).toBe(0);
    expect(res.stdout).toBe("hpcpipe-job j001 1001\nhpcpipe-job j002 1002\nhpcpipe-job j003 1003\nhpcpipe-job j004 1004\n");
    expect(sbatchCalls(fake)).toEqual([
      ["--parsable", "--comment=hpcpipe:r20261128-1", "scripts/j001.sbatch"],
      ["--parsable", "--comment=hpcpipe:r20261128-1", "--dependency=afterok:1001", "--kill-on-invalid-dep=yes", "scripts/j002.sbatch"],
      ["--parsable", "--comment=hpcpipe:r20261128-1", "--dependency=afterok:1001,afterany:1002", "--kill-on-invalid-dep=yes", "scripts/j003.sbatch"],
      ["--parsable", "--comment=hpcpipe:r20261128-1", "--dependency=afterok:1002:1003", "--kill-on-invalid-dep=yes", "scripts/j004.sbatch"],
    ]);
    expect(scancelCalls(fake)).toEqual([]);
  });

  it("retries transient sbatch errors and then goes on", async () => {
    const fake = makeFake(["ok", "transient", "busy", "ok"]);
    const res = await runSubmit(fake, goldenPlan(fake.runDir));
    expect(res.code).toBe(0);
    expect(res.stdout).toBe("hpcpipe-job j001 1001\nhpcpipe-job j002 1004\nhpcpipe-job j003 1005\nhpcpipe-job j004 1006\n");
    expect(res.stderr).toContain("retry 2 of 5");
    // Each retry first asked the queue (the fake one, not a cluster this machine may run) for the job.
    expect(readFileSync(join(fake.dir, "squeue.log"), "utf8").trim().split("\n")).toHaveLength(2);
  });

  it("gives up after 5 retries, cancels what it submitted with one scancel and exits non-zero", async () => {
    const fake = makeFake(["ok", "ok", ...Array<string>(6).fill("transient")]);
    const res = await runSubmit(fake, goldenPlan(fake.runDir));
    expect(res.code).toBe(1);
    expect(sbatchCalls(fake)).toHaveLength(2 + 6);
    expect(scancelCalls(fake)).toEqual(["1001 1002"]);
    expect(res.stderr).toContain("Socket timed out on send/recv operation");
  });

  it("on a permanent sbatch error cancels every job submitted so far with one scancel and prints the error", async () => {
    const fake = makeFake(["ok", "ok", "fail"]);
    const res = await runSubmit(fake, goldenPlan(fake.runDir));
    expect(res.code).toBe(1);
    expect(res.stdout).toBe("hpcpipe-job j001 1001\nhpcpipe-job j002 1002\n");
    expect(sbatchCalls(fake)).toHaveLength(3);
    expect(scancelCalls(fake)).toEqual(["1001 1002"]);
    expect(res.stderr).toContain("sbatch failed: sbatch: error: Batch job submission failed: Invalid account");
  });

  it("fails without calling scancel when the first job cannot be submitted", async () => {
    const fake = makeFake(["fail"]);
    const res = await runSubmit(fake, goldenPlan(fake.runDir));
    expect(res.code).toBe(1);
    expect(scancelCalls(fake)).toEqual([]);
  });

  it("works from a run directory whose path holds quotes, spaces and $(...)", async () => {
    const fake = makeFake([], `run $(touch pwned) 'q' "d"`);
    const res = await runSubmit(fake, goldenPlan(fake.runDir));
    expect(res.code).toBe(0);
    expect(existsSync(join(fake.dir, "pwned"))).toBe(false);
    expect(existsSync(join(fake.runDir, "pwned"))).toBe(false);
  });
});
