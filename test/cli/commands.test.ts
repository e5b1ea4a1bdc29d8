import { once } from "node:events";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { cli } from "./helpers.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "hpcpipe-cli-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("hpcpipe", () => {
  test("--version prints the package version and --help lists every command", async () => {
    const version = await cli("--version");
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const help = await cli("--help");
    expect(help.code).toBe(0);
    for (const command of ["run", "plan", "submit", "inspect"]) expect(help.stdout).toMatch(new RegExp(`\\n  ${command} `));
  });

  test("every command's --help carries an example", async () => {
    for (const command of ["run", "plan", "submit", "inspect"]) {
      const help = await cli(command, "--help");
      expect(help.code).toBe(0);
      expect(help.stdout).toContain("Examples:");
    }
  });

  test("an unknown option is a usage error with exit 64", async () => {
    const result = await cli("plan", "examples/specs/chain.yaml", "--bogus");
    expect(result.code).toBe(64);
    expect(result.stderr).toContain("unknown option");
  });
});

describe("hpcpipe plan", () => {
  test("shows the job graph with the parallel group as one array job", async () => {
    const result = await cli("plan", "examples/specs/thumbnail-shape.yaml");
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("3 job(s)");
    expect(result.stdout).toMatch(/j001 +array\[4\]/);
  });

  test("shows every fusion", async () => {
    const result = await cli("plan", "examples/specs/chain.yaml");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/fusions \(consecutive steps/);
    expect((await cli("plan", "examples/specs/chain.yaml", "--no-fuse")).stdout).toContain("fusions: none");
  });

  test("prints JSON and Mermaid", async () => {
    const json = await cli("plan", "examples/specs/batch-map.yaml", "--format", "json");
    expect(json.code).toBe(0);
    const plan = JSON.parse(json.stdout) as { jobs: Array<{ shape: string }> };
    expect(plan.jobs.some((j) => j.shape === "map")).toBe(true);
    const mermaid = await cli("plan", "examples/specs/thumbnail-shape.yaml", "--format", "mermaid");
    expect(mermaid.stdout).toMatch(/^flowchart TD\n/);
    expect(mermaid.stdout).toContain("j000 --> j001");
  });

  test("a malformed spec is refused with exit 65, naming the file and the field", async () => {
    const spec = join(dir, "bad.yaml");
    await writeFile(spec, "name: bad\nsteps:\n  - step: a\n    run: 3\n");
    const result = await cli("plan", spec);
    expect(result.code).toBe(65);
    expect(result.stderr).toContain(spec);
    expect(result.stderr).toContain("steps[0].run");
  });

  test("a missing spec file is exit 66 and an unknown cluster config exit 78", async () => {
    expect((await cli("plan", join(dir, "nope.yaml"))).code).toBe(66);
    const unknown = await cli("plan", "examples/specs/chain.yaml", "--cluster", "no-such-cluster");
    expect(unknown.code).toBe(78);
  });

  test("a requirement nobody provides is a compile error naming the step and key, exit 65", async () => {
    const spec = join(dir, "needs.yaml");
    await writeFile(spec, "name: needs\nsteps:\n  - step: a\n    run: echo \"$model\"\n    requires: [model]\n");
    const result = await cli("plan", spec);
    expect(result.code).toBe(65);
    expect(result.stderr).toContain("step needs.a requires 'model'");
    expect((await cli("plan", spec, "--set", "model=x.glb")).code).toBe(0);
  });

  test("a bad --set is a usage error", async () => {
    const result = await cli("plan", "examples/specs/chain.yaml", "--set", "PATH=/evil");
    expect(result.code).toBe(64);
    expect(result.stderr).toContain("reserved");
  });
});

describe("hpcpipe submit --dry-run", () => {
  test("prints every sbatch script and the submit script in submission order and contacts nothing", async () => {
    let connections = 0;
    const server = createServer((socket) => {
      connections += 1;
      socket.destroy();
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as { port: number }).port;
    const config = join(dir, "trap.yaml");
    await writeFile(
      config,
      [
        "name: trap",
        "executor: slurm",
        "connection:",
        "  host: 127.0.0.1",
        `  port: ${port}`,
        "  user: nobody",
        "workdir: $HOME/runs",
        "",
      ].join("\n"),
    );
    try {
      const result = await cli("submit", "examples/specs/thumbnail-shape.yaml", "--cluster", config, "--dry-run");
      expect(result.code).toBe(0);
      const headers = [...result.stdout.matchAll(/^### (\S+)/gm)].map((m) => m[1]);
      expect(headers).toEqual(["scripts/j000.sbatch", "scripts/j001.sbatch", "scripts/j002.sbatch", "scripts/submit.sh"]);
      expect(result.stdout).toContain("#SBATCH --array=0-3%4");
    } finally {
      server.close();
    }
    expect(connections).toBe(0);
  });

  test("--out writes the whole bundle, whose scripts pass bash -n", async () => {
    const out = join(dir, "bundle");
    const result = await cli("submit", "examples/specs/batch-map.yaml", "--cluster", "localcluster", "--dry-run", "--out", out);
    expect(result.code).toBe(0);
    const scripts = await readdir(join(out, "scripts"));
    expect(scripts).toContain("submit.sh");
    expect(scripts).toContain("lib.sh");
    const { spawnSync } = await import("node:child_process");
    for (const name of scripts) expect(spawnSync("bash", ["-n", join(out, "scripts", name)]).status).toBe(0);
    expect((await readFile(join(out, "context.env0"))).length).toBeGreaterThan(0);
  });
});

describe("hpcpipe run", () => {
  test("runs the thumbnail-shaped pipeline with the local executor and exits 0 with every step ok", async () => {
    const result = await cli("run", "examples/specs/thumbnail-shape.yaml", "--runs-dir", dir, "--json", "-q");
    expect(result.code).toBe(0);
    const state = JSON.parse(result.stdout) as { success: boolean; step_states: Record<string, { success: boolean }> };
    expect(state.success).toBe(true);
    expect(Object.keys(state.step_states).sort()).toEqual(
      [
        "thumbnail_shape.metadata",
        "thumbnail_shape.prep",
        "thumbnail_shape.renders",
        "thumbnail_shape.renders.front",
        "thumbnail_shape.renders.iso",
        "thumbnail_shape.renders.side",
        "thumbnail_shape.renders.top",
      ],
    );
    expect(Object.values(state.step_states).every((s) => s.success)).toBe(true);
  });

  test("a failing step gives exit 4, stops its dependents, and the summary names it", async () => {
    const spec = join(dir, "fail.yaml");
    await writeFile(
      spec,
      ["name: failing", "steps:", "  - step: a", "    run: exit 3", "    fuse: false", "  - step: b", "    run: echo never", ""].join("\n"),
    );
    const result = await cli("run", spec, "--runs-dir", dir, "-q");
    expect(result.code).toBe(4);
    expect(result.stdout).toMatch(/failing\.a +STEP_FAILED/);
    expect(result.stdout).toMatch(/failing\.b +not run/);
  });
});

describe("partition limits", () => {
  test("a step asking for more than its partition allows is refused before anything runs, naming the step", async () => {
    const spec = join(dir, "gpu.yaml");
    await writeFile(spec, ["name: big", "steps:", "  - step: render", "    run: 'true'", "    resources: { partition: gpu, gpus: 8 }", ""].join("\n"));
    const result = await cli("plan", spec, "--cluster", "example-university");
    expect(result.code).toBe(65);
    expect(result.stderr).toContain("big.render");
    expect(result.stderr).toMatch(/8 GPUs?/);
  });
});
