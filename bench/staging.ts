// bench/staging: inputs staged by content (src/store/staging.ts), on the test cluster, timed as a user
// feels it: the CLI in a child process with its default settings, start to exit.
//   A batch of N generated glTF models (default 2,000; the batch-validate generator) bundled with a
//   one-step pipeline, submitted with `submit` (no --wait: staging and submission, start to exit) three
//   times into ONE store:
//     1. cold: the store is empty (every blob is sent);
//     2. again, nothing changed (no blob is sent);
//     3. again, with 5 models changed (5 blobs are sent).
//   Next to it, the hand-written way: `tar -c DIR | ssh HOST tar -x` of the same directory, every time.
// Prints figures only; asserts nothing (the machine and the cluster are shared: times are noisy).
// Run after a build: `npm run build && node dist/bench/staging.js [--models N]`.
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { writeBatch } from "../examples/batch-validate/generate.js";
import { COMMON_OPTIONS, wholeNumber } from "./lib/args.js";
import { runCliChild } from "./lib/cli-child.js";
import { closeBench, openBench } from "./lib/cluster.js";
import { int, now, ratio, sec, table } from "./lib/format.js";
import { runBench } from "./lib/interrupt.js";

const USAGE = "usage: node dist/bench/staging.js [--models N] [--no-up]";

interface Row {
  what: string;
  s: number;
  sent: string;
  code: number | null;
}

function sentFigure(stderr: string): string {
  const m = /bundle: (\d+) file\(s\); (\d+) blob\(s\) already in the store.*; sending (\d+) \(([^)]+)\)/.exec(stderr);
  return m ? `${int(Number(m[3]))} blob(s), ${m[4]} (${int(Number(m[2]))} already there)` : "?";
}

await runBench(async () => {
  const { values } = parseArgs({ options: { ...COMMON_OPTIONS, models: { type: "string" } }, allowPositionals: false });
  const n = values.models === undefined ? 2000 : wholeNumber("--models", values.models, 1, USAGE);
  const bench = openBench("staging", { noUp: values["no-up"] === true });
  try {
    const dir = join(bench.dir, "batch");
    process.stderr.write(`generating ${int(n)} models...\n`);
    await writeBatch(dir, n, { brokenEvery: 0 });
    const spec = join(dir, "staged.yaml");
    writeFileSync(spec, ["name: staged", "bundle: [models/, models.txt]", "steps:", "  - step: count", "    run: test \"$(wc -l < models.txt)\" -gt 0 && ls models | wc -l", ""].join("\n"));
    const bytes = Number(spawnSync("du", ["-sb", join(dir, "models")], { encoding: "utf8" }).stdout.split("\t")[0]);
    const submit = async (what: string): Promise<Row> => {
      const run = await runCliChild(["submit", spec, "--cluster", bench.config], { home: bench.home, cwd: bench.dir, logBase: join(bench.dir, what.replace(/\W+/g, "-")) });
      if (run.code !== 0) process.stderr.write(`${what}: exit ${run.code}\n${run.stderr.slice(-2000)}\n`);
      return { what: `hpcpipe submit: ${what}`, s: run.s, sent: sentFigure(run.stderr), code: run.code };
    };
    const f = bench.facts;
    const byHand = (what: string): Row => {
      const remote = `${bench.workdir.replace("$HOME/", "")}/by-hand-${what.replace(/\W+/g, "-")}`;
      const t0 = now();
      const r = spawnSync(
        "bash",
        [
          "-c",
          'tar -c -C "$1" models models.txt | ssh -p "$2" -i "$3" -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile="$4" "$5" "mkdir -p $6 && tar -x -C $6"',
          "by-hand",
          dir,
          String(f.port),
          f.identityFile,
          f.knownHostsFile,
          `${f.user}@${f.host}`,
          remote,
        ],
        { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" },
      );
      return { what: `by hand, tar | ssh tar -x: ${what}`, s: now() - t0, sent: `${int(n)} models, ${(bytes / 1024 / 1024).toFixed(1)} MiB`, code: r.status };
    };
    const rows: Row[] = [];
    rows.push(await submit("cold store"));
    rows.push(byHand("cold"));
    rows.push(await submit("nothing changed"));
    rows.push(byHand("again"));
    // 5 models change (their bytes; the generator's layout stays).
    const models = readFileSync(join(dir, "models.txt"), "utf8").trim().split("\n");
    for (const i of [3, 400, 901, 1402, n - 1].filter((x, k, all) => x < models.length && all.indexOf(x) === k)) {
      const file = join(dir, models[i] as string);
      writeFileSync(file, Buffer.concat([readFileSync(file), Buffer.from(" ")]));
    }
    rows.push(await submit("5 models changed"));
    rows.push(byHand("5 changed"));
    console.log(`\n${int(n)} models, ${(bytes / 1024 / 1024).toFixed(1)} MiB in the bundle; each hpcpipe row is a whole \`hpcpipe submit\` (hash, query, send, upload, lay out, sbatch) as a CLI child process, start to exit`);
    table(["workload", "wall time", "sent", "exit"], rows.map((r) => [r.what, sec(r.s), r.sent, String(r.code)]), [2]);
    const [cold, , same, hand2, changed, hand3] = rows;
    if (cold && same && hand2 && changed && hand3) {
      console.log(`nothing changed: hpcpipe ${sec(same.s)} vs by hand ${sec(hand2.s)} (${ratio(hand2.s, same.s)}); 5 changed: hpcpipe ${sec(changed.s)} vs by hand ${sec(hand3.s)} (${ratio(hand3.s, changed.s)})`);
    }
  } finally {
    await closeBench(bench);
  }
});
