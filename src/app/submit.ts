/**
 * Submitting a pipeline to a SLURM cluster over SSH, in a constant number of
 * round trips: the run record and plan are written locally first; then ONE
 * upload of the whole bundle (scripts, context, items, the spec's bundle
 * files under work/) and ONE run of the generated submit script, whose
 * `hpcpipe-job <plan job> <slurm id>` lines are recorded.
 */
import { markTiming, reached } from "../core/timing.js";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { ConfigError } from "../cluster/index.js";
import { executableBundleFiles } from "../plan/bundle-files.js";
import { parseSubmitOutput } from "../slurm/index.js";
import type { ClusterConfig } from "../cluster/index.js";
import type { CompiledPlan } from "../plan/plan.js";
import { RunStore } from "../runs/index.js";
import type { RunRecord } from "../runs/index.js";
import { ConnectionLostError, remotePath, RemoteCommandError } from "../transport/index.js";
import type { ExecResult, ShellWord, Transport } from "../transport/index.js";
import { cancelRun } from "./cancel.js";
import type { CancelOutcome } from "./cancel.js";
import { collectRun, queryJobStatuses, readRemoteStates } from "./collect.js";
import type { CollectOutcome } from "./collect.js";
import { connectOptionsOf, defaultTransportFactory, loadRun, schedulerOver } from "./connect.js";
import type { ConnectOptions, RunContext, TransportFactory } from "./connect.js";
import type { RunExecutor } from "./executor.js";
import { BundleError, cacheKeyFiles, listBundleFiles, withInputs } from "./bundle-path.js";
import { ensureBlobs, formatBytes, hashBundle, layoutRun, layoutWithRepair, storeDir, StoreError } from "../store/index.js";
import { applyStepCache } from "./step-cache.js";
import type { StagedFile, StageOptions } from "../store/index.js";
import { preparePlan, sourceLabel } from "./prepare.js";
import { clearSubmitter, markSubmitter, reconcileSubmission } from "./reconcile.js";
import type { PrepareOptions } from "./prepare.js";
import { checkNothingActive, checkSameInputs, doneSteps, ResumeError } from "./resume.js";
import { watchRun } from "./status.js";
import type { WatchOptions, WatchOutcome } from "./status.js";

/** The submit script failed (an sbatch error it could not retry away); it cancelled what it had submitted. */
export class SubmitFailedError extends Error {
  override name = "SubmitFailedError";
  constructor(
    message: string,
    readonly runId: string,
    readonly record: RunRecord,
  ) {
    super(message);
  }
}

/** The submit script printed job lines hpcpipe cannot trust (unknown plan job, not a job id, a job twice). */
export class SubmitOutputError extends Error {
  override name = "SubmitOutputError";
  constructor(
    message: string,
    readonly problems: readonly string[],
  ) {
    super(message);
  }
}

export { parseSubmitOutput } from "../slurm/index.js";

/** Most bytes of the spec's bundle files sent in one submission (they travel in one tar stream held in memory). */
export const MAX_BUNDLE_BYTES = 2 * 1024 * 1024 * 1024;

/**
 * The spec's `bundle` paths (files or directories, relative to the spec's
 * directory) read from disk, keyed `work/<path>`. Refuses paths outside the
 * spec's directory, symlinked directories and special files.
 */
export { BundleError } from "./bundle-path.js";

export async function readLocalBundle(specDir: string, paths: readonly string[]): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  let total = 0;
  for (const file of await listBundleFiles(specDir, paths)) {
    total += file.size;
    if (total > MAX_BUNDLE_BYTES) throw new BundleError(`the bundle is over ${MAX_BUNDLE_BYTES} bytes; put large inputs on the cluster and name them in the context instead`);
    out.set(file.rel, await readFile(file.abs));
  }
  return out;
}

/** Every file uploaded for a run: the plan's (scripts, lib.sh, context, items) and the spec's bundle under work/. */
export function submissionFiles(plan: CompiledPlan, bundle: ReadonlyMap<string, Buffer>): { files: Map<string, string | Buffer>; executable: Set<string> } {
  const files = new Map<string, string | Buffer>();
  const executable = executableBundleFiles(plan);
  for (const [path, text] of Object.entries(plan.files)) files.set(path, text);
  for (const job of plan.jobs) if (!files.has(job.scriptPath)) files.set(job.scriptPath, job.script);
  for (const [path, data] of bundle) {
    if (files.has(path)) throw new BundleError(`bundle file ${path} collides with a file of the plan`);
    files.set(path, data);
  }
  return { files, executable };
}

export interface SubmitOptions extends Omit<PrepareOptions, "cluster" | "localRunsDir">, ConnectOptions {
  cluster: string;
  store?: RunStore;
  connect?: TransportFactory;
  /** Bound on the submit script (it retries transient sbatch errors for up to about a minute per job); default 30 min. */
  submitTimeoutMs?: number;
  /** Progress messages for people (stderr). */
  onProgress?: (message: string) => void;
  /** Bytes of bundle blobs sent so far, of the total to send (for a progress bar). */
  onTransfer?: (sent: number, total: number) => void;
  /** Resubmit this earlier run: only steps whose remote state is not a success of the same definition run again. */
  resume?: string;
  /** Use the step cache: restore steps that already succeeded with the same key, store what runs (default true; `--no-cache`). */
  cache?: boolean;
  /**
   * Start the SSH handshake once the plan is prepared, so that it overlaps hashing and staging the bundle (the
   * CLI does). Connecting changes nothing on the cluster: the run record is still written before anything is sent.
   */
  connectEarly?: boolean;
}

export interface SubmitOutcome<T> {
  record: RunRecord;
  plan: CompiledPlan;
  /** Channels the submission itself used (upload + submit script): constant in the number of jobs. */
  roundTrips: number;
  /** What `then` returned. */
  then: T | undefined;
}

function tail(text: string, max = 4000): string {
  const t = text.trim();
  return t.length <= max ? t : `...${t.slice(t.length - max)}`;
}

/**
 * Submits a pipeline: prepare the plan; write the run record ("submitting")
 * and plan.json before contacting the cluster; connect once; upload the
 * bundle in ONE round trip; run the submit script with ONE exec (never
 * retried: a blind re-submit could run every job twice); record the job ids
 * ("submitted"), or the sbatch error and the jobs the script cancelled
 * ("submit_failed"). `then` runs over the same connection after a
 * successful submission (e.g. watch and collect).
 */
export async function submitRun<T = undefined>(options: SubmitOptions, then?: (run: RunContext) => Promise<T>): Promise<SubmitOutcome<T>> {
  const progress = options.onProgress ?? (() => undefined);
  const store = options.store ?? new RunStore();
  if (options.resume !== undefined) return resumeRun(options, options.resume, store, then);
  const connect = options.connect ?? defaultTransportFactory;
  // The spec, its values and the cluster config are checked before anything reaches the cluster: a
  // refused input opens no connection (and asks no one for a one-time code).
  const prepared = prepareFor(options, options.runId);
  requireSlurm(prepared.config, options);
  const early = options.connectEarly ? connectEarly(prepared.config, options, connect) : null;
  // Reading the ssh config and keys takes a few event-loop turns; let the first packet leave before hashing.
  if (early !== null) await Promise.race([reached("connect-start", 200), early.then(() => undefined, () => undefined)]);
  const { plan, loaded, config } = prepared;
  const staged = withInputs(await stagedBundle(loaded.specDir, loaded.bundle, progress, store.root).catch(async (error: unknown) => {
    void early?.then((t) => t.close(), () => undefined);
    throw error;
  }), loaded.inputs);
  const { files, executable } = submissionFiles(plan, new Map());

  const now = store.now();
  const record: RunRecord = {
    format: 1,
    run_id: plan.runId,
    pipeline: plan.pipeline,
    spec: sourceLabel(options.spec),
    cluster: config.name,
    cluster_config: resolve(config.source ?? options.cluster),
    remote_dir: plan.layout.runDir,
    plan_signature: plan.signature,
    created: now,
    updated: now,
    phase: "submitting",
    jobs: {},
    error: null,
    resumes: null,
    attempt: 1,
  };
  // Both before contacting the cluster: a killed submitter leaves a record that says how far it got.
  await store.writePlan(plan);
  await store.writeRecord(record);
  // Another process reconciling this run waits while this one is alive (see reconcile.ts).
  await markSubmitter(store, plan.runId);
  try {
    let transport;
    try {
      transport = await (early ?? connect(config, connectOptionsOf(options)));
    } catch (error) {
      await store.updateRecord(plan.runId, { phase: "submit_failed", error: `could not connect to ${config.name}: ${(error as Error).message}`.slice(0, 60_000) });
      throw error;
    }
    try {
      if (options.cache === false) return await sendRun({ transport, plan, config, store, files, executable, staged, cachedOutputs: [], options, progress }, then);
      let cached;
      try {
        cached = await applyStepCache(transport, plan, cacheKeyFiles(staged, plan), config, (done) => prepareFor(options, plan.runId, done).plan, progress);
      } catch (error) {
        await store.updateRecord(plan.runId, { phase: "submit_failed", error: `asking the step cache failed, nothing was submitted: ${(error as Error).message}`.slice(0, 60_000) });
        throw error;
      }
      const upload = submissionFiles(cached.plan, new Map());
      for (const [path, text] of cached.files) upload.files.set(path, text);
      if (cached.plan !== plan) await store.writePlan(cached.plan);
      return await sendRun(
        { transport, plan: cached.plan, config, store, files: upload.files, executable: upload.executable, staged, cachedOutputs: cached.outputs, options, progress },
        then,
      );
    } finally {
      await transport.close();
    }
  } finally {
    await clearSubmitter(store, plan.runId);
  }
}

/** The fixed script that puts `path_prepend` first in PATH, then runs the submit script (all values are arguments). */
const PATH_PREPEND_SCRIPT = 'p=; while [ "$#" -gt 1 ]; do p="$p$1:"; shift; done; PATH="$p$PATH"; export PATH; exec bash "$1"';

/** How the submit script is run: `bash <run dir>/scripts/submit.sh`, with the config's `path_prepend` first in PATH. */
export function submitScriptArgv(config: Pick<ClusterConfig, "path_prepend">, runDir: string): ShellWord[] {
  const script = remotePath(`${runDir}/scripts/submit.sh`);
  const prepend = config.path_prepend ?? [];
  if (prepend.length === 0) return ["bash", script];
  return ["bash", "-c", PATH_PREPEND_SCRIPT, "hpcpipe-submit", ...prepend.map((dir) => remotePath(dir)), script];
}

/** The plan job the submit script stopped at (the first one it reported no id for), for messages. */
function stoppedAt(plan: CompiledPlan, jobs: Readonly<Record<string, string>>): string {
  const job = plan.jobs.find((j) => jobs[j.id] === undefined);
  if (!job) return "";
  const steps = job.steps.length > 4 ? `${job.steps.slice(0, 4).join(", ")}, ...` : job.steps.join(", ");
  return `at job ${job.id} (${steps})`;
}

/** The plan a submission sends: the submit options, a run id (new unless resuming) and what is already done. */
/** The connection to the cluster a submission goes to, started at once (a config that runs locally: none). */
function connectEarly(config: ClusterConfig, options: SubmitOptions, connect: TransportFactory): Promise<Transport> | null {
  if (config.executor !== "slurm") return null;
  const pending = connect(config, connectOptionsOf(options));
  pending.catch(() => undefined); // awaited (and reported) after the record is written
  return pending;
}

function prepareFor(options: SubmitOptions, runId: string | undefined, done?: ReadonlySet<string>): ReturnType<typeof preparePlan> {
  const prepared = preparePlan({
    spec: options.spec,
    cluster: options.cluster,
    ...(runId ? { runId } : {}),
    ...(options.set ? { set: options.set } : {}),
    ...(options.fuse !== undefined ? { fuse: options.fuse } : {}),
    ...(options.templatesDir ? { templatesDir: options.templatesDir } : {}),
    ...(done ? { done } : {}),
  });
  for (const warning of prepared.warnings) options.onProgress?.(`warning: ${warning}`);
  return prepared;
}

function requireSlurm(config: ClusterConfig, options: SubmitOptions): void {
  if (config.executor !== "slurm") {
    throw new ConfigError(config.source ?? options.cluster, [
      { path: "executor", expected: `expected slurm to submit (this config runs on this machine: use \`hpcpipe run ${typeof options.spec === "string" ? options.spec : "PIPELINE"}\` or --cluster local)` },
    ]);
  }
}

interface SendContext {
  transport: Transport;
  plan: CompiledPlan;
  config: ClusterConfig;
  store: RunStore;
  files: Map<string, string | Buffer>;
  executable: Set<string>;
  /** The spec's bundle files, hashed: staged through the cluster's content-addressed store. */
  staged: StagedFile[];
  /** Declared outputs of the steps restored from the step cache, laid out from the store. */
  cachedOutputs: StagedFile[];
  options: SubmitOptions;
  progress: (message: string) => void;
}

/** The spec's bundle files with their SHA-256 (read as streams; no size cap: nothing is held in memory). */
async function stagedBundle(specDir: string, paths: readonly string[], progress: (message: string) => void, hashCacheDir: string | null): Promise<StagedFile[]> {
  const files = await listBundleFiles(specDir, paths);
  if (files.length === 0) return [];
  const bytes = files.reduce((t, f) => t + f.size, 0);
  progress(`hashing ${files.length} bundle file(s), ${formatBytes(bytes)}`);
  // Files unchanged since they were last hashed here keep their hash (size, times and inode checked).
  return hashBundle(files, hashCacheDir);
}

/** Lays out the outputs of restored steps from the store; a blob gone since the query (pruned, purged) fails the submission, naming it. */
async function layoutCachedOutputs(transport: Transport, runDir: string, outputs: readonly StagedFile[], options: StageOptions): Promise<void> {
  const laid = await layoutRun(transport, runDir, outputs, options);
  if (laid.bad.length > 0) {
    const names = laid.bad.map((h) => outputs.find((o) => o.sha256 === h)?.abs ?? h);
    throw new StoreError(`${names.slice(0, 5).join(", ")}${names.length > 5 ? ` and ${names.length - 5} more` : ""}: gone from the store or corrupt since it was asked (pruned or purged meanwhile?); submit again, or with --no-cache`);
  }
}

/**
 * ONE upload of the bundle and ONE run of the submit script over an open
 * connection, recording the outcome (the record is in phase "submitting").
 */
async function sendRun<T>(ctx: SendContext, then?: (run: RunContext) => Promise<T>): Promise<SubmitOutcome<T>> {
  const { transport, plan, config, store, files, executable, staged, cachedOutputs, options, progress } = ctx;
  let record: RunRecord;
  const before = transport.roundTrips;
  const storeOptions: StageOptions = { store: storeDir(config), group: config.store_group, timeoutMs: 6 * 60 * 60_000, ...(options.onTransfer ? { onBytes: options.onTransfer } : {}) };
  try {
    const status = { onStatus: progress };
    if (staged.length > 0) await ensureBlobs(transport, staged, { ...storeOptions, ...status });
    progress(`uploading ${files.size} file(s) to ${config.name}:${plan.layout.runDir}`);
    await transport.putFiles(plan.layout.runDir, files, { executable, timeoutMs: 30 * 60_000 });
    if (staged.length > 0) await layoutWithRepair(transport, plan.layout.runDir, staged, { ...storeOptions, ...status });
    if (cachedOutputs.length > 0) await layoutCachedOutputs(transport, plan.layout.runDir, cachedOutputs, storeOptions);
  } catch (error) {
    record = await store.updateRecord(plan.runId, { phase: "submit_failed", error: `the upload failed, nothing was submitted: ${(error as Error).message}`.slice(0, 60_000) });
    throw error;
  }
  if (plan.jobs.length === 0) {
    // Every step was restored from the step cache: the run is complete without a job.
    record = await store.updateRecord(plan.runId, { phase: "submitted", jobs: {}, error: null });
    await clearSubmitter(store, plan.runId);
    progress("every step was restored from the step cache; nothing to submit");
    const after = then ? await then({ store, record, plan, config, transport, scheduler: schedulerOver(transport) }) : undefined;
    return { record, plan, roundTrips: transport.roundTrips - before, then: after };
  }
  progress(`submitting ${plan.jobs.length} job(s)`);
  const runScript = (): Promise<ExecResult> =>
    transport.exec(submitScriptArgv(config, plan.layout.runDir), {
      retrySafe: false,
      timeoutMs: options.submitTimeoutMs ?? 30 * 60_000,
    });
  let result: ExecResult;
  try {
    try {
      result = await runScript();
    } catch (error) {
      if (!(error instanceof ConnectionLostError)) throw error;
      // The outcome is unknown: ask the cluster which jobs exist before anything is submitted again.
      const found = await reconcileAfterDrop(ctx, error);
      if (found === "none") {
        progress("nothing was submitted before the drop; running the submit script again");
        await store.updateRecord(plan.runId, { phase: "submitting", error: null });
        result = await runScript();
      } else {
        record = found;
        await clearSubmitter(store, plan.runId);
        const after = then ? await then({ store, record, plan, config, transport, scheduler: schedulerOver(transport) }) : undefined;
        return { record, plan, roundTrips: transport.roundTrips - before, then: after };
      }
    }
  } catch (error) {
    // The script may have submitted some jobs: keep "submitting", say what is known.
    const partial = error instanceof RemoteCommandError ? parseSubmitOutput(error.stdout, plan).jobs : {};
    const why =
      error instanceof ConnectionLostError
        ? "the SSH connection dropped while the submit script ran"
        : `the submit script did not finish: ${(error as Error).message}`;
    const current = await store.readRecord(plan.runId);
    if (current.phase === "submitting") {
      record = await store.updateRecord(plan.runId, {
        jobs: { ...current.jobs, ...partial },
        error: `${why}; jobs it submitted carry the comment hpcpipe:${plan.runId} (see \`squeue --me -o '%i %k'\`)`.slice(0, 60_000),
      });
    }
    throw error;
  }
  const roundTrips = transport.roundTrips - before;
  const { jobs, problems } = parseSubmitOutput(result.stdout, plan);
  const ids = Object.values(jobs);
  if (result.code !== 0) {
    const error = `the submit script failed (exit ${result.code ?? result.signal}): ${tail(result.stderr) || "no message"}`;
    const stopped = stoppedAt(plan, jobs);
    record = await store.updateRecord(plan.runId, { phase: "submit_failed", jobs, error: [error, ...(stopped ? [`it stopped ${stopped}`] : []), ...problems].join("\n").slice(0, 60_000) });
    await clearSubmitter(store, plan.runId);
    const cancelled = ids.length > 0 ? ` It cancelled the ${ids.length} job(s) it had submitted (SLURM ${ids.join(", ")}).` : " No job was submitted.";
    throw new SubmitFailedError(`run ${plan.runId}: ${error}.${cancelled}${stopped ? ` The submission stopped ${stopped}.` : ""}`, plan.runId, record);
  }
  const missing = plan.jobs.filter((j) => jobs[j.id] === undefined).map((j) => j.id);
  if (problems.length > 0 || missing.length > 0) {
    const all = [...problems, ...(missing.length > 0 ? [`no SLURM job id was reported for ${missing.join(", ")}`] : [])];
    record = await store.updateRecord(plan.runId, { phase: "submit_failed", jobs, error: `the submit script's output could not be trusted: ${all.join("; ")}`.slice(0, 60_000) });
    throw new SubmitOutputError(
      `run ${plan.runId}: the submit script's output could not be trusted:\n  ${all.join("\n  ")}\n` +
        `The job ids it did report are recorded: \`hpcpipe cancel ${plan.runId}\` cancels them.`,
      all,
    );
  }
  markTiming("submitted");
  record = await store.updateRecord(plan.runId, { phase: "submitted", jobs, error: null });
  await clearSubmitter(store, plan.runId);
  // What the script said on the way (sbatch warnings, transient errors it retried) is worth showing.
  for (const line of result.stderr.split("\n").filter((l) => l.trim() !== "").slice(0, 20)) progress(`submit script: ${line.slice(0, 500)}`);
  const after = then ? await then({ store, record, plan, config, transport, scheduler: schedulerOver(transport) }) : undefined;
  return { record, plan, roundTrips, then: after };
}

/**
 * After the connection dropped under the submit script: reconcile the run
 * from the cluster over a reopened connection (waiting for the script to be
 * gone there). Returns the record when every job is on the cluster (the
 * submission had completed), "none" when no job is (nothing was submitted,
 * so the script may run again); otherwise records what was found and throws
 * a ConnectionLostError saying which jobs were never submitted. When the
 * cluster cannot be asked, the original error is thrown (the record stays
 * "submitting" and a later command reconciles it).
 */
async function reconcileAfterDrop(ctx: SendContext, drop: ConnectionLostError): Promise<RunRecord | "none"> {
  const { store, plan, transport, progress } = ctx;
  progress("the SSH connection dropped while the submit script ran; asking the cluster which jobs were submitted before anything is submitted again");
  let outcome;
  try {
    outcome = await reconcileSubmission({ store, record: await store.readRecord(plan.runId), plan, transport }, { onProgress: progress });
  } catch (error) {
    progress(`could not reconcile now: ${(error as Error).message.split("\n")[0] ?? ""}`);
    throw drop;
  }
  if (outcome.complete) return outcome.record;
  if (Object.keys(outcome.record.jobs).length === 0) return "none";
  throw new ConnectionLostError(
    `run ${plan.runId}: the SSH connection dropped while the submit script ran, and it stopped after ${Object.keys(outcome.record.jobs).length} of ${plan.jobs.length} job(s). ` +
      `The submitted ones are recorded (\`hpcpipe status ${plan.runId}\`); never submitted: ${outcome.missing.join(", ")}. ` +
      `Once the submitted jobs have ended, \`hpcpipe submit ... --resume ${plan.runId}\` submits the rest (or \`hpcpipe cancel ${plan.runId}\`).`,
    drop.host,
    drop.port,
    drop.operation,
    { cause: drop },
  );
}

/**
 * `submit --resume RUN`: over one connection, check that none of the run's
 * jobs still waits or runs, read its state files, and submit again only
 * what did not succeed with the same definition, into the same remote run
 * directory (steps that succeeded keep their states and published values;
 * the job wrapper also skips them). The inputs (context, items) must be the
 * ones the run was submitted with.
 */
async function resumeRun<T>(options: SubmitOptions, runId: string, store: RunStore, then?: (run: RunContext) => Promise<T>): Promise<SubmitOutcome<T>> {
  const progress = options.onProgress ?? (() => undefined);
  const loadedRun = await loadRun(runId, store);
  const { plan: previousPlan, config } = loadedRun;
  let previous = loadedRun.record;
  const prepare = (done?: ReadonlySet<string>) =>
    prepareFor(options, runId, done);
  const full = prepare();
  requireSlurm(full.config, options);
  if (full.config.name !== config.name) throw new ResumeError(`run ${runId} ran on cluster ${config.name}, not ${full.config.name}`);
  checkSameInputs(runId, previousPlan, full.plan);

  const connect = options.connect ?? defaultTransportFactory;
  const transport = await connect(config, connectOptionsOf(options));
  try {
    if (previous.phase === "submitting") {
      // Its submission's outcome is unknown: the cluster says which jobs exist before anything is resubmitted.
      const reconciled = await reconcileSubmission({ store, record: previous, plan: previousPlan, transport }, { onProgress: progress });
      previous = reconciled.record;
      if (reconciled.complete) {
        progress(`run ${runId}: nothing to resubmit; its jobs are recorded (hpcpipe status ${runId})`);
        const after = then ? await then({ store, record: previous, plan: previousPlan, config, transport, scheduler: schedulerOver(transport) }) : undefined;
        return { record: previous, plan: previousPlan, roundTrips: 0, then: after };
      }
    }
    const scheduler = schedulerOver(transport);
    if (Object.keys(previous.jobs).length > 0) checkNothingActive(runId, await queryJobStatuses(scheduler, previousPlan, previous.jobs));
    const remote = await readRemoteStates(transport, previous.remote_dir);
    const done = doneSteps(full.plan, remote.states);
    const { plan, loaded } = prepare(done);
    progress(`run ${runId}: ${done.size} step(s) already succeeded; resubmitting ${plan.jobs.length} job(s)`);
    const attempt = (previous.attempt ?? 1) + 1;
    const history = [...(previous.history ?? []), { attempt: previous.attempt ?? 1, jobs: previous.jobs, phase: previous.phase, updated: previous.updated }];
    if (plan.jobs.length === 0) {
      const record = await store.updateRecord(runId, { error: null });
      progress(`run ${runId}: every step already succeeded; nothing to resubmit (hpcpipe collect ${runId})`);
      return { record, plan: previousPlan, roundTrips: 0, then: undefined };
    }
    const staged = withInputs(await stagedBundle(loaded.specDir, loaded.bundle, progress, store.root), loaded.inputs);
    const { files, executable } = submissionFiles(plan, new Map());
    await store.writePlan(plan);
    await store.updateRecord(runId, { phase: "submitting", jobs: {}, error: null, attempt, history, plan_signature: plan.signature });
    await markSubmitter(store, runId);
    try {
      return await sendRun({ transport, plan, config, store, files, executable, staged, cachedOutputs: [], options, progress }, then);
    } finally {
      await clearSubmitter(store, runId);
    }
  } finally {
    await transport.close();
  }
}

/** What to do with a run's jobs when Ctrl-C interrupts `submit --wait`. */
export type InterruptPolicy = "cancel" | "leave" | "ask";

/** Applies the interrupt policy; `ask` asks (true = cancel). Returns the cancellation, or null when the jobs were left running. */
export async function handleInterrupt(run: RunContext | RunExecutor, policy: InterruptPolicy, ask: () => Promise<boolean>): Promise<CancelOutcome | null> {
  const cancel = policy === "cancel" || (policy === "ask" && (await ask()));
  return cancel ? cancelRun(run) : null;
}

export interface WaitOutcome {
  watch: WatchOutcome;
  /** Null when the watch was interrupted. */
  collect: CollectOutcome | null;
}

/** `submit --wait`: watch until every job is final, then collect (reusing the last poll's job facts). */
export async function waitAndCollect(run: RunContext | RunExecutor, options: WatchOptions = {}): Promise<WaitOutcome> {
  const watch = await watchRun(run, options);
  if (watch.aborted) return { watch, collect: null };
  const collect = await collectRun(run, { jobs: watch.status.jobs, ...(watch.remote ? { remote: watch.remote } : {}), ...(watch.merged && watch.remote ? { merged: watch.merged } : {}) });
  markTiming("collected");
  return { watch, collect };
}
