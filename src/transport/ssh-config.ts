/**
 * A small `~/.ssh/config` reader: resolves a Host alias to HostName, User,
 * Port, IdentityFile, ProxyJump, UserKnownHostsFile (plus IdentityAgent,
 * ConnectTimeout, ServerAliveInterval) with OpenSSH's rules: `Host`
 * patterns with `*`, `?` and `!`, and the first value obtained for a
 * keyword wins (IdentityFile accumulates). `Match` and `Include` are not
 * supported: they are reported as warnings and their lines are not applied.
 */
import { readFile } from "node:fs/promises";
import { preview } from "../core/preview.js";

interface ConfigLine {
  keyword: string;
  args: string[];
  line: number;
}

export interface SshConfigBlock {
  /** The `Host` patterns; null for a block that never applies (an unsupported `Match`). */
  patterns: string[] | null;
  lines: ConfigLine[];
}

export interface ParsedSshConfig {
  blocks: SshConfigBlock[];
  warnings: string[];
}

/** Splits a config line into words, honouring double quotes and `keyword=value`. */
function splitWords(text: string): string[] {
  const words: string[] = [];
  const re = /"([^"]*)"|([^\s"]+)/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) words.push(m[1] ?? m[2] ?? "");
  return words;
}

export function parseSshConfig(text: string): ParsedSshConfig {
  const warnings: string[] = [];
  // Lines before the first Host apply to every host.
  const blocks: SshConfigBlock[] = [{ patterns: ["*"], lines: [] }];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) return;
    const m = /^(\S+?)(?:\s*=\s*|\s+)(.*)$/.exec(trimmed);
    const keyword = (m?.[1] ?? trimmed).toLowerCase();
    const args = splitWords(m?.[2] ?? "");
    if (keyword === "host") {
      blocks.push({ patterns: args, lines: [] });
    } else if (keyword === "match") {
      const always = args.length === 1 && args[0]?.toLowerCase() === "all";
      if (!always) warnings.push(`line ${line}: "Match ${args.join(" ")}" is not supported; its options are ignored`);
      blocks.push({ patterns: always ? ["*"] : null, lines: [] });
    } else if (keyword === "include") {
      warnings.push(`line ${line}: "Include ${args.join(" ")}" is not supported; the included files are not read`);
    } else {
      blocks.at(-1)?.lines.push({ keyword, args, line });
    }
  });
  return { blocks, warnings };
}

function patternToRegExp(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${body}$`, "i");
}

/** OpenSSH Host matching: some pattern matches and no negated (`!`) pattern does. */
export function hostPatternsMatch(patterns: readonly string[], name: string): boolean {
  let matched = false;
  for (const pattern of patterns) {
    const negated = pattern.startsWith("!");
    if (!patternToRegExp(negated ? pattern.slice(1) : pattern).test(name)) continue;
    if (negated) return false;
    matched = true;
  }
  return matched;
}

export interface JumpSpec {
  host: string;
  user?: string;
  port?: number;
}

/** Parses a ProxyJump value (`[user@]host[:port]`, comma-separated, or `ssh://` URIs); null for `none`. */
export function parseProxyJump(value: string): JumpSpec[] | null {
  if (value.toLowerCase() === "none") return null;
  return value.split(",").map((hop) => {
    const text = hop.trim().replace(/^ssh:\/\//, "");
    const m = /^(?:([^@]+)@)?(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(text);
    if (!m?.[2]) throw new Error(`invalid ProxyJump hop ${preview(hop)}`);
    const spec: JumpSpec = { host: m[2].replace(/^\[(.*)\]$/, "$1") };
    if (m[1]) spec.user = m[1];
    if (m[3]) spec.port = Number(m[3]);
    return spec;
  });
}

export interface SshHostConfig {
  /** The alias that was looked up. */
  alias: string;
  hostName: string;
  user?: string;
  port?: number;
  identityFiles: string[];
  /** Hops in order, the first reached directly; empty when none. */
  proxyJump: JumpSpec[];
  userKnownHostsFile?: string;
  /** A socket path, or "none" to use no agent. */
  identityAgent?: string;
  connectTimeoutS?: number;
  serverAliveIntervalS?: number;
}

export interface ConfigEnv {
  home: string;
  localUser: string;
}

function expandTilde(value: string, env: ConfigEnv): string {
  return value === "~" ? env.home : value.startsWith("~/") ? `${env.home}${value.slice(1)}` : value;
}

/** OpenSSH's `%` tokens that make sense here: %h %p %r %u %d %n %%. */
function expandTokens(value: string, tokens: Record<string, string>): string {
  return value.replace(/%(.)/g, (whole, key: string) => tokens[key] ?? whole);
}

function toNumber(value: string | undefined, keyword: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`ssh config: ${keyword} ${preview(value)} is not a number`);
  return n;
}

/** Resolves an alias against the parsed config with first-match-wins semantics. */
export function resolveSshConfigHost(config: ParsedSshConfig, alias: string, env: ConfigEnv): SshHostConfig {
  const first = new Map<string, string>();
  const identityFiles: string[] = [];
  for (const block of config.blocks) {
    if (block.patterns === null || !hostPatternsMatch(block.patterns, alias)) continue;
    for (const { keyword, args } of block.lines) {
      const value = args.join(" ");
      if (keyword === "identityfile") identityFiles.push(value);
      else if (!first.has(keyword)) first.set(keyword, keyword === "userknownhostsfile" ? (args[0] ?? "") : value);
    }
  }
  const hostName = expandTokens(first.get("hostname") ?? alias, { h: alias, "%": "%" });
  const port = toNumber(first.get("port"), "Port");
  const user = first.get("user");
  const tokens: Record<string, string> = {
    h: hostName,
    n: alias,
    p: String(port ?? 22),
    r: user ?? env.localUser,
    u: env.localUser,
    d: env.home,
    "%": "%",
  };
  const pathValue = (value: string): string => expandTokens(expandTilde(value, env), tokens);
  const result: SshHostConfig = {
    alias,
    hostName,
    identityFiles: identityFiles.map(pathValue),
    proxyJump: parseProxyJump(first.get("proxyjump") ?? "none") ?? [],
  };
  if (user !== undefined) result.user = user;
  if (port !== undefined) result.port = port;
  const knownHosts = first.get("userknownhostsfile");
  if (knownHosts !== undefined) result.userKnownHostsFile = pathValue(knownHosts);
  const agent = first.get("identityagent");
  if (agent !== undefined) result.identityAgent = agent === "SSH_AUTH_SOCK" ? agent : pathValue(agent);
  const connectTimeout = toNumber(first.get("connecttimeout"), "ConnectTimeout");
  if (connectTimeout !== undefined) result.connectTimeoutS = connectTimeout;
  const alive = toNumber(first.get("serveraliveinterval"), "ServerAliveInterval");
  if (alive !== undefined) result.serverAliveIntervalS = alive;
  return result;
}

/** Reads and parses a config file; a missing file is an empty config. */
export async function loadSshConfig(file: string): Promise<ParsedSshConfig> {
  try {
    return parseSshConfig(await readFile(file, "utf8"));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { blocks: [], warnings: [] };
    throw error;
  }
}
