// The ~/.ssh/config reader (Host patterns, first match wins, tokens, ProxyJump) and how its values
// become connection settings; identity files are real keys made by ssh-keygen.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AuthError } from "../../src/transport/errors.js";
import { resolveEndpoint } from "../../src/transport/options.js";
import { hostPatternsMatch, parseProxyJump, parseSshConfig, resolveSshConfigHost } from "../../src/transport/ssh-config.js";
import { runOk, tempDir } from "./helpers.js";

const ENV = { home: "/home/me", localUser: "me" };

describe("parseSshConfig + resolveSshConfigHost", () => {
  const config = parseSshConfig(`
# global defaults come first in the file but only fill what is still unset
ServerAliveInterval 30

Host cluster login-*
  HostName login1.hpc.example.edu
  User jdoe
  Port=2200
  IdentityFile ~/.ssh/id_cluster
  ProxyJump bastion

Host login-? !login-x
  User someone-else
  IdentityFile "/keys/with space"

Host bastion
  HostName bastion.example.edu
  User jump
  UserKnownHostsFile ~/.ssh/known_hosts_%h /second/file

Host *
  User fallback
  Port 22
  IdentityFile ~/.ssh/id_%r@%h
  IdentityAgent ~/agent.sock
  ConnectTimeout 7
`);

  it("takes the first value of each keyword across matching Host blocks; IdentityFile accumulates", () => {
    expect(resolveSshConfigHost(config, "cluster", ENV)).toEqual({
      alias: "cluster",
      hostName: "login1.hpc.example.edu",
      user: "jdoe",
      port: 2200,
      identityFiles: ["/home/me/.ssh/id_cluster", "/home/me/.ssh/id_jdoe@login1.hpc.example.edu"],
      proxyJump: [{ host: "bastion" }],
      identityAgent: "/home/me/agent.sock",
      connectTimeoutS: 7,
      serverAliveIntervalS: 30,
    });
  });

  it("applies ? patterns and ! negations, and keeps quoted values with spaces", () => {
    const a = resolveSshConfigHost(config, "login-a", ENV);
    expect(a.user).toBe("jdoe"); // the earlier block matched first
    expect(a.identityFiles).toContain("/keys/with space");
    const x = resolveSshConfigHost(config, "login-x", ENV);
    expect(x.identityFiles).not.toContain("/keys/with space");
  });

  it("falls back to Host * values and expands %h and ~ in UserKnownHostsFile (first file only)", () => {
    const b = resolveSshConfigHost(config, "bastion", ENV);
    expect(b).toMatchObject({ hostName: "bastion.example.edu", user: "jump", port: 22, userKnownHostsFile: "/home/me/.ssh/known_hosts_bastion.example.edu" });
    const other = resolveSshConfigHost(config, "elsewhere.org", ENV);
    expect(other).toMatchObject({ hostName: "elsewhere.org", user: "fallback", port: 22, proxyJump: [] });
  });

  it("reports Match and Include as unsupported and applies none of their lines", () => {
    const parsed = parseSshConfig("Include ~/.ssh/conf.d/*\nMatch host foo exec true\n  User matched\nMatch all\n  Port 2022\n");
    expect(parsed.warnings).toEqual([expect.stringContaining('"Include ~/.ssh/conf.d/*" is not supported'), expect.stringContaining('"Match host foo exec true" is not supported')]);
    expect(resolveSshConfigHost(parsed, "foo", ENV)).toMatchObject({ port: 2022 });
    expect(resolveSshConfigHost(parsed, "foo", ENV).user).toBeUndefined();
  });

  it("matches Host patterns case-insensitively with OpenSSH negation rules", () => {
    expect(hostPatternsMatch(["*.ORG"], "a.org")).toBe(true);
    expect(hostPatternsMatch(["!a.org", "*.org"], "a.org")).toBe(false);
    expect(hostPatternsMatch(["!a.org"], "b.org")).toBe(false); // a negation alone matches nothing
  });

  it("parses ProxyJump hops: user@host:port, bracketed IPv6, ssh:// URIs, lists and none", () => {
    expect(parseProxyJump("none")).toBeNull();
    expect(parseProxyJump("u@b1:2201,b2,ssh://v@[::1]:22")).toEqual([
      { host: "b1", user: "u", port: 2201 },
      { host: "b2" },
      { host: "::1", user: "v", port: 22 },
    ]);
  });
});

describe("resolveEndpoint", () => {
  let dir: string;
  let cleanup: () => void;
  let key: string;

  beforeEach(() => {
    ({ dir, cleanup } = tempDir("ssh-config"));
    key = path.join(dir, "id_test");
    runOk("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
  });
  afterEach(() => cleanup());

  it("fills host, user, port, identity file, known_hosts and a chain of jumps from an alias; explicit options win", async () => {
    const config = path.join(dir, "config");
    writeFileSync(
      config,
      `Host target\n  HostName 10.1.2.3\n  User alice\n  Port 2222\n  IdentityFile ${key}\n  ProxyJump hop2\n  UserKnownHostsFile ${dir}/kh\n` +
        `Host hop2\n  HostName 10.9.9.2\n  ProxyJump bob@hop1:2022\n  IdentityFile ${key}\n` +
        `Host hop1\n  HostName 10.9.9.1\n  IdentityFile ${key}\n`,
    );
    const endpoint = await resolveEndpoint({ sshConfigHost: "target", sshConfigFile: config, port: 2299, env: {} });
    expect(endpoint).toMatchObject({ host: "10.1.2.3", user: "alice", port: 2299, knownHostsFile: `${dir}/kh`, agent: undefined });
    expect(endpoint.keys.map((k) => k.file)).toEqual([key]);
    expect(endpoint.jump).toMatchObject({ host: "10.9.9.2", port: 22 });
    expect(endpoint.jump?.jump).toMatchObject({ host: "10.9.9.1", user: "bob", port: 2022 });
    expect(endpoint.jump?.jump?.jump).toBeUndefined();
  });

  it("reads an encrypted key's passphrase from the named environment variable", async () => {
    runOk("ssh-keygen", ["-q", "-p", "-P", "", "-N", "s3cret-Passphrase", "-f", key]);
    const endpoint = await resolveEndpoint({ host: "h", identityFile: key, passphraseEnv: "MY_PASS", env: { MY_PASS: "s3cret-Passphrase" } });
    expect(endpoint.keys).toHaveLength(1);
  });

  it("fails with an AuthError that names the key but never the passphrase when it is missing or wrong", async () => {
    runOk("ssh-keygen", ["-q", "-p", "-P", "", "-N", "s3cret-Passphrase", "-f", key]);
    const missing = resolveEndpoint({ host: "h", identityFile: key, passphraseEnv: "MY_PASS", env: {} });
    await expect(missing).rejects.toThrow(AuthError);
    await expect(missing).rejects.toThrow(`identity file ${key} is encrypted and no passphrase was given (set the environment variable MY_PASS)`);
    const wrong = await resolveEndpoint({ host: "h", identityFile: key, passphrase: "wrong-Guess-123" }).catch((e: unknown) => e as Error);
    expect(wrong).toBeInstanceOf(AuthError);
    expect((wrong as Error).message).toContain("could not be decrypted");
    expect(JSON.stringify({ message: (wrong as Error).message, stack: (wrong as Error).stack, cause: String((wrong as Error).cause) })).not.toContain("wrong-Guess-123");
  });

  it("refuses to go on with no identity file and no agent", async () => {
    await expect(resolveEndpoint({ host: "h", env: { HOME: dir } })).rejects.toThrow(/no way to authenticate/);
  });

  it("falls back to ~/.ssh/id_ed25519 and $SSH_AUTH_SOCK like ssh does, with ~ from the given HOME", async () => {
    runOk("mkdir", ["-p", path.join(dir, ".ssh")]);
    runOk("cp", [key, path.join(dir, ".ssh", "id_ed25519")]);
    const endpoint = await resolveEndpoint({ host: "h", env: { HOME: dir, SSH_AUTH_SOCK: "/agent.sock" }, agent: true });
    expect(endpoint.keys.map((k) => k.file)).toEqual([path.join(dir, ".ssh", "id_ed25519")]);
    expect(endpoint.agent).toBe("/agent.sock");
    expect(endpoint.knownHostsFile).toBe(path.join(dir, ".ssh", "known_hosts"));
  });
});
