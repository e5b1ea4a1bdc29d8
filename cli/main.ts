#!/usr/bin/env node
import { setPassphrasePrompt } from "../src/app/connect.js";
import { promptPassphrase } from "./passphrase.js";
import { runCli } from "./run-cli.js";

// An encrypted identity file without HPCPIPE_SSH_PASSPHRASE is asked for on a terminal, never echoed or stored.
if (process.stdin.isTTY && process.stderr.isTTY) setPassphrasePrompt(promptPassphrase);

// The only place that calls process.exit.
process.exit(await runCli(process.argv));
