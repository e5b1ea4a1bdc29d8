// The cluster workflow's commands through the in-process CLI, without a cluster:
// help texts, exit codes for unknown and damaged runs, and an unreachable cluster.
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RunStore } from "../../src/runs/index.js";
import { cli } from "../cli/helpers.js";
import { REPO } from "./fakes.js";

let dir: string;
let savedHome: string | undefined;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-cli-workflow-"));
  savedHome = process.env.HPCPIPE_HOME;
  process.env.HPCPIPE_HOME = path.join(dir, "home");
});
afterEach(() => {
  if (savedHome === undefined) delete process.env.HPCPIPE_HOME;
  else process.env.HPCPIPE_HOME = savedHome;
  rmSync(dir, { recursive: true, force: true });
});

describe("the cluster workflow commands", () => {
  it("are listed, and each has --help with an example", async () => {
    const help = await cli("--help");
    for (const command of ["submit", "status", "collect", "cancel", "logs", "runs"]) {
      expect(help.stdout).toMatch(new RegExp(`\\n  ${command} `));
      const own = await cli(command, "--help");
      expect(own.code).toBe(0);
      expect(own.stdout).toContain("Examples:");
    }
    expect((await cli("submit", "--help")).stdout).toContain("--on-interrupt");
  });

  it("runs says when there is nothing, and prints [] as JSON", async () => {
    expect((await cli("runs")).stdout).toContain("no runs recorded yet");
    expect(JSON.parse((await cli("runs", "--json")).stdout)).toEqual([]);
  });

  it("an unknown run is exit 66 naming it; a damaged record is exit 65 naming the file", async () => {
    for (const command of ["status", "collect", "cancel"]) {
      const result = await cli(command, "no-such-run");
      expect(result.code).toBe(66);
      expect(result.stderr).toContain('no run "no-such-run"');
    }
    expect((await cli("logs", "no-such-run", "prep")).code).toBe(66);
    expect((await cli("status", "../../etc")).code).toBe(66);
    const store = new RunStore(path.join(dir, "home"));
    await store.writeRecord({
      format: 1, run_id: "r1", pipeline: "p", spec: "s", cluster: "c", cluster_config: "c.yaml", remote_dir: "$HOME/r1",
      plan_signature: "x", created: "2026-01-01T00:00:00Z", updated: "2026-01-01T00:00:00Z", phase: "submitted", jobs: {}, error: null,
    });
    writeFileSync(path.join(store.runDir("r1"), "run.json"), "{ broken");
    const damaged = await cli("status", "r1");
    expect(damaged.code).toBe(65);
    expect(damaged.stderr).toContain(path.join(store.runDir("r1"), "run.json"));
    const listed = await cli("runs");
    expect(listed.code).toBe(0);
    expect(listed.stderr).toContain("skipped an unreadable record");
  });

  it("a cluster that cannot be reached is exit 69, and the record says the submission failed", async () => {
    const server = createServer((socket) => socket.destroy());
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as { port: number }).port;
    const config = path.join(dir, "down.yaml");
    const knownHosts = path.join(dir, "known_hosts");
    writeFileSync(knownHosts, "", { mode: 0o600 });
    writeFileSync(config, ["name: down", "executor: slurm", "connection:", "  host: 127.0.0.1", `  port: ${port}`, "  user: nobody", `  known_hosts: ${knownHosts}`, "  connect_timeout_s: 5", "workdir: $HOME/runs", ""].join("\n"));
    try {
      const result = await cli("submit", path.join(REPO, "examples/specs/chain.yaml"), "--cluster", config);
      expect(result.code).toBe(69);
      expect(result.stderr).toContain("cannot reach the cluster (127.0.0.1:");
    } finally {
      server.close();
    }
    const { records } = await new RunStore(path.join(dir, "home")).list();
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ phase: "submit_failed", cluster: "down" });
  });

  it("submit refuses --out without --dry-run as a usage error", async () => {
    expect((await cli("submit", path.join(REPO, "examples/specs/chain.yaml"), "--cluster", "localcluster", "--out", dir)).code).toBe(64);
  });
});
