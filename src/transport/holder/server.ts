/**
 * The holder side: serves commands from local clients over ONE authenticated
 * SSH connection. Each client socket carries one command on its own exec
 * channel; at most `maxChannels` are open at once (below the server's
 * MaxSessions), the rest wait in order. It ends on SHUTDOWN, after
 * `idleMs` without a client, or when the SSH connection drops (a new login,
 * with a new code, is then needed).
 */
import { createServer, type Server, type Socket } from "node:net";
import { chmod, unlink } from "node:fs/promises";
import { sendSignal } from "../channel.js";
import type { ExecChannel, OpenConnection } from "../connection.js";
import { ChannelLimiter } from "../limiter.js";
import { encodeFrame, errorSchema, execSchema, Frame, FrameReader, helloSchema, parseJson, signalSchema, type HolderInfo } from "./protocol.js";

export interface HolderServerOptions {
  socketPath: string;
  connection: OpenConnection;
  /** The login target's hops (`user@host:port`); a client asking for another target is refused. */
  target: string[];
  idleMs: number;
  maxChannels: number;
  log?: (line: string) => void;
}

export interface HolderServer {
  /** Resolves with why the holder ended. */
  ended: Promise<string>;
  stop(reason: string): void;
}

export async function serveHolder(options: HolderServerOptions): Promise<HolderServer> {
  const { connection, target } = options;
  const log = options.log ?? (() => undefined);
  const limiter = new ChannelLimiter(options.maxChannels);
  const clients = new Set<Socket>();
  const startedAt = new Date().toISOString();
  let commands = 0;
  let open = 0;
  let idleTimer: NodeJS.Timeout | undefined;
  let stopped = false;
  let endedResolve: (reason: string) => void = () => undefined;
  const ended = new Promise<string>((resolve) => {
    endedResolve = resolve;
  });

  const info = (): HolderInfo => ({
    pid: process.pid,
    target,
    started_at: startedAt,
    idle_timeout_s: options.idleMs / 1000,
    max_channels: options.maxChannels,
    channels_open: open,
    commands,
  });

  const server: Server = createServer((socket) => serveClient(socket));
  const stop = (reason: string): void => {
    if (stopped) return;
    stopped = true;
    clearTimeout(idleTimer);
    log(`ending: ${reason}`);
    server.close();
    for (const socket of clients) socket.destroy();
    connection.end();
    void unlink(options.socketPath).catch(() => undefined).then(() => endedResolve(reason));
  };
  const armIdle = (): void => {
    clearTimeout(idleTimer);
    if (clients.size === 0 && !stopped) idleTimer = setTimeout(() => stop(`no command used it for ${Math.round(options.idleMs / 1000)} s (idle timeout)`), options.idleMs);
  };

  function serveClient(socket: Socket): void {
    clients.add(socket);
    clearTimeout(idleTimer);
    const reader = new FrameReader();
    let greeted = false;
    let channel: ExecChannel | null = null;
    let finished = false;
    const send = (type: number, payload?: Buffer | string | object): boolean => (socket.writable ? socket.write(encodeFrame(type, payload)) : false);
    const refuse = (message: string, dropped = false): void => {
      send(Frame.ERROR, errorSchema.parse({ message: message.slice(0, 4000), dropped }));
      socket.end();
    };
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clients.delete(socket);
      if (channel && !finished) channel.close();
      armIdle();
    });
    socket.on("data", (chunk: Buffer) => {
      let frames;
      try {
        frames = reader.push(chunk);
      } catch (error) {
        refuse(`protocol error: ${(error as Error).message}`);
        return;
      }
      for (const { type, payload } of frames) {
        try {
          handle(type, payload);
        } catch (error) {
          refuse(`protocol error: ${(error as Error).message}`);
          return;
        }
      }
    });

    function handle(type: number, payload: Buffer): void {
      if (!greeted) {
        if (type !== Frame.HELLO) throw new Error("expected HELLO first");
        const hello = parseJson(helloSchema, payload);
        if (hello.target.join("\n") !== target.join("\n")) {
          refuse(`this holder is logged in to ${target.join(" -> ")}, not ${hello.target.join(" -> ")}`);
          return;
        }
        greeted = true;
        send(Frame.WELCOME, info());
        return;
      }
      switch (type) {
        case Frame.INFO:
          send(Frame.WELCOME, info());
          return;
        case Frame.SHUTDOWN:
          send(Frame.CLOSED);
          socket.end();
          stop("disconnected on request (hpcpipe disconnect)");
          return;
        case Frame.EXEC:
          if (channel !== null) throw new Error("one command per connection");
          startCommand(parseJson(execSchema, payload).command);
          return;
        case Frame.STDIN:
          pendingInput.push(Buffer.from(payload));
          flushInput();
          return;
        case Frame.STDIN_EOF:
          pendingInput.push(null);
          flushInput();
          return;
        case Frame.SIGNAL:
          if (channel) sendSignal(channel, parseJson(signalSchema, payload).name);
          return;
        case Frame.CLOSE:
          channel?.close();
          socket.end();
          return;
        default:
          throw new Error(`unexpected frame type ${type}`);
      }
    }

    // Stdin that arrives before the channel opened waits here.
    const pendingInput: (Buffer | null)[] = [];
    function flushInput(): void {
      if (!channel) return;
      while (pendingInput.length > 0) {
        const next = pendingInput.shift();
        if (next === null || next === undefined) channel.end();
        else channel.write(next);
      }
    }

    function startCommand(command: string): void {
      commands++;
      void limiter
        .run(
          () =>
            new Promise<void>((done) => {
              if (socket.destroyed || stopped) {
                done();
                return;
              }
              connection.exec(command, (error, ch) => {
                if (error) {
                  refuse(`could not open an SSH channel: ${error.message}`, connection.isClosed());
                  done();
                  return;
                }
                open++;
                channel = ch;
                send(Frame.STARTED);
                ch.on("data", (data: Buffer) => {
                  if (!send(Frame.STDOUT, data)) {
                    ch.pause();
                    socket.once("drain", () => ch.resume());
                  }
                });
                ch.stderr.on("data", (data: Buffer) => send(Frame.STDERR, data));
                ch.on("exit", (code: unknown, signal: unknown) => {
                  send(Frame.EXIT, { code: typeof code === "number" ? code : null, signal: typeof signal === "string" ? signal : null });
                });
                ch.on("error", () => undefined);
                ch.on("close", () => {
                  finished = true;
                  open--;
                  // A channel closed because the connection dropped sends no CLOSED: the client sees a drop.
                  if (!connection.isClosed()) send(Frame.CLOSED);
                  socket.end();
                  done();
                });
                if (socket.destroyed) ch.close();
                flushInput();
              });
            }),
        )
        .catch(() => undefined);
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.socketPath, () => {
      server.off("error", reject);
      resolve();
    });
  });
  await chmod(options.socketPath, 0o600);
  void connection.closed.then(() => {
    const why = connection.lastError()?.message;
    stop(`the SSH connection dropped${why ? ` (${why})` : ""}`);
  });
  armIdle();
  return { ended, stop };
}
