import { preview } from "../core/preview.js";

/** A run record or plan that cannot be used (malformed, wrong run, too large). */
export class RunStoreError extends Error {
  override name = "RunStoreError";
}

/** No record of that run on this machine (never submitted from here, or another HPCPIPE_HOME). */
export class UnknownRunError extends RunStoreError {
  override name = "UnknownRunError";
  constructor(
    readonly runId: string,
    readonly where: string,
    why?: string,
  ) {
    super(
      why !== undefined
        ? `no run ${preview(runId)}: ${why}`
        : `no run ${preview(runId)} in ${where} (see \`hpcpipe runs\`; records live in $HPCPIPE_HOME, default ~/.hpcpipe)`,
    );
  }
}

/** The run is not in a state that allows the operation (e.g. no job ids recorded), or the cluster reported something inconsistent. */
export class RunStateError extends Error {
  override name = "RunStateError";
  constructor(
    message: string,
    readonly runId: string,
  ) {
    super(message);
  }
}
