// The cluster-side sacct filter (src/slurm/sacct-runs.ts) for fake executors: recognise its
// argv, and run the REAL filter script on this machine (bash and awk) over a fake sacct answer,
// so tests of the scheduler and the app read what the cluster would send.
import { spawnSync } from "node:child_process";
import { SACCT_RUNS_ANY_OWN, SACCT_RUNS_NAME, SACCT_RUNS_SCRIPT } from "../../src/slurm/index.js";

/** The command the filter runs (`sacct -X ...`) when `argv` is the filter's, else null. */
export function filteredCommand(argv: readonly string[]): string[] | null {
  if (!(argv[0] === "bash" && argv[1] === "-c" && argv[2] === SACCT_RUNS_SCRIPT && argv[3] === SACCT_RUNS_NAME)) return null;
  return argv[4] === SACCT_RUNS_ANY_OWN ? argv.slice(5) : argv.slice(4);
}

/** The filter's words before its command (`--any-own-ids` or none). */
export function filterOptions(argv: readonly string[]): string[] {
  return argv[4] === SACCT_RUNS_ANY_OWN ? [SACCT_RUNS_ANY_OWN] : [];
}

/** The program a scheduler query runs: `sacct` for sacct through the filter, else argv[0]. */
export function queryName(argv: readonly string[]): string {
  return filteredCommand(argv)?.[0] ?? argv[0] ?? "";
}

export interface Printed {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * What the filter script prints on this machine when its command prints `answer`
 * (stdout, stderr, exit status; a death by signal is taken as exit 1). `awk` picks
 * another awk than the one on PATH (`mawk`, `gawk`, or a missing name); `options`:
 * the filter's words before its command (filterOptions of the argv asked).
 */
export function throughFilter(answer: Printed, awk = "awk", options: readonly string[] = []): { code: number | null; stdout: string; stderr: string } {
  const script = awk === "awk" ? SACCT_RUNS_SCRIPT : SACCT_RUNS_SCRIPT.replace("LC_ALL=C awk ", `LC_ALL=C ${awk} `);
  const child = spawnSync(
    "bash",
    ["-c", script, SACCT_RUNS_NAME, ...options, "bash", "-c", 'cat; printf "%s" "$1" >&2; exit "$2"', "fake-sacct", answer.stderr, String(answer.code ?? 1)],
    { input: answer.stdout, encoding: "utf8", maxBuffer: 1 << 30 },
  );
  if (child.error) throw child.error;
  return { code: child.status, stdout: child.stdout, stderr: child.stderr };
}
