#!/usr/bin/env node
import { runCli } from "./run-cli.js";

// The only place that calls process.exit.
process.exit(await runCli(process.argv));
