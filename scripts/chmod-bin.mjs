// Run by `npm run build`: tsc writes files without the executable bit, so the package's bin
// (`hpcpipe` -> dist/cli/main.js, which starts with #!/usr/bin/env node) could not be run directly.
// Makes every bin of ./package.json executable (mode 755).
import { chmodSync, readFileSync } from "node:fs";

const pkg = JSON.parse(readFileSync("package.json", "utf8"));
const bins = typeof pkg.bin === "string" ? [pkg.bin] : Object.values(pkg.bin ?? {});
for (const bin of bins) chmodSync(bin, 0o755);
