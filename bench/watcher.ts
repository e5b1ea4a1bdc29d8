// bench/watcher: the CPU the state watcher (templates/watch-states.sh) costs the login node while a run's
// states/ fills up, measured with a local bash (no cluster): N existing state files, then one more every
// 50 ms for a while (renamed into place as the job wrapper does), with inotify on and off. Beside it, the
// same for another version of the script (`--against REV`, a git revision: the script as it was there),
// in one sitting, interleaved. Prints figures only.
// Run after a build: `npm run build && node dist/bench/watcher.js [--files N] [--seconds S] [--against REV]`.
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { wholeNumber } from "./lib/args.js";
import { REPO } from "./lib/cluster.js";
import { int, ratio, table } from "./lib/format.js";

const USAGE = "usage: node dist/bench/watcher.js [--files N] [--seconds S] [--against REV]";
const TICKS_PER_S = 100; // USER_HZ on Linux

/** utime + stime of a process, in seconds (from /proc/PID/stat; the comm field may hold spaces). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function measure(script: string, files: number, seconds: number, inotify: boolean): Promise<{ cpu: number; sent: number }> {
  const dir = mkdtempSync(join(tmpdir(), "hpcpipe-bench-watcher-"));
  try {
    const states = join(dir, "states");
    mkdirSync(states);
    for (let i = 0; i < files; i += 1) writeFileSync(join(states, `p.m.${i}.json`), `{"success":true,"key":"p.m.${i}"}\n`);
    // The run's earlier states were written a while ago, not in the last seconds.
    await sleep(5000);
    const child = spawn("bash", ["-c", script, "hpcpipe-state-watcher", states, "0.25", inotify ? "1" : "0", "65536", "8"], { stdio: ["pipe", "pipe", "ignore"] });
    let lines = 0;
    child.stdout.on("data", (chunk: Buffer) => {
      for (const b of chunk) if (b === 10) lines += 1;
    });
    await sleep(1000);
    const start = cpuSeconds(child.pid as number);
    const end = Date.now() + seconds * 1000;
    for (let i = 0; Date.now() < end; i += 1) {
      writeFileSync(join(states, `.new.${i}.tmp`), '{"success":true}\n');
      renameSync(join(states, `.new.${i}.tmp`), join(states, `new.${i}.json`));
      await sleep(50);
    }
    await sleep(1000);
    const cpu = cpuSeconds(child.pid as number) - start;
    child.stdin.end();
    await new Promise((resolve) => child.on("close", resolve));
    return { cpu, sent: lines };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const { values } = parseArgs({ options: { files: { type: "string" }, seconds: { type: "string" }, against: { type: "string" } }, allowPositionals: false });
const files = values.files === undefined ? 6000 : wholeNumber("--files", values.files, 0, USAGE);
const seconds = values.seconds === undefined ? 14 : wholeNumber("--seconds", values.seconds, 1, USAGE);
const current = readFileSync(join(REPO, "templates", "watch-states.sh"), "utf8");
const versions: Array<[string, string]> = [["this checkout", current]];
if (values.against !== undefined) {
  const old = execFileSync("git", ["-C", REPO, "show", `${values.against}:templates/watch-states.sh`], { encoding: "utf8" });
  versions.push([values.against, old]);
}
const hasInotify = ((): boolean => {
  try {
    execFileSync("bash", ["-c", "command -v inotifywait"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();
console.log(`bench/watcher: ${int(files)} state files, then one more every 50 ms for ${seconds} s; CPU of the watcher (utime + stime), local bash${hasInotify ? "" : " (no inotifywait here: inotify rows are scan only)"}`);
const rows: string[][] = [];
const cpu = new Map<string, number>();
for (const inotify of [true, false]) {
  for (const [name, script] of versions) {
    const r = await measure(script, files, seconds, inotify);
    cpu.set(`${name} ${String(inotify)}`, r.cpu);
    rows.push([name, inotify ? "on" : "off", `${r.cpu.toFixed(2)} s`, `${((100 * r.cpu) / (seconds + 1)).toFixed(0)} %`, int(r.sent)]);
  }
}
table(["script", "inotify", "watcher CPU", "of one core", "lines sent"], rows, [0]);
if (values.against !== undefined) {
  for (const inotify of [true, false]) {
    const a = cpu.get(`${values.against} ${String(inotify)}`) ?? NaN;
    const b = cpu.get(`this checkout ${String(inotify)}`) ?? NaN;
    console.log(`inotify ${inotify ? "on" : "off"}: ${values.against} / this checkout = ${ratio(a, b)}`);
  }
}
