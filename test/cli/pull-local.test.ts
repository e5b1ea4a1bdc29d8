// `hpcpipe pull` of a run on this machine: the same rules as on a cluster (the executor interface),
// the declared outputs copied from the run's work/ directory, hash-skipped, symlinks refused.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli } from "./helpers.js";

let dir: string;
let previousHome: string | undefined;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-pull-local-"));
  previousHome = process.env.HPCPIPE_HOME;
  process.env.HPCPIPE_HOME = path.join(dir, "home");
});
afterAll(() => {
  if (previousHome === undefined) delete process.env.HPCPIPE_HOME;
  else process.env.HPCPIPE_HOME = previousHome;
  rmSync(dir, { recursive: true, force: true });
});

describe("hpcpipe pull of a local run", () => {
  it("copies the declared outputs, skips what is already there, refuses a symlink", async () => {
    const spec = path.join(dir, "outs.yaml");
    writeFileSync(
      spec,
      [
        "name: outs",
        "steps:",
        "  - step: make",
        "    run: |",
        "      mkdir -p out",
        "      printf 'one\\n' > out/one.txt",
        "      ln -s /etc/hostname out/link.txt",
        "    outputs: [out/one.txt, out/link.txt]",
        "",
      ].join("\n"),
    );
    const ran = await cli("run", spec, "--runs-dir", path.join(dir, "runs"));
    expect(ran.code, ran.stderr).toBe(0);
    const runId = /pipeline outs, run (\S+)/.exec(ran.stdout)?.[1] ?? "";
    expect(runId).not.toBe("");
    const to = path.join(dir, "home-outputs");
    const first = await cli("pull", runId, "--to", to, "--json");
    expect(first.code).toBe(65);
    expect(JSON.parse(first.stdout)).toMatchObject({ fetched: ["out/one.txt"], skipped: [], refused: [{ path: "out/link.txt", reason: "a symlink" }] });
    expect(readFileSync(path.join(to, "out/one.txt"), "utf8")).toBe("one\n");
    expect(existsSync(path.join(to, "out/link.txt"))).toBe(false);
    const again = await cli("pull", runId, "out/one.txt", "--to", to, "--json");
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ fetched: [], skipped: ["out/one.txt"], refused: [] });
  });
});
