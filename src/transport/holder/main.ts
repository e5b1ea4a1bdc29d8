/**
 * The connection holder process, started by `hpcpipe connect` (startHolder)
 * with an IPC channel: it logs in (relaying keyboard-interactive questions to
 * its parent, which asks the person or runs otp_command), listens on its unix
 * socket, reports ready, and then lives on its own until disconnect, the idle
 * timeout, or a dropped SSH connection.
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { openConnection } from "../connection.js";
import { AuthError, ConnectionError, HostKeyError, TransportError } from "../errors.js";
import { resolveEndpoint, type SshConnectOptions } from "../options.js";
import type { KbdPrompter } from "../otp.js";
import { serveHolder, type HolderServer } from "./server.js";
import { fromHolderSchema, toHolderSchema, type FromHolder } from "./ipc.js";

/** No such variable is set in the holder: codes come from the parent only. */
const NO_ENV = "HPCPIPE_HOLDER_HAS_NO_CODE";

const log = (line: string): void => {
  process.stderr.write(`${new Date().toISOString()} hpcpipe holder ${process.pid}: ${line}\n`);
};

function send(message: FromHolder): void {
  process.send?.(fromHolderSchema.parse(message));
}

let nextId = 0;
const waiting = new Map<number, { resolve: (answers: string[]) => void; reject: (error: Error) => void }>();

/** Asks the parent (`hpcpipe connect`), which has the terminal, otp_command and the environment. */
const relay: KbdPrompter = (round, context) =>
  new Promise((resolve, reject) => {
    const id = ++nextId;
    waiting.set(id, { resolve, reject });
    send({ type: "prompt", id, round, context: JSON.parse(JSON.stringify(context)) as typeof context });
  });

function failure(error: unknown): FromHolder {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof HostKeyError) return { type: "failed", kind: "hostkey", message, host: error.host, port: error.port, problem: error.problem, fingerprint: error.fingerprint };
  if (error instanceof AuthError) return { type: "failed", kind: "auth", message, host: error.host, port: error.port };
  if (error instanceof ConnectionError) return { type: "failed", kind: "connection", message, host: error.host, port: error.port, phase: error.phase };
  if (error instanceof TransportError) return { type: "failed", kind: "transport", message };
  return { type: "failed", kind: "other", message };
}

function holderOptions(options: Record<string, unknown>): SshConnectOptions {
  const base = options as SshConnectOptions;
  const strip = (o: SshConnectOptions): SshConnectOptions => ({ ...o, env: process.env, prompter: relay, otpCommand: undefined, otpEnv: NO_ENV, ...(o.jump ? { jump: strip(o.jump) } : {}) });
  return { ...strip(base), useHolder: false };
}

let ready = false;
let server: HolderServer | null = null;

/** Runs this process as a holder: called only when this file is the program (see the end). */
function runHolderProcess(): void {
  process.on("disconnect", () => {
    if (!ready) {
      log("the parent went away before the login finished");
      process.exit(1);
    }
  });
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    process.on(signal, () => {
      if (server) server.stop(`ended by ${signal}`);
      else process.exit(1);
    });
}

process.on("message", (raw: unknown) => {
  const parsed = toHolderSchema.safeParse(raw);
  if (!parsed.success) {
    log(`ignoring a malformed message from the parent`);
    return;
  }
  const message = parsed.data;
  if (message.type === "answer" || message.type === "cancel") {
    const pending = waiting.get(message.id);
    waiting.delete(message.id);
    if (message.type === "answer") pending?.resolve(message.answers);
    else pending?.reject(new AuthError(message.message, "", 0));
    return;
  }
  void (async () => {
    try {
      const endpoint = await resolveEndpoint(holderOptions(message.options));
      const connection = await openConnection(endpoint);
      log(`logged in to ${message.chain.join(" -> ")}`);
      server = await serveHolder({ socketPath: message.socketPath, connection, target: message.chain, idleMs: message.idleMs, maxChannels: message.maxChannels, log });
      send({
        type: "ready",
        info: { pid: process.pid, target: message.chain, started_at: new Date().toISOString(), idle_timeout_s: message.idleMs / 1000, max_channels: message.maxChannels, channels_open: 0, commands: 0 },
      });
      ready = true;
      process.disconnect();
      const reason = await server.ended;
      log(`ended: ${reason}`);
      process.exit(0);
    } catch (error) {
      log(`login failed: ${error instanceof Error ? error.message : String(error)}`);
      send(failure(error));
      setTimeout(() => process.exit(1), 50);
    }
  })();
});
}

// Imported by start.ts (so every build that has `hpcpipe connect` has this file) but only run as the holder program.
function isTheProgram(): boolean {
  const program = process.argv[1];
  if (program === undefined || process.send === undefined) return false;
  try {
    return realpathSync(program) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
if (isTheProgram()) runHolderProcess();
