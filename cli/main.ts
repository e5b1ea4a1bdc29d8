#!/usr/bin/env node
import "./node-flags.js";
import { promptPassphrase } from "./passphrase.js";
import { runCli } from "./run-cli.js";
import { markTiming } from "../src/core/timing.js";

markTiming("cli-loaded");

// An encrypted identity file without HPCPIPE_SSH_PASSPHRASE is asked for on a terminal, never echoed or stored.
const onTerminal = process.stdin.isTTY && process.stderr.isTTY;

// A reader that went away (`hpcpipe ... | head`) is no error of the command: the rest of the output is dropped.
for (const stream of [process.stdout, process.stderr]) stream.on("error", () => undefined);

// The only place that calls process.exit. Output to a pipe (`--json | jq`, a parent process) is written
// asynchronously: exiting before it is flushed would cut it at the pipe's buffer size, so wait for it.
const code = await runCli(process.argv, onTerminal ? { passphrasePrompt: promptPassphrase } : {});
await Promise.all([process.stdout, process.stderr].map((stream) => new Promise<void>((resolve) => stream.write("", () => resolve()))));
markTiming("exit");
process.exit(code);
