/**
 * Opens one authenticated ssh2 connection to a resolved endpoint, through its
 * jump host when it has one (`forwardOut`, like ProxyJump), with host key
 * verification, and turns ssh2's errors into ConnectionError / AuthError /
 * HostKeyError by the phase they happened in.
 */
import type { Duplex, Readable } from "node:stream";
// ssh2 is CommonJS: Node's ESM loader only gives it as a default export.
import ssh2, { type AuthHandlerMiddleware, type Client, type ConnectConfig, type KeyboardInteractiveAuthMethod } from "ssh2";
import { AuthError, ConnectionError, type HostKeyError } from "./errors.js";
import { prepareHostKeyCheck } from "./host-key-check.js";
import { makeAuthHandler, PausableTimer, type KbdState } from "./auth.js";
import { answerRound, describeSource, refusedCodeMessage, type KbdContext } from "./otp.js";
import type { ResolvedEndpoint } from "./options.js";
import { markTiming } from "../core/timing.js";

/** What a command's channel offers: stdout as the stream, stderr, a signal, 'exit' (code, signal) and 'close' events. */
export type ExecChannel = Duplex & { stderr: Readable; signal(name: string): unknown; close(): unknown };

/** An open connection (or a connection holder standing in for one); `closed` resolves once it is gone. */
export interface OpenConnection {
  /** Opens an exec channel for a command. */
  exec(command: string, callback: (error: Error | undefined, channel: ExecChannel) => void): void;
  closed: Promise<void>;
  /** The last error ssh2 reported after the connection was up (e.g. ECONNRESET), for messages. */
  lastError(): Error | undefined;
  /** True from the moment the socket ended or closed (before channels are told). */
  isClosed(): boolean;
  /** Ends the connection and its jump connection. */
  end(): void;
}

/** Why this login happens now (a reconnect needs a new code, and the prompt says so). */
export interface OpenOptions {
  reason?: string;
}

type Phase = "connect" | "handshake" | "auth";

interface Ssh2Error extends Error {
  level?: string;
}

function describeMethods(endpoint: ResolvedEndpoint): string {
  const methods = endpoint.keys.map((k) => `key ${k.file}`);
  if (endpoint.agent) methods.push(`agent at ${endpoint.agent}`);
  return methods.join(", ");
}

function mapError(endpoint: ResolvedEndpoint, phase: Phase, error: Ssh2Error, agentErrors: string[], kbd: KbdState): ConnectionError {
  const { host, port, user } = endpoint;
  const where = `${user}@${host}:${port}`;
  if (kbd.failure) return kbd.failure;
  if (kbd.tries > 0 && (error.level === "client-authentication" || phase === "auth")) {
    const source = kbd.lastSource ? describeSource(kbd.lastSource, endpoint.otp) : "the one-time code";
    return new AuthError(
      refusedCodeMessage(where, source, kbd.keyAccepted, kbd.tries),
      host,
      port,
      { cause: error },
    );
  }
  if (error.level === "client-authentication" || phase === "auth") {
    const agentNote = agentErrors.length ? ` (agent: ${agentErrors.join("; ")})` : "";
    return new AuthError(`authentication to ${where} failed: the server accepted none of: ${describeMethods(endpoint)}${agentNote}`, host, port, { cause: error });
  }
  if (error.level === "client-timeout") {
    return new ConnectionError(`timed out after ${endpoint.connectTimeoutMs} ms ${phase === "connect" ? "connecting to" : "during the SSH handshake with"} ${host}:${port}`, host, port, phase, { cause: error });
  }
  if (phase === "connect") return new ConnectionError(`cannot connect to ${host}:${port}: ${error.message}`, host, port, "connect", { cause: error });
  return new ConnectionError(`SSH handshake with ${host}:${port} failed: ${error.message}`, host, port, "handshake", { cause: error });
}

/** Opens the connection (jump first when there is one). */
export async function openConnection(endpoint: ResolvedEndpoint, options: OpenOptions = {}, isJump = false): Promise<SshConnection> {
  const jump = endpoint.jump ? await openConnection(endpoint.jump, options, true) : undefined;
  try {
    const sock = jump ? await forward(jump, endpoint) : undefined;
    const connection = await handshake(endpoint, sock, { target: `${endpoint.user}@${endpoint.host}:${endpoint.port}`, jump: isJump, reason: options.reason });
    if (!jump) return connection;
    // The target rides on the jump: when either goes, both go.
    void jump.closed.then(() => connection.client.end());
    void connection.closed.then(() => jump.end());
    return {
      client: connection.client,
      exec: connection.exec,
      closed: Promise.race([connection.closed, jump.closed]),
      lastError: () => connection.lastError() ?? jump.lastError(),
      isClosed: () => connection.isClosed() || jump.isClosed(),
      end: () => connection.end(),
    };
  } catch (error) {
    jump?.end();
    throw error;
  }
}

/** A direct ssh2 connection: an OpenConnection with its client (for forwarding). */
export interface SshConnection extends OpenConnection {
  client: Client;
}

function forward(jump: SshConnection, target: ResolvedEndpoint): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    jump.client.forwardOut("127.0.0.1", 0, target.host, target.port, (error, stream) => {
      if (error) {
        reject(new ConnectionError(`jump host could not open a connection to ${target.host}:${target.port}: ${error.message}`, target.host, target.port, "connect", { cause: error }));
      } else {
        stream.on("error", () => undefined); // surfaced by the client's own error/close
        resolve(stream);
      }
    });
  });
}

async function handshake(endpoint: ResolvedEndpoint, sock: Duplex | undefined, context: KbdContext): Promise<SshConnection> {
  const hostKeyCheck = await prepareHostKeyCheck({
    host: endpoint.host,
    port: endpoint.port,
    knownHostsFile: endpoint.knownHostsFile,
    acceptNew: endpoint.acceptNewHostKey,
  });
  const client = new ssh2.Client();
  let phase: Phase = sock ? "handshake" : "connect";
  let hostKeyError: HostKeyError | null = null;
  let lastError: Error | undefined;
  let isClosed = false;
  const agentErrors: string[] = [];
  const kbd: KbdState = { tries: 0, lastSource: null, failure: null, keyAccepted: false };
  let timer: PausableTimer | null = null;
  let failLogin: (error: ConnectionError) => void = () => undefined;
  const where = { host: endpoint.host, port: endpoint.port };
  const kbdMethod = (): KeyboardInteractiveAuthMethod => ({
    type: "keyboard-interactive",
    username: endpoint.user,
    prompt: (name, instructions, _lang, prompts, finish) => {
      const round = { name, instructions, prompts: prompts.map((p) => ({ prompt: p.prompt, echo: p.echo ?? false })) };
      answerRound(round, { ...context, attempt: kbd.tries, keyAccepted: kbd.keyAccepted }, endpoint.otp, where, (waiting) => (waiting ? timer?.pause() : timer?.resume())).then(
        ({ answers, source }) => {
          if (round.prompts.length > 0) kbd.lastSource = source;
          finish(answers);
        },
        (error: unknown) => {
          kbd.failure = error instanceof AuthError ? error : new AuthError(`${context.target}: ${(error as Error).message}`, endpoint.host, endpoint.port, { cause: error });
          failLogin(kbd.failure);
        },
      );
    },
  });
  let closedResolve: () => void = () => undefined;
  const closed = new Promise<void>((resolve) => {
    closedResolve = resolve;
  });

  const config: ConnectConfig = {
    host: endpoint.host,
    port: endpoint.port,
    username: endpoint.user,
    // Our own timer (below) bounds connect + handshake + auth, paused while a person types a code.
    readyTimeout: 0,
    keepaliveInterval: endpoint.keepaliveMs,
    keepaliveCountMax: 3,
    hostVerifier: (key: Buffer, verify: (valid: boolean) => void) => {
      hostKeyCheck.verify(key).then(
        (error) => {
          hostKeyError = error;
          verify(error === null);
        },
        () => verify(false),
      );
    },
    // ssh2 takes a returned method (or false: stop) and passes null before the first try; its types say otherwise.
    authHandler: makeAuthHandler(endpoint, kbd, kbdMethod, context) as unknown as AuthHandlerMiddleware,
  };
  if (sock) config.sock = sock;
  const preferred = hostKeyCheck.preferredAlgorithms;
  if (preferred.length > 0) config.algorithms = { serverHostKey: { remove: preferred, prepend: preferred, append: [] } };

  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const fail = (error: ConnectionError): void => {
      if (settled) return;
      settled = true;
      timer?.stop();
      client.end();
      client.destroy();
      reject(error);
    };
    failLogin = fail;
    timer = new PausableTimer(endpoint.connectTimeoutMs, () => {
      const what = phase === "connect" ? "connecting to" : phase === "handshake" ? "during the SSH handshake with" : "while authenticating to";
      fail(new ConnectionError(`timed out after ${endpoint.connectTimeoutMs} ms ${what} ${endpoint.host}:${endpoint.port}`, endpoint.host, endpoint.port, phase === "auth" ? "auth" : phase));
    });
    client.on("connect", () => {
      phase = "handshake";
      // Many small request/response messages: Nagle + delayed ACK would add ~40 ms to each.
      client.setNoDelay(true);
    });
    client.on("handshake", () => {
      phase = "auth";
    });
    client.on("ready", () => {
      markTiming("connected");
      settled = true;
      timer?.stop();
      resolve();
    });
    client.on("error", (error: Ssh2Error) => {
      lastError = error;
      if (error.level === "agent") {
        agentErrors.push(error.message);
        return; // ssh2 goes on with the next method
      }
      if (hostKeyError) return fail(hostKeyError);
      fail(mapError(endpoint, phase, error, agentErrors, kbd));
    });
    client.on("end", () => {
      isClosed = true;
    });
    client.on("close", () => {
      isClosed = true;
      closedResolve();
      if (hostKeyError) return fail(hostKeyError);
      if (kbd.failure) return fail(kbd.failure);
      if (kbd.tries > 0) return fail(mapError(endpoint, phase, new Error("the server closed the connection during keyboard-interactive authentication (its LoginGraceTime may have run out)"), agentErrors, kbd));
      fail(new ConnectionError(`connection to ${endpoint.host}:${endpoint.port} closed during the ${phase} phase`, endpoint.host, endpoint.port, phase));
    });
    try {
      markTiming("connect-start");
      client.connect(config);
    } catch (cause) {
      fail(new ConnectionError(`cannot start an SSH connection to ${endpoint.host}:${endpoint.port}: ${(cause as Error).message}`, endpoint.host, endpoint.port, "connect", { cause }));
    }
  });
  return {
    client,
    exec: (command, callback) => client.exec(command, callback),
    closed,
    lastError: () => lastError,
    isClosed: () => isClosed,
    end: () => client.end(),
  };
}
