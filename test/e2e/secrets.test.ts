// Issue 6, "Secrets never appear in logs, run records or error messages", on the real test cluster
// (the no-cluster half is test/security/secrets.test.ts). The real CLI runs as a child process with
// secret markers in its environment: the passphrase of an encrypted copy of the cluster's identity
// file in HPCPIPE_SSH_PASSPHRASE, a GITHUB_TOKEN and an AWS_SECRET_ACCESS_KEY. It submits with
// --wait (a step dumps its whole environment on the cluster), then status, collect, logs, runs,
// submit --resume, a second run cancelled mid-way, and failing connections (a wrong passphrase, none
// at all). Everything is then searched: every stdout and stderr, every file under HPCPIPE_HOME and
// the local scratch directory, and every file name and byte of the remote work directory, fetched
// from the cluster. No marker anywhere. Modes: remote run directories 700, HPCPIPE_HOME 700/600.
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { remotePath } from "../../src/transport/index.js";
import type { SshTransport } from "../../src/transport/index.js";
import { e2eSkipped, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";
import { buildPrivateCli, filesUnder, findMarkers, runChild, wrongModes } from "../security/support.js";
import type { ChildResult } from "../security/support.js";

const tag = randomBytes(6).toString("hex");
const SECRETS = {
  passphrase: `hpcpipe-secret-passphrase-${tag}`,
  wrong: `hpcpipe-secret-wrong-${tag}`,
  github: `hpcpipe-secret-github-${tag}`,
  aws: `hpcpipe-secret-aws-${tag}`,
  /** Kept on the cluster, as examples/specs/README.md recommends for step secrets. */
  onCluster: `hpcpipe-secret-on-cluster-${tag}`,
};
const MARKERS = Object.values(SECRETS);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(e2eSkipped)("secrets on the test cluster", { timeout: 240_000 }, () => {
  let env: WorkflowEnv;
  let remote: SshTransport;
  let main: string;
  let cluster: string;
  let childEnv: NodeJS.ProcessEnv;
  const outputs: ChildResult[] = [];
  const runIds: string[] = [];

  beforeAll(async () => {
    env = workflowEnv("secrets");
    remote = await env.remote();
    main = buildPrivateCli(path.join(env.dir, "build"));
    const key = path.join(env.dir, "id_encrypted");
    copyFileSync(env.facts.identityFile, key);
    chmodSync(key, 0o600);
    execFileSync("ssh-keygen", ["-p", "-q", "-P", "", "-N", SECRETS.passphrase, "-f", key]);
    cluster = path.join(env.dir, "encrypted.yaml");
    writeFileSync(cluster, readFileSync(env.config("plain"), "utf8").replace(/^ {2}identity_file: .*$/m, `  identity_file: ${key}`));
    const userHome = path.join(env.dir, "user-home");
    mkdirSync(userHome);
    childEnv = {
      PATH: process.env.PATH,
      HOME: userHome,
      HPCPIPE_HOME: env.home,
      HPCPIPE_SSH_PASSPHRASE: SECRETS.passphrase,
      GITHUB_TOKEN: SECRETS.github,
      AWS_SECRET_ACCESS_KEY: SECRETS.aws,
    };
  }, 180_000);
  afterAll(async () => {
    await env?.cleanup();
  });

  async function hpcpipe(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<ChildResult> {
    const result = await runChild(main, args, { ...childEnv, ...extraEnv }, env.dir);
    outputs.push(result);
    return result;
  }

  function runIdOf(result: ChildResult): string {
    const id = /submitted run (\S+):/.exec(result.stdout + result.stderr)?.[1];
    if (!id) throw new Error(`no run id in:\n${result.stdout}\n${result.stderr}`);
    runIds.push(id);
    return id;
  }

  it("submit --wait with an encrypted key (passphrase from the environment), then status, collect, logs, runs and submit --resume", async () => {
    const spec = env.spec(
      "secretive",
      ["name: secretive", "steps:", "  - step: dump_env", '    run: env > "$HPCPIPE_OUT_DIR/env.txt"; echo done; echo also >&2', "  - step: after", "    run: echo after", ""].join("\n"),
    );
    const submitted = await hpcpipe(["submit", spec, "--cluster", cluster, "--wait"]);
    expect(submitted.code, submitted.stderr).toBe(0);
    const runId = runIdOf(submitted);
    for (const args of [
      ["status", runId],
      ["status", runId, "--json"],
      ["collect", runId],
      ["collect", runId, "--json"],
      ["logs", runId, "dump_env"],
      ["logs", runId, "dump_env", "--stderr"],
      ["runs"],
      ["runs", "--json"],
      ["submit", spec, "--cluster", cluster, "--resume", runId],
    ]) {
      const result = await hpcpipe(args);
      expect(result.code, `${args.join(" ")}: ${result.stderr}`).toBe(0);
    }
    // The step's environment on the cluster was dumped: it is what the grep below searches.
    const record = JSON.parse(readFileSync(path.join(env.home, "runs", runId, "run.json"), "utf8")) as { remote_dir: string };
    const dumped = await remote.exec(["cat", remotePath(`${record.remote_dir}/out/env.txt`)]);
    expect(dumped.stdout).toMatch(/^SLURM_JOB_ID=\d+$/m);
  });

  it("the recommended way to give a step a secret: a file on the cluster, exported by a setup line of the cluster config", async () => {
    const tokenFile = `.hpcpipe-test-token-${tag}`;
    const made = await remote.exec(["sh", "-c", 'umask 077 && printf "%s" "$1" > "$HOME/$2"', "sh", SECRETS.onCluster, tokenFile]);
    expect(made.code, made.stderr).toBe(0);
    try {
      const config = path.join(env.dir, "withtoken.yaml");
      writeFileSync(config, `${readFileSync(cluster, "utf8")}setup:\n  - ${JSON.stringify(`export APP_TOKEN="$(cat "$HOME/${tokenFile}")"`)}\n`);
      const spec = env.spec("tokenuser", ["name: tokenuser", "steps:", "  - step: use", '    run: printf "%s" "$APP_TOKEN" | sha256sum | cut -d" " -f1 > "$HPCPIPE_OUT_DIR/token.sha256"', ""].join("\n"));
      const submitted = await hpcpipe(["submit", spec, "--cluster", config, "--wait"]);
      expect(submitted.code, submitted.stderr).toBe(0);
      const runId = runIdOf(submitted);
      const record = JSON.parse(readFileSync(path.join(env.home, "runs", runId, "run.json"), "utf8")) as { remote_dir: string };
      const seen = await remote.exec(["cat", remotePath(`${record.remote_dir}/out/token.sha256`)]);
      // The step had the secret (its hash matches); the grep below shows it is nowhere else.
      expect(seen.stdout.trim()).toBe(createHash("sha256").update(SECRETS.onCluster).digest("hex"));
    } finally {
      await remote.exec(["rm", "-f", "--", remotePath(`$HOME/${tokenFile}`)]);
    }
  });

  it("a run cancelled mid-way, with status and collect afterwards", async () => {
    const spec = env.spec("sleepy", ["name: sleepy", "steps:", "  - step: nap", "    run: sleep 120", ""].join("\n"));
    const submitted = await hpcpipe(["submit", spec, "--cluster", cluster]);
    expect(submitted.code, submitted.stderr).toBe(0);
    const runId = runIdOf(submitted);
    for (let i = 0; i < 100; i++) {
      const status = await hpcpipe(["status", runId, "--json"]);
      if ((JSON.parse(status.stdout) as { jobs: Array<{ state: string }> }).jobs[0]?.state === "RUNNING") break;
      await sleep(300);
    }
    expect((await hpcpipe(["cancel", runId])).code).toBe(0);
    expect((await hpcpipe(["status", runId, "--watch"])).code).toBe(0);
    expect((await hpcpipe(["collect", runId])).code).toBe(4);
  });

  it("failing connections: a wrong passphrase and no passphrase at all are refused (exit 69) without echoing anything secret", async () => {
    const runId = runIds[0] ?? "";
    const wrong = await hpcpipe(["status", runId], { HPCPIPE_SSH_PASSPHRASE: SECRETS.wrong });
    expect(wrong.code).toBe(69);
    expect(wrong.stderr).toMatch(/could not be decrypted/);
    const none = await hpcpipe(["collect", runId], { HPCPIPE_SSH_PASSPHRASE: undefined });
    expect(none.code).toBe(69);
    expect(none.stderr).toMatch(/encrypted and no passphrase was given.*HPCPIPE_SSH_PASSPHRASE/s);
    const spec = env.spec("never", ["name: never", "steps:", "  - step: s", "    run: \"true\"", ""].join("\n"));
    const failedSubmit = await hpcpipe(["submit", spec, "--cluster", cluster], { HPCPIPE_SSH_PASSPHRASE: SECRETS.wrong });
    expect(failedSubmit.code).toBe(69);
  });

  it("no secret appears in any output, local file or remote file; remote run directories are 700, HPCPIPE_HOME 700/600", async () => {
    const texts: Record<string, string> = Object.fromEntries(
      outputs.flatMap((o, i) => [[`#${i} ${o.args.join(" ")} (stdout)`, o.stdout], [`#${i} ${o.args.join(" ")} (stderr)`, o.stderr]]),
    );
    // The whole remote work directory: every name, then every byte of every file.
    const fetched = await remote.exec(["sh", "-c", 'cd -- "$1" && find . && find . -type f -exec cat -- {} +', "sh", remotePath(env.workdir)], { maxOutputBytes: 256 * 1024 * 1024 });
    expect(fetched.code, fetched.stderr).toBe(0);
    texts["remote work directory"] = fetched.stdout;
    for (const id of runIds) expect(fetched.stdout, id).toContain(`/${id}/states/`);
    expect(fetched.stdout).toContain("SLURM_JOB_ID=");
    // Locally: HPCPIPE_HOME and the whole scratch directory (configs, specs, the encrypted key), but not the private build.
    const files = filesUnder(env.dir).filter((f) => !f.startsWith(path.join(env.dir, "build") + path.sep));
    expect(files.filter((f) => f.startsWith(env.home) && f.endsWith("run.json")).length).toBeGreaterThanOrEqual(3);
    expect(findMarkers(MARKERS, texts, files)).toEqual([]);

    expect(wrongModes(env.home, { dir: 0o700, file: 0o600 })).toEqual([]);
    for (const id of runIds) {
      const record = JSON.parse(readFileSync(path.join(env.home, "runs", id, "run.json"), "utf8")) as { remote_dir: string };
      const mode = await remote.exec(["stat", "-c", "%a", remotePath(record.remote_dir)]);
      expect(mode.stdout.trim(), record.remote_dir).toBe("700");
    }
  });
});
