// bench/startup: how soon `hpcpipe submit` puts its first byte on the wire, as a user starts it: the built
// CLI (`node dist/cli/main.js submit bench/submit/w1.yaml --cluster <test cluster> --no-cache`, no --wait)
// in a child process with HPCPIPE_TIMING=1, timed from spawn to its marks (modules loaded, the SSH
// connection's first packet, submitted) and to exit, with its CPU (user + system). Beside it, in the same
// sitting and interleaved round by round, another build of the CLI (`--against DIR`: a checkout whose
// `npm run build` has run, e.g. `git worktree add /tmp/before REV && cd /tmp/before && npm ci && npm run build`),
// and `node -e 0` (the floor: starting node itself). Prints figures only.
// Run after a build, with the test cluster up: `node dist/bench/startup.js [--rounds N] [--against DIR]`.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { timingMarks } from "../src/core/timing.js";
import { COMMON_OPTIONS, wholeNumber } from "./lib/args.js";
import { CLI } from "./lib/cli-child.js";
import { closeBench, openBench, REPO } from "./lib/cluster.js";
import type { Bench } from "./lib/cluster.js";
import { median, ratio, table } from "./lib/format.js";
import { runBench } from "./lib/interrupt.js";

const USAGE = `usage: node dist/bench/startup.js [options]
  --rounds N      rounds, interleaved (default 15)
  --against DIR   also time the CLI built in another checkout (DIR/dist/cli/main.js)
  --up            run scripts/cluster/up.sh first even when the cluster answers
  --no-up         never run scripts/cluster/up.sh`;

interface Sample {
  /** Spawn to the CLI's modules loaded, to the first packet, to submitted, to exit (ms); CPU (ms). */
  loaded: number;
  firstByte: number;
  submitted: number;
  exit: number;
  cpu: number;
}

/** One child under /usr/bin/time (its CPU), timed from spawn. */
function timed(argv: string[], env: NodeJS.ProcessEnv): Promise<{ t0: number; end: number; stderr: string; cpuMs: number }> {
  return new Promise((done, fail) => {
    const t0 = performance.timeOrigin + performance.now();
    const child = spawn("/usr/bin/time", ["-f", "hpcpipe-bench-cpu %U %S", ...argv], { env, stdio: ["ignore", "ignore", "pipe"] });
    const err: Buffer[] = [];
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.once("error", fail);
    child.once("close", (code) => {
      const end = performance.timeOrigin + performance.now();
      const stderr = Buffer.concat(err).toString("utf8");
      const cpu = /hpcpipe-bench-cpu ([\d.]+) ([\d.]+)/.exec(stderr);
      if (code !== 0 || cpu === null) return fail(new Error(`${argv.join(" ")} failed (exit ${code}):\n${stderr.slice(-3000)}`));
      done({ t0, end, stderr, cpuMs: (Number(cpu[1]) + Number(cpu[2])) * 1000 });
    });
  });
}

async function submitOnce(bench: Bench, cli: string): Promise<Sample> {
  const env = { ...process.env, HPCPIPE_HOME: bench.home, HPCPIPE_TIMING: "1" };
  const spec = join(REPO, "bench", "submit", "w1.yaml");
  const r = await timed([process.execPath, cli, "submit", spec, "--cluster", bench.config, "--no-cache"], env);
  const marks = timingMarks(r.stderr);
  const at = (name: string): number => (marks.get(name) ?? NaN) - r.t0;
  return { loaded: at("cli-loaded"), firstByte: at("connect-start"), submitted: at("submitted"), exit: r.end - r.t0, cpu: r.cpuMs };
}

async function nodeOnce(): Promise<Sample> {
  const r = await timed([process.execPath, "-e", "0"], process.env);
  return { loaded: NaN, firstByte: NaN, submitted: NaN, exit: r.end - r.t0, cpu: r.cpuMs };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { ...COMMON_OPTIONS, rounds: { type: "string", default: "15" }, against: { type: "string" } } });
  if (values.help) return void console.log(USAGE);
  const rounds = wholeNumber("--rounds", values.rounds, 1, USAGE);
  const against = values.against === undefined ? null : resolve(values.against, "dist", "cli", "main.js");
  if (against !== null && !existsSync(against)) throw new Error(`--against: no ${against} (run npm run build there first)`);
  const bench = openBench("startup", { up: values.up, noUp: values["no-up"] });
  const rows: [string, string, Sample[]][] = [["this build", CLI, []], ...(against ? [["--against", against, []] as [string, string, Sample[]]] : []), ["node -e 0", "", []]];
  try {
    console.log(`${rounds} rounds, interleaved: submit of W1 (bench/submit/w1.yaml, --no-cache, no --wait), spawn to each mark`);
    for (let i = 0; i < rounds; i++) {
      process.stderr.write(`  round ${i + 1}/${rounds}...\n`);
      for (const row of rows) row[2].push(row[1] === "" ? await nodeOnce() : await submitOnce(bench, row[1]));
    }
  } finally {
    await closeBench(bench);
  }
  const ms = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(0)} ms` : "-");
  const m = (s: Sample[], k: keyof Sample): number => median(s.map((x) => x[k]));
  table(
    ["CLI", "modules loaded", "first byte", "submitted", "exit", "CPU (user+sys)", "first byte: goal < 300 ms"],
    rows.map(([name, cli, s]) => [
      cli === "" ? name : `${name} (${cli})`,
      ms(m(s, "loaded")),
      ms(m(s, "firstByte")),
      ms(m(s, "submitted")),
      ms(m(s, "exit")),
      ms(m(s, "cpu")),
      cli === "" ? "" : m(s, "firstByte") < 300 ? "met" : "NOT met",
    ]),
    [0],
  );
  const mine = rows[0]![2];
  if (against) console.log(`this build / --against, medians: first byte ${ratio(m(mine, "firstByte"), m(rows[1]![2], "firstByte"))}, CPU ${ratio(m(mine, "cpu"), m(rows[1]![2], "cpu"))}`);
  console.log("(medians; first byte: the SSH connection's first packet, HPCPIPE_TIMING's connect-start mark)");
}

void runBench(main);
