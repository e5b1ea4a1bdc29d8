import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Starts the project's own SLURM test cluster when e2e tests are part of the run (see scripts/cluster/README.md).
    globalSetup: ["./test/support/test-tools.ts", "./test/support/global-setup.ts"],
    // `hpcpipe run` records its runs: tests never write into the developer's ~/.hpcpipe.
    env: { HPCPIPE_HOME: join(tmpdir(), `hpcpipe-test-home-${process.pid}`) },
    testTimeout: 30_000,
    hookTimeout: 120_000,
  },
});
