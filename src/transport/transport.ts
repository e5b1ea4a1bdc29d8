/**
 * The transport as the rest of hpcpipe sees it: run a command from an argv,
 * put and get files, close. No ssh2 type appears here.
 */
import type { ShellWord } from "./quote.js";

/** How a remote command ended: `code` is null when it was killed by `signal`. */
export interface ExecResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Sent to the command's stdin, then EOF. A stream cannot be replayed, so it is never retried. */
  stdin?: string | Buffer | NodeJS.ReadableStream;
  /** Give up after this long: the remote process group is killed and the call rejects with a RemoteCommandError (failure "timeout"). */
  timeoutMs?: number;
  /** Aborting kills the remote process group and rejects with a RemoteCommandError (failure "aborted"); e.g. on SIGINT. */
  signal?: AbortSignal;
  /**
   * The command may run twice without harm (queries, reads, idempotent writes):
   * when the connection drops while it runs, it is re-run on a new connection.
   * Default false: the call fails with a ConnectionLostError instead.
   */
  retrySafe?: boolean;
  /** Cap on stdout + stderr bytes kept; more rejects with a RemoteCommandError (failure "output-limit"). */
  maxOutputBytes?: number;
  /**
   * Streams stdout to a sink instead of keeping it (the result's stdout is then empty and the
   * output cap counts stderr only). Called once per attempt, so a retry starts a fresh sink;
   * an exception thrown by `write` abandons the command.
   */
  stdoutSink?: () => { write(chunk: Buffer): void };
  /**
   * Each whole line of stderr as it arrives (stderr is still kept in the result): what a long command
   * says on the way, shown while it runs. A transport may not call it: then read the result's stderr.
   */
  onStderrLine?: (line: string) => void;
}

export interface PutFilesOptions {
  /** Mode of every uploaded file (default 0o600; the remote umask is 077). */
  fileMode?: number;
  /** Relative paths that get mode 0o700 instead. */
  executable?: ReadonlySet<string>;
  timeoutMs?: number;
  /** Uploading the same files again is harmless (default true: it overwrites with the same content). */
  retrySafe?: boolean;
}

export interface GetFilesOptions {
  /** A larger file comes back as `{ error }` (default 1 MiB). */
  maxFileBytes?: number;
  /** Once this many bytes were kept, further files come back as `{ error }` (default 256 MiB). */
  maxTotalBytes?: number;
  timeoutMs?: number;
  /** More entries than this in the archive is an error (default 1,000,000). */
  maxEntries?: number;
  /**
   * Each file as the archive streams past (`path`, its content or why it was skipped); such files are
   * not kept in the returned map, so a million files are never held at once. Without it, all are kept.
   * A transport may ignore it and return the files in the map: read both.
   */
  onFile?: (path: string, file: FetchedFile) => void;
}

/** A fetched file's content, or why it was skipped (too large, a symlink, an escaping path...). */
export type FetchedFile = Buffer | { error: string };

export interface Transport {
  /** Runs argv on the remote host, each element one quoted word; a non-zero exit is a result, not an error. */
  exec(argv: readonly ShellWord[], opts?: ExecOptions): Promise<ExecResult>;
  /**
   * Uploads files (relative path -> content) under a remote directory in ONE
   * round trip (a tar stream into `tar -x`), creating it with mode 700.
   * `remoteDir` may start with `$HOME/` or `$SCRATCH/`.
   */
  putFiles(remoteDir: string, files: ReadonlyMap<string, string | Buffer>, opts?: PutFilesOptions): Promise<void>;
  /**
   * Fetches every regular file under remoteDir matching a simple glob
   * (e.g. `states/*.json`; `*` and `?` do not cross `/`) in ONE round trip,
   * each capped in size. Keys are paths relative to remoteDir.
   */
  getFiles(remoteDir: string, pattern: string, opts?: GetFilesOptions): Promise<Map<string, FetchedFile>>;
  close(): Promise<void>;
  /** Exec channels opened so far (every exec, put and get is one; a retry is another), for benchmarks. */
  readonly roundTrips: number;
}
