// vitest globalSetup: when end-to-end tests are part of the run, make sure the
// local SLURM test cluster is up and hand its facts to the tests.
//   CI=true|1         a cluster that cannot start fails the whole run.
//   HPCPIPE_E2E=0     skip end-to-end tests on purpose (outside CI), loudly.
// It sets HPCPIPE_E2E to "1" (cluster ready, facts via inject("cluster")) or "skip".
import type { TestProject } from "vitest/node";
import { clientPaths, DEFAULT_CLUSTER_SHAPE, ensureCluster, readableByClusterUser } from "./cluster.js";
import type { ClusterFacts } from "./cluster.js";

const E2E_DIR = "/test/e2e/";

function inCi(): boolean {
  const ci = process.env.CI?.toLowerCase();
  return ci === "true" || ci === "1";
}

// Only start a cluster when the run includes test/e2e files (not for `vitest run test/core`).
async function e2eRequested(project: TestProject): Promise<boolean> {
  try {
    // vitest keeps the CLI file filters here; it is not public API, so fall back to "all files".
    const filters = (project.vitest as unknown as { filenamePattern?: string[] }).filenamePattern;
    const specs = await project.vitest.globTestSpecifications(filters ?? []);
    return specs.some((spec) => spec.moduleId.split("\\").join("/").includes(E2E_DIR));
  } catch {
    return true;
  }
}

function loudNotice(reason: string): void {
  const bar = "!".repeat(78);
  const lines = [
    "",
    bar,
    "!!  END-TO-END TESTS (test/e2e) ARE SKIPPED.",
    "!!",
    ...reason.trimEnd().split("\n").map((line) => `!!  ${line}`),
    "!!",
    "!!  To run them: as root on Debian 12, `bash scripts/cluster/up.sh`",
    "!!  (see scripts/cluster/README.md). In CI (CI=true) this is an error.",
    bar,
    "",
  ];
  process.stderr.write(`${lines.join("\n")}\n`);
}

class PrivacyError extends Error {
  override name = "PrivacyError";
}

/**
 * A real cluster shares no filesystem with the client. On this single-host cluster that holds only
 * when the cluster's user cannot read the checkout (nor the temp directory the tests write to), so
 * ask it, as that user. .ci/run runs the suite from a copy in a mode-700 directory and sets
 * HPCPIPE_PRIVATE_CHECKOUT=1: there a readable path fails the run; elsewhere it is a notice.
 */
async function checkPrivacy(facts: ClusterFacts): Promise<void> {
  const { checkout, tmp } = clientPaths();
  const readable = await readableByClusterUser(facts, [checkout, tmp]);
  if (readable.length === 0) {
    process.stderr.write(`[hpcpipe] the cluster's user (${facts.user}) cannot read this checkout (${checkout}) nor the temp directory (${tmp}): jobs can rely on nothing of the client.\n`);
    return;
  }
  const message =
    `the cluster's user (${facts.user}) can read ${readable.join(" and ")}: the end-to-end tests cannot prove that jobs need nothing of the client ` +
    "(a real cluster shares no filesystem with it). Run the suite from a checkout in a mode-700 directory with TMPDIR inside it, as .ci/run does.";
  if (process.env.HPCPIPE_PRIVATE_CHECKOUT === "1") throw new PrivacyError(`HPCPIPE_PRIVATE_CHECKOUT=1: ${message}`);
  process.stderr.write(`[hpcpipe] notice: ${message}\n`);
}

export default async function setup(project: TestProject): Promise<void> {
  if (!(await e2eRequested(project))) return;

  if (process.env.HPCPIPE_E2E === "0") {
    if (!inCi()) {
      loudNotice("HPCPIPE_E2E=0 is set: skipping on purpose.");
      process.env.HPCPIPE_E2E = "skip";
      return;
    }
    process.stderr.write("[hpcpipe] HPCPIPE_E2E=0 is ignored in CI: end-to-end tests always run there.\n");
  }

  process.stderr.write("[hpcpipe] checking the local SLURM test cluster (a first start installs packages)...\n");
  try {
    // A run that left the cluster reconfigured (e.g. MaxArraySize 5) is put back to the defaults.
    const facts = await ensureCluster({ ...DEFAULT_CLUSTER_SHAPE, echo: true });
    await checkPrivacy(facts);
    process.env.HPCPIPE_E2E = "1";
    project.provide("cluster", facts);
  } catch (error) {
    if (error instanceof PrivacyError) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    if (inCi()) {
      throw new Error(`CI: the local SLURM test cluster could not start, so the end-to-end tests cannot run.\n${reason}`, {
        cause: error,
      });
    }
    loudNotice(`The local SLURM test cluster could not start:\n${reason}`);
    process.env.HPCPIPE_E2E = "skip";
  }
}
