// Issue 6, "Hostile input, each a test" (no cluster needed). Every hostile value of the shared table
// (hostile-values.ts) goes into every input of hpcpipe: context values (spec and --set), context keys,
// map items (inline and items_file, packed and not), step and pipeline names, output paths, env
// values, bundle paths, sbatch values (partition, account, qos, constraint, gres, extra options,
// time, mem), run ids and step selectors, and cluster config fields. Each is either
//  - refused with a clear, short error naming the file and field (or the argument), by the real
//    `hpcpipe submit` against a cluster config whose host is a ConnectionTrap: the trap must see no
//    connection, and no run record may be written; or
//  - accepted, and then in a REAL local run (`hpcpipe run`: the compiled job scripts under bash)
//    it arrives byte for byte where it belongs (the step's environment, the output file it names,
//    the bundled file, the #SBATCH argument sbatch reads), and the rendered scripts pass bash -n
//    and shellcheck.
// After every test the canary (a file only an executed value would create) must not exist.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { preparePlan } from "../../src/app/prepare.js";
import { runLocal } from "../../src/app/run-local.js";
import { loadClusterConfig } from "../../src/cluster/index.js";
import { parseSbatchDirectives } from "../../src/local/index.js";
import { RunStore } from "../../src/runs/index.js";
import type { RunRecord } from "../../src/runs/index.js";
import { cli } from "../cli/helpers.js";
import type { CliResult } from "../cli/helpers.js";
import { lintScript } from "../render/harness.js";
import { describeHostile, hostileValues, newCanary } from "./hostile-values.js";
import type { HostileValue } from "./hostile-values.js";
import { ConnectionTrap, fileTree, sbatchHeaderArguments, trapConfigYaml } from "./support.js";

const canary = newCanary();
const HOSTILE = hostileValues(canary.path);
/** An error message that names the field is short: a hostile value is never echoed whole. */
const MAX_ERROR_CHARS = 4096;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const bytes = (v: string): number => Buffer.byteLength(v, "utf8");

let sandbox: string;
let home: string;
let runsDir: string;
let trap: ConnectionTrap;
let trapConfig: string;
let knownHosts: string;
let identity: string;
let savedHome: string | undefined;
let specCount = 0;

beforeAll(async () => {
  sandbox = mkdtempSync(path.join(tmpdir(), "hpcpipe-hostile-input-"));
  home = path.join(sandbox, "home");
  runsDir = path.join(sandbox, "runs");
  savedHome = process.env.HPCPIPE_HOME;
  process.env.HPCPIPE_HOME = home;
  trap = await ConnectionTrap.start();
  knownHosts = path.join(sandbox, "known_hosts");
  writeFileSync(knownHosts, "", { mode: 0o600 });
  // A key, so that a command that connects gets as far as the TCP connection (the trap).
  identity = path.join(sandbox, "id_ed25519");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", identity]);
  trapConfig = path.join(sandbox, "trap.yaml");
  writeFileSync(trapConfig, trapConfigYaml(trap.port, knownHosts, identity));
});

afterEach(() => {
  expect(canary.traces(), "a hostile value was executed: the canary exists").toEqual([]);
});

afterAll(async () => {
  const accepts = trap?.accepts;
  await trap?.close();
  if (savedHome === undefined) delete process.env.HPCPIPE_HOME;
  else process.env.HPCPIPE_HOME = savedHome;
  rmSync(sandbox, { recursive: true, force: true });
  // The only connection ever made is the control test's.
  expect(accepts).toBe(1);
});

/** Writes a spec (JSON is YAML; indented so errors have lines) and extra files next to it; returns its path. */
function writeSpec(doc: unknown, files: Record<string, string | Buffer> = {}): string {
  specCount += 1;
  const dir = path.join(sandbox, "specs", String(specCount));
  mkdirSync(dir, { recursive: true });
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), content);
  }
  const file = path.join(dir, "spec.yaml");
  writeFileSync(file, JSON.stringify(doc, null, 1));
  return file;
}

/** A one-step pipeline whose step has these extra fields. */
function oneStep(step: Record<string, unknown> = {}, top: Record<string, unknown> = {}): unknown {
  return { name: "p", ...top, steps: [{ step: "s", run: "true", ...step }] };
}

/**
 * The command is refused: exit code, a short message naming the field, no connection to the
 * (trap) cluster, nothing recorded in HPCPIPE_HOME.
 */
async function expectRefused(args: string[], code: number, message: RegExp): Promise<CliResult> {
  const accepts = trap.accepts;
  const records = fileTree(home);
  const result = await cli(...args);
  expect(result.code, result.stderr).toBe(code);
  expect(result.stderr).toMatch(message);
  expect(result.stderr.length, "the error echoes a hostile value whole").toBeLessThan(MAX_ERROR_CHARS);
  // A control character (a carriage return could overwrite the line on a terminal) is never echoed raw.
  // eslint-disable-next-line no-control-regex
  expect(result.stderr, "the error echoes a control character raw").not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/);
  expect(trap.accepts, "a connection was attempted before the refusal").toBe(accepts);
  expect(fileTree(home), "something was recorded for a refused command").toEqual(records);
  return result;
}

/** `hpcpipe submit SPEC --cluster <trap>` must be refused before anything else happens. */
function submitRefused(spec: string, code: number, message: RegExp, ...extra: string[]): Promise<CliResult> {
  return expectRefused(["submit", spec, "--cluster", trapConfig, ...extra], code, message);
}

interface StateJson {
  success: boolean;
  error: string | null;
  meta: Record<string, unknown>;
  outputs: { files?: string[] } & Record<string, unknown>;
  step_states: Record<string, StateJson>;
}

/** `hpcpipe run SPEC` (the local executor: real bash), expecting success; returns the merged state and the run directory. */
async function runLocally(spec: string, ...extra: string[]): Promise<{ state: StateJson; runDir: string }> {
  const result = await cli("run", spec, "--runs-dir", runsDir, "--json", "-q", ...extra);
  const runDir = /run directory (.+) \(result\.json/.exec(result.stderr)?.[1] ?? "";
  expect(result.code, `${result.stderr}\n${result.stdout.slice(0, 4000)}`).toBe(0);
  return { state: JSON.parse(result.stdout) as StateJson, runDir };
}

/** `hpcpipe submit --dry-run --out` against the trap cluster (contacts nothing); every script must pass bash -n and shellcheck. */
async function dryRunBundle(spec: string, ...extra: string[]): Promise<string> {
  const out = mkdtempSync(path.join(sandbox, "bundle-"));
  const result = await cli("submit", spec, "--cluster", trapConfig, "--dry-run", "--out", out, ...extra);
  expect(result.code, result.stderr).toBe(0);
  for (const name of readdirSync(path.join(out, "scripts"))) {
    if (name === "lib.sh") continue;
    expect(lintScript(readFileSync(path.join(out, "scripts", name), "utf8")), name).toEqual([]);
  }
  return out;
}

/** The records of context.env0: NUL-terminated key=value. */
function contextRecords(bundle: string): Record<string, string> {
  const text = readFileSync(path.join(bundle, "context.env0"), "utf8");
  const records = text.split("\0").slice(0, -1);
  return Object.fromEntries(records.map((r) => [r.slice(0, r.indexOf("=")), r.slice(r.indexOf("=") + 1)]));
}

const title = (h: HostileValue): string => describeHostile(h);
const accepted = (policy: (h: HostileValue) => RegExp | null): HostileValue[] => HOSTILE.filter((h) => policy(h) === null);
const refusedCases = (policy: (h: HostileValue) => RegExp | null): Array<[string, HostileValue, RegExp]> =>
  HOSTILE.flatMap((h) => {
    const why = policy(h);
    return why === null ? [] : [[title(h), h, why] as [string, HostileValue, RegExp]];
  });

describe("context values", () => {
  // Any string is data; only a NUL byte (it would cut the value) and more than Linux passes in one environment string are refused.
  const policy = (where: "set" | "spec") => (h: HostileValue): RegExp | null => {
    if (h.value.includes("\0")) return where === "set" ? /--set s_nul: .*NUL/ : /spec\.yaml:\d+:\d+: context\.c_nul: must not contain a NUL byte/;
    if (bytes(h.value) > 131_071 - 10) return new RegExp(`context value '${where === "set" ? "s" : "c"}_${h.id}' is \\d+ bytes; Linux passes at most`);
    return null;
  };

  it.each(refusedCases(policy("set")))("--set %s is refused before any connection", async (_, h, message) => {
    await submitRefused(writeSpec(oneStep({ requires: [`s_${h.id}`] })), h.value.includes("\0") ? 64 : 65, message, `--set=s_${h.id}=${h.value}`);
  });

  it.each(refusedCases(policy("spec")))("spec context %s is refused before any connection", async (_, h, message) => {
    await submitRefused(writeSpec(oneStep({}, { context: { [`c_${h.id}`]: h.value } })), 65, message);
  });

  it("all others, from the spec and from --set, reach the step's environment byte for byte, and their scripts pass bash -n and shellcheck", async () => {
    const fromSpec = accepted(policy("spec"));
    const fromSet = accepted(policy("set"));
    const keys = [...fromSpec.map((h) => `c_${h.id}`), ...fromSet.map((h) => `s_${h.id}`)];
    const spec = writeSpec(
      oneStep(
        { requires: keys, run: keys.map((k) => `printf '%s' "$${k}" > "$HPCPIPE_OUT_DIR/${k}"`).join("\n") },
        { context: Object.fromEntries(fromSpec.map((h) => [`c_${h.id}`, h.value])) },
      ),
    );
    const sets = fromSet.map((h) => `--set=s_${h.id}=${h.value}`);
    const { runDir } = await runLocally(spec, ...sets);
    for (const h of fromSpec) expect(readFileSync(path.join(runDir, "out", `c_${h.id}`), "utf8"), h.id).toBe(h.value);
    for (const h of fromSet) expect(readFileSync(path.join(runDir, "out", `s_${h.id}`), "utf8"), h.id).toBe(h.value);
    // What a cluster would get: the same values in context.env0, as NUL-terminated records.
    const records = contextRecords(await dryRunBundle(spec, ...sets));
    for (const h of fromSet) expect(records[`s_${h.id}`], h.id).toBe(h.value);
    for (const h of fromSpec) expect(records[`c_${h.id}`], h.id).toBe(h.value);
  });
});

describe("context keys", () => {
  it.each(HOSTILE.map((h) => [title(h), h] as const))("--set with the key %s is a usage error before any connection", async (_, h) => {
    await submitRefused(writeSpec(oneStep()), 64, /--set .*(must be a shell identifier|expected key=value|NUL)/, `--set=${h.value}=1`);
  });

  it.each(HOSTILE.filter((h) => h.value !== "").map((h) => [title(h), h] as const))("a spec context key %s is refused before any connection", async (_, h) => {
    await submitRefused(writeSpec(oneStep({}, { context: { [h.value]: "1" } })), 65, /spec\.yaml:\d+:\d+: context.*must be a shell identifier/);
  });
});

/** Why a map item is refused, or null: one line, printable, 1..4096 characters. */
function itemPolicy(h: HostileValue): RegExp | null {
  if (h.value === "") return /item must not be empty/;
  if (h.value.length > 4096) return /item is longer than 4096 characters/;
  if (/[\n\r]/.test(h.value)) return /item must not contain a newline/;
  if (h.value.includes("\0")) return /item must not contain a NUL byte/;
  if (CONTROL.test(h.value)) return /item must not contain a control character/;
  return null;
}

/** Steps that write the item (from its key and from $HPCPIPE_ITEM) to out/<prefix><task>. */
const itemDump = (prefix: string) => ({
  step: "dump",
  requires: ["item"],
  run: `printf '%s' "$item" > "$HPCPIPE_OUT_DIR/${prefix}item-$HPCPIPE_TASK"; printf '%s' "$HPCPIPE_ITEM" > "$HPCPIPE_OUT_DIR/${prefix}env-$HPCPIPE_TASK"`,
});

function expectItems(runDir: string, prefix: string, items: readonly string[]): void {
  items.forEach((item, i) => {
    expect(readFileSync(path.join(runDir, "out", `${prefix}item-${i}`), "utf8"), `item ${i}`).toBe(item);
    expect(readFileSync(path.join(runDir, "out", `${prefix}env-${i}`), "utf8"), `item ${i}`).toBe(item);
  });
}

describe("map items", () => {
  it.each(refusedCases(itemPolicy))("an inline item %s is refused before any connection", async (_, h, message) => {
    const spec = writeSpec({ name: "p", steps: [{ map: "m", items: ["ok", h.value], as: "item", steps: [itemDump("")] }] });
    await submitRefused(spec, 65, new RegExp(`spec\\.yaml:\\d+:\\d+: steps\\[0\\]\\.items\\[1\\]: ${message.source}`));
  });

  it.each(refusedCases(itemPolicy).filter(([, h]) => h.value !== "" && !h.value.includes("\n")))(
    "an items_file line %s is refused, naming the file and the line, before any connection",
    async (_, h, message) => {
      const spec = writeSpec({ name: "p", steps: [{ map: "m", items_file: "items.txt", as: "item", steps: [itemDump("")] }] }, { "items.txt": `ok\n${h.value}\n` });
      await submitRefused(spec, 65, new RegExp(`steps\\[0\\]\\.items_file: items\\.txt line 2: ${message.source}`));
    },
  );

  it("all others reach each task byte for byte, inline and from items_file, packed and not", async () => {
    const items = accepted(itemPolicy).map((h) => h.value);
    // An items file is read line by line: a value with newlines is several lines, and a line starting with # is a comment.
    const multiline = HOSTILE.find((h) => h.id === "sbatch_newline")?.value ?? "";
    const fileText = `${[...items, multiline].join("\n")}\n`;
    const fromFile = fileText.split("\n").filter((l) => l !== "" && !l.startsWith("#"));
    const spec = writeSpec(
      {
        name: "p",
        steps: [
          { map: "inline", items, as: "item", steps: [itemDump("i-")] },
          { map: "packed", items, as: "item", items_per_task: 4, steps: [itemDump("p-")] },
          { map: "listed", items_file: "items.txt", as: "item", steps: [itemDump("f-")] },
        ],
      },
      { "items.txt": fileText },
    );
    const { runDir, state } = await runLocally(spec);
    expectItems(runDir, "i-", items);
    expectItems(runDir, "p-", items);
    expectItems(runDir, "f-", fromFile);
    expect(fromFile).toContain(`touch ${canary.path}`);
    // The merged result names each item as it is, as JSON.
    items.forEach((item, i) => expect(state.step_states[`p.inline.${i}`]?.meta.item).toBe(item));
    await dryRunBundle(spec);
  });
});

describe("names", () => {
  const NAME = /expected a name of 1-100 letters, digits, '_' or '-'/;
  it.each(HOSTILE.map((h) => [title(h), h] as const))("the step name %s is refused before any connection", async (_, h) => {
    await submitRefused(writeSpec({ name: "p", steps: [{ step: h.value, run: "true" }] }), 65, new RegExp(`spec\\.yaml:\\d+:\\d+: steps\\[0\\]\\.step: ${NAME.source}`));
  });

  it.each(HOSTILE.map((h) => [title(h), h] as const))("the pipeline name %s is refused before any connection", async (_, h) => {
    await submitRefused(writeSpec({ name: h.value, steps: [{ step: "s", run: "true" }] }), 65, new RegExp(`spec\\.yaml:\\d+:\\d+: name: ${NAME.source}`));
  });

  it.each(HOSTILE.map((h) => [title(h), h] as const))("a group name %s is refused before any connection", async (_, h) => {
    const spec = writeSpec({ name: "p", steps: [{ group: h.value, parallel: true, steps: [{ step: "s", run: "true" }] }] });
    await submitRefused(spec, 65, new RegExp(`spec\\.yaml:\\d+:\\d+: steps\\[0\\]\\.group: ${NAME.source}`));
  });
});

/** Why an output or bundle path is refused, or null: relative, inside the directory, printable, 1..4096 characters. */
function pathPolicy(h: HostileValue): RegExp | null {
  if (h.value === "") return /must be a non-empty string/;
  if (h.value.length > 4096) return /is longer than 4096 characters/;
  if (CONTROL.test(h.value)) return /must not contain a newline or control character/;
  if (h.value.startsWith("/") || h.value.startsWith("~")) return /must be relative/;
  if (h.value.split("/").includes("..")) return /must stay inside the working directory \(no '\.\.'\)/;
  return null;
}

describe("output paths", () => {
  it.each(refusedCases(pathPolicy))("the output %s is refused before any connection", async (_, h, message) => {
    await submitRefused(writeSpec(oneStep({ outputs: [h.value] })), 65, new RegExp(`steps\\[0\\]\\.outputs\\[0\\]: expected a relative path inside the working directory: ${message.source}`));
  });

  it("all others are checked as the exact files they name (no glob, no expansion), and listed as they are", async () => {
    const outs = accepted(pathPolicy);
    const env = Object.fromEntries(outs.map((h) => [`O_${h.id}`, h.value]));
    const make = outs.map((h) => `mkdir -p -- "$(dirname -- "$O_${h.id}")" && printf '%s' ${h.id} > "$O_${h.id}"`).join("\n");
    const made = writeSpec(oneStep({ env, outputs: outs.map((h) => h.value), run: make }));
    const { state, runDir } = await runLocally(made);
    expect(state.step_states["p.s"]?.outputs.files).toEqual(outs.map((h) => h.value));
    for (const h of outs) expect(readFileSync(path.join(runDir, "work", h.value), "utf8")).toBe(h.id);

    // Decoys next to where they would be: a glob or an expansion would find them; the exact names are missing.
    const decoys = writeSpec(oneStep({ outputs: outs.map((h) => h.value), run: "touch a b x naïve; mkdir -p logs '$(touch'; touch logs/smuggled.out" }));
    const failed = await cli("run", decoys, "--runs-dir", runsDir, "--json", "-q");
    expect(failed.code).toBe(4);
    const error = (JSON.parse(failed.stdout) as StateJson).step_states["p.s"]?.error ?? "";
    for (const h of outs) expect(error, h.id).toContain(`missing output file '${h.value}'`);
  });
});

describe("env values", () => {
  const policy = (h: HostileValue): RegExp | null => {
    if (h.value.includes("\0")) return /steps\[0\]\.env\.E_nul: must not contain a NUL byte/;
    if (bytes(h.value) > 131_071 - 10) return new RegExp(`env E_${h.id} is longer than the 131072 bytes one environment variable may hold`);
    return null;
  };

  it.each(refusedCases(policy))("the env value %s is refused before any connection", async (_, h, message) => {
    await submitRefused(writeSpec(oneStep({ env: { [`E_${h.id}`]: h.value } })), 65, message);
  });

  it("all others reach the step's environment byte for byte", async () => {
    const values = accepted(policy);
    const env = Object.fromEntries(values.map((h) => [`E_${h.id}`, h.value]));
    const spec = writeSpec(oneStep({ env, run: values.map((h) => `printf '%s' "$E_${h.id}" > "$HPCPIPE_OUT_DIR/${h.id}"`).join("\n") }));
    const { runDir } = await runLocally(spec);
    for (const h of values) expect(readFileSync(path.join(runDir, "out", h.id), "utf8"), h.id).toBe(h.value);
    await dryRunBundle(spec);
  });

  it("an env name that is not a plain, unreserved shell name is refused before any connection", async () => {
    for (const h of HOSTILE) {
      await submitRefused(writeSpec(oneStep({ env: { [h.value === "" ? " " : h.value]: "x" } })), 65, /steps\[0\]\.env.*environment variable name/);
    }
  });
});

describe("bundle paths", () => {
  it.each(refusedCases(pathPolicy))("the bundle path %s is refused before any connection", async (_, h, message) => {
    await submitRefused(writeSpec(oneStep({}, { bundle: [h.value] })), 65, new RegExp(`bundle\\[0\\]: expected a path relative to the spec file: ${message.source}`));
  });

  it("all others copy exactly the file they name into work/ (no glob, no expansion)", async () => {
    const paths = accepted(pathPolicy);
    const files = Object.fromEntries(paths.map((h) => [h.value, `content of ${h.id}`]));
    // Decoys a glob or an expansion of those names would pick up instead.
    const spec = writeSpec(
      oneStep(
        {
          env: Object.fromEntries(paths.map((h) => [`B_${h.id}`, h.value])),
          run: paths.map((h) => `cp -- "$B_${h.id}" "$HPCPIPE_OUT_DIR/${h.id}"`).join("\n"),
        },
        { bundle: paths.map((h) => h.value) },
      ),
      { ...files, "decoy.txt": "decoy", "x/decoy.txt": "decoy" },
    );
    const { runDir } = await runLocally(spec);
    for (const h of paths) expect(readFileSync(path.join(runDir, "out", h.id), "utf8"), h.id).toBe(`content of ${h.id}`);
    const work = fileTree(path.join(runDir, "work")).filter((p) => !p.endsWith("/"));
    expect(work.sort()).toEqual(paths.map((h) => h.value).sort());
  });

  it("a bundle path that does not exist is refused, naming it, before any connection", async () => {
    await submitRefused(writeSpec(oneStep({}, { bundle: [HOSTILE[0]?.value ?? ""] })), 65, /bundle\[0\]: expected an existing file or directory, but .*\$\(touch .* does not exist/);
  });
});

/** The #SBATCH fields a step's resources carry as free text, and their policy: printable, 1..512 characters. */
const SBATCH_FIELDS = ["partition", "account", "qos", "constraint", "gres"] as const;
function sbatchPolicy(value: string): RegExp | null {
  if (value === "") return /expected a non-empty string/;
  if (value.length > 512) return /expected at most 512 characters/;
  if (CONTROL.test(value)) return /must not contain a newline or control character/;
  return null;
}
const mailUser = (v: string): string => `--mail-user=${v}`;

describe("sbatch option values", () => {
  for (const field of SBATCH_FIELDS) {
    it.each(HOSTILE.filter((h) => sbatchPolicy(h.value) !== null).map((h) => [title(h), h] as const))(`${field} %s is refused before any connection`, async (_, h) => {
      const message = sbatchPolicy(h.value) as RegExp;
      await submitRefused(writeSpec(oneStep({ resources: { [field]: h.value } })), 65, new RegExp(`steps\\[0\\]\\.resources\\.${field}: ${message.source}`));
    });
  }

  it.each(HOSTILE.filter((h) => sbatchPolicy(mailUser(h.value)) !== null).map((h) => [title(h), h] as const))("an extra option --mail-user=%s is refused before any connection", async (_, h) => {
    await submitRefused(writeSpec(oneStep({ resources: { sbatch: [mailUser(h.value)] } })), 65, /steps\[0\]\.resources\.sbatch\[0\]: /);
  });

  it.each(HOSTILE.map((h) => [title(h), h] as const))("an extra option that is just %s is refused before any connection", async (_, h) => {
    await submitRefused(writeSpec(oneStep({ resources: { sbatch: [h.value] } })), 65, /steps\[0\]\.resources\.sbatch\[0\]: |extra sbatch option --output is set by hpcpipe itself/);
  });

  it.each(HOSTILE.map((h) => [title(h), h] as const))("time and mem %s are refused before any connection", async (_, h) => {
    await submitRefused(writeSpec(oneStep({ resources: { time: h.value } })), 65, /steps\[0\]\.resources\.time: expected a SLURM time/);
    await submitRefused(writeSpec(oneStep({ resources: { mem: h.value } })), 65, /steps\[0\]\.resources\.mem: expected memory like 500M/);
  });

  it("all others are one #SBATCH argument each that sbatch reads back exactly, change nothing the local executor honours, and run", async () => {
    const values = HOSTILE.filter((h) => sbatchPolicy(h.value) === null);
    const steps = values.map((h) => ({
      step: `s_${h.id}`,
      run: "true",
      fuse: false,
      resources: { ...Object.fromEntries(SBATCH_FIELDS.map((f) => [f, h.value])), sbatch: ["--mail-type=FAIL", mailUser(h.value)] },
    }));
    const spec = writeSpec({ name: "p", steps });
    const { state, runDir } = await runLocally(spec);
    expect(Object.keys(state.step_states)).toHaveLength(values.length);
    // Nothing was smuggled into the local executor: every job's own log went to logs/ as its #SBATCH --output says.
    expect(fileTree(path.join(runDir, "logs")).filter((f) => !/^(slurm-\d+\.out|p\.s_\w+\.(out|err))$/.test(f))).toEqual([]);
    const bundle = await dryRunBundle(spec);
    for (const name of readdirSync(path.join(bundle, "scripts")).filter((n) => n.endsWith(".sbatch"))) {
      const script = readFileSync(path.join(bundle, "scripts", name), "utf8");
      const id = /--key '?p\.s_(\w+)'?/.exec(script)?.[1];
      const h = values.find((v) => v.id === id);
      expect(h, name).toBeDefined();
      if (h === undefined) continue;
      const args = sbatchHeaderArguments(script);
      for (const field of SBATCH_FIELDS) expect(args, `${h.id} ${field}`).toContain(`--${field}=${h.value}`);
      expect(args).toContain(mailUser(h.value));
      // The local executor reads the same header: only hpcpipe's own output and signal, never a value's content.
      const own = parseSbatchDirectives(script);
      expect(Object.keys(own).sort(), h.id).toEqual(["output", "signal"]);
      expect(own.output).toMatch(/\/logs\/slurm-%j\.out$|^logs\/slurm-%j\.out$/);
    }
  });
});

describe("run ids and step selectors", () => {
  let record: RunRecord;

  beforeAll(async () => {
    // A real record of a run on the trap cluster: a command that connected would reach the trap.
    const store = new RunStore(home);
    const spec = writeSpec(oneStep());
    const { plan, config } = preparePlan({ spec, cluster: trapConfig, runId: "20260101-000000-aaaaaa" });
    record = {
      format: 1,
      run_id: plan.runId,
      pipeline: plan.pipeline,
      spec,
      cluster: config.name,
      cluster_config: trapConfig,
      remote_dir: plan.layout.runDir,
      plan_signature: plan.signature,
      created: "2026-01-01T00:00:00.000Z",
      updated: "2026-01-01T00:00:00.000Z",
      phase: "submitted",
      jobs: { j000: "100" },
      error: null,
      resumes: null,
    };
    await store.writePlan(plan);
    await store.writeRecord(record);
  });

  // A value starting with '-' is an unknown option to the command line (exit 64) unless given after `--`.
  const asOption = (h: HostileValue): boolean => h.value.startsWith("-");

  it.each(HOSTILE.map((h) => [title(h), h] as const))("the run id %s is refused by status, collect, cancel, logs and submit --resume before any connection", async (_, h) => {
    const [code, message] = asOption(h) ? [64, /unknown option/] : [66, /no run ".*": not a run id/];
    for (const command of [["status"], ["collect"], ["cancel"]]) await expectRefused([...command, h.value], code, message);
    await expectRefused(["logs", h.value, "s"], code, message);
    if (asOption(h)) for (const command of [["status"], ["collect"], ["cancel"]]) await expectRefused([...command, "--", h.value], 66, /no run ".*": not a run id/);
    await expectRefused(["submit", writeSpec(oneStep()), "--cluster", trapConfig, `--resume=${h.value}`], 64, /--resume: invalid run id/);
  });

  it.each(HOSTILE.map((h) => [title(h), h] as const))("the step %s of logs is refused before any connection", async (_, h) => {
    await expectRefused(["logs", record.run_id, ...(asOption(h) ? ["--"] : []), h.value], 65, /no step ".*" in the plan|is ambiguous/);
  });

  it("control: the same record with a plain step does connect, and the trap sees it (exit 69)", async () => {
    const before = trap.accepts;
    const result = await cli("logs", record.run_id, "s");
    expect(result.code, result.stderr).toBe(69);
    expect(trap.accepts).toBe(before + 1);
  });
});

/** Cluster config fields and the policy for each: a RegExp for the refusal, or null (accepted as data). */
type ConfigField = { field: string; path: RegExp; set: (v: string) => { connection?: Record<string, string>; top?: Record<string, unknown> }; policy: (v: string) => boolean };
const LOCAL_PATH_OK = (v: string): boolean => v !== "" && v.length <= 4096 && !CONTROL.test(v);
const CONFIG_FIELDS: ConfigField[] = [
  { field: "name", path: /name: expected a name/, set: (v) => ({ top: { name: v } }), policy: () => false },
  { field: "host", path: /connection\.host: expected/, set: (v) => ({ connection: { host: v } }), policy: () => false },
  { field: "port", path: /connection\.port: expected a number/, set: (v) => ({ connection: { port: v } }), policy: () => false },
  { field: "user", path: /connection\.user: expected/, set: (v) => ({ connection: { user: v } }), policy: () => false },
  { field: "jump.host", path: /connection\.jump\.host: expected/, set: (v) => ({ connection: { jump: JSON.stringify({ host: v }) } }), policy: () => false },
  { field: "identity_file", path: /connection\.identity_file: /, set: (v) => ({ connection: { identity_file: v } }), policy: LOCAL_PATH_OK },
  { field: "known_hosts", path: /connection\.known_hosts: /, set: (v) => ({ connection: { known_hosts: v } }), policy: LOCAL_PATH_OK },
  { field: "workdir", path: /workdir: expected/, set: (v) => ({ top: { workdir: v } }), policy: () => false },
  { field: "path_prepend", path: /path_prepend\[0\]: (expected|must not contain ':')/, set: (v) => ({ top: { path_prepend: [v] } }), policy: () => false },
  { field: "partition", path: /partition: /, set: (v) => ({ top: { partition: v } }), policy: (v) => sbatchPolicy(v) === null },
  { field: "account", path: /account: /, set: (v) => ({ top: { account: v } }), policy: (v) => sbatchPolicy(v) === null },
  { field: "qos", path: /qos: /, set: (v) => ({ top: { qos: v } }), policy: (v) => sbatchPolicy(v) === null },
  { field: "sbatch_options", path: /sbatch_options\[0\]: /, set: (v) => ({ top: { sbatch_options: [mailUser(v)] } }), policy: (v) => sbatchPolicy(mailUser(v)) === null },
  { field: "modules", path: /modules\[0\]: expected a module name/, set: (v) => ({ top: { modules: [v] } }), policy: (v) => /^[A-Za-z0-9_.+/-]{1,200}$/.test(v) },
];

/** A trap cluster config with one field replaced; returns its path. */
function writeConfig(field: ConfigField, value: string): string {
  const { connection = {}, top = {} } = field.set(value);
  const conn: Record<string, string> = { host: "127.0.0.1", port: String(trap.port), user: "nobody", known_hosts: JSON.stringify(knownHosts), identity_file: JSON.stringify(identity), ...Object.fromEntries(Object.entries(connection).map(([k, v]) => [k, k === "jump" ? v : JSON.stringify(v)])) };
  const doc: Record<string, unknown> = { name: "trap", executor: "slurm", workdir: "$HOME/hpcpipe-trap", ...top };
  const lines = Object.entries(doc).map(([k, v]) => `${k}: ${JSON.stringify(v)}`);
  lines.push("connection:", ...Object.entries(conn).map(([k, v]) => `  ${k}: ${v}`), "");
  specCount += 1;
  const file = path.join(sandbox, `config-${specCount}.yaml`);
  writeFileSync(file, lines.join("\n"));
  return file;
}

describe("cluster config fields", () => {
  const cases = CONFIG_FIELDS.flatMap((f) => HOSTILE.map((h) => [`${f.field} = ${title(h)}`, f, h] as const));

  it.each(cases.filter(([, f, h]) => !f.policy(h.value)))("%s is refused, naming the file and the field, before any connection", async (_, f, h) => {
    const config = writeConfig(f, h.value);
    const result = await expectRefused(["submit", writeSpec(oneStep()), "--cluster", config], 78, new RegExp(`config-\\d+\\.yaml:\\d+:\\d+: ${f.path.source}`));
    expect(result.stderr).toContain(config);
  });

  it.each(cases.filter(([, f, h]) => f.policy(h.value) && (f.field === "identity_file" || f.field === "known_hosts")))("%s is a literal path, never expanded", async (_, f, h) => {
    const config = writeConfig(f, h.value);
    const connection = loadClusterConfig(config).connection;
    const expected = path.resolve(path.dirname(config), h.value);
    expect(f.field === "identity_file" ? connection?.identity_file : connection?.known_hosts).toBe(expected);
    await dryRunBundleWith(config);
  });

  it("all accepted #SBATCH values of a config are one argument each that sbatch reads back exactly, and a local run with them executes nothing", async () => {
    const spec = writeSpec(oneStep());
    for (const f of CONFIG_FIELDS.filter((c) => ["partition", "account", "qos", "sbatch_options", "modules"].includes(c.field))) {
      for (const h of HOSTILE.filter((v) => f.policy(v.value))) {
        const config = writeConfig(f, h.value);
        const bundle = await dryRunBundleWith(config, spec);
        const script = readFileSync(path.join(bundle, "scripts", "j000.sbatch"), "utf8");
        if (f.field === "modules") expect(moduleArguments(script), h.id).toEqual([h.value]);
        else expect(sbatchHeaderArguments(script), `${f.field} ${h.id}`).toContain(f.field === "sbatch_options" ? mailUser(h.value) : `--${f.field}=${h.value}`);
        if (f.field === "modules") continue;
        // The same value in a local executor's config: the job runs, nothing executes.
        const local = path.join(sandbox, `local-${f.field}-${h.id}.yaml`);
        const { top = {} } = f.set(h.value);
        writeFileSync(local, [`name: local`, "executor: local", `workdir: ${JSON.stringify(runsDir)}`, ...Object.entries(top).map(([k, v]) => `${k}: ${JSON.stringify(v)}`), ""].join("\n"));
        const outcome = await runLocal(preparePlan({ spec, cluster: local }));
        expect(outcome.state.success, `${f.field} ${h.id}`).toBe(true);
      }
    }
    // About 60 dry runs and local runs: 15-20 s alone, far more on a loaded 2-core machine.
  }, 180_000);
});

/** What bash passes to hp_modules from a job script's hp_modules line (the line run with hp_modules printing its arguments). */
function moduleArguments(script: string): string[] {
  const line = script.split("\n").find((l) => l.startsWith("hp_modules ")) ?? "";
  const out = execFileSync("bash", ["-c", `hp_modules() { printf '%s\\0' "$@"; }\n${line}`]);
  return out.toString("utf8").split("\0").slice(0, -1);
}

/** --dry-run --out with a given cluster config; lints every script. */
async function dryRunBundleWith(config: string, spec = writeSpec(oneStep())): Promise<string> {
  const out = mkdtempSync(path.join(sandbox, "bundle-"));
  const result = await cli("submit", spec, "--cluster", config, "--dry-run", "--out", out);
  expect(result.code, result.stderr).toBe(0);
  for (const name of readdirSync(path.join(out, "scripts")).filter((n) => n !== "lib.sh")) {
    expect(lintScript(readFileSync(path.join(out, "scripts", name), "utf8")), name).toEqual([]);
  }
  return out;
}

describe("the canary", () => {
  it("can be created by the same command a hostile value carries (the check above can fail)", () => {
    const subst = HOSTILE.find((h) => h.id === "subst")?.value ?? "";
    execFileSync("bash", ["-c", `: ${subst}`]);
    expect(canary.untouched()).toBe(false);
    rmSync(canary.path);
    expect(canary.untouched()).toBe(true);
  });
});
