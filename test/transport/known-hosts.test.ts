// known_hosts parsing, lookup and recording, checked against keys and files made by the real ssh-keygen.
import { chmodSync, chownSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HostKeyError } from "../../src/transport/errors.js";
import { prepareHostKeyCheck } from "../../src/transport/host-key-check.js";
import {
  checkHostKey,
  entryMatches,
  fingerprintSha256,
  knownKeyTypes,
  parseKnownHosts,
  recordHostKey,
  unsafeKnownHostsReason,
} from "../../src/transport/known-hosts.js";
import { runOk, tempDir } from "./helpers.js";

let dir: string;
let cleanup: () => void;

beforeEach(() => {
  ({ dir, cleanup } = tempDir("known-hosts"));
});
afterEach(() => cleanup());

interface Key {
  line: string; // "ssh-ed25519 AAAA..."
  blob: Buffer;
  pubFile: string;
}

function makeKey(name: string, type = "ed25519"): Key {
  const file = path.join(dir, name);
  runOk("ssh-keygen", ["-q", "-t", type, "-N", "", "-C", "", "-f", file]);
  const [keyType = "", base64 = ""] = readFileSync(`${file}.pub`, "utf8").trim().split(/\s+/);
  return { line: `${keyType} ${base64}`, blob: Buffer.from(base64, "base64"), pubFile: `${file}.pub` };
}

function writeKnownHosts(text: string, name = "known_hosts"): string {
  const file = path.join(dir, name);
  writeFileSync(file, text, { mode: 0o600 });
  return file;
}

describe("parseKnownHosts and lookup", () => {
  it("matches a plain host on port 22 and the [host]:port form on other ports, never across ports", () => {
    const k = makeKey("k");
    const { entries, problems } = parseKnownHosts(`# comment\n\nexample.org ${k.line}\n[127.0.0.1]:2222 ${k.line}\n`);
    expect(problems).toEqual([]);
    expect(checkHostKey(entries, "example.org", 22, k.blob).kind).toBe("trusted");
    expect(checkHostKey(entries, "EXAMPLE.org", 22, k.blob).kind).toBe("trusted");
    expect(checkHostKey(entries, "127.0.0.1", 2222, k.blob).kind).toBe("trusted");
    expect(checkHostKey(entries, "127.0.0.1", 22, k.blob).kind).toBe("unknown");
    expect(checkHostKey(entries, "example.org", 2222, k.blob).kind).toBe("unknown");
  });

  it("matches entries hashed by `ssh-keygen -H` (|1|salt|hash), including [host]:port ones", () => {
    const k = makeKey("k");
    const file = writeKnownHosts(`example.org ${k.line}\n[127.0.0.1]:2222 ${k.line}\n`);
    runOk("ssh-keygen", ["-q", "-H", "-f", file]);
    const { entries } = parseKnownHosts(readFileSync(file, "utf8"));
    expect(entries.map((e) => e.hosts.startsWith("|1|"))).toEqual([true, true]);
    expect(checkHostKey(entries, "example.org", 22, k.blob).kind).toBe("trusted");
    expect(checkHostKey(entries, "127.0.0.1", 2222, k.blob).kind).toBe("trusted");
    expect(checkHostKey(entries, "127.0.0.1", 22, k.blob).kind).toBe("unknown");
    expect(checkHostKey(entries, "other.org", 22, k.blob).kind).toBe("unknown");
  });

  it("honours comma lists, * and ? wildcards and ! negations in host patterns", () => {
    const hosts = (h: string, host: string, port = 22): boolean => entryMatches({ hosts: h }, host, port);
    expect(hosts("a.org,*.example.org,!bad.example.org", "login1.example.org")).toBe(true);
    expect(hosts("a.org,*.example.org,!bad.example.org", "bad.example.org")).toBe(false);
    expect(hosts("a.org,*.example.org", "a.org")).toBe(true);
    expect(hosts("node?", "node7")).toBe(true);
    expect(hosts("node?", "node17")).toBe(false);
    expect(hosts("[10.0.0.?]:2222", "10.0.0.5", 2222)).toBe(true);
    expect(hosts("*", "10.0.0.5", 2222)).toBe(true); // OpenSSH: `*` matches the [host]:port name too
  });

  it("says a host's key changed when a different key is recorded for it", () => {
    const old = makeKey("old");
    const now = makeKey("new");
    const { entries } = parseKnownHosts(`[h]:2222 ${old.line}\n`);
    const verdict = checkHostKey(entries, "h", 2222, now.blob);
    expect(verdict.kind).toBe("changed");
    expect(verdict.kind === "changed" && verdict.entries[0]?.line).toBe(1);
  });

  it("refuses a key marked @revoked, even when another line trusts it", () => {
    const k = makeKey("k");
    const { entries } = parseKnownHosts(`h ${k.line}\n@revoked * ${k.line}\n`);
    expect(checkHostKey(entries, "h", 22, k.blob)).toMatchObject({ kind: "revoked", entry: { line: 2 } });
  });

  it("ignores @cert-authority lines (host certificates are unsupported) and says so", () => {
    const ca = makeKey("ca");
    const k = makeKey("k");
    const { entries } = parseKnownHosts(`@cert-authority *.example.org ${ca.line}\n`);
    expect(checkHostKey(entries, "x.example.org", 22, k.blob)).toEqual({ kind: "unknown", certAuthorityIgnored: true });
  });

  it("skips malformed lines, unknown markers and keys that do not decode, reporting each", () => {
    const k = makeKey("k");
    const { entries, problems } = parseKnownHosts(`h\n@weird h ${k.line}\nh ssh-rsa ${k.line.split(" ")[1]}\nh ${k.line}\n`);
    expect(entries).toHaveLength(1);
    expect(problems).toEqual([
      expect.stringContaining("line 1"),
      expect.stringContaining('line 2: unknown marker "@weird"'),
      expect.stringContaining('line 3: key does not decode to a "ssh-rsa" key'),
    ]);
  });

  it("lists the key types recorded for a host, to ask the server for those first", () => {
    const ed = makeKey("ed");
    const rsa = makeKey("rsa", "rsa");
    const { entries } = parseKnownHosts(`h ${rsa.line}\nh ${ed.line}\nother ${ed.line}\n`);
    expect(knownKeyTypes(entries, "h", 22)).toEqual(["ssh-rsa", "ssh-ed25519"]);
  });

  it("prints fingerprints exactly as `ssh-keygen -l -E sha256` does", () => {
    for (const type of ["ed25519", "rsa", "ecdsa"]) {
      const k = makeKey(type, type);
      const expected = runOk("ssh-keygen", ["-l", "-E", "sha256", "-f", k.pubFile]).split(" ")[1];
      expect(fingerprintSha256(k.blob)).toBe(expected);
    }
  });
});

describe("known_hosts file safety and recording", () => {
  it("refuses a file writable by group or others, and one owned by another user (like StrictModes)", async () => {
    const file = writeKnownHosts("");
    expect(await unsafeKnownHostsReason(file)).toBeNull();
    chmodSync(file, 0o666);
    expect(await unsafeKnownHostsReason(file)).toMatch(/mode 666: it is writable by group or others/);
    chmodSync(file, 0o620);
    expect(await unsafeKnownHostsReason(file)).toMatch(/writable by group or others/);
    chmodSync(file, 0o644);
    if (process.getuid?.() === 0) {
      chownSync(file, 4242, 4242);
      expect(await unsafeKnownHostsReason(file)).toMatch(/owned by uid 4242/);
    }
    expect(await unsafeKnownHostsReason(path.join(dir, "missing"))).toBeNull();
  });

  it("records a key atomically: missing directory made 700, file 600, existing lines kept, no temp file left", async () => {
    const k = makeKey("k");
    const file = path.join(dir, "new-ssh-dir", "known_hosts");
    await recordHostKey(file, "127.0.0.1", 2222, k.blob);
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, "utf8")).toBe(`[127.0.0.1]:2222 ${k.line}\n`);

    writeFileSync(file, `# mine\nexample.org ${k.line}`); // no trailing newline
    await recordHostKey(file, "Login.Example.org", 22, k.blob);
    expect(readFileSync(file, "utf8")).toBe(`# mine\nexample.org ${k.line}\nlogin.example.org ${k.line}\n`);
    expect(readdirSync(path.dirname(file))).toEqual(["known_hosts"]);
  });
});

describe("prepareHostKeyCheck", () => {
  const policy = (knownHostsFile: string, acceptNew = false) => ({ host: "127.0.0.1", port: 2222, knownHostsFile, acceptNew });

  it("refuses an unknown key with its fingerprint, the host:port and both ways to accept it", async () => {
    const k = makeKey("k");
    const file = writeKnownHosts("");
    const error = await (await prepareHostKeyCheck(policy(file))).verify(k.blob);
    expect(error).toBeInstanceOf(HostKeyError);
    expect(error?.problem).toBe("unknown");
    expect(error?.fingerprint).toBe(fingerprintSha256(k.blob));
    expect(error?.message).toContain(fingerprintSha256(k.blob));
    expect(error?.message).toContain("127.0.0.1:2222");
    expect(error?.message).toContain("--accept-new-host-key");
    expect(error?.message).toContain(`ssh-keyscan -p 2222 127.0.0.1 >> ${file}`);
  });

  it("refuses a changed key loudly with the old and new fingerprints and the known_hosts line", async () => {
    const old = makeKey("old");
    const now = makeKey("new");
    const file = writeKnownHosts(`[127.0.0.1]:2222 ${old.line}\n`);
    const error = await (await prepareHostKeyCheck(policy(file, true))).verify(now.blob);
    expect(error?.problem).toBe("changed");
    expect(error?.message).toContain("HOST KEY CHANGED");
    expect(error?.message).toContain("man-in-the-middle");
    expect(error?.message).toContain(fingerprintSha256(old.blob));
    expect(error?.message).toContain(fingerprintSha256(now.blob));
    expect(error?.message).toContain(`${file} line 1: [127.0.0.1]:2222 ssh-ed25519`);
    // acceptNew never replaces a changed key
    expect(readFileSync(file, "utf8")).toBe(`[127.0.0.1]:2222 ${old.line}\n`);
  });

  it("records an unknown key when acceptNew is set, and trusts it from then on", async () => {
    const k = makeKey("k");
    const file = path.join(dir, "known_hosts");
    expect(await (await prepareHostKeyCheck(policy(file, true))).verify(k.blob)).toBeNull();
    expect(readFileSync(file, "utf8")).toBe(`[127.0.0.1]:2222 ${k.line}\n`);
    expect(await (await prepareHostKeyCheck(policy(file))).verify(k.blob)).toBeNull();
  });

  it("throws before connecting when the known_hosts file is group/other writable", async () => {
    const file = writeKnownHosts("");
    chmodSync(file, 0o666);
    await expect(prepareHostKeyCheck(policy(file))).rejects.toMatchObject({ name: "HostKeyError", problem: "unsafe-known-hosts" });
  });

  it("offers the recorded key type's algorithms first", async () => {
    const rsa = makeKey("rsa", "rsa");
    const file = writeKnownHosts(`[127.0.0.1]:2222 ${rsa.line}\n`);
    expect((await prepareHostKeyCheck(policy(file))).preferredAlgorithms).toEqual(["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]);
  });
});
