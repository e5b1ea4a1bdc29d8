// Ctrl-C and cleanup for the cluster benchmarks: jobs a benchmark submitted are cancelled and its
// temporary files removed, whatever way it ends.
//
// The first Ctrl-C never cuts a submission short (a half-run submit script would leave jobs nobody
// tracks): the running step finishes, its jobs are cancelled, the benchmark cleans up and exits 130.
// A second one quits at once.
import { spawnSync } from "node:child_process";
import type { Facts } from "./cluster.js";

/** SLURM job ids submitted and not yet cancelled or finished, to scancel on an interrupt. */
export const liveJobs = new Set<string>();
/** Synchronous cleanups (stop a proxy, remove a temp dir) run on exit and on a second Ctrl-C. */
export const syncCleanups = new Set<() => void>();
let interruptFacts: Facts | null = null;

/** The cluster whose jobs `cleanUpNow` cancels. */
export function setInterruptFacts(facts: Facts): void {
  interruptFacts = facts;
}

export function cleanUpNow(): void {
  for (const fn of [...syncCleanups]) {
    try {
      fn();
    } catch (error) {
      console.error(`cleanup failed: ${(error as Error).message}`);
    }
  }
  syncCleanups.clear();
  if (liveJobs.size > 0 && interruptFacts) {
    const f = interruptFacts;
    const ids = [...liveJobs];
    console.error(`cancelling ${ids.length} job(s) this benchmark submitted`);
    spawnSync(
      "ssh",
      ["-p", String(f.port), "-i", f.identityFile, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", `UserKnownHostsFile=${f.knownHostsFile}`, `${f.user}@${f.host}`, "scancel", ...ids],
      { stdio: "inherit", timeout: 20_000 },
    );
    liveJobs.clear();
  }
}

export const interrupt = new AbortController();

export class Interrupted extends Error {
  override name = "Interrupted";
}

export function checkInterrupt(): void {
  if (interrupt.signal.aborted) throw new Interrupted("interrupted");
}

let installed = false;

function installInterruptHandlers(): void {
  if (installed) return;
  installed = true;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      if (!interrupt.signal.aborted) {
        console.error(`\n${signal}: finishing the current submission, cancelling its jobs and cleaning up (again to quit at once)`);
        interrupt.abort();
        return;
      }
      console.error(`\n${signal}: quitting; cleaning up`);
      cleanUpNow();
      process.exit(130);
    });
  }
  process.on("exit", () => {
    for (const fn of syncCleanups) fn();
  });
}

/** Runs a benchmark's main with the interrupt handling above; an interrupt exits 130. */
export async function runBench(main: () => Promise<void>): Promise<void> {
  installInterruptHandlers();
  try {
    await main();
  } catch (error) {
    if (!(error instanceof Interrupted)) throw error;
    console.error(error.message);
    process.exitCode = 130;
  }
}
