// What a shared login saves on a cluster that asks for a key and a one-time code: the test
// cluster's second sshd (scripts/cluster/otp-sshd.sh, key + TOTP). Times a command's own login
// (key + code) against attaching to a connection holder, and one trivial remote command on each.
// Prints figures only; never asserts (the machine is shared: times are noisy).
// Run after a build: `node dist/bench/holder.js [--rounds 20]`.
import { mkdtempSync, rmSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { SshTransport, startHolder, stopHolder } from "../src/transport/index.js";
import type { SshConnectOptions } from "../src/transport/index.js";
import { ensureOtpSshd, freshCode } from "../test/support/otp-sshd.js";
import { median, table } from "./lib/format.js";

const ms = (value: number): string => `${value.toFixed(1)} ms`;

const { values } = parseArgs({ options: { rounds: { type: "string", default: "20" } } });
const rounds = Number(values.rounds);

const facts = await ensureOtpSshd();
const socketDir = path.join(mkdtempSync("/tmp/hpb-"), "s");
const env = { HOME: process.env.HOME ?? "/root", HPCPIPE_SOCKET_DIR: socketDir };
const base: SshConnectOptions = { host: facts.host, port: facts.port, user: facts.user, identityFile: facts.identityFile, knownHostsFile: facts.knownHostsFile, prompter: null };

async function timed<T>(action: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const value = await action();
  return [value, performance.now() - start];
}

async function execTimes(transport: SshTransport): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) times.push((await timed(() => transport.exec(["true"])))[1]);
  return times;
}

try {
  const [own, ownLogin] = await timed(async () => SshTransport.connect({ ...base, env: { ...env, HPCPIPE_SSH_OTP: await freshCode(facts) }, useHolder: false }));
  const ownExec = await execTimes(own);
  await own.close();

  const [, holderStart] = await timed(async () => startHolder({ ...base, env: { ...env, HPCPIPE_SSH_OTP: await freshCode(facts) } }, { idleMs: 120_000, maxChannels: 8 }));
  const attach: number[] = [];
  let viaExec: number[] = [];
  for (let i = 0; i < 5; i++) {
    const [via, ms] = await timed(() => SshTransport.connect({ ...base, env }));
    attach.push(ms);
    if (!via.usesHolder) throw new Error("the transport did not use the holder");
    if (i === 0) viaExec = await execTimes(via);
    await via.close();
  }
  await stopHolder({ ...base, env });
  table(
      ["key + one-time code login (sshd on 127.0.0.1, code from HPCPIPE_SSH_OTP)", "time"],
      [
        ["own login of a command (key, then keyboard-interactive)", ms(ownLogin)],
        ["hpcpipe connect's holder: spawn, log in, listen (startHolder)", ms(holderStart)],
        ["a command attaching to the holder (median of 5)", ms(median(attach))],
        [`trivial remote command on its own connection (median of ${rounds})`, ms(median(ownExec))],
        [`trivial remote command through the holder (median of ${rounds})`, ms(median(viaExec))],
      ],
  );
} finally {
  rmSync(path.dirname(socketDir), { recursive: true, force: true });
}
