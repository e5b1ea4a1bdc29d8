import { RUN_ID_PATTERN } from "../plan/run-id.js";
import { z } from "zod";

/** Where a run stands, as far as this machine knows. */
export const RUN_PHASES = ["submitting", "submitted", "submit_failed", "cancelled", "collected"] as const;
export type RunPhase = (typeof RUN_PHASES)[number];

export { RUN_ID_PATTERN } from "../plan/run-id.js";

/**
 * The local record of a submitted run: enough for `status`, `cancel`,
 * `collect` and `logs` from any later shell. Written atomically (mode 600)
 * before submission and completed after, so a killed submitter leaves a
 * record that says how far it got. It holds no secrets: paths, ids, phases.
 */
export const runRecordSchema = z.object({
  format: z.literal(1),
  run_id: z.string().regex(RUN_ID_PATTERN),
  pipeline: z.string().max(100),
  spec: z.string().max(4096),
  cluster: z.string().max(64),
  /** Path of the cluster config used, so later commands connect the same way. */
  cluster_config: z.string().max(4096),
  remote_dir: z.string().max(4096),
  plan_signature: z.string().max(64),
  created: z.string().max(64),
  updated: z.string().max(64),
  phase: z.enum(RUN_PHASES),
  /** SLURM job id per plan job id, filled in as the submit script reports them. */
  jobs: z.record(z.string(), z.string().regex(/^\d+$/)),
  error: z.string().max(65_536).nullable(),
  /** The run this one resumes, if any. */
  resumes: z.string().nullable().optional(),
  /** 1 for the first submission; each `submit --resume` adds one. */
  attempt: z.number().int().min(1).optional(),
  /** Which executor runs it: a SLURM cluster over SSH (absent in records older than this field) or this machine. */
  executor: z.enum(["slurm", "local"]).optional(),
  /** A local run's supervisor process: its pid and start time (a pid reused by another process has another start time). */
  supervisor: z.object({ pid: z.number().int().positive(), started: z.string().max(64) }).nullable().optional(),
  /** A local run's options, kept so `--resume` runs it the same way. */
  local: z.object({ cpus: z.number().int().min(1).nullable() }).optional(),
  /** Earlier attempts' SLURM job ids, oldest first. */
  history: z
    .array(z.object({ attempt: z.number().int().min(1), jobs: z.record(z.string(), z.string().regex(/^\d+$/)), phase: z.enum(RUN_PHASES), updated: z.string().max(64) }))
    .optional(),
});

export type RunRecord = z.infer<typeof runRecordSchema>;
