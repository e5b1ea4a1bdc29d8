/**
 * The SSH transport: ONE ssh2 connection reused for every command and
 * transfer, at most `maxChannels` channels at once, reopened with backoff
 * when it drops. An operation interrupted by a drop is re-run only when it
 * was marked `retrySafe` (or never started); otherwise it fails with a
 * ConnectionLostError saying why it was not retried.
 */
import { randomBytes } from "node:crypto";
import { AfterMarker } from "./after-marker.js";
import { backoffDelay, DEFAULT_BACKOFF, sleep, type BackoffPolicy } from "./backoff.js";
import { ChannelDropped, runChannel, type RunSpec } from "./channel.js";
import { openConnection, type OpenConnection } from "./connection.js";
import { AuthError, ConnectionError, ConnectionLostError, HostKeyError, RemoteCommandError, TransportError } from "./errors.js";
import { ChannelLimiter } from "./limiter.js";
import { HolderConnection, probeHolder } from "./holder/client.js";
import { dirProblem, holderDir, socketPathFor } from "./holder/socket-dir.js";
import { resolveEndpoint, resolveTargetChain, type ResolvedEndpoint, type SshConnectOptions } from "./options.js";
import { argvToCommand, describeArgv, RemoteGlob, RemotePath, sh, type ShellWord } from "./quote.js";
import { TarReader } from "./tar-reader.js";
import type { TarReadLimits } from "./tar-reader.js";
import { writeTar } from "./tar.js";
import type { ExecOptions, ExecResult, FetchedFile, GetFilesOptions, PutFilesOptions, Transport } from "./transport.js";

const DEFAULT_MAX_OUTPUT = 64 * 1024 * 1024;
const DEFAULT_MAX_FILE = 1024 * 1024;
const DEFAULT_MAX_TOTAL = 256 * 1024 * 1024;
/** Runs of one operation at most (the first plus retries after drops). */
const MAX_OPERATION_TRIES = 3;

function isStream(value: unknown): value is NodeJS.ReadableStream {
  return typeof value === "object" && value !== null && !Buffer.isBuffer(value) && typeof (value as NodeJS.ReadableStream).pipe === "function";
}

/** Why an operation hit by a drop must not run again, or null when it may. */
function notRetriedBecause(drop: ChannelDropped, spec: RunSpec, attempt: number): string | null {
  // A channel that never opened ran nothing: always safe to try again (a bounded number of times).
  if (!drop.started) return attempt >= MAX_OPERATION_TRIES ? `no channel could be opened in ${attempt} tries` : null;
  if (!spec.retrySafe) return "the call was not marked retrySafe";
  if (isStream(spec.stdin)) return "its stdin was a stream, which cannot be replayed";
  if (attempt >= MAX_OPERATION_TRIES) return `it was already tried ${attempt} times`;
  return null;
}

function labelOf(argv: readonly ShellWord[]): string[] {
  return argv.map((word) => (typeof word === "string" ? word : word.toString()));
}

/** `user@host:port` → host and port, for errors. */
function whereOf(hop: string): { host: string; port: number } {
  const at = hop.lastIndexOf(":");
  return { host: hop.slice(hop.indexOf("@") + 1, at), port: Number(hop.slice(at + 1)) };
}

/**
 * Finds a running connection holder (`hpcpipe connect`) for this login target, or null.
 * A holder directory that is not safe is never used (the reason goes to `warnings`).
 */
async function findHolder(options: SshConnectOptions, chain: string[], warnings: string[]): Promise<HolderConnection | null> {
  if (options.useHolder === false) return null;
  const dir = holderDir(options.env ?? process.env);
  const problem = await dirProblem(dir);
  if (problem === "missing") return null;
  if (problem) {
    warnings.push(`connection holder not used: its directory ${dir} is unsafe (${problem})`);
    return null;
  }
  let socketPath: string;
  try {
    socketPath = socketPathFor(dir, chain);
  } catch (error) {
    warnings.push(`connection holder not used: ${(error as Error).message}`);
    return null;
  }
  const probe = await probeHolder(socketPath, chain);
  if (probe.kind === "running") return new HolderConnection(socketPath, chain, probe.info);
  if (probe.kind === "refused") warnings.push(`connection holder not used: ${probe.reason}`);
  return null;
}

export class SshTransport implements Transport {
  readonly #options: SshConnectOptions;
  readonly #chain: string[];
  readonly #where: { host: string; port: number };
  #endpoint: ResolvedEndpoint | null = null;
  readonly #holderWarnings: string[] = [];
  readonly #limiter: ChannelLimiter;
  readonly #backoff: BackoffPolicy;
  readonly #loginShell: boolean;
  #connection: OpenConnection | null = null;
  #connecting: Promise<OpenConnection> | null = null;
  #closed = false;
  #roundTrips = 0;
  #reconnects = 0;

  private constructor(options: SshConnectOptions, chain: string[]) {
    this.#options = options;
    this.#chain = chain;
    this.#where = whereOf(chain[chain.length - 1] ?? "");
    this.#limiter = new ChannelLimiter(options.maxChannels ?? 8);
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.reconnect };
    this.#loginShell = options.loginShell ?? false;
  }

  /**
   * Uses the connection holder for this login target when one runs (`hpcpipe connect`);
   * else resolves the options (ssh config alias, keys, agent), verifies the host key and
   * authenticates (keys, then keyboard-interactive when the server asks for a code).
   */
  static async connect(options: SshConnectOptions): Promise<SshTransport> {
    const transport = new SshTransport(options, await resolveTargetChain(options));
    transport.#connection = (await findHolder(options, transport.#chain, transport.#holderWarnings)) ?? (await openConnection(await transport.#resolved()));
    return transport;
  }

  async #resolved(): Promise<ResolvedEndpoint> {
    this.#endpoint ??= await resolveEndpoint(this.#options);
    return this.#endpoint;
  }

  /** True while commands run through a connection holder rather than this process's own SSH connection. */
  get usesHolder(): boolean {
    return this.#connection instanceof HolderConnection;
  }

  get roundTrips(): number {
    return this.#roundTrips;
  }

  /** Times the connection was reopened after a drop. */
  get reconnects(): number {
    return this.#reconnects;
  }

  /** The most channels that were open at once. */
  get peakChannels(): number {
    return this.#limiter.peak;
  }

  /** `user@host:port` of the target. */
  get target(): string {
    return this.#chain[this.#chain.length - 1] ?? "";
  }

  /** ~/.ssh/config lines that were not applied (Match, Include), and why a connection holder was not used. */
  get configWarnings(): readonly string[] {
    return [...(this.#endpoint?.warnings ?? []), ...this.#holderWarnings];
  }

  exec(argv: readonly ShellWord[], opts: ExecOptions = {}): Promise<ExecResult> {
    const spec: RunSpec = {
      command: argvToCommand(argv, { loginShell: this.#loginShell }),
      label: labelOf(argv),
      retrySafe: opts.retrySafe ?? false,
      maxOutputBytes: opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT,
    };
    if (opts.stdin !== undefined) spec.stdin = opts.stdin;
    if (opts.timeoutMs !== undefined) spec.timeoutMs = opts.timeoutMs;
    if (opts.signal !== undefined) spec.signal = opts.signal;
    if (opts.stdoutSink !== undefined) spec.stdoutSink = opts.stdoutSink;
    if (opts.onStderrLine !== undefined) spec.onStderrLine = opts.onStderrLine;
    return this.#run(spec);
  }

  async putFiles(remoteDir: string, files: ReadonlyMap<string, string | Buffer>, opts: PutFilesOptions = {}): Promise<void> {
    const fileMode = opts.fileMode ?? 0o600;
    const archive = writeTar(files, { modeOf: (p) => (opts.executable?.has(p) ? 0o700 : fileMode) });
    const dir = RemotePath.of(remoteDir);
    // umask 077: directories tar or mkdir -p create are private too.
    const command = sh`umask 077 && mkdir -p -- ${dir} && chmod 700 -- ${dir} && tar -x --no-same-owner -f - -C ${dir}`;
    const label = ["putFiles", remoteDir, `(${files.size} files)`];
    const spec: RunSpec = { command, label, stdin: archive, retrySafe: opts.retrySafe ?? true, maxOutputBytes: DEFAULT_MAX_OUTPUT };
    if (opts.timeoutMs !== undefined) spec.timeoutMs = opts.timeoutMs;
    const result = await this.#run(spec);
    if (result.code !== 0) {
      throw new RemoteCommandError(`putFiles into ${remoteDir} failed (exit ${String(result.code ?? result.signal)})`, label, result.code, result.signal, result.stdout, result.stderr);
    }
  }

  async getFiles(remoteDir: string, pattern: string, opts: GetFilesOptions = {}): Promise<Map<string, FetchedFile>> {
    const dir = RemotePath.of(remoteDir);
    const glob = RemoteGlob.of(pattern);
    const marker = `hpcpipe-tar-${randomBytes(8).toString("hex")}`;
    // Everything the glob matches except directories goes into the archive (links too, so the reader can report them);
    // names start with ./ so tar never reads one as an option.
    const command =
      sh`cd -- ${dir} && printf '%s\n' ${marker} && for f in ${glob}; do ` +
      `if [ -L "$f" ] || { [ -e "$f" ] && [ ! -d "$f" ]; }; then printf '%s\\0' "./$f"; fi; done | tar -c -f - --no-recursion --null -T -`;
    const limits: TarReadLimits = { maxFileBytes: opts.maxFileBytes ?? DEFAULT_MAX_FILE, maxTotalBytes: opts.maxTotalBytes ?? DEFAULT_MAX_TOTAL };
    if (opts.maxEntries !== undefined) limits.maxEntries = opts.maxEntries;
    if (opts.onFile !== undefined) limits.onFile = opts.onFile;
    let reader = new TarReader(limits);
    let framing = new AfterMarker(marker, (chunk) => reader.write(chunk));
    const label = ["getFiles", remoteDir, pattern];
    const spec: RunSpec = {
      command,
      label,
      retrySafe: true,
      maxOutputBytes: DEFAULT_MAX_OUTPUT,
      stdoutSink: () => {
        reader = new TarReader(limits);
        framing = new AfterMarker(marker, (chunk) => reader.write(chunk));
        return framing;
      },
    };
    if (opts.timeoutMs !== undefined) spec.timeoutMs = opts.timeoutMs;
    const result = await this.#run(spec);
    if (result.code !== 0 || !framing.found) {
      throw new RemoteCommandError(`getFiles ${pattern} under ${remoteDir} failed (exit ${String(result.code ?? result.signal)})`, label, result.code, result.signal, "", result.stderr);
    }
    try {
      return reader.end();
    } catch (cause) {
      throw new TransportError(`getFiles ${pattern} under ${remoteDir}: the archive from the remote tar is malformed: ${(cause as Error).message}`, { cause });
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const connection = this.#connection;
    this.#connection = null;
    if (connection) {
      connection.end();
      await Promise.race([connection.closed, sleep(2_000)]);
    }
  }

  async #run(spec: RunSpec): Promise<ExecResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#limiter.run(async () => {
          const connection = await this.#client();
          this.#roundTrips++;
          return runChannel(connection, spec);
        });
      } catch (error) {
        if (!(error instanceof ChannelDropped)) throw error;
        if (this.#closed) throw new TransportError(`the transport was closed while running: ${describeArgv(spec.label)}`, { cause: error });
        const why = notRetriedBecause(error, spec, attempt);
        if (why === null) continue;
        const { host, port } = this.#where;
        const reason = error.cause instanceof Error ? ` (${error.cause.message})` : "";
        throw new ConnectionLostError(
          `the SSH connection to ${this.target} dropped${reason} while running: ${describeArgv(spec.label)}\n` +
            `It was not retried because ${why}: the command may or may not have taken effect on the remote side; check before running it again.`,
          host,
          port,
          describeArgv(spec.label),
          { cause: error.cause ?? error },
        );
      }
    }
  }

  /** The live connection, reopening it (with backoff) when it dropped. */
  async #client(): Promise<OpenConnection> {
    if (this.#closed) throw new TransportError("the transport is closed");
    const current = this.#connection;
    if (current && !current.isClosed()) return current;
    this.#connection = null;
    const reason = current instanceof HolderConnection ? "the connection holder (hpcpipe connect) ended" : "the connection dropped";
    this.#connecting ??= this.#reopen(reason).finally(() => {
      this.#connecting = null;
    });
    return this.#connecting;
  }

  async #reopen(reason: string): Promise<OpenConnection> {
    let last: unknown;
    for (let attempt = 0; attempt < this.#backoff.tries; attempt++) {
      await sleep(backoffDelay(this.#backoff, attempt));
      if (this.#closed) throw new TransportError("the transport is closed");
      try {
        // A holder started (or still there) serves the reconnect; else log in again (a new code when one is asked).
        const connection = (await findHolder(this.#options, this.#chain, this.#holderWarnings)) ?? (await openConnection(await this.#resolved(), { reason }));
        if (this.#closed) {
          connection.end();
          throw new TransportError("the transport is closed");
        }
        this.#reconnects++;
        this.#connection = connection;
        return connection;
      } catch (error) {
        // A refused key or host key will not get better by trying again.
        if (error instanceof AuthError || error instanceof HostKeyError || (error instanceof TransportError && !(error instanceof ConnectionError))) throw error;
        last = error;
      }
    }
    const { host, port } = this.#where;
    throw new ConnectionError(
      `the SSH connection to ${this.target} was lost and could not be reopened after ${this.#backoff.tries} tries: ${(last as Error | undefined)?.message ?? "unknown error"}`,
      host,
      port,
      "connect",
      { cause: last },
    );
  }
}
