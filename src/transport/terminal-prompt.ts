/**
 * Shows a server's keyboard-interactive questions on the terminal (stderr,
 * so stdout stays clean) and reads the answers, hiding those the server
 * marks secret. Each question names the host that asks.
 */
import { createInterface } from "node:readline";
import { Writable } from "node:stream";
import type { KbdContext, KbdPrompter, KbdRound } from "./otp.js";

/** Control characters a server could use to move the cursor or rewrite the screen are shown escaped. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

function ask(question: string, echo: boolean): Promise<string | undefined> {
  let muted = !echo;
  const output = new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (!muted) process.stderr.write(chunk);
      done();
    },
  });
  // The terminal is in raw mode (no echo by the terminal itself) before the question appears.
  const rl = createInterface({ input: process.stdin, output, terminal: true });
  process.stderr.write(question);
  return new Promise((resolve) => {
    rl.question("", (answer) => {
      muted = false;
      if (!echo) process.stderr.write("\n");
      rl.close();
      resolve(answer);
    });
    rl.on("SIGINT", () => {
      rl.close();
      process.stderr.write("\n");
      resolve(undefined);
    });
  });
}

/** Asks on this process's terminal; resolves fewer answers than questions when cancelled (Ctrl-C). */
export const terminalPrompter: KbdPrompter = async (round: KbdRound, context: KbdContext) => {
  const who = `${context.jump ? "jump host " : ""}${context.target}`;
  const header = [`Login to ${who}${context.reason ? ` (${context.reason}: a new code is needed)` : ""}`];
  if (round.name.trim()) header.push(printable(round.name.trim()));
  if (round.instructions.trim()) header.push(printable(round.instructions.trim()));
  process.stderr.write(`${header.join("\n")}\n`);
  const answers: string[] = [];
  for (const prompt of round.prompts) {
    const text = printable(prompt.prompt.trimEnd());
    const answer = await ask(`[${context.target}] ${text}${/[:?]$/.test(text) ? " " : ": "}`, prompt.echo);
    if (answer === undefined) return answers;
    answers.push(answer);
  }
  return answers;
};

/** The terminal prompter when stdin and stderr are a terminal, else null (no person to ask). */
export function defaultPrompter(): KbdPrompter | null {
  return process.stdin.isTTY && process.stderr.isTTY ? terminalPrompter : null;
}
