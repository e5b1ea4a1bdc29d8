import type { Command } from "commander";
import { sshOptionsOf } from "../../src/app/connect.js";
import { CliError, CliExit } from "../../src/cli-exit.js";
import { loadClusterConfig } from "../../src/cluster/index.js";
import type { ClusterConfig } from "../../src/cluster/index.js";
import { AuthError, DEFAULT_HOLDER_SETTINGS, holderLocation, holderStatus, startHolder, stopHolder } from "../../src/transport/index.js";
import type { HolderHandle, HolderSettings, SshConnectOptions } from "../../src/transport/index.js";
import { promptPassphrase } from "../passphrase.js";
import type { HolderInfo } from "../../src/transport/index.js";
import { guarded } from "../errors.js";
import { ACCEPT_HOST_KEY_FLAGS, ACCEPT_HOST_KEY_HELP } from "./status.js";
import { preview } from "../../src/core/preview.js";

interface ConnectFlags {
  persist: string;
  maxChannels: string;
  status?: boolean;
  acceptNewHostKey?: boolean;
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** `90s`, `30m`, `8h`, `1d` or plain seconds, up to 30 days. */
export function parseDuration(text: string, option: string): number {
  const m = /^(\d{1,7})([smhd]?)$/.exec(text.trim());
  const seconds = m ? Number(m[1]) * (UNITS[m[2] || "s"] ?? 1) : NaN;
  if (!Number.isFinite(seconds) || seconds < 1 || seconds > 30 * 86400) {
    throw new CliError(`${option} expects a duration like 90s, 30m, 8h or 1d (at most 30d), got ${preview(text, 40)}`, CliExit.USAGE);
  }
  return seconds;
}

function slurmCluster(name: string): ClusterConfig {
  const config = loadClusterConfig(name);
  if (config.executor !== "slurm") throw new CliError(`cluster ${config.name} runs locally (executor local): there is no login to keep`, CliExit.USAGE);
  return config;
}

function human(seconds: number): string {
  if (seconds % 86400 === 0) return `${seconds / 86400}d`;
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

function describe(info: HolderInfo): string {
  return `holder pid ${info.pid}, logged in since ${info.started_at}, ends after ${human(info.idle_timeout_s)} unused; ${info.commands} command(s) served, at most ${info.max_channels} channels at once`;
}

/** Like every other command: an encrypted identity file's passphrase is asked once on a terminal when the environment has none. */
async function startWithPassphrase(options: SshConnectOptions, settings: HolderSettings, config: ClusterConfig): Promise<HolderHandle> {
  try {
    return await startHolder(options, settings);
  } catch (error) {
    const file = config.connection?.identity_file;
    const needsPassphrase = error instanceof AuthError && /is encrypted and no passphrase was given/.test(error.message);
    if (!needsPassphrase || file === undefined || !process.stdin.isTTY) throw error;
    const passphrase = await promptPassphrase(file);
    if (passphrase === undefined) throw error;
    return startHolder({ ...options, passphrase }, settings);
  }
}

export function registerConnectCommands(program: Command): void {
  program
    .command("connect")
    .description(
      "Log in to a cluster once and keep the login in a background process, so that submit, status, logs, collect, cancel " +
        "and every other command for that cluster use it without logging in again (like OpenSSH's ControlPersist). " +
        "For clusters that ask for a one-time code at every login: the code is asked here, once.",
    )
    .argument("<cluster>", "cluster config name (cluster-configs/<name>.yaml) or path")
    .option("--persist <duration>", "end the login after this long without any command using it (90s, 30m, 8h, 1d)", "1h")
    .option("--max-channels <n>", "commands' channels open at once through the login, all commands together; keep it below the server's MaxSessions (10 by default)", String(DEFAULT_HOLDER_SETTINGS.maxChannels))
    .option("--status", "only show whether a login is kept for this cluster (no login)")
    .option(ACCEPT_HOST_KEY_FLAGS, ACCEPT_HOST_KEY_HELP)
    .addHelpText(
      "after",
      [
        "",
        "One-time codes (keyboard-interactive login, e.g. a server with AuthenticationMethods publickey,keyboard-interactive):",
        "  - on a terminal, the server's questions are shown and the code is typed (not echoed); each prompt names the host,",
        "    and a jump host that asks for its own code is asked for separately;",
        "  - without a terminal (CI): HPCPIPE_SSH_OTP=<code> (HPCPIPE_SSH_OTP_JUMP for the jump host), or otp_command in the",
        "    cluster config's connection: a command that prints a code. A code serves one login.",
        "  Waiting for a code does not count against connect_timeout_s.",
        "",
        "The login lives in a background process with a socket in a directory only you can use ($XDG_RUNTIME_DIR/hpcpipe,",
        "else /tmp/hpcpipe-<uid>; HPCPIPE_SOCKET_DIR sets another). Commands without it log in by themselves. When the",
        "connection drops, the holder ends: the next login needs a new code, and says so.",
        "",
        "Examples:",
        "  $ hpcpipe connect mycluster --persist 8h     # asks for the code once",
        "  $ hpcpipe submit pipeline.yaml --cluster mycluster && hpcpipe status <run> --watch   # no more codes",
        "  $ HPCPIPE_SSH_OTP=$(oathtool --totp @$HOME/.otp-secret) hpcpipe connect mycluster   # CI",
        "  $ hpcpipe connect mycluster --status",
        "  $ hpcpipe disconnect mycluster",
        "",
      ].join("\n"),
    )
    .action(async (cluster: string, flags: ConnectFlags) => {
      const idleS = parseDuration(flags.persist, "--persist");
      const maxChannels = Number(flags.maxChannels);
      if (!Number.isInteger(maxChannels) || maxChannels < 1 || maxChannels > 64) throw new CliError("--max-channels expects a whole number from 1 to 64", CliExit.USAGE);
      await guarded(async () => {
        const config = slurmCluster(cluster);
        const options = sshOptionsOf(config, { acceptNewHostKey: flags.acceptNewHostKey ?? false });
        if (flags.status) {
          const info = await holderStatus(options);
          const where = await holderLocation(options);
          process.stdout.write(info ? `connected to ${where.chain.join(" -> ")}: ${describe(info)}\n` : `not connected to ${where.chain.join(" -> ")} (no holder at ${where.socketPath})\n`);
          return;
        }
        const handle = await startWithPassphrase(options, { idleMs: idleS * 1000, maxChannels }, config);
        const target = handle.info.target.join(" -> ");
        if (handle.already) {
          process.stdout.write(`already connected to ${target} (${describe(handle.info)}); no new login was needed\n`);
          return;
        }
        process.stdout.write(
          `connected to ${target}: commands for cluster ${config.name} now use this login (${describe(handle.info)}).\n` +
            `  end it: hpcpipe disconnect ${config.name}    socket: ${handle.socketPath}    log: ${handle.logFile}\n`,
        );
      });
    });

  program
    .command("disconnect")
    .description("End the login that `hpcpipe connect` keeps for a cluster. Commands then log in by themselves again (a new one-time code where the cluster asks for one).")
    .argument("<cluster>", "cluster config name or path")
    .addHelpText("after", "\nExamples:\n  $ hpcpipe disconnect mycluster\n")
    .action(async (cluster: string) => {
      await guarded(async () => {
        const config = slurmCluster(cluster);
        const stopped = await stopHolder(sshOptionsOf(config));
        process.stdout.write(stopped ? `disconnected from cluster ${config.name}\n` : `no login was kept for cluster ${config.name}\n`);
      });
    });
}
