/**
 * The client side of one login's authentication: keys and the agent first,
 * then keyboard-interactive (one-time codes), and a connect timer that pauses
 * while a person is asked.
 */
import type { AgentAuthMethod, AuthenticationType, KeyboardInteractiveAuthMethod, PublicKeyAuthMethod } from "ssh2";
import { AuthError } from "./errors.js";
import { canAnswer, howToGiveCode, type AnswerSource, type KbdContext } from "./otp.js";
import type { ResolvedEndpoint } from "./options.js";

export type AuthAttempt = PublicKeyAuthMethod | AgentAuthMethod | KeyboardInteractiveAuthMethod;


/** Keyboard-interactive tries per login: a person may mistype; a machine code is not sent twice. */
const PERSON_KBD_TRIES = 3;

/** Pauses while a person is asked for a code: the connect timeout is for the network, not for reading a phone. */
export class PausableTimer {
  #remaining: number;
  #started = 0;
  #timer: NodeJS.Timeout | undefined;
  #paused = 0;

  constructor(ms: number, private readonly onExpire: () => void) {
    this.#remaining = ms;
    this.#run();
  }

  pause(): void {
    if (this.#paused++ > 0 || this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#remaining -= Date.now() - this.#started;
  }

  resume(): void {
    if (--this.#paused > 0) return;
    this.#paused = 0;
    this.#run();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#paused = Number.POSITIVE_INFINITY;
  }

  #run(): void {
    if (this.#paused === Number.POSITIVE_INFINITY) return;
    this.#started = Date.now();
    this.#timer = setTimeout(this.onExpire, Math.max(0, this.#remaining));
  }
}

/** State of one login's keyboard-interactive part, for messages. */
export interface KbdState {
  tries: number;
  lastSource: AnswerSource | null;
  /** Set when the login must fail with this error (no way to give a code, a cancelled prompt...). */
  failure: AuthError | null;
  keyAccepted: boolean;
}

function keyAttempts(endpoint: ResolvedEndpoint): (PublicKeyAuthMethod | AgentAuthMethod)[] {
  const attempts: (PublicKeyAuthMethod | AgentAuthMethod)[] = endpoint.keys.map((key) => {
    const attempt: PublicKeyAuthMethod = { type: "publickey", username: endpoint.user, key: key.data };
    if (key.passphrase !== undefined) attempt.passphrase = key.passphrase;
    return attempt;
  });
  if (endpoint.agent) attempts.push({ type: "agent", username: endpoint.user, agent: endpoint.agent });
  return attempts;
}

/**
 * The next method to try, given what the server still accepts: keys and the agent first,
 * then keyboard-interactive. A function (not a list) because only then does ssh2 go on
 * after a partial success (`AuthenticationMethods publickey,keyboard-interactive`).
 */
export function makeAuthHandler(
  endpoint: ResolvedEndpoint,
  state: KbdState,
  kbd: () => KeyboardInteractiveAuthMethod,
  context: KbdContext,
): (methodsLeft: AuthenticationType[] | null, partialSuccess: boolean | null) => AuthAttempt | false {
  const pending = keyAttempts(endpoint);
  return (methodsLeft, partialSuccess) => {
    if (partialSuccess) state.keyAccepted = true;
    const allows = (type: AuthenticationType): boolean => methodsLeft === null || methodsLeft.includes(type);
    while (pending.length > 0) {
      const attempt = pending.shift();
      if (attempt && allows("publickey")) return attempt;
    }
    if (methodsLeft === null || !methodsLeft.includes("keyboard-interactive") || state.failure) return false;
    const limit = state.lastSource === null || state.lastSource === "person" ? PERSON_KBD_TRIES : 1;
    if (state.tries >= limit) return false;
    if (!canAnswer(endpoint.otp)) {
      state.failure = new AuthError(howToGiveCode(endpoint.otp, context), endpoint.host, endpoint.port);
      return false;
    }
    state.tries++;
    return kbd();
  };
}
