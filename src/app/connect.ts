import type { ClusterConfig } from "../cluster/index.js";
import { SshTransport } from "../transport/index.js";
import type { SshConnectOptions, Transport } from "../transport/index.js";
import { SlurmScheduler } from "../slurm/index.js";
import type { CommandExecutor } from "../slurm/index.js";

/** Environment variable that may hold the identity file's passphrase (never logged). */
export const PASSPHRASE_ENV = "HPCPIPE_SSH_PASSPHRASE";

export interface ConnectOptions {
  /** Record an unknown host key in the known_hosts file instead of refusing it (the CLI's --accept-new-host-key). */
  acceptNewHostKey?: boolean;
}

/** ssh2 options from a cluster config's connection block; the host may be a ~/.ssh/config alias. */
export function sshOptionsOf(config: ClusterConfig, options: ConnectOptions = {}): SshConnectOptions {
  const c = config.connection;
  if (!c) throw new Error(`cluster ${config.name} has no connection (executor ${config.executor})`);
  const out: SshConnectOptions = {
    host: c.host,
    sshConfigHost: c.host,
    port: c.port,
    knownHostsFile: c.known_hosts,
    keepaliveS: c.keepalive_s,
    connectTimeoutMs: c.connect_timeout_s * 1000,
    loginShell: c.login_shell,
    passphraseEnv: PASSPHRASE_ENV,
    acceptNewHostKey: options.acceptNewHostKey ?? false,
  };
  if (c.user !== undefined) out.user = c.user;
  if (c.identity_file !== undefined) out.identityFile = c.identity_file;
  if (c.agent) out.agent = true;
  if (c.jump) {
    out.jump = {
      host: c.jump.host,
      port: c.jump.port,
      knownHostsFile: c.known_hosts,
      acceptNewHostKey: options.acceptNewHostKey ?? false,
      passphraseEnv: PASSPHRASE_ENV,
      ...(c.jump.user !== undefined ? { user: c.jump.user } : {}),
      ...(c.jump.identity_file !== undefined ? { identityFile: c.jump.identity_file } : {}),
      ...(c.jump.agent ? { agent: true } : {}),
    };
  }
  return out;
}

/** One SSH connection for this CLI invocation; every command and transfer reuses it. */
export function connectCluster(config: ClusterConfig, options: ConnectOptions = {}): Promise<SshTransport> {
  return SshTransport.connect(sshOptionsOf(config, options));
}

/** Scheduler commands over the transport: status queries are safe to retry after a dropped connection. */
export function transportExecutor(transport: Transport, retrySafe: boolean): CommandExecutor {
  return async (argv) => {
    const r = await transport.exec(argv, { retrySafe, timeoutMs: 120_000 });
    return { code: r.code ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
}

export function schedulerOver(transport: Transport): SlurmScheduler {
  return new SlurmScheduler(transportExecutor(transport, true));
}
