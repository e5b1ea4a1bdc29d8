// Imported first by cli/main.ts: the V8 flags are set before any other module of the CLI runs.
import { applyNodeFlags } from "../src/core/node-flags.js";

applyNodeFlags();
