// The step cache across runs on the real test cluster (src/cache, templates/lib.sh _hp_cache_put):
// a rerun with nothing changed submits no job and merges to the same result; a changed item reruns
// that item and what follows; a changed script, context value or setup line reruns what it keys; an
// entry written by another user is not used unless the config trusts that user; an output blob the
// store lost turns its hit into a miss; --no-cache and `cache: false` run steps again.
import { execFileSync } from "node:child_process";
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { storeDir } from "../../src/store/index.js";
import type { SshTransport } from "../../src/transport/index.js";
import { cli } from "../cli/helpers.js";
import { e2eSkipped, readRemote, runIdFrom, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";

interface StepView {
  success: boolean;
  outputs: unknown;
  error: string | null;
  failure: string | null;
  signature: string;
  provides: string[];
  meta: Record<string, unknown>;
}

describe.skipIf(e2eSkipped)("the step cache on the test cluster", { timeout: 180_000 }, () => {
  let env: WorkflowEnv;
  let cluster: string;
  let remote: SshTransport;
  let specDir: string;
  let home: string;
  let store: string;

  const sh = async (script: string): Promise<string> => {
    const r = await remote.exec(["bash", "-c", script]);
    if (r.code !== 0) throw new Error(`${script}: exit ${r.code}: ${r.stderr}`);
    return r.stdout;
  };

  const spec = (items: string[], extra = ""): string =>
    [
      "name: cached",
      "context:",
      "  quality: high",
      "bundle: [bin/]",
      "steps:",
      "  - step: prep",
      '    run: bash bin/prep.sh',
      "    provides: [greeting]",
      "    outputs: [out/prep.txt]",
      "  - map: items",
      `    items: ${JSON.stringify(items)}`,
      "    as: item",
      "    items_per_task: 2",
      "    steps:",
      "      - step: one",
      '        run: mkdir -p out/one && echo "$item $greeting $(cat out/prep.txt) $RANDOM$RANDOM" > "out/one/$item.txt"',
      "        requires: [item, greeting]",
      '        outputs: ["out/one/{item}.txt"]',
      "      - step: two",
      '        run: mkdir -p out/two && { cat "out/one/$item.txt"; echo "$quality"; } > "out/two/$HPCPIPE_TASK.txt" && echo "size=$(wc -c < "out/two/$HPCPIPE_TASK.txt")" >> "$HPCPIPE_PUBLISH"',
      "        requires: [item, quality]",
      "        provides: [size]",
      '        outputs: ["out/two/{i}.txt"]',
      extra,
      "  - step: total",
      "    run: cat out/two/*.txt > out/total.txt",
      "    outputs: [out/total.txt]",
      "",
    ].join("\n");

  const write = (items: string[], extra = ""): string => {
    const file = path.join(specDir, "pipeline.yaml");
    writeFileSync(file, spec(items, extra));
    return file;
  };

  const submit = async (file: string, ...flags: string[]): Promise<{ runId: string; stderr: string; restored: number; of: number }> => {
    const r = await cli("submit", file, "--cluster", flags.includes("--cluster") ? (flags[flags.indexOf("--cluster") + 1] as string) : cluster, "--wait", ...flags.filter((f, i, all) => f !== "--cluster" && all[i - 1] !== "--cluster"));
    expect(r.code, r.stderr).toBe(0);
    const m = /step cache: (\d+) of (\d+) step\(s\) restored/.exec(r.stderr);
    return { runId: runIdFrom(r.stdout + r.stderr), stderr: r.stderr, restored: m ? Number(m[1]) : -1, of: m ? Number(m[2]) : -1 };
  };

  const result = (runId: string): { success: boolean; step_states: Record<string, StepView> } =>
    JSON.parse(readFileSync(path.join(env.home, "runs", runId, "result.json"), "utf8")) as { success: boolean; step_states: Record<string, StepView> };

  /** A step's state without what the comparison ignores: timestamps, durations, job ids, hosts, the cached marker. */
  const comparable = (s: StepView): unknown => {
    const { slurm: _slurm, host: _host, cached: _cached, ...meta } = s.meta;
    return { success: s.success, outputs: s.outputs, error: s.error, failure: s.failure, signature: s.signature, provides: s.provides, meta };
  };

  const ITEMS = ["a", "b", "c"];
  let first: { runId: string };

  beforeAll(async () => {
    env = workflowEnv("stepcache");
    cluster = env.config("cachecluster");
    remote = await env.remote();
    home = (await sh('printf %s "$HOME"')).trim();
    store = storeDir({ workdir: env.workdir }).replace("$HOME", home);
    specDir = path.join(env.dir, "spec");
    mkdirSync(path.join(specDir, "bin"), { recursive: true });
    writeFileSync(path.join(specDir, "bin", "prep.sh"), 'mkdir -p out && echo prep-v1 > out/prep.txt && echo "greeting=hello" >> "$HPCPIPE_PUBLISH"\n');
    first = await submit(write(ITEMS));
  }, 180_000);
  afterAll(async () => {
    await env?.cleanup();
  });

  it("a rerun with nothing changed submits no job, restores every output, and merges to the same result", async () => {
    const again = await submit(write(ITEMS));
    expect(again.stderr).toMatch(/every step was restored from the step cache; nothing to submit/);
    expect(again.restored).toBe(8);
    expect(again.of).toBe(8);
    const record = await env.record(again.runId);
    expect(record.jobs).toEqual({});
    const a = result(first.runId);
    const b = result(again.runId);
    expect(b.success).toBe(true);
    expect(Object.keys(b.step_states).sort()).toEqual(Object.keys(a.step_states).sort());
    for (const key of Object.keys(a.step_states)) expect(comparable(b.step_states[key] as StepView), key).toEqual(comparable(a.step_states[key] as StepView));
    // Every leaf says where it came from.
    expect(b.step_states["cached.items.1.two"]?.meta.cached).toMatchObject({ run: first.runId, step: "cached.items.1.two" });
    expect(a.step_states["cached.items.1.two"]?.meta.cached).toBeUndefined();
    // The outputs are there, with the bytes the first run wrote ($RANDOM in them: a rerun would differ).
    const firstRecord = await env.record(first.runId);
    for (const rel of ["work/out/one/b.txt", "work/out/two/1.txt", "work/out/total.txt", "work/out/prep.txt"]) {
      const before = await readRemote(remote, firstRecord.remote_dir, rel);
      expect(before, rel).not.toBeNull();
      expect(await readRemote(remote, record.remote_dir, rel), rel).toBe(before);
    }
  });

  it("a changed item reruns that item's steps and the step after the map, only", async () => {
    const run = await submit(write(["a", "bb", "c"]));
    expect(run.restored).toBe(5);
    const r = result(run.runId);
    const cached = Object.entries(r.step_states).filter(([, s]) => s.meta.cached !== undefined && typeof s.meta.exit_code === "number").map(([k]) => k).sort();
    expect(cached).toEqual(["cached.items.0.one", "cached.items.0.two", "cached.items.2.one", "cached.items.2.two", "cached.prep"]);
    expect(r.step_states["cached.items.1.one"]?.meta.cached).toBeUndefined();
    expect(r.step_states["cached.total"]?.meta.cached).toBeUndefined();
    // Its packed task (items 0 and 1) ran item 1 only: item 0's steps were not run again (no log section of
    // theirs in the task's slot logs), and the task of item 2 did not run at all (no slot log).
    const record = await env.record(run.runId);
    const slot = r.step_states["cached.items.1.one"]?.meta.log;
    expect(slot).toMatch(/^logs\/cached\.items\.items-0-1\.s\d+$/);
    const err = await readRemote(remote, record.remote_dir, `${String(slot)}.err`);
    expect(err).toContain("\x1ehpcpipe cached.items.1.one\n");
    expect(err).not.toContain("\x1ehpcpipe cached.items.0.one\n");
    expect(await readRemote(remote, record.remote_dir, "logs/cached.items.items-2-2.s0.err")).toBeNull();
  });

  it("editing a bundled script (no command text changes) reruns everything", async () => {
    const file = write(ITEMS);
    const script = path.join(specDir, "bin", "prep.sh");
    const original = readFileSync(script, "utf8");
    try {
      writeFileSync(script, original.replace("prep-v1", "prep-v2"));
      const run = await submit(file);
      expect(run.restored).toBe(0);
      expect(await readRemote(remote, (await env.record(run.runId)).remote_dir, "work/out/prep.txt")).toBe("prep-v2\n");
    } finally {
      writeFileSync(script, original);
    }
  });

  it("a context value reruns the steps that require it (and what follows), only", async () => {
    const run = await submit(write(ITEMS), "--set", "quality=low");
    // prep and the three `one` steps stay; every `two` (requires quality) and total run.
    expect(run.restored).toBe(4);
    expect(result(run.runId).step_states["cached.items.0.two"]?.meta.cached).toBeUndefined();
  });

  it("another setup line in the cluster config reruns everything", async () => {
    const other = path.join(env.dir, "cachecluster-setup.yaml");
    writeFileSync(other, readFileSync(cluster, "utf8").replace("name: cachecluster", "name: cachecluster-setup"));
    appendFileSync(other, "setup:\n  - export HPCPIPE_TEST_SETUP=1\n");
    const run = await submit(write(ITEMS), "--cluster", other);
    expect(run.restored).toBe(0);
  });

  it("--no-cache and `cache: false` run steps again", async () => {
    const r = await cli("submit", write(ITEMS), "--cluster", cluster, "--wait", "--no-cache");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/step cache:/);
    expect(JSON.stringify(result(runIdFrom(r.stderr)))).not.toMatch(/"cached"/);
    const off = await submit(write(ITEMS, "        cache: false"));
    // Only prep and the `one` steps: `two` is never cached, and total comes after it.
    expect(off.restored).toBe(4);
  });

  it("an output blob the store lost (purged) turns its hit into a miss", async () => {
    const run = await submit(write(["a", "b", "c", "d"]));
    expect(run.restored).toBe(7); // prep, and a, b, c's two steps (total reruns: it follows the new item d)
    const record = await env.record(run.runId);
    const sum = (await sh(`sha256sum ${JSON.stringify(record.remote_dir.replace("$HOME", home))}/work/out/one/d.txt`)).split(" ")[0] as string;
    await sh(`rm -f ${JSON.stringify(`${store}/blobs/${sum.slice(0, 2)}/${sum}`)}`);
    const again = await submit(write(["a", "b", "c", "d"]));
    expect(again.stderr).toMatch(/1 whose outputs were purged from the store/);
    // d's two steps and total run again; the rest is restored.
    expect(again.restored).toBe(7);
  });
  it("an entry written by another user is not used unless the config trusts that user", async () => {
    // The entry of prep (the first step of every chain), given to another user as root on this single host.
    const all = await submit(write(ITEMS));
    expect(all.restored).toBe(8);
    const key = (result(all.runId).step_states["cached.prep"]?.meta.cached as { key: string }).key;
    // The file that holds it: its job process's file in prep's family directory.
    const holding = (): string[] => execFileSync("grep", ["-rlF", "--include=*.jsonl", `"key":"${key}"`, `${store}/cache/f`], { encoding: "utf8" }).trim().split("\n");
    expect(holding()).toHaveLength(1);
    const entry = holding()[0] as string;
    try {
      execFileSync("id", ["hpcpipe-other"], { stdio: "ignore" });
    } catch {
      execFileSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "hpcpipe-other"]);
    }
    execFileSync("chown", ["hpcpipe-other", entry]);
    execFileSync("chmod", ["0644", entry]);
    // Trusted by the config: used.
    const trusting = path.join(env.dir, "cachecluster-trust.yaml");
    writeFileSync(trusting, readFileSync(cluster, "utf8"));
    appendFileSync(trusting, "cache_trust:\n  users: [hpcpipe-other]\n");
    const trusted = await submit(write(ITEMS), "--cluster", trusting);
    expect(trusted.restored).toBe(8);
    // Not trusted: ignored; prep runs again, so does everything after it (its chain): nothing is restored.
    const untrusted = await submit(write(ITEMS));
    expect(untrusted.stderr).toMatch(/1 entry of untrusted users ignored/);
    expect(untrusted.restored).toBe(0);
    // That run stored its own result in a file of its own; the other user's file is as it was.
    expect(execFileSync("stat", ["-c", "%U", entry], { encoding: "utf8" }).trim()).toBe("hpcpipe-other");
    expect(holding().map((f) => execFileSync("stat", ["-c", "%U", f], { encoding: "utf8" }).trim()).sort()).toEqual(["hpcpipe-other", "hpctest"]);
    expect((await submit(write(ITEMS))).restored).toBe(8);
  });
});
