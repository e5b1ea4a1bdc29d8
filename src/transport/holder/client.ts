/**
 * The client side of a connection holder: an OpenConnection whose exec
 * channels are unix-socket connections to the holder, so SshTransport runs
 * over it as over its own SSH connection. The holder gone (socket refused or
 * closed mid-command) reads as a dropped connection.
 */
import { lstat } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { Duplex, Readable } from "node:stream";
import type { ExecChannel, OpenConnection } from "../connection.js";
import { encodeFrame, errorSchema, exitSchema, Frame, FrameReader, infoSchema, parseJson, PROTOCOL_VERSION, STDIN_CHUNK, type HolderInfo } from "./protocol.js";

/** A command's channel through the holder. */
class HolderChannel extends Duplex {
  readonly stderr = new Readable({ read: () => undefined });

  constructor(private readonly socket: Socket) {
    super({ allowHalfOpen: true });
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    for (let at = 0; at < chunk.length; at += STDIN_CHUNK) this.socket.write(encodeFrame(Frame.STDIN, chunk.subarray(at, at + STDIN_CHUNK)));
    done();
  }

  override _final(done: (error?: Error | null) => void): void {
    this.socket.write(encodeFrame(Frame.STDIN_EOF));
    done();
  }

  signal(name: string): boolean {
    if (!this.socket.writable) return false;
    this.socket.write(encodeFrame(Frame.SIGNAL, { name: name.replace(/^SIG/, "") }));
    return true;
  }

  close(): void {
    if (this.socket.writable) this.socket.end(encodeFrame(Frame.CLOSE));
  }
}

/** Opens a socket to the holder and greets it; resolves the socket and the holder's answer. */
function greet(socketPath: string, target: readonly string[], timeoutMs: number): Promise<{ socket: Socket; reader: FrameReader; info: HolderInfo; rest: { type: number; payload: Buffer }[] }> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    const reader = new FrameReader();
    const timer = setTimeout(() => fail(new Error(`the holder at ${socketPath} did not answer within ${timeoutMs} ms`)), timeoutMs);
    const fail = (error: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    socket.once("error", fail);
    socket.once("close", () => fail(new Error("the holder closed the socket")));
    socket.on("connect", () => socket.write(encodeFrame(Frame.HELLO, { version: PROTOCOL_VERSION, target })));
    const onData = (chunk: Buffer): void => {
      let frames;
      try {
        frames = reader.push(chunk);
      } catch (error) {
        fail(error as Error);
        return;
      }
      const first = frames.shift();
      if (!first) return;
      socket.off("data", onData);
      socket.removeAllListeners("close");
      socket.removeAllListeners("error");
      clearTimeout(timer);
      try {
        if (first.type === Frame.ERROR) throw new Error(parseJson(errorSchema, first.payload).message);
        if (first.type !== Frame.WELCOME) throw new Error(`unexpected frame ${first.type} from the holder`);
        resolve({ socket, reader, info: parseJson(infoSchema, first.payload), rest: frames });
      } catch (error) {
        socket.destroy();
        reject(error as Error);
      }
    };
    socket.on("data", onData);
  });
}

/** What a probe of a holder socket found. */
export type HolderProbe = { kind: "running"; info: HolderInfo } | { kind: "none" } | { kind: "stale" } | { kind: "refused"; reason: string };

/** Asks the socket whether a live holder for `target` is there; a socket nobody listens on is "stale". */
export async function probeHolder(socketPath: string, target: readonly string[], timeoutMs = 3_000): Promise<HolderProbe> {
  try {
    const stat = await lstat(socketPath);
    if (!stat.isSocket()) return { kind: "refused", reason: `${socketPath} is not a socket` };
  } catch {
    return { kind: "none" };
  }
  try {
    const { socket, info } = await greet(socketPath, target, timeoutMs);
    socket.destroy();
    return { kind: "running", info };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ECONNREFUSED" || code === "ENOENT") return { kind: "stale" };
    return { kind: "refused", reason: (error as Error).message };
  }
}

/** Sends one control frame (INFO or SHUTDOWN) and resolves the first answer frame. */
export async function holderControl(socketPath: string, target: readonly string[], type: number, timeoutMs = 5_000): Promise<void> {
  const { socket } = await greet(socketPath, target, timeoutMs);
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      socket.destroy();
      resolve();
    }, timeoutMs);
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve();
    });
    socket.on("data", () => undefined);
    socket.write(encodeFrame(type));
  });
}

/** An OpenConnection through a running holder. */
export class HolderConnection implements OpenConnection {
  #closed = false;
  #lastError: Error | undefined;
  #closedResolve: () => void = () => undefined;
  readonly closed = new Promise<void>((resolve) => {
    this.#closedResolve = resolve;
  });

  constructor(
    readonly socketPath: string,
    readonly target: readonly string[],
    readonly info: HolderInfo,
  ) {}

  isClosed(): boolean {
    return this.#closed;
  }

  lastError(): Error | undefined {
    return this.#lastError;
  }

  /** The holder is gone: commands fail as after a dropped connection. */
  #gone(error: Error): void {
    this.#lastError = error;
    if (this.#closed) return;
    this.#closed = true;
    this.#closedResolve();
  }

  /** Leaves the holder running: it belongs to `hpcpipe connect`, not to this command. */
  end(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closedResolve();
  }

  exec(command: string, callback: (error: Error | undefined, channel: ExecChannel) => void): void {
    let channel: HolderChannel | null = null;
    let exited = false;
    let closedCleanly = false;
    const fail = (error: Error, holderGone: boolean): void => {
      if (holderGone) this.#gone(error);
      // runChannel sees the channel argument only when there is no error.
      if (!channel) callback(error, undefined as unknown as ExecChannel);
    };
    greet(this.socketPath, this.target, 10_000).then(
      ({ socket, reader, rest }) => {
        const handle = (type: number, payload: Buffer): void => {
          switch (type) {
            case Frame.STARTED:
              channel = new HolderChannel(socket);
              callback(undefined, channel as unknown as ExecChannel);
              return;
            case Frame.STDOUT:
              if (channel && !channel.push(Buffer.from(payload))) socket.pause();
              return;
            case Frame.STDERR:
              channel?.stderr.push(Buffer.from(payload));
              return;
            case Frame.EXIT: {
              const exit = parseJson(exitSchema, payload);
              exited = true;
              channel?.emit("exit", exit.code, exit.signal ?? undefined);
              return;
            }
            case Frame.CLOSED:
              closedCleanly = true;
              return;
            case Frame.ERROR: {
              const error = parseJson(errorSchema, payload);
              fail(new Error(`connection holder: ${error.message}`), error.dropped);
              return;
            }
            default:
              socket.destroy(new Error(`unexpected frame ${type} from the holder`));
          }
        };
        socket.on("data", (chunk: Buffer) => {
          try {
            for (const frame of reader.push(chunk)) handle(frame.type, frame.payload);
          } catch (error) {
            socket.destroy(error as Error);
          }
        });
        socket.on("error", (error) => {
          this.#lastError = error;
        });
        socket.on("close", () => {
          if (!closedCleanly && !exited) this.#gone(this.#lastError ?? new Error("the connection holder went away"));
          if (!channel) {
            fail(this.#lastError ?? new Error("the connection holder closed the socket"), !closedCleanly);
            return;
          }
          // Let buffered output reach the listeners before 'close' is emitted.
          const ch = channel;
          ch.stderr.push(null);
          ch.once("end", () => setImmediate(() => ch.destroy()));
          ch.push(null);
          ch.resume();
        });
        for (const frame of rest) handle(frame.type, frame.payload);
        socket.write(encodeFrame(Frame.EXEC, { command }));
      },
      (error: Error) => fail(new Error(`the connection holder did not answer: ${error.message}`, { cause: error }), true),
    );
  }
}
