import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Starts the project's own SLURM test cluster when e2e tests are part of the run (see scripts/cluster/README.md).
    globalSetup: ["./test/support/test-tools.ts", "./test/support/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 120_000,
  },
});
