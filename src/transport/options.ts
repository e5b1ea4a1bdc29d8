/**
 * Connection options as callers give them, and their resolution into what a
 * connection needs: `~/.ssh/config` alias values filled in (explicit options
 * win), identity files read and checked, the agent socket found. Key
 * material and passphrases live only in the resolved object, never in errors.
 */
import { readFile } from "node:fs/promises";
import { homedir, userInfo } from "node:os";
import path from "node:path";
import ssh2 from "ssh2";
import { AuthError } from "./errors.js";
import type { KbdPrompter, OtpRoute } from "./otp.js";
import { defaultPrompter } from "./terminal-prompt.js";
import { loadSshConfig, resolveSshConfigHost, type JumpSpec, type SshHostConfig } from "./ssh-config.js";

export interface SshConnectOptions {
  /** Host name or address; may be omitted when `sshConfigHost` gives it. */
  host?: string;
  /** Default 22 (or the alias's Port). */
  port?: number;
  /** Default: the alias's User, else the local user name. */
  user?: string;
  /** Private key file (OpenSSH or PEM). Default: the alias's IdentityFile, else ~/.ssh/id_{ed25519,ecdsa,rsa} that exist. */
  identityFile?: string;
  /** Passphrase of an encrypted identity file. Never logged. */
  passphrase?: string;
  /** Name of an environment variable holding the passphrase (e.g. HPCPIPE_SSH_PASSPHRASE). */
  passphraseEnv?: string;
  /** Use an SSH agent: true for $SSH_AUTH_SOCK, or a socket path. Default: $SSH_AUTH_SOCK when no identity file is given. */
  agent?: boolean | string;
  /** Default: the alias's UserKnownHostsFile, else ~/.ssh/known_hosts. */
  knownHostsFile?: string;
  /** Record an unknown host key in knownHostsFile instead of refusing it (explicit opt-in). */
  acceptNewHostKey?: boolean;
  /** A host to go through first (ProxyJump); default: the alias's ProxyJump. */
  jump?: SshConnectOptions;
  /** SSH keepalive interval in seconds (default 15; 0 disables). */
  keepaliveS?: number;
  /** Run every command as `bash -lc <command>` (clusters whose sbatch comes from a module). */
  loginShell?: boolean;
  /** A `~/.ssh/config` Host alias whose HostName, User, Port, IdentityFile, ProxyJump, UserKnownHostsFile apply. */
  sshConfigHost?: string;
  /** Default ~/.ssh/config. */
  sshConfigFile?: string;
  /** Bound on TCP connect + handshake + authentication (default 20 s). */
  connectTimeoutMs?: number;
  /** Channels open at once on the connection; more are queued (default 8, under OpenSSH's MaxSessions 10). */
  maxChannels?: number;
  /** Reconnection after a drop: tries and backoff bounds (defaults 4 tries, 250 ms doubling to 4 s, with jitter). */
  reconnect?: { tries?: number; baseDelayMs?: number; maxDelayMs?: number };
  /** Environment for HOME (~ and default files), SSH_AUTH_SOCK and passphraseEnv (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** A local command (run with /bin/sh -c) that prints a one-time code for keyboard-interactive logins. */
  otpCommand?: string;
  /** An environment variable holding a one-time code (one code serves one login). Default HPCPIPE_SSH_OTP (HPCPIPE_SSH_OTP_JUMP for a jump host). */
  otpEnv?: string;
  /** Asks a person the server's keyboard-interactive questions; default: the terminal when there is one; null: never ask. */
  prompter?: KbdPrompter | null;
  /** Use a connection holder (`hpcpipe connect`) for this login when one runs (default true). */
  useHolder?: boolean;
  /** The cluster's name, for messages ("run `hpcpipe connect NAME`"). */
  clusterName?: string;
}

/** A private key ready for ssh2, with where it came from for messages. */
export interface LoadedKey {
  file: string;
  data: Buffer;
  passphrase: string | undefined;
}

export interface ResolvedEndpoint {
  host: string;
  port: number;
  user: string;
  keys: LoadedKey[];
  agent: string | undefined;
  knownHostsFile: string;
  acceptNewHostKey: boolean;
  keepaliveMs: number;
  connectTimeoutMs: number;
  jump: ResolvedEndpoint | undefined;
  /** How one-time codes are given to this endpoint (keyboard-interactive). */
  otp: OtpRoute;
  /** ssh config lines that were not applied. */
  warnings: string[];
}

const DEFAULT_IDENTITIES = ["id_ed25519", "id_ecdsa", "id_rsa"];
/** Where a CI job puts a one-time code for the target, and for a jump host. */
export const OTP_ENV = "HPCPIPE_SSH_OTP";
export const JUMP_OTP_ENV = "HPCPIPE_SSH_OTP_JUMP";

function expandHome(file: string, home: string): string {
  return file === "~" ? home : file.startsWith("~/") ? path.join(home, file.slice(2)) : file;
}

function passphraseOf(options: SshConnectOptions, env: NodeJS.ProcessEnv): string | undefined {
  if (options.passphrase !== undefined) return options.passphrase;
  if (options.passphraseEnv !== undefined) return env[options.passphraseEnv];
  return undefined;
}

/** Reads and checks a key; an explicitly named key that cannot be used is an AuthError, a default one is skipped. */
async function loadKey(file: string, passphrase: string | undefined, explicit: boolean, where: { host: string; port: number }, passphraseEnv?: string): Promise<LoadedKey | null> {
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (cause) {
    if (!explicit) return null;
    throw new AuthError(`cannot read identity file ${file}: ${(cause as NodeJS.ErrnoException).code ?? "error"}`, where.host, where.port, { cause });
  }
  const parsed = ssh2.utils.parseKey(data, passphrase);
  if (parsed instanceof Error) {
    if (!explicit) return null;
    const encrypted = /encrypted|passphrase|decrypt/i.test(parsed.message);
    const how = passphraseEnv ? `the environment variable ${passphraseEnv}` : "the passphrase option or passphraseEnv";
    const message = !encrypted
      ? `identity file ${file} is not a usable private key (${parsed.message})`
      : passphrase === undefined
        ? `identity file ${file} is encrypted and no passphrase was given (set ${how})`
        : `identity file ${file} could not be decrypted with the passphrase given (from ${how})`;
    // parsed.message comes from ssh2's key parser and names no secret; cause kept for debugging.
    throw new AuthError(message, where.host, where.port, { cause: parsed });
  }
  return { file, data, passphrase };
}

function jumpOptions(hops: JumpSpec[], base: SshConnectOptions): SshConnectOptions | undefined {
  let jump: SshConnectOptions | undefined;
  for (const hop of hops) {
    // Each hop may itself be an alias (ssh resolves it too); the previous hop is its jump.
    const next: SshConnectOptions = { sshConfigHost: hop.host, jump, env: base.env, sshConfigFile: base.sshConfigFile, knownHostsFile: base.knownHostsFile, acceptNewHostKey: base.acceptNewHostKey, otpEnv: JUMP_OTP_ENV };
    if (base.prompter !== undefined) next.prompter = base.prompter;
    if (hop.user !== undefined) next.user = hop.user;
    if (hop.port !== undefined) next.port = hop.port;
    jump = next;
  }
  return jump;
}

/** Resolves options (alias, defaults, keys, agent) into a connectable endpoint; `depth` bounds jump chains. */
export async function resolveEndpoint(options: SshConnectOptions, depth = 0): Promise<ResolvedEndpoint> {
  if (depth > 8) throw new Error("ProxyJump chain longer than 8 hops (a loop in ~/.ssh/config?)");
  const env = options.env ?? process.env;
  const home = env.HOME ?? homedir();
  const localUser = userInfo().username;
  let alias: SshHostConfig | undefined;
  const warnings: string[] = [];
  if (options.sshConfigHost !== undefined) {
    const config = await loadSshConfig(expandHome(options.sshConfigFile ?? "~/.ssh/config", home));
    warnings.push(...config.warnings);
    alias = resolveSshConfigHost(config, options.sshConfigHost, { home, localUser });
  }
  const host = options.host ?? alias?.hostName;
  if (!host) throw new Error("no host given (set host, or sshConfigHost naming a ~/.ssh/config alias)");
  const port = options.port ?? alias?.port ?? 22;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid port ${port}`);
  const user = options.user ?? alias?.user ?? localUser;
  const where = { host, port };

  const passphrase = passphraseOf(options, env);
  const keys: LoadedKey[] = [];
  if (options.identityFile !== undefined) {
    const key = await loadKey(expandHome(options.identityFile, home), passphrase, true, where, options.passphraseEnv);
    if (key) keys.push(key);
  } else if (alias && alias.identityFiles.length > 0) {
    for (const file of alias.identityFiles) {
      const key = await loadKey(file, passphrase, true, where, options.passphraseEnv);
      if (key) keys.push(key);
    }
  }

  let agent: string | undefined;
  if (typeof options.agent === "string") agent = options.agent;
  else if (options.agent === true) agent = env.SSH_AUTH_SOCK;
  else if (options.agent === undefined && keys.length === 0) {
    const fromAlias = alias?.identityAgent;
    agent = fromAlias === undefined || fromAlias === "SSH_AUTH_SOCK" ? env.SSH_AUTH_SOCK : fromAlias === "none" ? undefined : fromAlias;
  }
  if (options.agent === true && !agent) throw new AuthError("agent requested but SSH_AUTH_SOCK is not set", host, port);

  if (keys.length === 0 && options.identityFile === undefined && !(alias && alias.identityFiles.length > 0)) {
    for (const name of DEFAULT_IDENTITIES) {
      const key = await loadKey(path.join(home, ".ssh", name), passphrase, false, where);
      if (key) keys.push(key);
    }
  }
  if (keys.length === 0 && !agent) {
    throw new AuthError(`no way to authenticate to ${user}@${host}:${port}: give an identity file or an SSH agent (SSH_AUTH_SOCK)`, host, port);
  }

  const jumpSource = options.jump ?? (alias ? jumpOptions(alias.proxyJump, options) : undefined);
  const jump = jumpSource
    ? await resolveEndpoint({ env: options.env, otpEnv: JUMP_OTP_ENV, ...(options.prompter !== undefined ? { prompter: options.prompter } : {}), ...jumpSource }, depth + 1)
    : undefined;
  const otp: OtpRoute = {
    command: options.otpCommand,
    envName: options.otpEnv ?? OTP_ENV,
    env,
    prompter: options.prompter === undefined ? defaultPrompter() : options.prompter,
    hint: options.clusterName !== undefined ? `run \`hpcpipe connect ${options.clusterName}\` on a terminal once: later commands share that login` : undefined,
  };
  const keepaliveS = options.keepaliveS ?? alias?.serverAliveIntervalS ?? 15;
  return {
    host,
    port,
    user,
    keys,
    agent,
    knownHostsFile: expandHome(options.knownHostsFile ?? alias?.userKnownHostsFile ?? "~/.ssh/known_hosts", home),
    acceptNewHostKey: options.acceptNewHostKey ?? false,
    keepaliveMs: Math.max(0, keepaliveS) * 1000,
    connectTimeoutMs: options.connectTimeoutMs ?? (alias?.connectTimeoutS ? alias.connectTimeoutS * 1000 : 20_000),
    jump,
    otp,
    warnings: [...warnings, ...(jump?.warnings ?? [])],
  };
}

/**
 * The login target's hops, first jump host first, as `user@host:port`: what a
 * connection holder is keyed by. Reads ~/.ssh/config for aliases but no key.
 */
export async function resolveTargetChain(options: SshConnectOptions, depth = 0): Promise<string[]> {
  if (depth > 8) throw new Error("ProxyJump chain longer than 8 hops (a loop in ~/.ssh/config?)");
  const env = options.env ?? process.env;
  const home = env.HOME ?? homedir();
  let alias: SshHostConfig | undefined;
  if (options.sshConfigHost !== undefined) {
    const config = await loadSshConfig(expandHome(options.sshConfigFile ?? "~/.ssh/config", home));
    alias = resolveSshConfigHost(config, options.sshConfigHost, { home, localUser: userInfo().username });
  }
  const host = options.host ?? alias?.hostName;
  if (!host) throw new Error("no host given (set host, or sshConfigHost naming a ~/.ssh/config alias)");
  const port = options.port ?? alias?.port ?? 22;
  const user = options.user ?? alias?.user ?? userInfo().username;
  const jumpSource = options.jump ?? (alias ? jumpOptions(alias.proxyJump, options) : undefined);
  const before = jumpSource ? await resolveTargetChain({ env: options.env, ...jumpSource }, depth + 1) : [];
  return [...before, `${user}@${host}:${port}`];
}
