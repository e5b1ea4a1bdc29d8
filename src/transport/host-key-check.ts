/**
 * Host key verification for one connection: refuses an unsafe known_hosts
 * file up front, then judges the key the server presents and explains a
 * refusal (fingerprint, where the old key is, how to accept a new one).
 */
import type { ServerHostKeyAlgorithm } from "ssh2";
import { HostKeyError } from "./errors.js";
import {
  blobKeyType,
  checkHostKey,
  fingerprintSha256,
  hostKeyName,
  knownKeyTypes,
  loadKnownHosts,
  recordHostKey,
  unsafeKnownHostsReason,
  type KnownHostEntry,
} from "./known-hosts.js";
import { shQuote } from "./quote.js";

export interface HostKeyPolicy {
  host: string;
  port: number;
  knownHostsFile: string;
  /** Record an unknown key instead of refusing it (never a changed or revoked one). */
  acceptNew: boolean;
}

export interface HostKeyCheck {
  /** Host key algorithms to offer first: those of the keys already recorded for this host. */
  preferredAlgorithms: ServerHostKeyAlgorithm[];
  /** Resolves null when the key is trusted (or was just recorded), else the error to fail with. */
  verify(key: Buffer): Promise<HostKeyError | null>;
}

const ALGORITHMS_OF_KEY_TYPE: Record<string, ServerHostKeyAlgorithm[]> = {
  "ssh-ed25519": ["ssh-ed25519"],
  "ecdsa-sha2-nistp256": ["ecdsa-sha2-nistp256"],
  "ecdsa-sha2-nistp384": ["ecdsa-sha2-nistp384"],
  "ecdsa-sha2-nistp521": ["ecdsa-sha2-nistp521"],
  "ssh-rsa": ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
  "ssh-dss": ["ssh-dss"],
};

function describeEntry(file: string, entry: KnownHostEntry): string {
  return `${entry.keyType} ${fingerprintSha256(entry.key)}  (${file} line ${entry.line}: ${entry.text.length > 120 ? `${entry.text.slice(0, 120)}...` : entry.text})`;
}

function keyscanHint(host: string, port: number, file: string): string {
  const portArgs = port === 22 ? "" : `-p ${port} `;
  return `ssh-keyscan ${portArgs}${shQuote(host)} >> ${shQuote(file)}`;
}

function unknownMessage(policy: HostKeyPolicy, type: string, fingerprint: string, fileExists: boolean, certAuthorityIgnored: boolean): string {
  const where = `${policy.host}:${policy.port}`;
  const lines = [
    `The host key of ${where} is not known: ${fileExists ? `no entry for ${hostKeyName(policy.host, policy.port)} in` : "there is no"} ${policy.knownHostsFile}.`,
    `  The server presented ${type} key ${fingerprint}`,
  ];
  if (certAuthorityIgnored) lines.push("  (an @cert-authority line matches this host, but host certificates are not supported: it was ignored)");
  lines.push(
    "Check that fingerprint with the cluster's admins (or `ssh-keygen -lf` of the host's public key), then accept it:",
    "  with --accept-new-host-key (the acceptNewHostKey option), or by hand:",
    `  ${keyscanHint(policy.host, policy.port, policy.knownHostsFile)}`,
  );
  return lines.join("\n");
}

function changedMessage(policy: HostKeyPolicy, type: string, fingerprint: string, entries: KnownHostEntry[]): string {
  return [
    `HOST KEY CHANGED for ${policy.host}:${policy.port}: refusing to connect. Someone could be intercepting the connection (man-in-the-middle), or the host was re-keyed.`,
    `  The server presented:  ${type} ${fingerprint}`,
    ...entries.map((entry) => `  known_hosts has:       ${describeEntry(policy.knownHostsFile, entry)}`),
    "If the cluster's admins confirm the new key, remove the old entry and accept the new one:",
    `  ssh-keygen -R ${shQuote(hostKeyName(policy.host, policy.port))} -f ${shQuote(policy.knownHostsFile)}`,
    "acceptNewHostKey never replaces a changed key.",
  ].join("\n");
}

/** Prepares the check; throws HostKeyError when the known_hosts file itself cannot be trusted. */
export async function prepareHostKeyCheck(policy: HostKeyPolicy): Promise<HostKeyCheck> {
  const { host, port, knownHostsFile } = policy;
  const unsafe = await unsafeKnownHostsReason(knownHostsFile);
  if (unsafe) {
    throw new HostKeyError(`Refusing to use known_hosts for ${host}:${port}: ${unsafe}`, host, port, "unsafe-known-hosts", null);
  }
  const known = await loadKnownHosts(knownHostsFile);
  const preferredAlgorithms = knownKeyTypes(known.entries, host, port).flatMap((type) => ALGORITHMS_OF_KEY_TYPE[type] ?? []);

  const verify = async (key: Buffer): Promise<HostKeyError | null> => {
    const type = blobKeyType(key) ?? "unknown-type";
    const fingerprint = fingerprintSha256(key);
    const verdict = checkHostKey(known.entries, host, port, key);
    switch (verdict.kind) {
      case "trusted":
        return null;
      case "revoked":
        return new HostKeyError(
          `The host key of ${host}:${port} (${type} ${fingerprint}) is marked @revoked in ${knownHostsFile} line ${verdict.entry.line}: refusing to connect.`,
          host, port, "revoked", fingerprint,
        );
      case "changed":
        return new HostKeyError(changedMessage(policy, type, fingerprint, verdict.entries), host, port, "changed", fingerprint);
      case "unknown":
        if (!policy.acceptNew) {
          return new HostKeyError(unknownMessage(policy, type, fingerprint, known.exists, verdict.certAuthorityIgnored), host, port, "unknown", fingerprint);
        }
        try {
          await recordHostKey(knownHostsFile, host, port, key);
        } catch (cause) {
          return new HostKeyError(`Could not record the new host key ${fingerprint} of ${host}:${port} in ${knownHostsFile}: ${(cause as Error).message}`, host, port, "unknown", fingerprint, { cause });
        }
        return null;
    }
  };
  return { preferredAlgorithms, verify };
}
