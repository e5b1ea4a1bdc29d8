/**
 * What a new user tripped over (issue 12), refused or warned about before
 * anything runs: a signal grace not below a job's time limit, a published
 * value used without `requires`, per-item output patterns outside a map,
 * unknown `--set` keys, and a map with no items.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { cli } from "./helpers.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "hpcpipe-newcomer-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function spec(name: string, lines: string[]): Promise<string> {
  const path = join(dir, `${name}.yaml`);
  await writeFile(path, `${lines.join("\n")}\n`);
  return path;
}

async function cluster(grace: number): Promise<string> {
  const path = join(dir, `grace${grace}.yaml`);
  await writeFile(path, ["name: graceful", "executor: local", `workdir: ${join(dir, "runs")}`, `signal_grace_s: ${grace}`, ""].join("\n"));
  return path;
}

describe("signal_grace_s against the time limits", () => {
  test("a grace at or above a job's time limit is refused at compile time, naming the step, the grace and the limit", async () => {
    const path = await spec("short", ["name: short", "steps:", "  - step: quick", "    run: 'true'", '    resources: { time: "1:00" }']);
    for (const grace of [60, 90]) {
      const result = await cli("plan", path, "--cluster", await cluster(grace));
      expect(result.code).toBe(65);
      expect(result.stderr).toContain("short.quick");
      expect(result.stderr).toContain(`signal_grace_s (${grace} s)`);
      expect(result.stderr).toContain("1:00");
    }
    expect((await cli("plan", path, "--cluster", await cluster(59))).code).toBe(0);
  });

  test("a fused job is checked against its summed time limit, a packed task against its own", async () => {
    const fused = await spec("fused", [
      "name: fused",
      'defaults: { time: "0:40" }',
      "steps:",
      "  - step: a",
      "    run: 'true'",
      "  - step: b",
      "    run: 'true'",
    ]);
    // 40 s each, 80 s together in one job: a 60 s grace fits the job.
    expect((await cli("plan", fused, "--cluster", await cluster(60))).code).toBe(0);
    const refused = await cli("plan", fused, "--cluster", await cluster(60), "--no-fuse");
    expect(refused.code).toBe(65);
    expect(refused.stderr).toContain("fused.a");
    expect(refused.stderr).toContain("fused.b");
  });
});

describe("published values used without requires", () => {
  const upstream = [
    "name: pub",
    "steps:",
    "  - step: prep",
    '    run: echo "scene=out/scene.txt" >> "$HPCPIPE_PUBLISH"',
    "    provides: [scene]",
    "    fuse: false",
  ];

  for (const use of ['cat "$scene"', "cat ${scene}", 'cat "${scene:-none}"', "echo x$scene/y"]) {
    test(`'${use}' without requires: [scene] is refused, naming the step and the key`, async () => {
      const path = await spec("use", [...upstream, "  - step: render", `    run: ${JSON.stringify(use)}`]);
      const result = await cli("plan", path);
      expect(result.code).toBe(65);
      expect(result.stderr).toContain("pub.render");
      expect(result.stderr).toContain("'scene'");
      expect(result.stderr).toContain("requires");
      expect((await cli("plan", await spec("ok", [...upstream, "  - step: render", `    run: ${JSON.stringify(use)}`, "    requires: [scene]"]))).code).toBe(0);
    });
  }

  for (const [why, run, extra] of [
    ["single-quoted text", "echo '$scene'", []],
    ["an escaped dollar", 'echo "\\$scene"', []],
    ["a longer name", 'echo "$scenery"', []],
    ["a variable the step sets itself", 'scene=mine; echo "$scene"', []],
    ["a loop variable of the step", 'for scene in a b; do echo "$scene"; done', []],
    ["the step's own env", 'echo "$scene"', ["    env: { scene: fixed }"]],
    ["a key nobody upstream publishes", 'echo "$HOME $other"', []],
  ] as const) {
    test(`no refusal for ${why}`, async () => {
      const path = await spec("fine", [...upstream, "  - step: render", `    run: ${JSON.stringify(run)}`, ...extra]);
      const result = await cli("plan", path);
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
    });
  }

  test("a published value used inside a map item without requires is refused too", async () => {
    const path = await spec("inmap", [
      ...upstream,
      "  - map: each",
      "    items: [a, b]",
      "    steps:",
      "      - step: use",
      '        run: echo "$item $scene"',
      "        requires: [item]",
    ]);
    const result = await cli("plan", path);
    expect(result.code).toBe(65);
    expect(result.stderr).toContain("pub.each.{i}.use");
    expect(result.stderr).toContain("'scene'");
  });
});

describe("per-item output patterns", () => {
  test("{i} and {item} in the outputs of a step outside a map are refused, naming the step", async () => {
    const path = await spec("nomap", ["name: nomap", "steps:", "  - step: a", "    run: 'true'", '    outputs: ["out/{item}.txt"]']);
    const result = await cli("plan", path);
    expect(result.code).toBe(65);
    expect(result.stderr).toContain("nomap.a");
    expect(result.stderr).toContain("{item}");
  });
});

describe("--set", () => {
  test("an unknown key is refused (exit 64), listing the keys the pipeline knows", async () => {
    const result = await cli("plan", "examples/specs/batch-map.yaml", "--set", "threshold=3");
    expect(result.code).toBe(64);
    expect(result.stderr).toContain("threshold");
    expect(result.stderr).toContain("min_bytes");
  });

  test("a key the pipeline requires from the context but does not set is known", async () => {
    const path = await spec("needs", ["name: needs", "steps:", "  - step: a", '    run: echo "$model"', "    requires: [model]"]);
    expect((await cli("plan", path, "--set", "model=x.glb")).code).toBe(0);
    const unknown = await cli("plan", path, "--set", "model=x.glb", "--set", "modle=y");
    expect(unknown.code).toBe(64);
    expect(unknown.stderr).toContain("modle");
    expect(unknown.stderr).toContain("model");
  });

  test("every example in submit --help and run --help sets only keys its spec knows", async () => {
    for (const command of ["run", "submit", "plan"]) {
      const help = (await cli(command, "--help")).stdout;
      for (const m of help.matchAll(/\$ hpcpipe \S+ (\S+\.yaml)[^\n]*?((?: --set \S+)+)/g)) {
        const sets = [...(m[2] ?? "").matchAll(/--set (\S+)/g)].flatMap((s) => ["--set", s[1] as string]);
        const result = await cli("plan", m[1] as string, ...sets);
        expect(result.stderr).toBe("");
        expect(result.code).toBe(0);
      }
    }
  });
});

describe("a map with no items", () => {
  test("runs, but with a warning naming the map", async () => {
    await writeFile(join(dir, "none.txt"), "# nothing yet\n");
    const path = await spec("empty", ["name: empty", "steps:", "  - map: each", "    items_file: none.txt", "    steps:", "      - step: use", '        run: echo "$item"', "        requires: [item]"]);
    const planned = await cli("plan", path);
    expect(planned.code).toBe(0);
    expect(planned.stderr).toMatch(/warning: map empty\.each has 0 items/);
    const ran = await cli("run", path, "--runs-dir", join(dir, "runs"), "-q");
    expect(ran.code).toBe(0);
    expect(ran.stderr).toMatch(/warning: map empty\.each has 0 items/);
  });
});
