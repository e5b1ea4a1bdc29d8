// Keyboard-interactive logins against a real sshd that asks for a key AND a TOTP code
// (AuthenticationMethods publickey,keyboard-interactive; PAM with libpam-oath), started by
// scripts/cluster/otp-sshd.sh beside the shared test sshd.
import { beforeAll, describe, expect, it } from "vitest";
import { AuthError, SshTransport } from "../../src/transport/index.js";
import type { SshConnectOptions } from "../../src/transport/index.js";
import type { KbdContext, KbdRound } from "../../src/transport/otp.js";
import { readClusterFacts } from "../support/cluster.js";
import { ensureOtpSshd, freshCode, printCodeCommand, wrongCode, type OtpFacts } from "../support/otp-sshd.js";
import { e2eSkipped } from "../fixtures/workflow/support.js";

describe.skipIf(e2eSkipped)("keyboard-interactive login with a one-time code", { timeout: 60_000 }, () => {
  let facts: OtpFacts;
  const base = (extra: Partial<SshConnectOptions> = {}): SshConnectOptions => ({
    host: facts.host,
    port: facts.port,
    user: facts.user,
    identityFile: facts.identityFile,
    knownHostsFile: facts.knownHostsFile,
    prompter: null,
    useHolder: false,
    env: { HOME: process.env.HOME ?? "/root" },
    ...extra,
  });

  beforeAll(async () => {
    facts = await ensureOtpSshd();
  }, 300_000);

  it("logs in with the key and a code from HPCPIPE_SSH_OTP, and runs a command as the test user", async () => {
    const code = await freshCode(facts);
    const transport = await SshTransport.connect(base({ env: { HOME: "/root", HPCPIPE_SSH_OTP: code } }));
    try {
      expect((await transport.exec(["id", "-un"])).stdout).toBe(`${facts.user}\n`);
    } finally {
      await transport.close();
    }
  });

  it("logs in with a code printed by otp_command", async () => {
    const code = await freshCode(facts);
    const transport = await SshTransport.connect(base({ otpCommand: printCodeCommand(code) }));
    try {
      expect((await transport.exec(["echo", "ok"])).stdout).toBe("ok\n");
    } finally {
      await transport.close();
    }
  });

  it("with no terminal and no code, fails at once saying how to give a code", async () => {
    const started = Date.now();
    const error = await SshTransport.connect(base({ connectTimeoutMs: 20_000, clusterName: "otpcluster" })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    const message = (error as Error).message;
    expect(message).toContain(`${facts.user}@${facts.host}:${facts.port} asks for a one-time code`);
    expect(message).toContain("HPCPIPE_SSH_OTP=<code>");
    expect(message).toContain("otp_command");
    expect(message).toContain("hpcpipe connect otpcluster");
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("a wrong code is refused with a message naming where the code came from", async () => {
    const code = wrongCode(facts);
    const error = await SshTransport.connect(base({ env: { HOME: "/root", HPCPIPE_SSH_OTP: code } })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect((error as Error).message).toMatch(/the key was accepted, then the server refused the code from HPCPIPE_SSH_OTP/);
    expect((error as Error).message).not.toContain(code);
  });

  it("the connect timeout does not run while a person is asked; the prompt names the host", async () => {
    const rounds: { round: KbdRound; context: KbdContext }[] = [];
    const transport = await SshTransport.connect(
      base({
        connectTimeoutMs: 1_500,
        prompter: async (round, context) => {
          rounds.push({ round, context });
          await new Promise((r) => setTimeout(r, 3_000)); // a person reading a phone, longer than the timeout
          return [await freshCode(facts)];
        },
      }),
    );
    try {
      expect((await transport.exec(["echo", "ok"])).stdout).toBe("ok\n");
    } finally {
      await transport.close();
    }
    expect(rounds).toHaveLength(1);
    expect(rounds[0]?.context).toMatchObject({ target: `${facts.user}@${facts.host}:${facts.port}`, jump: false });
    expect(rounds[0]?.round.prompts).toHaveLength(1);
    expect(rounds[0]?.round.prompts[0]?.echo).toBe(false);
  });

  it("a jump host that asks for a code is prompted for by name; the target behind it logs in with the key alone", async () => {
    const plain = readClusterFacts();
    if (!plain) throw new Error("no test cluster facts");
    const asked: KbdContext[] = [];
    const transport = await SshTransport.connect({
      host: plain.host,
      port: plain.port,
      user: plain.user,
      identityFile: plain.identityFile,
      knownHostsFile: plain.knownHostsFile,
      useHolder: false,
      prompter: null,
      env: { HOME: "/root" },
      jump: {
        host: facts.host,
        port: facts.port,
        user: facts.user,
        identityFile: facts.identityFile,
        knownHostsFile: facts.knownHostsFile,
        prompter: async (_round, context) => {
          asked.push(context);
          return [await freshCode(facts)];
        },
      },
    });
    try {
      expect((await transport.exec(["echo", "through"])).stdout).toBe("through\n");
    } finally {
      await transport.close();
    }
    expect(asked).toHaveLength(1);
    expect(asked[0]).toMatchObject({ target: `${facts.user}@${facts.host}:${facts.port}`, jump: true, attempt: 1, keyAccepted: true });
  });
});
