// The retry controller (templates/retry.sh) in real bash, with SLURM's commands replaced by recording
// shims: the faults it acts on (a node fault, a multi-node partition) cannot be produced on demand on
// the one-node test cluster. test/e2e/retries.test.ts runs it against the real SLURM.
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseRetryRecords } from "../../src/plan/retry.js";
import { retryLibScript } from "../../src/render/render.js";

const SHIM = `#!/bin/bash
printf '%s' "$(basename "$0")" >>"$SHIM_LOG"
printf ' [%s]' "$@" >>"$SHIM_LOG"
[[ $(basename "$0") == sbatch ]] && printf ' map=%s base=%s' "\${HPCPIPE_TASK_MAP-unset}" "\${HPCPIPE_ATTEMPT_BASE-unset}" >>"$SHIM_LOG"
printf '\\n' >>"$SHIM_LOG"
case $(basename "$0") in
  scontrol) if [[ $1 == show && $2 == hostnames ]]; then printf '%s\\n' "$3"; exit 0; fi
    if [[ $1 == show ]]; then [[ -f $SHIM_DIR/scontrol.gone ]] && { echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1; }; cat "$SHIM_DIR/scontrol.out"; fi; exit 0 ;;
  sacct) cat "$SHIM_DIR/sacct.out" ;;
  sinfo) cat "$SHIM_DIR/sinfo.out" ;;
  squeue) cat "$SHIM_DIR/squeue.out" ;;
  sbatch) n=$(cat "$SHIM_DIR/next-id"); echo $((n + 1)) >"$SHIM_DIR/next-id"; echo "$n" ;;
  scancel) exit 0 ;;
esac
`;

const BASE_ARGS = [
  "--run-id", "RUN", "--job", "j001", "--self-id", "j002", "--self", "scripts/j002.sbatch", "--script", "scripts/j001.sbatch", "--name", "hp-j001-m",
  "--retries", "2", "--on", "3,TIMEOUT,NODE_FAIL", "--time-factor", "2000", "--mem-factor", "0", "--time-s", "600", "--mem-mb", "0",
  "--max-time-s", "900", "--max-mem-mb", "0", "--partition", "main", "--items-per-task", "1", "--is-array", "1", "--throttle", "0", "--offset", "0", "--task-map", "",
];

const task = (id: number, state: string, node: string, restarts = 0): string =>
  `JobId=${401 + id} JobName=hp-j001-m ArrayJobId=400 ArrayTaskId=${id} JobState=${state} Reason=None Restarts=${restarts} ExitCode=${state === "COMPLETED" ? 0 : 1}:0 NodeList=${node}`;
const stateLine = (item: number, exit: number): string =>
  JSON.stringify({ success: exit === 0, key: `p.m.${item}.w`, meta: { exit_code: exit, reason: null }, slurm: { job_id: String(401 + item), array_job_id: "400", array_task_id: String(item), task: item }, exit_code: exit, attempt: 1 });

describe("the retry controller, with recording shims for SLURM's commands", () => {
  let dir = "";
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function controller(
    scontrol: string[],
    states: string[],
    sinfo: string,
    chain: string[] = ["--watch", "400", "--attempt", "1"],
    used = "",
    over: string[] = [],
    sacct: string | null = null,
    setup: (runDir: string) => void = () => undefined,
  ) {
    dir = mkdtempSync(join(tmpdir(), "hpcpipe-retry-ctl-"));
    const bin = join(dir, "bin");
    const runDir = join(dir, "run");
    mkdirSync(bin);
    for (const d of ["states", "logs", "scripts"]) mkdirSync(join(runDir, d), { recursive: true });
    for (const name of ["scontrol", "sacct", "sinfo", "squeue", "sbatch", "scancel"]) {
      writeFileSync(join(bin, name), SHIM);
      chmodSync(join(bin, name), 0o755);
    }
    writeFileSync(join(dir, "scontrol.out"), `${scontrol.join("\n")}\n`);
    writeFileSync(join(dir, "sinfo.out"), sinfo);
    if (sacct !== null) {
      writeFileSync(join(dir, "scontrol.gone"), "");
      writeFileSync(join(dir, "sacct.out"), sacct);
    }
    writeFileSync(join(dir, "squeue.out"), "700|hpcpipe:RUN|afterok:500(unfulfilled),afterany:300(unfulfilled)\n701|hpcpipe:OTHER|afterok:500(unfulfilled)\n702|hpcpipe:RUN|afterok:5000(unfulfilled)\n");
    writeFileSync(join(dir, "next-id"), "600");
    states.forEach((s, i) => writeFileSync(join(runDir, "states", `s${i}.json`), `${s}\n`));
    writeFileSync(join(runDir, "logs", "p.m.1.w.out"), "attempt 1 log\n");
    writeFileSync(join(runDir, "scripts", "retry.sh"), retryLibScript());
    setup(runDir);
    if (used !== "") {
      mkdirSync(join(runDir, "retries"));
      writeFileSync(join(runDir, "retries", "j001.used"), used);
    }
    const r = spawnSync("bash", ["-c", 'source "$HPCPIPE_RUN_DIR/scripts/retry.sh" && hp_retry_control "$@"', "controller", ...BASE_ARGS, ...over, ...chain], {
      env: { PATH: `${bin}:${process.env.PATH ?? ""}`, HPCPIPE_RUN_DIR: runDir, SLURM_JOB_ID: "500", SLURM_CPUS_PER_TASK: "1", SHIM_LOG: join(dir, "calls"), SHIM_DIR: dir },
      encoding: "utf8",
    });
    const calls = readFileSync(join(dir, "calls"), "utf8").trim().split("\n");
    const read = (rel: string): string => readFileSync(join(runDir, rel), "utf8");
    return { status: r.status, stderr: r.stderr, calls, read };
  }

  it("resubmits only the retryable failed tasks, remapped, with escalated time bounded by the partition, the failed node excluded, and moves the run's dependants", () => {
    const out = controller(
      [task(0, "COMPLETED", "n1"), task(1, "NODE_FAIL", "n2"), task(2, "TIMEOUT", "n1"), task(3, "FAILED", "n1", 1)],
      [stateLine(0, 0), stateLine(3, 5)],
      "n1\nn2\n",
    );
    expect(out.status, out.stderr).toBe(0);
    const sbatch = out.calls.filter((c) => c.startsWith("sbatch"));
    expect(sbatch[0]).toBe("sbatch [--parsable] [--comment=hpcpipe:RUN] [--job-name=hp-j001.r2-m] [--array=0-1] [--time=15] [--exclude=n2] [scripts/j001.sbatch] map=1,2 base=1");
    expect(sbatch[1]).toBe(
      "sbatch [--parsable] [--comment=hpcpipe:RUN] [--job-name=hp-j002.r2-retry-j001] [--dependency=afterany:600] [--kill-on-invalid-dep=yes] [scripts/j002.sbatch] [--watch] [600] [--attempt] [2] [--watch-map] [1,2] [--cur-time-s] [900] [--cur-mem-mb] [0] [--exclude] [n2] map=unset base=unset",
    );
    // Only this run's job that waits on this controller is moved, its other dependency kept.
    expect(out.calls.filter((c) => c.startsWith("scontrol [update]"))).toEqual(["scontrol [update] [JobId=700] [Dependency=afterok:601,afterany:300]"]);
    const record = parseRetryRecords(new Map([["j001.2.json", out.read("retries/j001.2.json")]]));
    expect(record.problems).toEqual([]);
    expect(record.attempts.get("j001")?.[0]).toMatchObject({ tasks: [1, 2], reasons: { "1": "NODE_FAIL", "2": "TIMEOUT" }, time_s: 900, exclude: ["n2"], retry_job_id: "600", controller_job_id: "601" });
    // Task 3 failed with exit 5, not in retry_on; its SLURM requeue counted as an attempt.
    expect(out.read("retries/j001.failed")).toBe("3 exit 5 (not retried)\n");
    expect(out.read("retries/j001.used").trim().split("\n").sort()).toEqual(["0 1", "1 1", "2 1", "3 2"]);
  });

  it("reads the lines of packed tasks' pack files and killed attempts' slot files, and keeps their packs and slot logs in attempts/", () => {
    // Packed map p.m, 3 items per task. A line as the wrapper writes it: outputs and meta before the key (a published value named "key" too).
    const line = (item: number, exit: number | null, job = "400", reason: string | null = null): string =>
      JSON.stringify({
        success: exit === 0,
        outputs: { published: { key: "not.the.key" }, files: [] },
        meta: { exit_code: exit, reason, log: `logs/p.m.items-${item - (item % 3)}-${item - (item % 3) + 2}.s0`, item: `i${item}` },
        key: `p.m.${item}.w`,
        slurm: { job_id: String(401 + Math.floor(item / 3)), array_job_id: job, array_task_id: String(Math.floor(item / 3)), task: item },
        exit_code: exit,
        attempt: 1,
      });
    const pack1 = [line(3, 0), line(4, 3), line(5, 0), line(3, 7, "300")].map((l) => `${l}\n`).join("");
    const out = controller(
      [task(0, "COMPLETED", "n1"), task(1, "FAILED", "n1"), task(2, "TIMEOUT", "n1")],
      [stateLine(0, 0)],
      "n1\n",
      undefined,
      "",
      ["--items-per-task", "3"],
      null,
      (runDir) => {
        writeFileSync(join(runDir, "states", "p.m.items-3-5.jsonl"), pack1);
        writeFileSync(join(runDir, "logs", "p.m.items-3-5.s0.out"), "\n\x1ehpcpipe p.m.4.w\nslot 0\n");
        writeFileSync(join(runDir, "logs", "p.m.items-3-5.s1.err"), "\n\x1ehpcpipe p.m.5.w\nslot 1\n");
        // Task 2 was killed (SIGKILL after its time limit): no pack file, its slot files with a torn last line.
        mkdirSync(join(runDir, "states", ".pack-p.m.items-6-8"));
        writeFileSync(join(runDir, "states", ".pack-p.m.items-6-8", "s0.jsonl"), `${line(6, 0)}\n${line(7, null, "400", "TIMEOUT").slice(0, -1)}`);
        writeFileSync(join(runDir, "logs", "p.m.items-6-8.s0.out"), "\n\x1ehpcpipe p.m.6.w\n");
      },
    );
    expect(out.status, out.stderr).toBe(0);
    // Task 1's exit 3 (in retry_on) comes from its pack line (SLURM's own exit 1 is not), and the older attempt's exit 7 is not this job's.
    const record = parseRetryRecords(new Map([["j001.2.json", out.read("retries/j001.2.json")]]));
    expect(record.attempts.get("j001")?.[0]).toMatchObject({ tasks: [1, 2], reasons: { "1": "exit 3", "2": "TIMEOUT" } });
    expect(out.read("attempts/1/states/p.m.items-3-5.jsonl")).toBe(pack1);
    expect(out.read("attempts/1/logs/p.m.items-3-5.s0.out")).toBe("\n\x1ehpcpipe p.m.4.w\nslot 0\n");
    expect(out.read("attempts/1/logs/p.m.items-3-5.s1.err")).toBe("\n\x1ehpcpipe p.m.5.w\nslot 1\n");
    expect(out.read("attempts/1/states/p.m.items-6-8.jsonl")).toBe(`${line(6, 0)}\n`);
    expect(out.read("attempts/1/logs/p.m.items-6-8.s0.out")).toBe("\n\x1ehpcpipe p.m.6.w\n");
    // Task 0 succeeded: nothing of it is kept.
    expect(existsSync(join(dir, "run", "attempts", "1", "states", "s0.json"))).toBe(false);
  });

  it("escalates the memory of a retry after an OUT_OF_MEMORY, bounded by the partition's max_mem", () => {
    const out = controller([task(0, "OUT_OF_MEMORY", "n1")], [], "n1\n", ["--watch", "400", "--attempt", "1", "--cur-mem-mb", "3000"], "", ["--on", "ALL", "--mem-factor", "1500", "--mem-mb", "3000", "--max-mem-mb", "4096"]);
    expect(out.status, out.stderr).toBe(0);
    const sbatch = out.calls.filter((c) => c.startsWith("sbatch"));
    expect(sbatch[0]).toContain("[--mem=4096M]");
    expect(sbatch[0]).not.toContain("--time");
    expect(sbatch[1]).toContain("[--cur-mem-mb] [4096]");
  });

  it("asks accounting (sacct) when slurmctld no longer holds the ended job", () => {
    const out = controller([], [stateLine(1, 3)], "n1\n", undefined, "", [], "400_0|COMPLETED|0:0|n1\n400_1|FAILED|1:0|n1\n400_2|CANCELLED by 0|0:15|n1\n");
    expect(out.status, out.stderr).toBe(0);
    expect(out.stderr).toContain("asking sacct");
    expect(out.calls.find((c) => c.startsWith("sbatch"))).toContain("map=1 base=1");
    expect(out.read("retries/j001.failed")).toBe("2 CANCELLED (not retried)\n");
  });

  it("never excludes every node of the partition", () => {
    const out = controller([task(0, "NODE_FAIL", "n1")], [], "n1\n");
    expect(out.status, out.stderr).toBe(0);
    expect(out.calls.find((c) => c.startsWith("sbatch"))).not.toContain("--exclude");
    expect(out.stderr).toContain("not excluding n1: that would leave no node of partition main");
  });

  it("ends the chain ok when every task succeeded, and failed when a task failed for good, writing the end record", () => {
    const ok = controller([task(0, "COMPLETED", "n1")], [stateLine(0, 0)], "n1\n");
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.read("retries/j001.end.json"))).toEqual({ job: "j001", attempts: 1, ok: true, by: "500", failed: {} });
    expect(ok.calls.some((c) => c.startsWith("sbatch"))).toBe(false);
    // Attempt 3 of task 5 (the retry's task id 0), exit 3 again: its retries (2) are used up.
    const failed = controller([task(0, "FAILED", "n1")], [stateLine(5, 3)], "n1\n", ["--watch", "400", "--attempt", "3", "--watch-map", "5"], "5 2\n");
    expect(failed.status).toBe(1);
    expect(JSON.parse(failed.read("retries/j001.end.json"))).toMatchObject({ ok: false, attempts: 3, failed: { "5": "exit 3 (retries used up after 3 attempts)" } });
  });
});
