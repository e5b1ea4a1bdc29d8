/**
 * One SSH exec channel: the command runs, stdin is fed, stdout/stderr are
 * collected (or handed to a sink) within a byte cap, a timeout kills the
 * remote process group, and a channel that ends without an exit status
 * because the connection died is reported as ChannelDropped.
 */
import { StringDecoder } from "node:string_decoder";
import type { ExecChannel, OpenConnection } from "./connection.js";
import { RemoteCommandError, TransportError, type RemoteFailure } from "./errors.js";
import { describeArgv } from "./quote.js";
import type { ExecResult } from "./transport.js";

/** The connection went away under a command; `started` says whether its channel had opened (if not, nothing ran). */
export class ChannelDropped extends Error {
  constructor(readonly started: boolean, options?: ErrorOptions) {
    super("connection dropped", options);
  }
}

export interface StdoutSink {
  write(chunk: Buffer): void;
}

export interface RunSpec {
  command: string;
  /** The argv (or a description) for error messages. */
  label: readonly string[];
  stdin?: string | Buffer | NodeJS.ReadableStream;
  timeoutMs?: number;
  signal?: AbortSignal;
  retrySafe: boolean;
  maxOutputBytes: number;
  /** Takes stdout instead of collecting it; made fresh for every try. */
  stdoutSink?: () => StdoutSink;
  /** Each whole line of stderr as it arrives. */
  onStderrLine?: (line: string) => void;
}

/** Runs one command on one channel: feeds stdin, collects (or sinks) output, honours the timeout and output cap. */
export function runChannel(connection: OpenConnection, spec: RunSpec): Promise<ExecResult> {
  return new Promise<ExecResult>((resolve, reject) => {
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let outputBytes = 0;
    let exit: { code: number | null; signal: string | null } | null = null;
    let channel: ExecChannel | undefined;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const sink = spec.stdoutSink?.();
    const text = (chunks: Buffer[]): string => Buffer.concat(chunks).toString("utf8");
    const decoder = new StringDecoder("utf8");
    let partial = "";
    /** Calls onStderrLine for each whole line; a caller's exception is its own (never the command's). */
    const emitLines = (chunk: Buffer | null): void => {
      const lines = (partial + (chunk ? decoder.write(chunk) : decoder.end())).split("\n");
      partial = chunk ? (lines.pop() as string) : "";
      for (const line of lines) {
        if (line === "" && chunk === null) continue;
        try {
          spec.onStderrLine?.(line);
        } catch {
          // Showing a line must not fail the command.
        }
      }
    };

    const onAbort = (): void => {
      if (channel) sendSignal(channel, "KILL");
      abort(commandError(`${describeArgv(spec.label)} was aborted`, "aborted"));
    };
    const settle = (action: () => void): void => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      spec.signal?.removeEventListener("abort", onAbort);
      action();
    };
    const abort = (error: Error): void =>
      settle(() => {
        channel?.close();
        reject(error);
      });
    const commandError = (message: string, failure: RemoteFailure): RemoteCommandError =>
      new RemoteCommandError(message, spec.label, exit?.code ?? null, exit?.signal ?? null, text(stdout), text(stderr), failure);
    const count = (chunk: Buffer): boolean => {
      outputBytes += chunk.length;
      if (outputBytes <= spec.maxOutputBytes) return true;
      abort(commandError(`output of ${describeArgv(spec.label)} exceeded ${spec.maxOutputBytes} bytes; the command was abandoned`, "output-limit"));
      return false;
    };

    if (spec.signal?.aborted) {
      reject(new RemoteCommandError(`${describeArgv(spec.label)} was aborted before it started`, spec.label, null, null, "", "", "aborted"));
      return;
    }
    spec.signal?.addEventListener("abort", onAbort, { once: true });
    if (spec.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        if (channel) sendSignal(channel, "KILL");
        abort(commandError(`${describeArgv(spec.label)} timed out after ${spec.timeoutMs} ms`, "timeout"));
      }, spec.timeoutMs);
    }

    const onChannel = (error: Error | undefined, ch: ExecChannel): void => {
      if (error) {
        settle(() => reject(connection.isClosed() ? new ChannelDropped(false, { cause: error }) : new TransportError(`could not open an SSH channel for ${describeArgv(spec.label)}: ${error.message}`, { cause: error })));
        return;
      }
      channel = ch;
      if (settled) {
        ch.close();
        return;
      }
      ch.on("data", (chunk: Buffer) => {
        if (settled) return;
        if (!sink) {
          if (count(chunk)) stdout.push(chunk);
          return;
        }
        try {
          sink.write(chunk);
        } catch (cause) {
          abort(new TransportError(`bad output from ${describeArgv(spec.label)}: ${(cause as Error).message}`, { cause }));
        }
      });
      ch.stderr.on("data", (chunk: Buffer) => {
        if (!settled && count(chunk)) {
          stderr.push(chunk);
          if (spec.onStderrLine) emitLines(chunk);
        }
      });
      ch.on("exit", (code: number | null, signal?: string) => {
        exit = { code: typeof code === "number" ? code : null, signal: signal ? (signal.startsWith("SIG") ? signal : `SIG${signal}`) : null };
      });
      ch.on("error", () => undefined); // 'close' follows and decides
      ch.on("close", () => {
        if (spec.onStderrLine && !settled) emitLines(null);
        const done = exit;
        if (done) {
          settle(() => resolve({ ...done, stdout: text(stdout), stderr: text(stderr) }));
          return;
        }
        // No exit status: the connection died under us, or the server gave up on the channel.
        // ssh2 flags the socket closed before it closes channels; the short wait covers any other order.
        setTimeout(() => {
          if (connection.isClosed()) settle(() => reject(new ChannelDropped(true, { cause: connection.lastError() })));
          else abort(commandError(`${describeArgv(spec.label)}: the server closed the channel without an exit status`, "exit"));
        }, 50);
      });
      feedStdin(ch, spec.stdin, (cause) => abort(new TransportError(`reading stdin for ${describeArgv(spec.label)} failed: ${cause.message}`, { cause })));
    };

    try {
      connection.exec(spec.command, onChannel);
    } catch (error) {
      settle(() => reject(connection.isClosed() ? new ChannelDropped(false, { cause: error }) : error));
    }
  });
}

/**
 * Asks sshd to kill the command's process group (OpenSSH >= 7.9 honours "signal" requests).
 * ssh2's ExecChannel.signal() sends nothing once stdin has ended (it checks `writable`),
 * although the server accepts signals until the channel closes; so send it through the
 * channel's protocol object when that is there, and fall back to the public method.
 */
export function sendSignal(channel: ExecChannel, name: string): void {
  const internals = channel as unknown as {
    outgoing?: { id?: number; state?: string };
    _client?: { _protocol?: { signal?: (id: number, signal: string) => void } };
  };
  try {
    const protocol = internals._client?._protocol;
    const id = internals.outgoing?.id;
    if ((internals.outgoing?.state === "open" || internals.outgoing?.state === "eof") && id !== undefined && typeof protocol?.signal === "function") protocol.signal(id, name);
    else channel.signal(name);
  } catch {
    // the channel is already closing: nothing left to signal
  }
}

function feedStdin(channel: ExecChannel, stdin: RunSpec["stdin"], onError: (error: Error) => void): void {
  if (stdin === undefined) {
    channel.end();
  } else if (typeof stdin === "string" || Buffer.isBuffer(stdin)) {
    channel.end(stdin);
  } else {
    stdin.on("error", onError);
    stdin.pipe(channel);
  }
}
