/**
 * Opens one authenticated ssh2 connection to a resolved endpoint, through its
 * jump host when it has one (`forwardOut`, like ProxyJump), with host key
 * verification, and turns ssh2's errors into ConnectionError / AuthError /
 * HostKeyError by the phase they happened in.
 */
import type { Duplex } from "node:stream";
// ssh2 is CommonJS: Node's ESM loader only gives it as a default export.
import ssh2, { type AgentAuthMethod, type Client, type ConnectConfig, type PublicKeyAuthMethod } from "ssh2";
import { AuthError, ConnectionError, type HostKeyError } from "./errors.js";
import { prepareHostKeyCheck } from "./host-key-check.js";
import type { ResolvedEndpoint } from "./options.js";

/** An open connection; `closed` resolves once it (or the jump under it) is gone. */
export interface OpenConnection {
  client: Client;
  closed: Promise<void>;
  /** The last error ssh2 reported after the connection was up (e.g. ECONNRESET), for messages. */
  lastError(): Error | undefined;
  /** True from the moment the socket ended or closed (before channels are told). */
  isClosed(): boolean;
  /** Ends the connection and its jump connection. */
  end(): void;
}

type Phase = "connect" | "handshake" | "auth";

interface Ssh2Error extends Error {
  level?: string;
}

type AuthAttempt = PublicKeyAuthMethod | AgentAuthMethod;

function authAttempts(endpoint: ResolvedEndpoint): AuthAttempt[] {
  const attempts: AuthAttempt[] = endpoint.keys.map((key) => {
    const attempt: AuthAttempt = { type: "publickey", username: endpoint.user, key: key.data };
    if (key.passphrase !== undefined) attempt.passphrase = key.passphrase;
    return attempt;
  });
  if (endpoint.agent) attempts.push({ type: "agent", username: endpoint.user, agent: endpoint.agent });
  return attempts;
}

function describeMethods(endpoint: ResolvedEndpoint): string {
  const methods = endpoint.keys.map((k) => `key ${k.file}`);
  if (endpoint.agent) methods.push(`agent at ${endpoint.agent}`);
  return methods.join(", ");
}

function mapError(endpoint: ResolvedEndpoint, phase: Phase, error: Ssh2Error, agentErrors: string[]): ConnectionError {
  const { host, port, user } = endpoint;
  const where = `${user}@${host}:${port}`;
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
export async function openConnection(endpoint: ResolvedEndpoint): Promise<OpenConnection> {
  const jump = endpoint.jump ? await openConnection(endpoint.jump) : undefined;
  try {
    const sock = jump ? await forward(jump, endpoint) : undefined;
    const connection = await handshake(endpoint, sock);
    if (!jump) return connection;
    // The target rides on the jump: when either goes, both go.
    void jump.closed.then(() => connection.client.end());
    void connection.closed.then(() => jump.end());
    return {
      client: connection.client,
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

function forward(jump: OpenConnection, target: ResolvedEndpoint): Promise<Duplex> {
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

async function handshake(endpoint: ResolvedEndpoint, sock: Duplex | undefined): Promise<OpenConnection> {
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
  let closedResolve: () => void = () => undefined;
  const closed = new Promise<void>((resolve) => {
    closedResolve = resolve;
  });

  const config: ConnectConfig = {
    host: endpoint.host,
    port: endpoint.port,
    username: endpoint.user,
    readyTimeout: endpoint.connectTimeoutMs,
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
    authHandler: authAttempts(endpoint),
  };
  if (sock) config.sock = sock;
  const preferred = hostKeyCheck.preferredAlgorithms;
  if (preferred.length > 0) config.algorithms = { serverHostKey: { remove: preferred, prepend: preferred, append: [] } };

  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const fail = (error: ConnectionError): void => {
      if (settled) return;
      settled = true;
      client.end();
      reject(error);
    };
    client.on("connect", () => {
      phase = "handshake";
      // Many small request/response messages: Nagle + delayed ACK would add ~40 ms to each.
      client.setNoDelay(true);
    });
    client.on("handshake", () => {
      phase = "auth";
    });
    client.on("ready", () => {
      settled = true;
      resolve();
    });
    client.on("error", (error: Ssh2Error) => {
      lastError = error;
      if (error.level === "agent") {
        agentErrors.push(error.message);
        return; // ssh2 goes on with the next method
      }
      if (hostKeyError) return fail(hostKeyError);
      fail(mapError(endpoint, phase, error, agentErrors));
    });
    client.on("end", () => {
      isClosed = true;
    });
    client.on("close", () => {
      isClosed = true;
      closedResolve();
      if (hostKeyError) return fail(hostKeyError);
      fail(new ConnectionError(`connection to ${endpoint.host}:${endpoint.port} closed during the ${phase} phase`, endpoint.host, endpoint.port, phase));
    });
    try {
      client.connect(config);
    } catch (cause) {
      fail(new ConnectionError(`cannot start an SSH connection to ${endpoint.host}:${endpoint.port}: ${(cause as Error).message}`, endpoint.host, endpoint.port, "connect", { cause }));
    }
  });
  return { client, closed, lastError: () => lastError, isClosed: () => isClosed, end: () => client.end() };
}
