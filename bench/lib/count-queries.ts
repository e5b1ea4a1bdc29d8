// A preload for the real CLI in a child process (bench/load.ts):
//   HPCPIPE_BENCH_LOG=FILE node --import <dist/bench/lib/count-queries.js> dist/cli/main.js ...
// logs every command the CLI sends over its SSH connection (ssh2's Client#exec, the one place a
// remote command starts: hpcpipe's transport runs every command, upload and download through it)
// as one JSON line `{"t": <epoch s>, "kind": "squeue"|"sacct"|...}`, and at exit the process's
// peak memory `{"exit": true, "maxRssKb": N}` (process.resourceUsage().maxRSS). It observes only:
// the command runs unchanged. Without HPCPIPE_BENCH_LOG it does nothing.
import { appendFileSync } from "node:fs";
import { createRequire } from "node:module";

/** What a remote command is, from its text: a scheduler command by name, a transfer, or other. */
export function commandKind(command: string): string {
  // sacct through the cluster-side filter (src/slurm/sacct-runs.ts): its script comes before the word sacct.
  if (/ hpcpipe-sacct (?:--any-own-ids )?sacct /.test(command)) return "sacct";
  const head = command.slice(0, 400);
  const slurm = /(?:^|[\s'"])(squeue|sacct|scontrol|sbatch|scancel)(?=[\s'"]|$)/.exec(head)?.[1];
  if (slurm) return slurm;
  if (/\btar -x\b/.test(command)) return "put";
  if (/\btar -c\b/.test(command)) return "get";
  if (/scripts\/submit\.sh/.test(head)) return "submit.sh";
  return "other";
}

interface Ssh2Module {
  Client: { prototype: { exec: (this: unknown, command: string, ...rest: unknown[]) => unknown } };
}

const log = process.env.HPCPIPE_BENCH_LOG;
if (log) {
  // The same module instance as the CLI's `import ssh2 from "ssh2"` (ESM imports of CommonJS share require's cache).
  const ssh2 = createRequire(import.meta.url)("ssh2") as Ssh2Module;
  const original = ssh2.Client.prototype.exec;
  ssh2.Client.prototype.exec = function exec(this: unknown, command: string, ...rest: unknown[]): unknown {
    appendFileSync(log, `${JSON.stringify({ t: Date.now() / 1000, kind: commandKind(String(command)) })}\n`);
    return original.call(this, command, ...rest);
  };
  process.on("exit", () => {
    appendFileSync(log, `${JSON.stringify({ exit: true, maxRssKb: process.resourceUsage().maxRSS })}\n`);
  });
}
