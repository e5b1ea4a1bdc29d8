// An encrypted identity file on the real sshd: the passphrase comes from HPCPIPE_SSH_PASSPHRASE or,
// on a terminal, from the prompt the CLI passes in the connect options; it is asked once and never appears in errors.
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultTransportFactory } from "../../src/app/connect.js";
import { loadClusterConfig } from "../../src/cluster/index.js";
import { cliWith } from "../cli/helpers.js";
import { e2eSkipped, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";

const SECRET = "correct horse battery staple";

describe.skipIf(e2eSkipped)("an encrypted identity file", { timeout: 60_000 }, () => {
  let env: WorkflowEnv;
  let dir: string;
  let configPath: string;

  beforeAll(() => {
    env = workflowEnv("passphrase");
    dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-key-"));
    const key = path.join(dir, "id_encrypted");
    copyFileSync(env.facts.identityFile, key);
    spawnSync("chmod", ["600", key]);
    const r = spawnSync("ssh-keygen", ["-p", "-q", "-P", "", "-N", SECRET, "-f", key], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const base = env.config("plain");
    configPath = path.join(dir, "encrypted.yaml");
    const text = spawnSync("sed", ["-e", `s#identity_file: .*#identity_file: ${key}#`, base], { encoding: "utf8" }).stdout;
    writeFileSync(configPath, text);
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await env?.cleanup();
  });

  it("without a passphrase or a prompt, is refused with a message that says how to give one", async () => {
    await expect(defaultTransportFactory(loadClusterConfig(configPath), {})).rejects.toThrow(/encrypted and no passphrase was given.*HPCPIPE_SSH_PASSPHRASE/s);
  });

  it("asks the prompt of the connect options once and connects with its answer", async () => {
    const asked: string[] = [];
    const passphrasePrompt = async (file: string): Promise<string> => {
      asked.push(file);
      return SECRET;
    };
    const transport = await defaultTransportFactory(loadClusterConfig(configPath), { passphrasePrompt });
    try {
      expect((await transport.exec(["echo", "ok"])).stdout).toBe("ok\n");
    } finally {
      await transport.close();
    }
    expect(asked).toEqual([path.join(dir, "id_encrypted")]);
  });

  it("a wrong answer is refused without echoing the passphrase", async () => {
    const error = await defaultTransportFactory(loadClusterConfig(configPath), { passphrasePrompt: async () => "wrong guess" }).catch((e: unknown) => e);
    expect(String(error)).toMatch(/could not be decrypted/);
    expect(String(error)).not.toContain("wrong guess");
  });

  it("the CLI hands the prompt main.ts gives it to a command's connection, and without one refuses", async () => {
    const asked: string[] = [];
    const passphrasePrompt = async (file: string): Promise<string> => {
      asked.push(file);
      return SECRET;
    };
    const withPrompt = await cliWith({ passphrasePrompt }, "cache", "ls", "--cluster", configPath, "--json");
    expect(withPrompt.stderr).toBe("");
    expect(withPrompt.code).toBe(0);
    expect(JSON.parse(withPrompt.stdout)).toHaveProperty("store");
    expect(asked).toEqual([path.join(dir, "id_encrypted")]);
    const without = await cliWith({}, "cache", "ls", "--cluster", configPath, "--json");
    expect(without.code).not.toBe(0);
    expect(without.stderr).toMatch(/encrypted and no passphrase was given.*HPCPIPE_SSH_PASSPHRASE/s);
    expect(asked).toHaveLength(1);
  });
});
