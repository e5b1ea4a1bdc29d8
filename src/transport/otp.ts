/**
 * Answers for keyboard-interactive logins (one-time codes): from a command
 * named in the cluster config, from an environment variable (one code, one
 * login), or from a person at the terminal. With none of them, the login
 * fails at once with a message saying how to give a code.
 */
import { execFile } from "node:child_process";
import { AuthError } from "./errors.js";
import { preview } from "../core/preview.js";

/** One question of the server's; `echo` false means the answer is secret (not shown while typed). */
export interface KbdPrompt {
  prompt: string;
  echo: boolean;
}

/** One round of questions as the server sent it. */
export interface KbdRound {
  name: string;
  instructions: string;
  prompts: KbdPrompt[];
}

/** Who asks: `user@host:port`, whether it is a jump host, and why a login happens now. */
export interface KbdContext {
  target: string;
  jump: boolean;
  /** Set when this login replaces a connection that ended (a new code is needed). */
  reason?: string | undefined;
  /** Which keyboard-interactive try of this login this is (1 first); set by the connection. */
  attempt?: number | undefined;
  /** The server accepted the key before asking (partial success). */
  keyAccepted?: boolean | undefined;
}

/** Asks a person the server's questions (e.g. on the terminal); resolves the answers in order. */
export type KbdPrompter = (round: KbdRound, context: KbdContext) => Promise<string[]>;

/** How codes are given for one endpoint. */
export interface OtpRoute {
  /** A local command (run with /bin/sh -c) that prints a one-time code. */
  command?: string | undefined;
  /** An environment variable holding a one-time code. */
  envName?: string | undefined;
  env: NodeJS.ProcessEnv;
  /** Asks a person; null when there is no terminal. */
  prompter: KbdPrompter | null;
  /** Added to the "how to give a code" message, e.g. "run `hpcpipe connect CLUSTER` on a terminal first". */
  hint?: string | undefined;
}

/** Where a round's answers came from, for messages ("the code from HPCPIPE_SSH_OTP"). */
export type AnswerSource = "command" | "env" | "person";

const OTP_COMMAND_TIMEOUT_MS = 60_000;
const CODE_PATTERN = /^[\x21-\x7e]{1,64}$/;

/** A code from the environment is spent once it was sent: pam_oath refuses it a second time. */
const spentEnvCodes = new Set<string>();

/** The command-and-environment part of the route is usable without a person. */
export function hasMachineRoute(route: OtpRoute): boolean {
  return route.command !== undefined || (route.envName !== undefined && !!route.env[route.envName]);
}

/** Whether this route can answer at all (a person, a command or an unspent env code). */
export function canAnswer(route: OtpRoute): boolean {
  return route.command !== undefined || route.prompter !== null || envCode(route) !== undefined;
}

function envCode(route: OtpRoute): string | undefined {
  if (route.envName === undefined) return undefined;
  const value = route.env[route.envName]?.trim();
  if (!value || spentEnvCodes.has(`${route.envName}\0${value}`)) return undefined;
  return value;
}

/** The "how to give a code" text for a login that cannot get one. */
export function howToGiveCode(route: OtpRoute, context: KbdContext): string {
  const who = `${context.jump ? "the jump host " : ""}${context.target}`;
  const spent = route.envName !== undefined && !!route.env[route.envName] && envCode(route) === undefined;
  const lines = [
    `${who} asks for a one-time code (keyboard-interactive login)${context.reason ? ` because ${context.reason}` : ""}, and there is no way to give one here:` +
      (spent ? ` the code in ${route.envName} was already used for an earlier login (a code serves one login),` : "") +
      " no terminal to ask on, no otp_command, no code in the environment.",
    "Give one of:",
    "  - run on a terminal, where the prompt is shown;",
    `  - the environment variable ${route.envName ?? "HPCPIPE_SSH_OTP"}=<code> (one code serves one login);`,
    "  - otp_command in the cluster config's connection (a command that prints a code, e.g. `oathtool --totp @secret-file`).",
  ];
  if (route.hint) lines.push(`  - ${route.hint}`);
  return lines.join("\n");
}

function runOtpCommand(command: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("/bin/sh", ["-c", command], { env, timeout: OTP_COMMAND_TIMEOUT_MS, maxBuffer: 64 * 1024, encoding: "utf8" }, (error, stdout, stderr) => {
      if (error) {
        const why = error.killed ? `timed out after ${OTP_COMMAND_TIMEOUT_MS / 1000} s` : `exited with ${String(error.code ?? error.signal)}`;
        const detail = stderr.trim().split("\n").slice(-3).join(" / ").slice(0, 300);
        reject(new Error(`otp_command ${why}${detail ? `: ${detail}` : ""}`, { cause: error }));
        return;
      }
      const lines = stdout.split("\n").map((l) => l.trim()).filter((l) => l !== "");
      const code = lines[lines.length - 1];
      if (code === undefined || !CODE_PATTERN.test(code)) {
        reject(new Error("otp_command printed no code (expected one line of printable characters without spaces as its last line)"));
        return;
      }
      resolve(code);
    });
  });
}

/** True when a round is one secret question: the only shape a command or env code can answer. */
function isSingleCodeRound(round: KbdRound): boolean {
  return round.prompts.length === 1;
}

/**
 * Answers one round. `onPerson` is called before and after a person is asked
 * (so the connect timer can pause). Throws AuthError when the round cannot be answered.
 */
export async function answerRound(
  round: KbdRound,
  context: KbdContext,
  route: OtpRoute,
  where: { host: string; port: number },
  onPerson: (waiting: boolean) => void = () => undefined,
): Promise<{ answers: string[]; source: AnswerSource }> {
  if (round.prompts.length === 0) return { answers: [], source: "person" };
  const machine = route.command !== undefined || envCode(route) !== undefined;
  if (machine && isSingleCodeRound(round)) {
    if (route.command !== undefined) {
      try {
        return { answers: [await runOtpCommand(route.command, route.env)], source: "command" };
      } catch (cause) {
        throw new AuthError(`${context.target}: ${(cause as Error).message}`, where.host, where.port, { cause });
      }
    }
    const code = envCode(route);
    if (code !== undefined && route.envName !== undefined) {
      spentEnvCodes.add(`${route.envName}\0${code}`);
      return { answers: [code], source: "env" };
    }
  }
  if (route.prompter) {
    onPerson(true);
    try {
      const answers = await route.prompter(round, context);
      if (answers.length !== round.prompts.length) throw new AuthError(`${context.target}: the prompt was cancelled`, where.host, where.port);
      return { answers, source: "person" };
    } finally {
      onPerson(false);
    }
  }
  if (machine) {
    const asked = round.prompts.map((p) => preview(p.prompt.trim(), 80)).join(", ");
    throw new AuthError(
      `${context.target} asked ${round.prompts.length} questions at once (${asked}); otp_command and ${route.envName ?? "HPCPIPE_SSH_OTP"} answer a single one-time code prompt only: log in on a terminal`,
      where.host,
      where.port,
    );
  }
  throw new AuthError(howToGiveCode(route, context), where.host, where.port);
}

/** The message for a login whose code the server refused. */
export function refusedCodeMessage(target: string, source: string, keyAccepted: boolean, tries: number): string {
  return (
    `authentication to ${target} failed: ${keyAccepted ? "the key was accepted, then " : ""}the server refused ${source} (keyboard-interactive${tries > 1 ? `, ${tries} tries` : ""}). ` +
    "Check the code (a time-based code is valid for about 30 s, and a code that was already used is refused), then try again with a new one."
  );
}

/** Words for where a refused code came from. */
export function describeSource(source: AnswerSource, route: OtpRoute): string {
  if (source === "command") return "the code printed by otp_command";
  if (source === "env") return `the code from ${route.envName ?? "the environment"}`;
  return "the answer typed at the prompt";
}
