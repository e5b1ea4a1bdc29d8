/**
 * `hpcpipe connect` and `hpcpipe disconnect` for the library: start a holder
 * process for a login target (answering its keyboard-interactive questions
 * here, where the terminal, otp_command and the environment are), ask one
 * for its state, or end it.
 */
import { spawn } from "node:child_process";
import { existsSync, openSync, closeSync } from "node:fs";
import { unlink } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { AuthError, ConnectionError, HostKeyError, TransportError } from "../errors.js";
import { JUMP_OTP_ENV, OTP_ENV, resolveTargetChain, type SshConnectOptions } from "../options.js";
import { answerRound, describeSource, refusedCodeMessage, type AnswerSource, type OtpRoute } from "../otp.js";
import { defaultPrompter } from "../terminal-prompt.js";
import { programPath } from "../../version.js";
import { holderControl, probeHolder } from "./client.js";
// The holder program itself: imported so that every build holding this file holds it too (it runs only as the program).
import "./main.js";
import { fromHolderSchema, type FromHolder, type ToHolder } from "./ipc.js";
import { Frame, type HolderInfo } from "./protocol.js";
import { checkHolderDir, dirProblem, ensureHolderDir, holderDir, holderKey, socketPathFor } from "./socket-dir.js";

export interface HolderSettings {
  /** End after this long without a command using it (ControlPersist). */
  idleMs: number;
  /** Channels open at once through the holder, for all commands together (below the server's MaxSessions, 10 by default). */
  maxChannels: number;
}

export const DEFAULT_HOLDER_SETTINGS: HolderSettings = { idleMs: 60 * 60_000, maxChannels: 8 };

export interface HolderHandle {
  socketPath: string;
  logFile: string;
  info: HolderInfo;
  /** True when a holder was already running (no new login happened). */
  already: boolean;
}

/** Where a holder's socket and log are for these options; the directory must be safe when it exists. */
export async function holderLocation(options: SshConnectOptions): Promise<{ dir: string; chain: string[]; socketPath: string; logFile: string }> {
  const chain = await resolveTargetChain(options);
  const dir = holderDir(options.env ?? process.env);
  const socketPath = socketPathFor(dir, chain);
  return { dir, chain, socketPath, logFile: path.join(dir, `${holderKey(chain)}.log`) };
}

/** The state of the holder for these options, or null when none runs. */
export async function holderStatus(options: SshConnectOptions): Promise<HolderInfo | null> {
  const { dir, chain, socketPath } = await holderLocation(options);
  const problem = await dirProblem(dir);
  if (problem === "missing") return null;
  await checkHolderDir(dir);
  const probe = await probeHolder(socketPath, chain);
  return probe.kind === "running" ? probe.info : null;
}

/** Ends the holder for these options; resolves false when none was running. */
export async function stopHolder(options: SshConnectOptions): Promise<boolean> {
  const { dir, chain, socketPath } = await holderLocation(options);
  if ((await dirProblem(dir)) === "missing") return false;
  await checkHolderDir(dir);
  const probe = await probeHolder(socketPath, chain);
  if (probe.kind === "stale") await unlink(socketPath).catch(() => undefined);
  if (probe.kind !== "running") return false;
  await holderControl(socketPath, chain, Frame.SHUTDOWN);
  // The holder removes its socket as it ends.
  for (let i = 0; i < 50 && existsSync(socketPath); i++) await new Promise((r) => setTimeout(r, 100));
  return true;
}

function holderProgram(): string {
  const here = fileURLToPath(import.meta.url);
  const program = path.extname(here) === ".ts" ? path.join(path.dirname(here), "main.ts") : programPath(import.meta.url, "transport/holder/start.js", "transport/holder/main.js");
  if (path.extname(program) !== ".js") throw new TransportError(`the connection holder runs from the built package (dist/), not from ${program}`);
  return program;
}

function routes(options: SshConnectOptions, env: NodeJS.ProcessEnv): { target: OtpRoute; jump: OtpRoute } {
  const prompter = options.prompter === undefined ? defaultPrompter() : options.prompter;
  return {
    target: { command: options.otpCommand, envName: options.otpEnv ?? OTP_ENV, env, prompter },
    jump: { command: options.jump?.otpCommand, envName: options.jump?.otpEnv ?? JUMP_OTP_ENV, env, prompter: options.jump?.prompter === undefined ? prompter : options.jump.prompter },
  };
}

function rebuild(message: Extract<FromHolder, { type: "failed" }>): Error {
  const host = message.host ?? "";
  const port = message.port ?? 0;
  switch (message.kind) {
    case "hostkey":
      return new HostKeyError(message.message, host, port, message.problem ?? "unknown", message.fingerprint ?? null);
    case "auth":
      return new AuthError(message.message, host, port);
    case "connection":
      return new ConnectionError(message.message, host, port, message.phase ?? "connect");
    default:
      return new TransportError(message.message);
  }
}

/**
 * Logs in once in a background process that keeps the connection for later
 * commands to the same target; returns when it is ready (or when one already runs).
 */
export async function startHolder(options: SshConnectOptions, settings: HolderSettings = DEFAULT_HOLDER_SETTINGS): Promise<HolderHandle> {
  if (!Number.isInteger(settings.maxChannels) || settings.maxChannels < 1) throw new RangeError(`maxChannels must be a positive integer, got ${settings.maxChannels}`);
  const env = options.env ?? process.env;
  const { dir, chain, socketPath, logFile } = await holderLocation(options);
  await ensureHolderDir(dir);
  const probe = await probeHolder(socketPath, chain);
  if (probe.kind === "running") return { socketPath, logFile, info: probe.info, already: true };
  if (probe.kind === "refused") throw new TransportError(`cannot use ${socketPath}: ${probe.reason}`);
  // A holder that was killed leaves its socket behind: nobody listens on it, so it goes.
  if (probe.kind === "stale") await unlink(socketPath).catch(() => undefined);

  const program = holderProgram();
  const route = routes(options, env);
  const childEnv = { ...env };
  for (const name of [OTP_ENV, JUMP_OTP_ENV, options.otpEnv, options.jump?.otpEnv]) if (name) delete childEnv[name];
  const logFd = openSync(logFile, "a", 0o600);
  const serializable = JSON.parse(JSON.stringify({ ...options, env: undefined, prompter: undefined })) as Record<string, unknown>;
  const child = spawn(process.execPath, [program], { detached: true, stdio: ["ignore", logFd, logFd, "ipc"], env: childEnv, cwd: "/" });
  closeSync(logFd);

  return new Promise<HolderHandle>((resolve, reject) => {
    let settled = false;
    let ownError: Error | null = null;
    // What answered each hop's last question: a machine code the server asks for again was refused.
    const answeredBy = new Map<boolean, AnswerSource>();
    const finish = (action: () => void): void => {
      if (settled) return;
      settled = true;
      action();
    };
    const toChild = (message: ToHolder): void => {
      if (child.connected) child.send(message);
    };
    child.on("message", (raw: unknown) => {
      const parsed = fromHolderSchema.safeParse(raw);
      if (!parsed.success) return;
      const message = parsed.data;
      if (message.type === "prompt") {
        const hop = message.context.jump ? route.jump : route.target;
        const hopAt = message.context.target.lastIndexOf(":");
        const where = { host: message.context.target.slice(message.context.target.indexOf("@") + 1, hopAt), port: Number(message.context.target.slice(hopAt + 1)) };
        const previous = answeredBy.get(message.context.jump);
        if ((message.context.attempt ?? 1) > 1 && previous !== undefined && previous !== "person") {
          const source = describeSource(previous, hop);
          ownError = new AuthError(refusedCodeMessage(message.context.target, source, message.context.keyAccepted ?? false, 1), where.host, where.port);
          toChild({ type: "cancel", id: message.id, message: ownError.message });
          return;
        }
        answerRound(message.round, { ...message.context, reason: message.context.reason }, { ...hop, hint: undefined }, where).then(
          ({ answers, source }) => {
            if (message.round.prompts.length > 0) answeredBy.set(message.context.jump, source);
            toChild({ type: "answer", id: message.id, answers });
          },
          (error: unknown) => {
            ownError = error instanceof Error ? error : new Error(String(error));
            toChild({ type: "cancel", id: message.id, message: ownError.message });
          },
        );
      } else if (message.type === "ready") {
        finish(() => {
          child.disconnect();
          child.unref();
          resolve({ socketPath, logFile, info: message.info, already: false });
        });
      } else {
        finish(() => reject(ownError ?? rebuild(message)));
      }
    });
    child.on("error", (error) => finish(() => reject(new TransportError(`could not start the connection holder: ${error.message}`, { cause: error }))));
    child.on("exit", (code, signal) =>
      finish(() => reject(ownError ?? new TransportError(`the connection holder exited (${String(code ?? signal)}) before it was ready; see ${logFile}`))),
    );
    toChild({ type: "start", options: serializable, socketPath, chain, idleMs: settings.idleMs, maxChannels: settings.maxChannels });
  });
}
