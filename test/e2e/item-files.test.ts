// Map items that are local files, on the real test cluster: a map over a glob of small files in nested
// directories is staged through the content-addressed store with the bundle (one missing query); each
// step sees its item as a run-relative path that keeps the basename and layout (a glTF beside its .bin);
// a second submission sends no bytes of unchanged items, and an edited item sends only itself; the
// same spec runs on this machine with the same paths; bad item paths are refused before anything is sent.
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { remotePath } from "../../src/transport/index.js";
import type { SshTransport } from "../../src/transport/index.js";
import { cli } from "../cli/helpers.js";
import { e2eSkipped, runIdFrom, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";

const sha = (data: string | Buffer): string => createHash("sha256").update(data).digest("hex");

const MODELS: Record<string, string> = {
  "models/vehicles/car.glb": "glb: car",
  "models/vehicles/old cars/-odd $name's.glb": "glb: a name to quote",
  "models/vehicles/trucks/truck.glb": "glb: truck",
  "models/props/lamp.gltf": '{"asset":{"version":"2.0"},"buffers":[{"uri":"lamp.bin","byteLength":4}]}',
  "models/props/lamp.bin": "\u0001\u0002\u0003\u0004",
  "models/props/notes.txt": "not staged",
};

const ALL = ["models/vehicles/car.glb", "models/vehicles/old cars/-odd $name's.glb", "models/vehicles/trucks/truck.glb", "models/props/lamp.gltf"];

// Each item reports its value, basename, mode, link count, content hash and the files beside it.
const STEP = [
  "set -eu",
  "name=$(basename \"$item\")",
  "mkdir -p seen",
  "{",
  "  printf 'item=%s\\n' \"$item\"",
  "  printf 'base=%s\\n' \"$name\"",
  "  printf 'mode=%s\\n' \"$(stat -c %a \"$item\")\"",
  "  printf 'sha=%s\\n' \"$(sha256sum < \"$item\" | cut -d' ' -f1)\"",
  "  printf 'beside=%s\\n' \"$(ls \"$(dirname \"$item\")\" | tr '\\n' ' ')\"",
  "  printf 'symlinks=%s\\n' \"$(find inputs -type l | wc -l)\"",
  "  case $name in *.gltf) test -f \"$(dirname \"$item\")/lamp.bin\" && echo gltf-bin=ok ;; esac",
  "} > \"seen/$HPCPIPE_TASK.txt\"",
].join("\n");

describe.skipIf(e2eSkipped)("map items that are local files, staged to the test cluster", { timeout: 180_000 }, () => {
  let env: WorkflowEnv;
  let cluster: string;
  let remote: SshTransport;
  let specDir: string;
  let spec: string;

  beforeAll(async () => {
    env = workflowEnv("itemfiles");
    cluster = env.config("itemcluster");
    remote = await env.remote();
    specDir = path.join(env.dir, "library");
    for (const [rel, text] of Object.entries(MODELS)) {
      mkdirSync(path.join(specDir, path.dirname(rel)), { recursive: true });
      writeFileSync(path.join(specDir, rel), text);
    }
    // The step's script travels in the bundle: bundle files and item files go through ONE store query.
    mkdirSync(path.join(specDir, "bin"));
    writeFileSync(path.join(specDir, "bin", "look.sh"), `${STEP}\n`);
    spec = path.join(specDir, "pipeline.yaml");
    writeFileSync(
      spec,
      [
        "name: itemfiles",
        "bundle: [bin/]",
        "steps:",
        "  - map: check",
        '    items_glob: ["models/**/*.glb", "models/**/*.gltf"]',
        '    stage_with: "models/**/*.bin"',
        "    steps:",
        "      - step: look",
        '        run: bash bin/look.sh',
        "        requires: [item]",
        '        outputs: ["seen/{i}.txt"]',
        "",
      ].join("\n"),
    );
  }, 120_000);
  afterAll(async () => {
    await env?.cleanup();
  });

  /** What each item's step saw, by the item's basename: key=value lines as an object. */
  const parseSeen = (files: Map<string, string>): Record<string, Record<string, string>> => {
    const out: Record<string, Record<string, string>> = {};
    for (const text of files.values()) {
      const fields: Record<string, string> = Object.fromEntries(
        text
          .trim()
          .split("\n")
          .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1).trim()]),
      );
      out[fields.base ?? "?"] = fields;
    }
    return out;
  };

  const submit = async (): Promise<{ runId: string; stderr: string; seen: Record<string, Record<string, string>> }> => {
    const r = await cli("submit", spec, "--cluster", cluster, "--wait");
    expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(0);
    // A run the step cache restores whole submits no job: it says so instead of "submitted run".
    const runId = /^run (\S+): every step was restored/m.exec(r.stderr)?.[1] ?? runIdFrom(r.stderr);
    const record = await env.record(runId);
    const got = await remote.getFiles(`${record.remote_dir}/work`, "seen/*.txt");
    const texts = new Map<string, string>();
    for (const [name, content] of got) {
      if (!Buffer.isBuffer(content)) throw new Error(`${name}: ${content.error}`);
      texts.set(name, content.toString("utf8"));
    }
    return { runId, stderr: r.stderr, seen: parseSeen(texts) };
  };

  const expected = (rel: string): Record<string, string> => ({
    item: `inputs/check/${rel}`,
    base: path.basename(rel),
    sha: sha(readFileSync(path.join(specDir, rel))),
  });

  it("each step sees its item as inputs/<map>/<layout>, basename kept, read-only, hard-linked from the store, the glTF beside its .bin", async () => {
    const first = await submit();
    // The bundle's script, 4 items and the .bin: 6 files, 6 blobs, ONE query, all sent in the one stream.
    expect(first.stderr).toMatch(/bundle: 6 file\(s\); 0 blob\(s\) already in the store; sending 6 \(\d+ B\)/);
    expect(first.stderr.match(/already in the store/g)).toHaveLength(1);
    expect(first.stderr).toMatch(/step cache: 0 of 4 step\(s\) restored/);
    expect(Object.keys(first.seen).sort()).toEqual(["-odd $name's.glb", "car.glb", "lamp.gltf", "truck.glb"]);
    for (const rel of ALL) {
      expect(first.seen[path.basename(rel)]).toMatchObject({ ...expected(rel), mode: "444", symlinks: "0" });
    }
    expect(first.seen["lamp.gltf"]?.["gltf-bin"]).toBe("ok");
    expect(first.seen["lamp.gltf"]?.beside).toBe("lamp.bin lamp.gltf");
    // notes.txt matched no pattern: not staged.
    expect(first.seen["car.glb"]?.beside).toBe("car.glb old cars trucks");
    const record = await env.record(first.runId);
    const links = await remote.exec(["stat", "-c", "%h", remotePath(`${record.remote_dir}/work/inputs/check/models/vehicles/car.glb`)]);
    expect(Number(links.stdout.trim())).toBeGreaterThanOrEqual(2);
    // The local plan carries each item's content hash, in item order.
    const plan = JSON.parse(readFileSync(path.join(env.home, "runs", first.runId, "plan.json"), "utf8")) as { items: Record<string, string[]>; itemHashes?: Record<string, string[]> };
    expect(plan.items["itemfiles.check"]).toEqual([
      "inputs/check/models/props/lamp.gltf",
      "inputs/check/models/vehicles/car.glb",
      "inputs/check/models/vehicles/old cars/-odd $name's.glb",
      "inputs/check/models/vehicles/trucks/truck.glb",
    ]);
    expect(plan.itemHashes?.["itemfiles.check"]).toEqual(plan.items["itemfiles.check"]?.map((i) => sha(readFileSync(path.join(specDir, i.replace(/^inputs\/check\//, ""))))));
  });

  it("a second submission sends no bytes of unchanged items and runs none; an edited item sends and runs only itself", async () => {
    const second = await submit();
    expect(second.stderr).toMatch(/bundle: 6 file\(s\); 6 blob\(s\) already in the store; sending 0 \(0 B\)/);
    // The step cache keys items by their content hash (plan.itemHashes): all 4 are restored, with their declared outputs.
    expect(second.stderr).toMatch(/step cache: 4 of 4 step\(s\) restored/);
    expect(second.seen["car.glb"]).toMatchObject(expected("models/vehicles/car.glb"));
    writeFileSync(path.join(specDir, "models/vehicles/trucks/truck.glb"), "glb: truck, edited (22 B)");
    const third = await submit();
    expect(third.stderr).toMatch(/bundle: 6 file\(s\); 5 blob\(s\) already in the store; sending 1 \(25 B\)/);
    expect(third.stderr).toMatch(/step cache: 3 of 4 step\(s\) restored/);
    expect(third.seen["truck.glb"]).toMatchObject({ ...expected("models/vehicles/trucks/truck.glb"), item: "inputs/check/models/vehicles/trucks/truck.glb" });
  });

  it("the same spec runs on this machine with the same run-relative paths", async () => {
    const runsDir = path.join(env.dir, "local-runs");
    const r = await cli("run", spec, "--runs-dir", runsDir);
    expect(r.code, r.stderr).toBe(0);
    const runDir = path.join(runsDir, "itemfiles", readdirSync(path.join(runsDir, "itemfiles"))[0] ?? "");
    const seenDir = path.join(runDir, "work", "seen");
    const seen = parseSeen(new Map(readdirSync(seenDir).map((n) => [n, readFileSync(path.join(seenDir, n), "utf8")])));
    for (const rel of ALL) {
      expect(seen[path.basename(rel)]).toMatchObject({ ...expected(rel), mode: "444", symlinks: "0" });
    }
    expect(seen["lamp.gltf"]?.["gltf-bin"]).toBe("ok");
  });

  it("a nonexistent item path, or a glob that matches nothing, is refused naming it: no run is recorded, nothing reaches the cluster", async () => {
    const runsBefore = readdirSync(path.join(env.home, "runs")).length;
    const listing = async (): Promise<string> => (await remote.exec(["bash", "-c", 'ls -A "$1" 2>/dev/null; true', "ls", remotePath(`${env.workdir}`)])).stdout;
    const before = await listing();
    writeFileSync(path.join(specDir, "list.txt"), "models/vehicles/car.glb\nmodels/vehicles/bus.glb\n");
    const missing = path.join(specDir, "missing.yaml");
    writeFileSync(missing, ["name: badpaths", "steps:", "  - map: check", "    items_file: list.txt", "    stage_items: true", "    steps:", "      - step: s", "        run: 'true'", ""].join("\n"));
    const r1 = await cli("submit", missing, "--cluster", cluster);
    expect(r1.code).not.toBe(0);
    expect(r1.stderr).toMatch(/missing\.yaml:4:\d+: steps\[0\]\.items_file: list\.txt line 2: item file "models\/vehicles\/bus\.glb" does not exist/);
    const empty = path.join(specDir, "empty.yaml");
    writeFileSync(empty, ["name: badglob", "steps:", "  - map: check", '    items_glob: "models/**/*.fbx"', "    steps:", "      - step: s", "        run: 'true'", ""].join("\n"));
    const r2 = await cli("submit", empty, "--cluster", cluster);
    expect(r2.code).not.toBe(0);
    expect(r2.stderr).toMatch(/empty\.yaml:4:\d+: steps\[0\]\.items_glob: items_glob "models\/\*\*\/\*\.fbx" matches no file/);
    expect(readdirSync(path.join(env.home, "runs"))).toHaveLength(runsBefore);
    expect(await listing()).toBe(before);
    expect(before).not.toMatch(/badpaths|badglob/);
  });
});
