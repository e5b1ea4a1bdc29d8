// Pipelines of the load figures, shared by bench/load.ts and test/e2e/concurrent-submit.test.ts.

/** The pipeline name of `ownerSpec`. */
export const OWNER_PIPELINE = "load_concurrent";

/**
 * Two jobs that prove which run they ran in: `whoami` publishes owner="<run id>:<tag>" (the run id
 * from its own run directory's name, the tag from `--set tag=...`); `check`, its own job (fuse: false),
 * needs owner and tag and publishes checked=<owner> only when they agree.
 */
export function ownerSpec(): string {
  return [
    `name: ${OWNER_PIPELINE}`,
    'version: "1.0"',
    "context: { tag: none }",
    "defaults:",
    "  cpus: 1",
    '  time: "2:00"',
    "steps:",
    "  - step: whoami",
    "    requires: [tag]",
    "    provides: [owner]",
    '    run: echo "owner=${HPCPIPE_RUN_DIR##*/}:$tag" >> "$HPCPIPE_PUBLISH"',
    "  - step: check",
    "    fuse: false",
    "    requires: [owner, tag]",
    "    provides: [checked]",
    '    run: test "$owner" = "${HPCPIPE_RUN_DIR##*/}:$tag" && echo "checked=$owner" >> "$HPCPIPE_PUBLISH"',
    "",
  ].join("\n");
}

/** What `whoami` and `check` publish in run `runId` submitted with tag `tag`. */
export const ownerValue = (runId: string, tag: string): string => `${runId}:${tag}`;
