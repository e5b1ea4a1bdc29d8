// Issue 6, "Secrets never appear in logs, run records or error messages" (no cluster needed; the
// cluster half is test/e2e/secrets.test.ts). The real CLI runs as a child process whose environment
// holds secret markers: the passphrase of an encrypted identity file in HPCPIPE_SSH_PASSPHRASE, a
// GITHUB_TOKEN and an AWS_SECRET_ACCESS_KEY. It runs a pipeline locally with verbose logging (-v),
// plans, renders (submit --dry-run, also --out), submits to a cluster that refuses the SSH handshake
// (a ConnectionTrap: the passphrase is used, the connection fails), to a closed port, and with a
// wrong passphrase; status, collect, logs and cancel of the failed run; runs. Then EVERYTHING it
// produced is searched: every stdout and stderr, every file under HPCPIPE_HOME, the local run
// directories and the dry-run bundle. No marker may be anywhere. Modes: HPCPIPE_HOME's directories
// 700 and files 600; a local run directory 700 and its result.json 600.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildPrivateCli, ConnectionTrap, filesUnder, findMarkers, runChild, trapConfigYaml, wrongModes } from "./support.js";
import type { ChildResult } from "./support.js";

const tag = randomBytes(6).toString("hex");
const SECRETS = {
  passphrase: `hpcpipe-secret-passphrase-${tag}`,
  wrong: `hpcpipe-secret-wrong-${tag}`,
  github: `hpcpipe-secret-github-${tag}`,
  aws: `hpcpipe-secret-aws-${tag}`,
};
const MARKERS = Object.values(SECRETS);

describe("secrets never leave the environment they were given in", { timeout: 120_000 }, () => {
  let dir: string;
  let main: string;
  let home: string;
  let runs: string;
  let bundle: string;
  let trap: ConnectionTrap;
  const outputs: ChildResult[] = [];
  let env: NodeJS.ProcessEnv;
  let spec: string;
  let trapConfig: string;
  let closedConfig: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-secrets-"));
    main = buildPrivateCli(path.join(dir, "build"));
    home = path.join(dir, "hpcpipe-home");
    runs = path.join(dir, "runs");
    bundle = path.join(dir, "bundle");
    const userHome = path.join(dir, "user-home");
    mkdirSync(userHome);
    const key = path.join(dir, "id_encrypted");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", SECRETS.passphrase, "-C", "", "-f", key]);
    const knownHosts = path.join(dir, "known_hosts");
    writeFileSync(knownHosts, "", { mode: 0o600 });
    trap = await ConnectionTrap.start();
    trapConfig = path.join(dir, "trap.yaml");
    writeFileSync(trapConfig, trapConfigYaml(trap.port, knownHosts, key));
    // A port nobody listens on: connection refused.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", () => resolve()));
    const closedPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    closedConfig = path.join(dir, "closed.yaml");
    writeFileSync(closedConfig, trapConfigYaml(closedPort, knownHosts, key).replace("name: trap", "name: closed"));
    spec = path.join(dir, "spec.yaml");
    writeFileSync(
      spec,
      [
        "name: secretive",
        "context: { greeting: hello }",
        "steps:",
        "  - step: hello",
        '    run: echo "$greeting"; echo to-stderr >&2',
        "    requires: [greeting]",
        "  - map: each",
        "    items: [a, b]",
        "    steps:",
        "      - step: item",
        '        run: echo "$item"',
        "",
      ].join("\n"),
    );
    env = {
      PATH: process.env.PATH,
      HOME: userHome,
      HPCPIPE_HOME: home,
      HPCPIPE_SSH_PASSPHRASE: SECRETS.passphrase,
      GITHUB_TOKEN: SECRETS.github,
      AWS_SECRET_ACCESS_KEY: SECRETS.aws,
    };
  }, 180_000);

  afterAll(async () => {
    await trap?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function hpcpipe(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<ChildResult> {
    const result = await runChild(main, args, { ...env, ...extraEnv }, dir);
    outputs.push(result);
    return result;
  }

  it("a local run with verbose logging succeeds and records its result", async () => {
    const result = await hpcpipe(["run", spec, "--runs-dir", runs, "-v"]);
    expect(result.code, result.stderr).toBe(0);
    // -v logs the executor's events as JSON lines (stderr is a pipe): the logging really is on.
    expect(result.stderr).toMatch(/"msg":"job finished"/);
    const runDir = result.stderr.split("\n").flatMap((l) => (l.includes('"msg":"run directory"') ? [(JSON.parse(l) as { run_dir: string }).run_dir] : []))[0] ?? "";
    expect(statSync(runDir).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(runDir, "result.json")).mode & 0o777).toBe(0o600);
  });

  it("a local step sees the CLI's environment as sbatch's --export=ALL would (a token in it is the step's to keep), but never HPCPIPE_SSH_PASSPHRASE", async () => {
    const envSpec = path.join(dir, "env-spec.yaml");
    writeFileSync(envSpec, ["name: envdump", "steps:", "  - step: dump", '    run: env > "$HPCPIPE_OUT_DIR/env.txt"', ""].join("\n"));
    // Its own runs directory: the only place a marker may be, kept out of the search below.
    const envRuns = path.join(dir, "env-runs");
    const result = await hpcpipe(["run", envSpec, "--runs-dir", envRuns]);
    expect(result.code, result.stderr).toBe(0);
    const runDir = /run directory (.+) \(result\.json/.exec(result.stderr)?.[1] ?? "";
    const seen = readFileSync(path.join(runDir, "out", "env.txt"), "utf8");
    expect(seen).toContain(`GITHUB_TOKEN=${SECRETS.github}`);
    expect(seen).not.toContain(SECRETS.passphrase);
    expect(seen).not.toMatch(/^HPCPIPE_SSH_PASSPHRASE=/m);
  });

  it("plan and submit --dry-run (printed and --out) contact nothing", async () => {
    for (const args of [["plan", spec, "--cluster", trapConfig], ["plan", spec, "--cluster", trapConfig, "--format", "json"], ["submit", spec, "--cluster", trapConfig, "--dry-run"], ["submit", spec, "--cluster", trapConfig, "--dry-run", "--out", bundle]]) {
      const result = await hpcpipe(args);
      expect(result.code, `${args.join(" ")}: ${result.stderr}`).toBe(0);
    }
    expect(trap.accepts).toBe(0);
  });

  it("a submission whose SSH handshake fails: the passphrase decrypted the key (it got as far as the cluster), exit 69, the record says why", async () => {
    const result = await hpcpipe(["submit", spec, "--cluster", trapConfig]);
    expect(result.code, result.stderr).toBe(69);
    expect(trap.accepts).toBe(1);
    const listed = await hpcpipe(["runs", "--json"]);
    const failed = (JSON.parse(listed.stdout) as Array<{ run_id: string; phase: string }>).find((r) => r.phase === "submit_failed");
    expect(failed).toBeDefined();
    const runId = failed?.run_id ?? "";
    // Every command on that run fails to connect the same way; each says so.
    for (const args of [["status", runId], ["collect", runId], ["logs", runId, "hello"], ["cancel", runId], ["runs"]]) await hpcpipe(args);
  });

  it("a wrong passphrase is refused without echoing it or the right one (exit 69), before any connection", async () => {
    const before = trap.accepts;
    const result = await hpcpipe(["submit", spec, "--cluster", trapConfig], { HPCPIPE_SSH_PASSPHRASE: SECRETS.wrong });
    expect(result.code).toBe(69);
    expect(result.stderr).toMatch(/could not be decrypted/);
    expect(trap.accepts).toBe(before);
  });

  it("a closed port is refused (exit 69)", async () => {
    const result = await hpcpipe(["submit", spec, "--cluster", closedConfig]);
    expect(result.code, result.stderr).toBe(69);
  });

  it("no secret appears in any output, record, plan, result, log or local run file; HPCPIPE_HOME is 700/600", () => {
    const texts = Object.fromEntries(outputs.flatMap((o, i) => [[`#${i} ${o.args.join(" ")} (stdout)`, o.stdout], [`#${i} ${o.args.join(" ")} (stderr)`, o.stderr]]));
    const files = [...filesUnder(home), ...filesUnder(runs), ...filesUnder(bundle)];
    // What was searched is not nothing: the records, plans and results of every run, and every local run file.
    expect(files.filter((f) => f.endsWith("run.json")).length).toBeGreaterThanOrEqual(2);
    expect(files.filter((f) => f.endsWith("plan.json")).length).toBeGreaterThanOrEqual(2);
    expect(files.some((f) => f.endsWith("result.json"))).toBe(true);
    expect(files.some((f) => /\/logs\/secretive\.hello\.err$/.test(f))).toBe(true);
    expect(outputs.length).toBeGreaterThanOrEqual(12);
    expect(findMarkers(MARKERS, texts, files)).toEqual([]);
    expect(wrongModes(home, { dir: 0o700, file: 0o600 })).toEqual([]);
  });

  it("control: the same search finds a marker where one is (the search can fail)", () => {
    const probe = path.join(dir, "probe.txt");
    writeFileSync(probe, `x${SECRETS.aws}y`);
    expect(findMarkers(MARKERS, { out: `${SECRETS.github}` }, [probe])).toEqual([
      { marker: SECRETS.github, where: "out" },
      { marker: SECRETS.aws, where: probe },
    ]);
    expect(readFileSync(probe, "utf8")).toContain(SECRETS.aws);
  });
});
