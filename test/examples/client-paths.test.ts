/**
 * A real cluster shares no filesystem with the client: no example may hand a step a path of the
 * client. Every example spec is compiled as `submit` would compile it, and nothing that reaches the
 * cluster (job scripts, every bundled file: context, items, lib.sh) may name this checkout, the
 * spec's directory, or any other absolute path of this machine; everything a step reads must be
 * in the spec's `bundle:` (uploaded with the run) and named relative to the run's work/ directory.
 * The end-to-end tests then run the examples on the test cluster from a checkout that the
 * cluster's user cannot read (.ci/run).
 */
import { mkdtempSync, readdirSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { preparePlan } from "../../src/app/prepare.js";

const root = realpathSync(fileURLToPath(new URL("../../", import.meta.url)));
const examples = join(root, "examples");

const specs = [
  ...readdirSync(examples, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => join(examples, d.name, "pipeline.yaml"))
    .filter((file) => {
      try {
        return readdirSync(dirname(file)).includes("pipeline.yaml");
      } catch {
        return false;
      }
    }),
  ...readdirSync(join(examples, "specs"))
    .filter((f) => f.endsWith(".yaml"))
    .map((f) => join(examples, "specs", f)),
];

const runs = mkdtempSync(join(tmpdir(), "hpcpipe-client-paths-"));
afterAll(() => rmSync(runs, { recursive: true, force: true }));

describe("no example hands the cluster a path of the client", () => {
  it("finds the examples", () => {
    expect(specs.map((s) => s.slice(examples.length + 1)).sort()).toEqual(
      expect.arrayContaining(["batch-validate/pipeline.yaml", "orbit-render/pipeline.yaml", "thumbnails/pipeline.yaml"]),
    );
  });

  it.each(specs.map((s) => [s.slice(examples.length + 1), s]))("%s", (_name, spec) => {
    // As `submit --cluster` compiles it for a cluster that shares nothing with this machine.
    const prepared = preparePlan({ spec, runId: "paths", cluster: join(root, "cluster-configs/localcluster.yaml") });
    const shipped: [string, string][] = [
      ...prepared.plan.jobs.map((job): [string, string] => [`script of ${job.id}`, job.script]),
      ...Object.entries(prepared.plan.files).map(([path, text]): [string, string] => [path, text]),
    ];
    for (const [what, text] of shipped) {
      expect(text.includes(root), `${what} names the checkout ${root}`).toBe(false);
      expect(text.includes(runs), `${what} names the client's runs directory`).toBe(false);
      expect(text.includes(tmpdir()), `${what} names the client's temp directory`).toBe(false);
    }
    for (const [key, value] of Object.entries(prepared.loaded.context)) {
      expect(typeof value === "string" && value.startsWith("/"), `context ${key}=${String(value)} is an absolute path of the client`).toBe(false);
    }
    for (const rel of prepared.loaded.bundle) expect(rel.startsWith("/") || rel.split("/").includes(".."), `bundle ${rel}`).toBe(false);
  });
});
