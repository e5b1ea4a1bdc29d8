// `hpcpipe pull` and `submit --wait --pull` on the real test cluster: the declared outputs come home in
// one transfer, byte for byte; files already here with the same hash are skipped; patterns select;
// symlinks, paths leading outside the run and files over the caps are refused.
import { createHash, randomBytes } from "node:crypto";
import { existsSync, lstatSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { remotePath } from "../../src/transport/index.js";
import { cli } from "../cli/helpers.js";
import { e2eSkipped, runIdFrom, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";

const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

describe.skipIf(e2eSkipped)("outputs home: hpcpipe pull", { timeout: 120_000 }, () => {
  let env: WorkflowEnv;
  let cluster: string;
  let runId: string;
  let remoteBin: string;

  beforeAll(async () => {
    env = workflowEnv("pull");
    cluster = env.config("pullcluster");
  }, 60_000);
  afterAll(async () => {
    await env?.cleanup();
  });

  it("submit --wait --pull brings every declared output home, byte for byte (exit 0)", async () => {
    const spec = env.spec(
      "outputs",
      [
        "name: outputs",
        "steps:",
        "  - step: make",
        "    run: |",
        "      mkdir -p out/sub",
        "      printf 'hello\\n' > out/a.txt",
        "      head -c 1048576 /dev/urandom > out/sub/b.bin",
        "      printf '\\x89PNG\\r\\n\\x1a\\n' > out/frame.png",
        "    outputs: [out/a.txt, out/sub/b.bin, out/frame.png]",
        "",
      ].join("\n"),
    );
    const to = path.join(env.dir, "home-outputs");
    const r = await cli("submit", spec, "--cluster", cluster, "--wait", "--pull", "--to", to);
    expect(r.code, r.stderr).toBe(0);
    runId = runIdFrom(r.stderr);
    expect(r.stderr).toMatch(/pulled 3 file\(s\), 1\.0 MiB, into .*home-outputs; 0 already there with the same hash; 0 refused/);
    expect(readFileSync(path.join(to, "out/a.txt"), "utf8")).toBe("hello\n");
    const record = await env.record(runId);
    remoteBin = `${record.remote_dir}/work/out/sub/b.bin`;
    const remote = await env.remote();
    const remoteSum = (await remote.exec(["sha256sum", remotePath(remoteBin)])).stdout.split(" ")[0];
    expect(sha(readFileSync(path.join(to, "out/sub/b.bin")))).toBe(remoteSum);
    // No temp files left beside them.
    expect(readdirSync(path.join(to, "out")).sort()).toEqual(["a.txt", "frame.png", "sub"]);
  });

  it("a second pull sends nothing; an edited local copy is fetched again; patterns select", async () => {
    const to = path.join(env.dir, "home-outputs");
    const again = await cli("pull", runId, "--to", to);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/pulled 0 file\(s\), 0 B, .*; 3 already there with the same hash; 0 refused/);

    writeFileSync(path.join(to, "out/a.txt"), "edited here\n");
    const one = await cli("pull", runId, "--to", to, "--json");
    expect(one.code, one.stderr).toBe(0);
    expect(JSON.parse(one.stdout)).toMatchObject({ fetched: ["out/a.txt"], skipped: ["out/frame.png", "out/sub/b.bin"], refused: [] });
    expect(readFileSync(path.join(to, "out/a.txt"), "utf8")).toBe("hello\n");

    const only = path.join(env.dir, "only-png");
    const png = await cli("pull", runId, "out/*.png", "--to", only);
    expect(png.code, png.stderr).toBe(0);
    expect(readdirSync(path.join(only, "out"))).toEqual(["frame.png"]);
    const deep = await cli("pull", runId, "out/**", "--to", path.join(env.dir, "deep"), "--json");
    expect(JSON.parse(deep.stdout).fetched).toEqual(["out/a.txt", "out/frame.png", "out/sub/b.bin"]);

    const none = await cli("pull", runId, "renders/*.exr", "--to", path.join(env.dir, "none"));
    expect(none.code).toBe(65);
    expect(none.stderr).toContain(`no output of run ${runId} matches "renders/*.exr"; its outputs are: out/a.txt, out/frame.png, out/sub/b.bin`);
    expect(existsSync(path.join(env.dir, "none"))).toBe(false);

    const capped = await cli("pull", runId, "--to", path.join(env.dir, "capped"), "--max-file", "100K", "--json");
    expect(capped.code).toBe(65);
    expect(JSON.parse(capped.stdout).refused).toEqual([{ path: "out/sub/b.bin", reason: "over the size cap of one file (1048576 bytes)" }]);
  });

  it("refuses symlinks and paths that lead outside the run, and fetches the rest (exit 65)", async () => {
    const secret = `hpcpipe-secret-${randomBytes(4).toString("hex")}`;
    const spec = env.spec(
      "hostile-outputs",
      [
        "name: hostile_outputs",
        "steps:",
        "  - step: make",
        "    run: |",
        "      mkdir -p out",
        "      printf 'fine\\n' > out/fine.txt",
        `      printf '${secret}\\n' > "$HOME/${secret}.txt"`,
        `      ln -s "$HOME/${secret}.txt" out/link.txt`,
        '      ln -s "$HOME" out/home',
        `    outputs: [out/fine.txt, out/link.txt, out/home/${secret}.txt]`,
        "",
      ].join("\n"),
    );
    const submitted = await cli("submit", spec, "--cluster", cluster, "--wait");
    expect(submitted.code, submitted.stderr).toBe(0);
    const id = runIdFrom(submitted.stderr);
    const to = path.join(env.dir, "hostile-home");
    const r = await cli("pull", id, "--to", to, "--json");
    expect(r.code).toBe(65);
    const out = JSON.parse(r.stdout) as { fetched: string[]; refused: { path: string; reason: string }[] };
    expect(out.fetched).toEqual(["out/fine.txt"]);
    expect(out.refused).toEqual([
      { path: `out/home/${secret}.txt`, reason: "outside the run directory" },
      { path: "out/link.txt", reason: "a symlink" },
    ]);
    expect(r.stderr).toMatch(/refused out\/link\.txt: a symlink/);
    // Nothing of the secret arrived, and nothing was written as a link.
    expect(existsSync(path.join(to, "out/link.txt"))).toBe(false);
    expect(existsSync(path.join(to, "out/home"))).toBe(false);
    expect(lstatSync(path.join(to, "out/fine.txt")).isFile()).toBe(true);
    const remote = await env.remote();
    await remote.exec(["rm", "-f", remotePath(`$HOME/${secret}.txt`)]);
  });
});
