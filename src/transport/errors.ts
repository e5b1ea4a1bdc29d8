/**
 * Errors of the transport. Each keeps the underlying error as `cause`; none
 * carries a passphrase or key material in its message or fields.
 */

/** Where a connection failed: TCP connect, SSH handshake (incl. host key), authentication, or a drop after it was up. */
export type ConnectionPhase = "connect" | "handshake" | "auth" | "dropped";

/** Base of every error the transport throws. */
export class TransportError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TransportError";
  }
}

/** The SSH connection could not be made or was lost. */
export class ConnectionError extends TransportError {
  constructor(
    message: string,
    readonly host: string,
    readonly port: number,
    readonly phase: ConnectionPhase,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "ConnectionError";
  }
}

/** The server refused every key offered (identity file, agent), or a key could not be loaded. */
export class AuthError extends ConnectionError {
  constructor(message: string, host: string, port: number, options?: ErrorOptions) {
    super(message, host, port, "auth", options);
    this.name = "AuthError";
  }
}

/** Why a host key was refused. */
export type HostKeyProblem = "unknown" | "changed" | "revoked" | "unsafe-known-hosts";

/** The server's host key is not trusted; the message says what was seen and how to proceed. */
export class HostKeyError extends ConnectionError {
  constructor(
    message: string,
    host: string,
    port: number,
    readonly problem: HostKeyProblem,
    /** `SHA256:...` of the key the server presented (null when the file itself was refused). */
    readonly fingerprint: string | null,
    options?: ErrorOptions,
  ) {
    super(message, host, port, "handshake", options);
    this.name = "HostKeyError";
  }
}

/**
 * The connection dropped while an operation was in flight and the operation
 * was not retried (it was not marked `retrySafe`, or its stdin was a stream
 * that cannot be replayed): it may or may not have taken effect remotely.
 */
export class ConnectionLostError extends ConnectionError {
  constructor(
    message: string,
    host: string,
    port: number,
    readonly operation: string,
    options?: ErrorOptions,
  ) {
    super(message, host, port, "dropped", options);
    this.name = "ConnectionLostError";
  }
}

/** How a remote command failed: a bad exit (reported by callers), a timeout, too much output, or an abort signal. */
export type RemoteFailure = "exit" | "timeout" | "output-limit" | "aborted";

const STDERR_LIMIT = 4_000;
const STDOUT_LIMIT = 16_000;

/** Keeps the end of long output (where errors usually are), marking the cut. */
export function truncateOutput(text: string, limit: number): string {
  if (text.length <= limit) return text;
  return `[... ${text.length - limit} characters cut ...]${text.slice(text.length - limit)}`;
}

/** A remote command failed: non-zero exit, a signal, a timeout or too much output. */
export class RemoteCommandError extends TransportError {
  readonly stdout: string;
  readonly stderr: string;

  constructor(
    message: string,
    readonly argv: readonly string[],
    readonly code: number | null,
    readonly signal: string | null,
    stdout: string,
    stderr: string,
    readonly failure: RemoteFailure = "exit",
    options?: ErrorOptions,
  ) {
    const shownStderr = truncateOutput(stderr.trim(), STDERR_LIMIT);
    super(shownStderr ? `${message}\n--- remote stderr ---\n${shownStderr}` : message, options);
    this.name = "RemoteCommandError";
    this.stdout = truncateOutput(stdout, STDOUT_LIMIT);
    this.stderr = shownStderr;
  }
}
