// Where keyboard-interactive answers come from (pure logic plus a real /bin/sh for otp_command):
// a command, an environment code that serves one login, or a person; else a message that says how.
import { describe, expect, it } from "vitest";
import { AuthError } from "../../src/transport/errors.js";
import { answerRound, canAnswer, type KbdRound, type OtpRoute } from "../../src/transport/otp.js";

const where = { host: "login.example.org", port: 22 };
const context = { target: "me@login.example.org:22", jump: false };
const oneCode: KbdRound = { name: "", instructions: "", prompts: [{ prompt: "One-time password (OATH) for `me': ", echo: false }] };

function route(extra: Partial<OtpRoute>): OtpRoute {
  return { envName: "HPCPIPE_SSH_OTP", env: {}, prompter: null, ...extra };
}

describe("answers to a server's keyboard-interactive questions", () => {
  it("an environment code answers one login only; the next login is told it was used", async () => {
    const r = route({ env: { HPCPIPE_SSH_OTP: "271828" } });
    expect(await answerRound(oneCode, context, r, where)).toEqual({ answers: ["271828"], source: "env" });
    expect(canAnswer(r)).toBe(false);
    await expect(answerRound(oneCode, context, r, where)).rejects.toThrow(/the code in HPCPIPE_SSH_OTP was already used for an earlier login/);
  });

  it("otp_command's last output line is the code; a failing command is an AuthError naming it", async () => {
    expect(await answerRound(oneCode, context, route({ command: "echo noise; echo 314159" }), where)).toEqual({ answers: ["314159"], source: "command" });
    const error = await answerRound(oneCode, context, route({ command: "echo nope >&2; exit 3" }), where).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect((error as Error).message).toMatch(/otp_command exited with 3: nope/);
    await expect(answerRound(oneCode, context, route({ command: "true" }), where)).rejects.toThrow(/otp_command printed no code/);
  });

  it("a person is asked when there is no machine route, and the pause callback brackets the wait", async () => {
    const calls: boolean[] = [];
    const result = await answerRound(oneCode, context, route({ prompter: async () => ["161803"] }), where, (waiting) => calls.push(waiting));
    expect(result).toEqual({ answers: ["161803"], source: "person" });
    expect(calls).toEqual([true, false]);
  });

  it("several questions at once go to a person; a machine route alone refuses them, saying why", async () => {
    const two: KbdRound = { name: "", instructions: "", prompts: [{ prompt: "Password: ", echo: false }, { prompt: "Code: ", echo: false }] };
    await expect(answerRound(two, context, route({ env: { HPCPIPE_SSH_OTP: "999999" } }), where)).rejects.toThrow(/asked 2 questions at once .*answer a single one-time code prompt only/);
    expect((await answerRound(two, context, route({ prompter: async () => ["a", "b"] }), where)).answers).toEqual(["a", "b"]);
  });

  it("with no route at all, the message names the host and every way to give a code", async () => {
    const error = await answerRound(oneCode, { ...context, jump: true }, route({ hint: "run `hpcpipe connect c` on a terminal once" }), where).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    const message = (error as Error).message;
    expect(message).toContain("the jump host me@login.example.org:22 asks for a one-time code");
    expect(message).toContain("HPCPIPE_SSH_OTP=<code>");
    expect(message).toContain("otp_command");
    expect(message).toContain("hpcpipe connect c");
  });

  it("a cancelled prompt (fewer answers) fails the login", async () => {
    await expect(answerRound(oneCode, context, route({ prompter: async () => [] }), where)).rejects.toThrow(/the prompt was cancelled/);
  });
});
