import { loadClusterConfig } from "../cluster/index.js";
import type { ClusterConfig } from "../cluster/index.js";
import type { CompiledPlan } from "../plan/plan.js";
import { RunStore, RunStoreError } from "../runs/index.js";
import type { RunRecord } from "../runs/index.js";
import { AuthError, SshTransport } from "../transport/index.js";
import type { SshConnectOptions, Transport } from "../transport/index.js";
import { SlurmScheduler } from "../slurm/index.js";
import { reconcileRun } from "./reconcile.js";
import type { RunContext } from "./run-context.js";
import type { CommandExecutor } from "../slurm/index.js";

/** Environment variable that may hold the identity file's passphrase (never logged). */
export const PASSPHRASE_ENV = "HPCPIPE_SSH_PASSPHRASE";

/** Asks a person for an identity file's passphrase (the CLI passes one when it runs on a terminal); undefined: no answer. */
export type PassphrasePrompt = (identityFile: string) => Promise<string | undefined>;

export interface ConnectOptions {
  /** Record an unknown host key in the known_hosts file instead of refusing it (the CLI's --accept-new-host-key). */
  acceptNewHostKey?: boolean;
  /**
   * Asked once when the identity file is encrypted and HPCPIPE_SSH_PASSPHRASE is not set. Without it
   * such a key is refused with a message that names the variable.
   */
  passphrasePrompt?: PassphrasePrompt;
}

/** The connection options among a use case's options, to hand on to a TransportFactory. */
export function connectOptionsOf(options: ConnectOptions): ConnectOptions {
  return { acceptNewHostKey: options.acceptNewHostKey ?? false, ...(options.passphrasePrompt ? { passphrasePrompt: options.passphrasePrompt } : {}) };
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
  out.clusterName = config.name;
  if (c.otp_command !== undefined) out.otpCommand = c.otp_command;
  if (c.otp_env !== undefined) out.otpEnv = c.otp_env;
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
      ...(c.jump.otp_command !== undefined ? { otpCommand: c.jump.otp_command } : {}),
      ...(c.jump.otp_env !== undefined ? { otpEnv: c.jump.otp_env } : {}),
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

/** Opens the connection for a cluster config; tests pass a fake (fault injection). */
export type TransportFactory = (config: ClusterConfig, options: ConnectOptions) => Promise<Transport>;

/**
 * Connects; when the identity file is encrypted, no passphrase came from
 * HPCPIPE_SSH_PASSPHRASE and the options carry a prompt, asks once and retries.
 */
export const defaultTransportFactory: TransportFactory = async (config, options) => {
  try {
    return await connectCluster(config, options);
  } catch (error) {
    const file = config.connection?.identity_file;
    const needsPassphrase = error instanceof AuthError && /is encrypted and no passphrase was given/.test(error.message);
    const prompt = options.passphrasePrompt;
    if (!needsPassphrase || prompt === undefined || file === undefined) throw error;
    const passphrase = await prompt(file);
    if (passphrase === undefined) throw error;
    return SshTransport.connect({ ...sshOptionsOf(config, options), passphrase });
  }
};

export type { RunContext } from "./run-context.js";

export interface OpenRunOptions extends ConnectOptions {
  store?: RunStore;
  connect?: TransportFactory;
}

/** The record, plan and cluster config of a run, read locally; contacts nothing. */
export async function loadRun(runId: string, store: RunStore): Promise<{ record: RunRecord; plan: CompiledPlan; config: ClusterConfig }> {
  const record = await store.readRecord(runId);
  const plan = await store.readPlan(runId);
  const config = loadClusterConfig(record.cluster_config);
  if (config.executor !== "slurm") throw new RunStoreError(`run ${runId}: its cluster config ${record.cluster_config} is not a SLURM cluster (executor ${config.executor})`);
  return { record, plan, config };
}

/**
 * Runs `action` with the run's context over ONE connection, closed afterwards
 * whatever happens. The record and plan are read before connecting, so an
 * unknown or damaged run fails without touching the network.
 */
export async function withRun<T>(runId: string, options: OpenRunOptions, action: (run: RunContext) => Promise<T>): Promise<T> {
  const store = options.store ?? new RunStore();
  const { record, plan, config } = await loadRun(runId, store);
  const connect = options.connect ?? defaultTransportFactory;
  const transport = await connect(config, connectOptionsOf(options));
  try {
    // A run left "submitting" (its submitter was killed or cut off) is reconciled from the cluster first.
    return await action(await reconcileRun({ store, record, plan, config, transport, scheduler: schedulerOver(transport) }));
  } finally {
    await transport.close();
  }
}
