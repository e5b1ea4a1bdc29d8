// Added delay on the SSH path for bench/submit: `tc netem` on the loopback
// interface, filtered to one TCP port (both directions), ALWAYS removed
// afterwards; a stale one left by a killed run is removed first. Synchronous
// on purpose, so the SIGINT/exit handlers can remove it too.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";

const DEV = "lo";

function tc(args: string[]): { ok: boolean; out: string } {
  const r = spawnSync("tc", args, { encoding: "utf8", timeout: 10_000 });
  if (r.error) return { ok: false, out: r.error.message };
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`.trim() };
}

/** What the kernel's config says about netem, when /proc/config.gz is readable; null when unknown. */
export function kernelNetemConfig(): string | null {
  const path = "/proc/config.gz";
  if (!existsSync(path)) return null;
  try {
    const text = gunzipSync(readFileSync(path)).toString("utf8");
    const line = text.split("\n").find((l) => /\bCONFIG_NET_SCH_NETEM\b/.test(l));
    return line?.trim() ?? "CONFIG_NET_SCH_NETEM absent";
  } catch {
    return null;
  }
}

/** True when lo carries exactly what addNetem installs (prio 1: at the root, netem 30: under 1:3). */
function oursPresent(): boolean {
  const shown = tc(["qdisc", "show", "dev", DEV]);
  return shown.ok && /qdisc prio 1: root/.test(shown.out) && /qdisc netem 30: parent 1:3/.test(shown.out);
}

/** Removes a netem setup a killed benchmark left on lo; returns a note when it did. */
export function removeStaleNetem(): string | null {
  if (!oursPresent()) return null;
  const r = tc(["qdisc", "del", "dev", DEV, "root"]);
  return r.ok ? "removed a stale netem qdisc from lo (left by an interrupted run)" : `could not remove a stale netem qdisc from lo: ${r.out}`;
}

export type NetemResult = { ok: true; remove: () => string | null; describe: string } | { ok: false; reason: string };

/**
 * Delays every TCP packet to or from `port` on lo by `delayMs` (so a round
 * trip costs 2 x delayMs more). On any failure removes what it added and
 * says why; `remove` is idempotent and reports a failure to remove.
 */
export function addNetem(port: number, delayMs: number): NetemResult {
  if (typeof process.getuid === "function" && process.getuid() !== 0) return { ok: false, reason: "tc needs root" };
  const version = tc(["-V"]);
  if (!version.ok) return { ok: false, reason: `tc is not installed (apt-get install -y iproute2): ${version.out}` };
  const stale = removeStaleNetem();
  if (stale?.startsWith("could not")) return { ok: false, reason: stale };
  const steps: string[][] = [
    ["qdisc", "add", "dev", DEV, "root", "handle", "1:", "prio"],
    ["qdisc", "add", "dev", DEV, "parent", "1:3", "handle", "30:", "netem", "delay", `${delayMs}ms`],
    ["filter", "add", "dev", DEV, "parent", "1:0", "protocol", "ip", "u32", "match", "ip", "dport", String(port), "0xffff", "flowid", "1:3"],
    ["filter", "add", "dev", DEV, "parent", "1:0", "protocol", "ip", "u32", "match", "ip", "sport", String(port), "0xffff", "flowid", "1:3"],
  ];
  let removed = false;
  const remove = (): string | null => {
    if (removed) return null;
    removed = true;
    const r = tc(["qdisc", "del", "dev", DEV, "root"]);
    if (oursPresent()) return `FAILED to remove the netem qdisc from lo (${r.out}): run \`tc qdisc del dev lo root\``;
    return null;
  };
  for (const [i, args] of steps.entries()) {
    const r = tc(args);
    if (!r.ok) {
      if (i > 0) remove();
      const config = kernelNetemConfig();
      return { ok: false, reason: `\`tc ${args.join(" ")}\` failed: ${r.out}${config ? ` (kernel config: ${config})` : ""}` };
    }
  }
  return { ok: true, remove, describe: `tc netem delay ${delayMs}ms on lo, both directions of TCP port ${port}` };
}
