import type { ConnectOptions, PassphrasePrompt } from "../src/app/connect.js";

/** What the commands take from the process they run in: main.ts fills it in; tests run without it. */
export interface CliOptions {
  /** Asks for an encrypted identity file's passphrase; main.ts passes one only when stdin and stderr are a terminal. */
  passphrasePrompt?: PassphrasePrompt;
}

/** A command's connection options: its --accept-new-host-key flag and the CLI's passphrase prompt. */
export function connectOptions(flags: { acceptNewHostKey?: boolean }, cli: CliOptions): ConnectOptions {
  return { acceptNewHostKey: flags.acceptNewHostKey ?? false, ...(cli.passphrasePrompt ? { passphrasePrompt: cli.passphrasePrompt } : {}) };
}
