// The SSH transport against the real sshd of the local test cluster (scripts/cluster/up.sh):
// exact argv delivery, one-round-trip transfers, host key refusals, auth by key/agent,
// a dropped connection, a jump host and a login shell.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { inspect } from "node:util";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { AuthError, ConnectionLostError, HostKeyError, RemoteCommandError, remotePath, SshTransport, type SshConnectOptions } from "../../src/transport/index.js";
import { fingerprintSha256, parseKnownHosts } from "../../src/transport/known-hosts.js";
import { readClusterFacts, type ClusterFacts } from "../support/cluster.js";
import { HOSTILE_WORDS, run, runOk } from "../transport/helpers.js";

const skipped = process.env.HPCPIPE_E2E === "skip" || process.env.HPCPIPE_E2E === "0";

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// Walks up from the command to the per-connection sshd process and kills it: the TCP connection drops.
const KILL_OWN_SSHD = 'p=$PPID; while [ "$(cat /proc/$p/comm)" != sshd ]; do p=$(cut -d" " -f4 /proc/$p/stat); done; kill -9 $p';

describe.skipIf(skipped)("SshTransport against the test cluster's sshd", { timeout: 60_000 }, () => {
  let facts: ClusterFacts;
  let scratch: string;
  let base: SshConnectOptions;
  let shared: SshTransport;
  const remoteRoot = `hpcpipe-transport-e2e-${randomBytes(4).toString("hex")}`;
  const opened: SshTransport[] = [];

  async function connect(extra: Partial<SshConnectOptions> = {}): Promise<SshTransport> {
    const transport = await SshTransport.connect({ ...base, ...extra });
    opened.push(transport);
    return transport;
  }

  function tempKnownHosts(name: string, content: string, mode = 0o600): string {
    const file = path.join(scratch, name);
    writeFileSync(file, content);
    chmodSync(file, mode);
    return file;
  }

  beforeAll(async () => {
    const provided: ClusterFacts | undefined = inject("cluster");
    const found = provided ?? readClusterFacts();
    if (!found) {
      throw new Error(
        "no cluster facts: run `bash scripts/cluster/up.sh` as root, or wire test/support/global-setup.ts " +
          "as vitest's globalSetup (set HPCPIPE_E2E=0 to skip end-to-end tests on purpose)",
      );
    }
    facts = found;
    scratch = mkdtempSync(path.join(tmpdir(), "hpcpipe-transport-e2e-"));
    base = {
      host: facts.host,
      port: facts.port,
      user: facts.user,
      identityFile: facts.identityFile,
      knownHostsFile: facts.knownHostsFile,
      // No agent or ~/.ssh defaults from the machine running the tests.
      env: { HOME: scratch },
    };
    shared = await connect();
  });

  afterAll(async () => {
    if (shared) await shared.exec(["rm", "-rf", "--", remotePath(`$HOME/${remoteRoot}`)]).catch(() => undefined);
    await Promise.all(opened.map((t) => t.close()));
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  describe("exec", () => {
    it("delivers hostile argv elements as exact bytes and executes none of them", async () => {
      const marker = `/tmp/hpcpipe-pwned-${randomBytes(6).toString("hex")}`;
      const words = [...HOSTILE_WORDS.map((w) => w.replaceAll("MARKER", marker)), `$(touch ${marker})`, `\`touch ${marker}\``];
      const result = await shared.exec(["printf", "%s\\0", ...words]);
      expect(result.code).toBe(0);
      expect(result.stderr).toBe("");
      expect(result.stdout.split("\0").slice(0, -1)).toEqual(words);
      // The cluster is this machine: the file would be visible on both sides.
      expect((await shared.exec(["test", "-e", marker])).code).toBe(1);
      expect(existsSync(marker)).toBe(false);
    });

    it("reports exit codes, stdout, stderr and a killing signal as results, not errors", async () => {
      expect(await shared.exec(["sh", "-c", "echo out; echo err >&2; exit 3"])).toEqual({ code: 3, signal: null, stdout: "out\n", stderr: "err\n" });
      expect(await shared.exec(["sh", "-c", "kill -TERM $$"])).toMatchObject({ code: null, signal: "SIGTERM" });
    });

    it("hands each whole line of stderr to onStderrLine as it arrives, and still keeps stderr", async () => {
      let ended = false;
      const seen: Array<{ line: string; ended: boolean }> = [];
      const running = shared.exec(["bash", "-c", 'echo one >&2; sleep 1; printf "tw\\xc3" >&2; sleep 0.2; printf "\\xa9\\nthr" >&2; sleep 0.2; printf "ee" >&2'], {
        onStderrLine: (line) => seen.push({ line, ended }),
      });
      const result = await running.finally(() => (ended = true));
      // "é" split across two writes; the last line, without a newline, comes at the end.
      expect(seen.map((s) => s.line)).toEqual(["one", "tw\u00e9", "three"]);
      // The first line came a second before the command ended.
      expect(seen[0]?.ended).toBe(false);
      expect(result.stderr).toBe("one\ntw\u00e9\nthree");
    });

    it("feeds stdin from a string, a Buffer and a stream", async () => {
      expect((await shared.exec(["cat"], { stdin: "from a string\n" })).stdout).toBe("from a string\n");
      const bytes = randomBytes(300_000);
      expect((await shared.exec(["sha256sum"], { stdin: bytes })).stdout.split(" ")[0]).toBe(runOk("sha256sum", [], { input: bytes }).split(" ")[0]);
      expect((await shared.exec(["wc", "-l"], { stdin: Readable.from(["a\n", "b\n", "c\n"]) })).stdout.trim()).toBe("3");
      expect((await shared.exec(["cat"])).stdout).toBe(""); // no stdin: EOF at once, nothing hangs
    });

    it("reuses one connection for many concurrent commands, with at most 8 channels open at once", async () => {
      const transport = await connect();
      const before = transport.roundTrips;
      const results = await Promise.all(Array.from({ length: 30 }, () => transport.exec(["sh", "-c", "sleep 0.1; echo $SSH_CONNECTION"])));
      const clientPorts = new Set(results.map((r) => r.stdout.split(" ")[1]));
      expect(clientPorts.size).toBe(1);
      expect(transport.roundTrips - before).toBe(30);
      expect(transport.peakChannels).toBe(8);
    });

    it("abandons a command after timeoutMs and kills it on the remote side", async () => {
      const tag = `${37 + Math.floor(Math.random() * 1000)}.5`;
      const started = Date.now();
      const error = await shared.exec(["sleep", tag], { timeoutMs: 300 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RemoteCommandError);
      expect(error).toMatchObject({ failure: "timeout" });
      expect(Date.now() - started).toBeLessThan(3_000);
      await sleep(300);
      expect((await shared.exec(["pgrep", "-u", facts.user, "-f", `sleep ${tag}`])).code).toBe(1);
    });

    it("kills the remote command when the caller's AbortSignal fires (e.g. on SIGINT)", async () => {
      const tag = `${37 + Math.floor(Math.random() * 1000)}.25`;
      const controller = new AbortController();
      const pending = shared.exec(["sleep", tag], { signal: controller.signal }).catch((e: unknown) => e);
      await sleep(200);
      controller.abort();
      expect(await pending).toMatchObject({ name: "RemoteCommandError", failure: "aborted" });
      await sleep(300);
      expect((await shared.exec(["pgrep", "-u", facts.user, "-f", `sleep ${tag}`])).code).toBe(1);
    });

    it("abandons a command whose output exceeds maxOutputBytes", async () => {
      const error = await shared.exec(["head", "-c", "10000000", "/dev/zero"], { maxOutputBytes: 1000 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RemoteCommandError);
      expect(error).toMatchObject({ failure: "output-limit" });
      expect((await shared.exec(["echo", "still usable"])).stdout).toBe("still usable\n");
    });
  });

  describe("putFiles and getFiles", () => {
    it("uploads 1,000 files in one round trip into a new directory with mode 700", async () => {
      const files = new Map<string, string>();
      for (let i = 0; i < 1000; i++) files.set(`scripts/step-${i}.sh`, `#!/bin/bash\necho step ${i}\n`);
      files.set("odd names/$(touch pwned) it's.txt", "hostile name\n");
      const dir = `$HOME/${remoteRoot}/put/run 1`;
      const before = shared.roundTrips;
      await shared.putFiles(dir, files, { executable: new Set(["scripts/step-7.sh"]) });
      expect(shared.roundTrips - before).toBe(1);

      const check = await shared.exec([
        "sh", "-c",
        'cd "$1" && stat -c %a . scripts scripts/step-0.sh scripts/step-7.sh && find . -type f | wc -l && cat scripts/step-999.sh "$2" && ls',
        "sh", remotePath(dir), "odd names/$(touch pwned) it's.txt",
      ]);
      expect(check.stderr).toBe("");
      expect(check.stdout).toBe("700\n700\n600\n700\n1001\n#!/bin/bash\necho step 999\nhostile name\nodd names\nscripts\n");
    });

    it("refuses to upload under $SCRATCH when it is not set on the cluster, touching nothing", async () => {
      const error = await shared.putFiles("$SCRATCH/x", new Map([["a", "b"]])).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RemoteCommandError);
      expect((error as Error).message).toContain("SCRATCH is not set on the remote host");
    });

    it("fetches 2,000 files in one round trip, reporting an oversized file and an escaping symlink as errors", async () => {
      const dir = `$HOME/${remoteRoot}/get`;
      const files = new Map<string, string>();
      for (let i = 0; i < 2000; i++) files.set(`states/step-${i}.json`, JSON.stringify({ step: i, success: true }));
      files.set("states/$(touch pwned).json", "{}");
      files.set("other/not-matched.json", "{}");
      await shared.putFiles(dir, files);
      const setup = await shared.exec([
        "sh", "-c",
        'cd "$1" && head -c 2000000 /dev/zero > states/huge.json && ln -s /etc/passwd states/escape.json && mkdir states/dir.json',
        "sh", remotePath(dir),
      ]);
      expect(setup.code).toBe(0);

      const before = shared.roundTrips;
      const got = await shared.getFiles(dir, "states/*.json", { maxFileBytes: 1_000_000 });
      expect(shared.roundTrips - before).toBe(1);

      expect(got.size).toBe(2003);
      expect(JSON.parse(String(got.get("states/step-1999.json")))).toEqual({ step: 1999, success: true });
      expect(String(got.get("states/$(touch pwned).json"))).toBe("{}");
      expect(got.get("states/huge.json")).toEqual({ error: "skipped: 2000000 bytes exceeds the limit of 1000000 bytes per file" });
      expect(got.get("states/escape.json")).toEqual({ error: 'skipped: a symbolic link to "/etc/passwd", not a regular file' });
      expect(got.has("states/dir.json")).toBe(false);
      expect(got.has("other/not-matched.json")).toBe(false);
      expect((await shared.exec(["test", "-e", "pwned"])).code).toBe(1);

      // Streamed: each file handed over as the archive passes, none kept; the same files and errors.
      const handed = new Map<string, unknown>();
      const rest = await shared.getFiles(dir, "states/*.json", { maxFileBytes: 1_000_000, onFile: (name, file) => handed.set(name, file) });
      expect(rest.size).toBe(0);
      expect(handed).toEqual(got);
    });

    it("returns an empty map when nothing matches, and fails clearly when the directory is missing", async () => {
      expect((await shared.getFiles(`$HOME/${remoteRoot}/get`, "states/*.nothing")).size).toBe(0);
      const error = await shared.getFiles(`$HOME/${remoteRoot}/missing`, "*.json").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RemoteCommandError);
      expect((error as Error).message).toMatch(/getFiles \*\.json under \$HOME\/.*\/missing failed/);
    });
  });

  describe("host keys", () => {
    it("refuses an unknown host key, showing its SHA256 fingerprint and how to accept it", async () => {
      const knownHostsFile = tempKnownHosts("empty_known_hosts", "");
      const error = await connect({ knownHostsFile }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HostKeyError);
      expect(error).toMatchObject({ problem: "unknown", fingerprint: facts.hostKeyFingerprint, phase: "handshake" });
      expect((error as Error).message).toContain(facts.hostKeyFingerprint);
      expect((error as Error).message).toContain(`${facts.host}:${facts.port}`);
      expect((error as Error).message).toContain(`ssh-keyscan -p ${facts.port} ${facts.host} >> ${knownHostsFile}`);
    });

    it("refuses a changed host key, naming the old and the new fingerprint and the known_hosts line", async () => {
      const other = path.join(scratch, "other_host_key");
      runOk("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", other]);
      const otherLine = readFileSync(`${other}.pub`, "utf8").trim();
      const knownHostsFile = tempKnownHosts("changed_known_hosts", `[${facts.host}]:${facts.port} ${otherLine}\n`);
      const error = await connect({ knownHostsFile, acceptNewHostKey: true }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HostKeyError);
      expect(error).toMatchObject({ problem: "changed", fingerprint: facts.hostKeyFingerprint });
      const message = (error as Error).message;
      expect(message).toContain("HOST KEY CHANGED");
      expect(message).toContain(facts.hostKeyFingerprint);
      expect(message).toContain(fingerprintSha256(Buffer.from(otherLine.split(" ")[1] ?? "", "base64")));
      expect(message).toContain(`${knownHostsFile} line 1`);
    });

    it("refuses a known_hosts file that group or others can write", async () => {
      const knownHostsFile = tempKnownHosts("loose_known_hosts", readFileSync(facts.knownHostsFile, "utf8"), 0o666);
      const error = await connect({ knownHostsFile }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HostKeyError);
      expect(error).toMatchObject({ problem: "unsafe-known-hosts" });
      expect((error as Error).message).toContain("writable by group or others");
    });

    it("records a new host key when acceptNewHostKey is set (mode 600), then trusts it without the option", async () => {
      const knownHostsFile = path.join(scratch, "accept", "known_hosts");
      const first = await connect({ knownHostsFile, acceptNewHostKey: true });
      expect((await first.exec(["true"])).code).toBe(0);
      expect(statSync(knownHostsFile).mode & 0o777).toBe(0o600);
      const { entries } = parseKnownHosts(readFileSync(knownHostsFile, "utf8"));
      expect(entries.map((e) => [e.hosts, fingerprintSha256(e.key)])).toEqual([[`[${facts.host}]:${facts.port}`, facts.hostKeyFingerprint]]);
      const second = await connect({ knownHostsFile });
      expect((await second.exec(["true"])).code).toBe(0);
    });

    it("accepts a hashed known_hosts entry for [host]:port", async () => {
      const knownHostsFile = tempKnownHosts("hashed_known_hosts", readFileSync(facts.knownHostsFile, "utf8"));
      runOk("ssh-keygen", ["-q", "-H", "-f", knownHostsFile]);
      expect(readFileSync(knownHostsFile, "utf8")).toMatch(/^\|1\|/);
      const transport = await connect({ knownHostsFile });
      expect((await transport.exec(["true"])).code).toBe(0);
    });
  });

  describe("authentication", () => {
    it("refuses a key the server does not know with an AuthError", async () => {
      const stranger = path.join(scratch, "stranger");
      runOk("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", stranger]);
      const error = await connect({ identityFile: stranger }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AuthError);
      expect(error).toMatchObject({ phase: "auth" });
      expect((error as Error).message).toContain(`authentication to ${facts.user}@${facts.host}:${facts.port} failed`);
    });

    it("uses an encrypted key with its passphrase from an environment variable, and never shows the passphrase", async () => {
      const encrypted = path.join(scratch, "encrypted_key");
      copyFileSync(facts.identityFile, encrypted);
      chmodSync(encrypted, 0o600);
      const passphrase = `pass-${randomBytes(6).toString("hex")}`;
      runOk("ssh-keygen", ["-q", "-p", "-P", "", "-N", passphrase, "-f", encrypted]);
      const transport = await connect({ identityFile: encrypted, passphraseEnv: "HPCPIPE_TEST_PASSPHRASE", env: { HOME: scratch, HPCPIPE_TEST_PASSPHRASE: passphrase } });
      expect((await transport.exec(["whoami"])).stdout).toBe(`${facts.user}\n`);
      expect(inspect(transport, { depth: 10, showHidden: true })).not.toContain(passphrase);

      const wrong = `${passphrase}-wrong`;
      const error = await connect({ identityFile: encrypted, passphrase: wrong }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AuthError);
      const everything = `${(error as Error).message}\n${(error as Error).stack}\n${String((error as Error).cause)}`;
      expect(everything).not.toContain(passphrase);
      expect(everything).not.toContain(readFileSync(facts.identityFile, "utf8").split("\n")[1]);
    });

    it("authenticates through an ssh-agent alone (no identity file)", async () => {
      const socket = path.join(scratch, "agent.sock");
      const agent: ChildProcess = spawn("ssh-agent", ["-D", "-a", socket], { stdio: "ignore" });
      try {
        for (let i = 0; i < 100 && !existsSync(socket); i++) await sleep(20);
        runOk("ssh-add", ["-q", facts.identityFile], { env: { ...process.env, SSH_AUTH_SOCK: socket } });
        const transport = await connect({ identityFile: undefined, agent: socket });
        expect((await transport.exec(["whoami"])).stdout).toBe(`${facts.user}\n`);
        await transport.close();
      } finally {
        if (agent.pid !== undefined) process.kill(agent.pid, "SIGTERM");
      }
    });
  });

  describe("a dropped connection", () => {
    it("is reopened, and a retrySafe command interrupted by the drop is re-run and succeeds", async () => {
      const transport = await connect({ reconnect: { baseDelayMs: 50 } });
      const survivor = transport.exec(["sh", "-c", "sleep 1; echo survived"], { retrySafe: true });
      await sleep(300);
      const killer = await transport.exec(["sh", "-c", KILL_OWN_SSHD]).catch((e: unknown) => e);
      expect(killer).toBeInstanceOf(ConnectionLostError);
      expect((await survivor).stdout).toBe("survived\n");
      expect(transport.reconnects).toBe(1);
    });

    it("fails a command that was not marked retrySafe with an error saying it was not retried and why", async () => {
      const transport = await connect({ reconnect: { baseDelayMs: 50 } });
      const victim = transport.exec(["sh", "-c", "sleep 2; echo done"]).catch((e: unknown) => e);
      await sleep(300);
      await transport.exec(["sh", "-c", KILL_OWN_SSHD]).catch(() => undefined);
      const error = await victim;
      expect(error).toBeInstanceOf(ConnectionLostError);
      expect(error).toMatchObject({ phase: "dropped", host: facts.host, port: facts.port });
      expect((error as Error).message).toContain(`the SSH connection to ${facts.user}@${facts.host}:${facts.port} dropped`);
      expect((error as Error).message).toContain("It was not retried because the call was not marked retrySafe");
      // The next command reconnects.
      expect((await transport.exec(["echo", "back"])).stdout).toBe("back\n");
    });
  });

  describe("jump host, ssh config alias and login shell", () => {
    // `ss -p` names the owner of a socket only for our own processes unless we are root (sshd runs as root).
    const canSeeSshd = process.getuid?.() === 0;

    /** The process that owns the local end of the TCP connection the target sees (SSH_CONNECTION). */
    async function peerProcess(transport: SshTransport): Promise<string> {
      const [, clientPort] = (await transport.exec(["sh", "-c", "echo $SSH_CONNECTION"])).stdout.trim().split(" ");
      return run("ss", ["-tnpH", "state", "established", `( sport = :${clientPort} )`]).stdout.toString("utf8");
    }

    it("connects through a jump host (ProxyJump): the target's TCP peer is the jump's sshd, not this process", async () => {
      const direct = await connect();
      expect(await peerProcess(direct)).toContain('"node"');
      const jumped = await connect({ jump: { ...base } });
      expect((await jumped.exec(["whoami"])).stdout).toBe(`${facts.user}\n`);
      const peer = await peerProcess(jumped);
      expect(peer).not.toContain('"node"');
      if (canSeeSshd) expect(peer).toContain('"sshd"');
    });

    it("resolves a ~/.ssh/config alias with HostName, User, Port, IdentityFile, UserKnownHostsFile and ProxyJump", async () => {
      const config = path.join(scratch, "ssh_config");
      const entry = (alias: string, extra = ""): string =>
        `Host ${alias}\n  HostName ${facts.host}\n  Port ${facts.port}\n  User ${facts.user}\n  IdentityFile ${facts.identityFile}\n  UserKnownHostsFile ${facts.knownHostsFile}\n${extra}`;
      writeFileSync(config, `${entry("cluster-via-bastion", "  ProxyJump bastion\n")}${entry("bastion")}`);
      const transport = await SshTransport.connect({ sshConfigHost: "cluster-via-bastion", sshConfigFile: config, env: { HOME: scratch } });
      opened.push(transport);
      expect(transport.target).toBe(`${facts.user}@${facts.host}:${facts.port}`);
      expect((await transport.exec(["whoami"])).stdout).toBe(`${facts.user}\n`);
      expect(await peerProcess(transport)).not.toContain('"node"');
    });

    it("runs commands in a login shell (bash -lc) only when loginShell is set", async () => {
      const login = await connect({ loginShell: true });
      expect((await login.exec(["shopt", "-q", "login_shell"])).code).toBe(0);
      expect((await login.exec(["printf", "%s", "$(touch nope) it's"])).stdout).toBe("$(touch nope) it's");
      expect((await shared.exec(["shopt", "-q", "login_shell"])).code).toBe(1);
    });
  });
});
