/**
 * OpenSSH known_hosts: parsing (plain patterns with `*`/`?`/`!`, hashed
 * `|1|salt|hash` names, `[host]:port`, `@revoked` and `@cert-authority`
 * markers), looking up a host's key, fingerprints as OpenSSH prints them,
 * the file permission check, and recording a newly accepted key atomically.
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import { mkdir, open, readFile, rename, stat, unlink } from "node:fs/promises";
import path from "node:path";
import { preview } from "../core/preview.js";

export interface KnownHostEntry {
  /** 1-based line number in the file. */
  line: number;
  /** The line as written (for error messages). */
  text: string;
  marker: "revoked" | "cert-authority" | null;
  /** Comma-separated patterns (may start with `!`), or a single hashed `|1|salt|hash` name. */
  hosts: string;
  keyType: string;
  key: Buffer;
}

export interface ParsedKnownHosts {
  entries: KnownHostEntry[];
  /** Lines that could not be used, with why (they are skipped, as OpenSSH does). */
  problems: string[];
}

/** Parses known_hosts text; comments, blank and malformed lines are skipped. */
export function parseKnownHosts(text: string): ParsedKnownHosts {
  const entries: KnownHostEntry[] = [];
  const problems: string[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) return;
    const fields = trimmed.split(/\s+/);
    let marker: KnownHostEntry["marker"] = null;
    if (fields[0]?.startsWith("@")) {
      const name = fields.shift();
      if (name === "@revoked") marker = "revoked";
      else if (name === "@cert-authority") marker = "cert-authority";
      else {
        problems.push(`line ${line}: unknown marker ${preview(name)}`);
        return;
      }
    }
    const [hosts, keyType, keyText] = fields;
    if (hosts === undefined || keyType === undefined || keyText === undefined) {
      problems.push(`line ${line}: expected "hosts key-type base64-key"`);
      return;
    }
    const key = Buffer.from(keyText, "base64");
    if (key.length === 0 || blobKeyType(key) !== keyType) {
      problems.push(`line ${line}: key does not decode to a ${preview(keyType)} key`);
      return;
    }
    entries.push({ line, text: trimmed, marker, hosts, keyType, key });
  });
  return { entries, problems };
}

/** The name known_hosts uses for a host: `host` on port 22, else `[host]:port`. */
export function hostKeyName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

function globToRegExp(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${body}$`, "i");
}

function hashedMatches(hashed: string, name: string): boolean {
  const [, magic, salt, hash] = hashed.split("|");
  if (magic !== "1" || salt === undefined || hash === undefined) return false;
  const digest = createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64");
  return digest === hash;
}

/** Whether an entry's host field names this host and port (a `!` pattern that matches excludes it). */
export function entryMatches(entry: Pick<KnownHostEntry, "hosts">, host: string, port: number): boolean {
  const name = hostKeyName(host, port);
  if (entry.hosts.startsWith("|")) return hashedMatches(entry.hosts, name);
  let matched = false;
  for (const pattern of entry.hosts.split(",")) {
    const negated = pattern.startsWith("!");
    const glob = negated ? pattern.slice(1) : pattern;
    // A bare pattern stands for port 22; `[pattern]:port` for another port.
    if (!globToRegExp(glob).test(name)) continue;
    if (negated) return false;
    matched = true;
  }
  return matched;
}

/** Reads the SSH string at the start of a public key blob: its key type. */
export function blobKeyType(blob: Buffer): string | null {
  if (blob.length < 4) return null;
  const len = blob.readUInt32BE(0);
  if (len === 0 || len > 64 || 4 + len > blob.length) return null;
  return blob.subarray(4, 4 + len).toString("latin1");
}

/** `SHA256:<base64 without padding>`, as `ssh-keygen -l` prints it. */
export function fingerprintSha256(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

export type HostKeyVerdict =
  | { kind: "trusted"; entry: KnownHostEntry }
  | { kind: "revoked"; entry: KnownHostEntry }
  | { kind: "changed"; entries: KnownHostEntry[] }
  | { kind: "unknown"; certAuthorityIgnored: boolean };

/**
 * Decides about a presented host key: revoked anywhere in the file wins, then a
 * matching entry with the same key; any other key recorded for the host means
 * the key changed. `@cert-authority` lines are ignored (host certificates are not supported).
 */
export function checkHostKey(entries: readonly KnownHostEntry[], host: string, port: number, key: Buffer): HostKeyVerdict {
  const revoked = entries.find((e) => e.marker === "revoked" && e.key.equals(key));
  if (revoked) return { kind: "revoked", entry: revoked };
  const forHost = entries.filter((e) => e.marker !== "revoked" && entryMatches(e, host, port));
  const plain = forHost.filter((e) => e.marker === null);
  const trusted = plain.find((e) => e.key.equals(key));
  if (trusted) return { kind: "trusted", entry: trusted };
  if (plain.length > 0) return { kind: "changed", entries: plain };
  return { kind: "unknown", certAuthorityIgnored: forHost.some((e) => e.marker === "cert-authority") };
}

/** Key types recorded for a host, to ask the server for one of those first (as OpenSSH does). */
export function knownKeyTypes(entries: readonly KnownHostEntry[], host: string, port: number): string[] {
  const types = entries.filter((e) => e.marker === null && entryMatches(e, host, port)).map((e) => e.keyType);
  return [...new Set(types)];
}

/** The line recorded for an accepted key. */
export function formatKnownHostLine(host: string, port: number, key: Buffer): string {
  const type = blobKeyType(key);
  if (type === null) throw new Error("not an SSH public key blob");
  return `${hostKeyName(host, port)} ${type} ${key.toString("base64")}`;
}

/** Why a known_hosts file must not be trusted (like OpenSSH StrictModes), or null when it is fine or missing. */
export async function unsafeKnownHostsReason(file: string): Promise<string | null> {
  let info;
  try {
    info = await stat(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
  if (!info.isFile()) return `${file} is not a regular file`;
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid && info.uid !== 0) {
    return `${file} is owned by uid ${info.uid}, not by you (uid ${uid}) or root: anyone who owns it can make you trust their host`;
  }
  if ((info.mode & 0o022) !== 0) {
    return `${file} has mode ${(info.mode & 0o777).toString(8)}: it is writable by group or others, so anyone could add a host key. Fix it with: chmod go-w ${file}`;
  }
  return null;
}

/** The file's entries; a missing file is empty. */
export async function loadKnownHosts(file: string): Promise<ParsedKnownHosts & { exists: boolean }> {
  try {
    return { ...parseKnownHosts(await readFile(file, "utf8")), exists: true };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { entries: [], problems: [], exists: false };
    throw error;
  }
}

/**
 * Appends a host key line to known_hosts atomically: the current content plus
 * the line go to a temp file (mode 600) in the same directory, fsynced, then
 * renamed over the file. A missing directory is created with mode 700.
 */
export async function recordHostKey(file: string, host: string, port: number, key: Buffer): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  let current = "";
  try {
    current = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const separator = current === "" || current.endsWith("\n") ? "" : "\n";
  const content = `${current}${separator}${formatKnownHostLine(host, port, key)}\n`;
  const temp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await open(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
  try {
    await handle.writeFile(content, "utf8");
    await handle.sync();
  } catch (error) {
    await handle.close();
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await handle.close();
  try {
    await rename(temp, file);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  const dirHandle = await open(dir, "r");
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}
