#!/usr/bin/env bash
# `npm test`: the type check, the linter, the main test run, then the isolated files
# (*.isolated.test.ts: they restart or reconfigure the shared SLURM test cluster, so they run
# one file at a time, after everything else). Every part runs whatever happened before it, so
# a failure in the main run never hides the isolated files; the counts of both runs are printed
# at the end, and the exit status is 1 when any part failed.
set -uo pipefail
cd "$(dirname "$0")/.."

results="$(mktemp -d "${TMPDIR:-/tmp}/hpcpipe-test-results.XXXXXX")"
trap 'rm -rf "$results"' EXIT

status_typecheck=0
status_lint=0
status_main=0
status_isolated=0

npm run --silent typecheck || status_typecheck=$?
npm run --silent lint || status_lint=$?
npx vitest run --exclude "**/*.isolated.test.ts" --reporter=default --reporter=json --outputFile.json="$results/main.json" "$@" || status_main=$?
npx vitest run --no-file-parallelism --reporter=default --reporter=json --outputFile.json="$results/isolated.json" isolated || status_isolated=$?

# "N passed, N failed, N skipped" from vitest's JSON report (or why there is none).
counts() {
  node -e '
    const fs = require("node:fs");
    try {
      const r = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
      const skipped = r.numPendingTests + (r.numTodoTests ?? 0);
      process.stdout.write(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped (${r.numTotalTests} tests in ${r.testResults.length} files)`);
    } catch {
      process.stdout.write("no report: the run did not get as far as its tests");
    }' "$1"
}
verdict() { [ "$1" -eq 0 ] && echo ok || echo "FAILED (exit $1)"; }

echo
echo "================================ npm test summary ================================"
echo "type check:      $(verdict "$status_typecheck")"
echo "lint:            $(verdict "$status_lint")"
echo "main run:        $(verdict "$status_main"): $(counts "$results/main.json")"
echo "isolated files:  $(verdict "$status_isolated"): $(counts "$results/isolated.json")"
# A run that failed without a failing test (its setup failed, a file did not load) counts as one failure.
node -e '
  const fs = require("node:fs");
  let passed = 0, failed = 0, skipped = 0;
  const args = process.argv.slice(1);
  for (let i = 0; i < args.length; i += 2) {
    const status = Number(args[i + 1]);
    let f = 0;
    try {
      const r = JSON.parse(fs.readFileSync(args[i], "utf8"));
      passed += r.numPassedTests; f = r.numFailedTests; skipped += r.numPendingTests + (r.numTodoTests ?? 0);
    } catch { /* no report */ }
    failed += status !== 0 && f === 0 ? 1 : f;
  }
  process.stdout.write(`total: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
' "$results/main.json" "$status_main" "$results/isolated.json" "$status_isolated"

[ "$status_typecheck" -eq 0 ] && [ "$status_lint" -eq 0 ] && [ "$status_main" -eq 0 ] && [ "$status_isolated" -eq 0 ]
