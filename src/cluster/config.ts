/**
 * Cluster configs (`cluster-configs/*.yaml`), validated with zod: how to
 * reach the cluster, where runs live on it, its defaults and limits. Keys are
 * snake_case, as in the YAML.
 */
import { homedir } from "node:os";
import { dirname, isAbsolute, resolve } from "node:path";
import { z } from "zod";
import type { CompileTarget } from "../compiler/target.js";
import { resourcesSchema, sbatchValue, SLURM_TIME_PATTERN, slurmTimeToSeconds } from "../plan/resources.js";
import type { Resources } from "../plan/resources.js";
import { hasControlChar, FieldError, parseWith } from "../spec/source.js";
import type { FieldProblem, YamlSource } from "../spec/source.js";
import { preview } from "../core/preview.js";

/** A malformed cluster config: `file`, the `path` of the field and what was `expected`. */
export class ConfigError extends FieldError {
  override name = "ConfigError";
}

export const CLUSTER_NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

const hostSchema = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[A-Za-z0-9_.:%[\]-]+$/, { error: "expected a host name, address or ~/.ssh/config alias (letters, digits, '.', '-', ':')" })
  .refine((h) => !h.startsWith("-"), { error: "must not start with '-'" });
const portSchema = z.number().int().min(1).max(65535);
const userSchema = z
  .string()
  .regex(/^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}$/, { error: "expected a user name (letters, digits, '_', '.', '-')" });

/** A path on this machine; a leading `~/` is the home directory. Relative paths are relative to the config file. */
const localPathSchema = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => !hasControlChar(p), { error: "must not contain a newline or control character" })
  .transform((p) => (p === "~" ? homedir() : p.startsWith("~/") ? `${homedir()}${p.slice(1)}` : p));

/** A local command that prints a one-time code (run with /bin/sh -c on this machine, like ssh's ProxyCommand). */
const otpCommandSchema = z
  .string()
  .min(1)
  .max(4096)
  .refine((s) => !hasControlChar(s), { error: "expected one line (no newline or control character)" });
/** The name of an environment variable that holds a one-time code. */
const envNameSchema = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, { error: "expected an environment variable name (letters, digits, '_')" });

const jumpSchema = z
  .object({
    host: hostSchema,
    port: portSchema.default(22),
    user: userSchema.optional(),
    identity_file: localPathSchema.optional(),
    agent: z.boolean().default(false),
    /** A command printing the jump host's one-time code. */
    otp_command: otpCommandSchema.optional(),
    /** Environment variable with the jump host's code (default HPCPIPE_SSH_OTP_JUMP). */
    otp_env: envNameSchema.optional(),
  })
  .strict();

export const connectionSchema = z
  .object({
    /** Host name, address or an alias from ~/.ssh/config. */
    host: hostSchema,
    port: portSchema.default(22),
    /** Default: from ~/.ssh/config, else the local user name. */
    user: userSchema.optional(),
    identity_file: localPathSchema.optional(),
    /** Use the SSH agent ($SSH_AUTH_SOCK). */
    agent: z.boolean().default(false),
    known_hosts: localPathSchema.default("~/.ssh/known_hosts"),
    /** A bastion to go through (like ssh -J). */
    jump: jumpSchema.optional(),
    /** Run remote commands through `bash -lc`, for clusters whose sbatch comes from a module or a login profile. */
    login_shell: z.boolean().default(false),
    keepalive_s: z.number().int().min(0).max(3600).default(15),
    connect_timeout_s: z.number().int().min(1).max(600).default(20),
    /** A command printing a one-time code, for clusters that ask for one at login (keyboard-interactive). */
    otp_command: otpCommandSchema.optional(),
    /** Environment variable holding a one-time code (default HPCPIPE_SSH_OTP); one code serves one login. */
    otp_env: envNameSchema.optional(),
  })
  .strict();

/**
 * A work directory as a job's shell sees it: absolute, or starting with
 * `$HOME` or `$SCRATCH` (the only variables expanded); no other `$`, quotes,
 * spaces or `..`. The local executor also accepts a path relative to where it runs.
 */
export const WORKDIR_PATTERN = /^(?:\$HOME|\$SCRATCH)?[A-Za-z0-9_./+@:,=-]*$/;

function workdirProblem(workdir: string, allowRelative: boolean): string | null {
  if (!WORKDIR_PATTERN.test(workdir) || workdir.length === 0 || workdir.length > 1024) {
    return "expected an absolute path or one starting with $HOME or $SCRATCH, of letters, digits and _ . / + @ : , = - (no other $, quotes or spaces)";
  }
  const base = splitWorkdir(workdir);
  if (base.base !== null && base.rest !== "" && !base.rest.startsWith("/")) return `expected '/' after ${base.base}`;
  if (base.base === null && !workdir.startsWith("/") && !allowRelative) return "expected an absolute path or one starting with $HOME or $SCRATCH";
  if (workdir.split("/").includes("..")) return "must not contain '..'";
  return null;
}

/** `$SCRATCH/runs` → `{ base: "$SCRATCH", rest: "/runs" }`; an absolute path has base null. */
export function splitWorkdir(workdir: string): { base: "$HOME" | "$SCRATCH" | null; rest: string } {
  // A $HOME or $SCRATCH not followed by '/' (`$HOMEX`) is refused by the pattern's check below, not expanded.
  for (const base of ["$HOME", "$SCRATCH"] as const) if (workdir.startsWith(base)) return { base, rest: workdir.slice(base.length) };
  return { base: null, rest: workdir };
}

const MEMORY_PATTERN = /^\d+[KMGT]?$/;

export const partitionLimitsSchema = z
  .object({
    max_time: z.string().regex(SLURM_TIME_PATTERN, { error: "expected a SLURM time like 30, 10:00, 1:00:00 or 2-00:00:00" }).optional(),
    max_cpus: z.number().int().min(1).optional(),
    max_mem: z
      .preprocess((v) => (typeof v === "number" ? String(v) : v), z.string().regex(MEMORY_PATTERN, { error: "expected memory like 500M, 4G or 4000 (megabytes)" }))
      .optional(),
    max_gpus: z.number().int().min(0).optional(),
  })
  .strict();

const partitionNameSchema = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, { error: "expected a partition name (letters, digits, '_', '.', '-')" });
const moduleSchema = z
  .string()
  .regex(/^[A-Za-z0-9_.+/-]{1,200}$/, { error: "expected a module name like blender/3.4 (letters, digits and _ . + / -)" });
const setupLineSchema = z
  .string()
  .max(4096)
  .refine((s) => !hasControlChar(s), { error: "expected one line (no newline or control character)" });
const sbatchOptionsSchema = resourcesSchema.shape.sbatch;

/**
 * A directory on the cluster for `path_prepend`: absolute, or starting with
 * `$HOME/` or `$SCRATCH/` (expanded there); the workdir's characters, and no
 * `:` (the PATH separator).
 */
const remoteDirSchema = z
  .string()
  .superRefine((dir, ctx) => {
    const problem = dir.includes(":") ? "must not contain ':' (the PATH separator)" : workdirProblem(dir, false);
    if (problem) ctx.addIssue({ code: "custom", message: problem, input: dir });
  });

const nullableSbatch = sbatchValue.nullable().default(null);

export const clusterConfigSchema = z
  .object({
    name: z.string().regex(CLUSTER_NAME_PATTERN, { error: "expected a name of letters, digits, '_', '.', '-'" }).optional(),
    executor: z.enum(["slurm", "local"]),
    connection: connectionSchema.optional(),
    workdir: z.string().optional(),
    partition: nullableSbatch,
    account: nullableSbatch,
    qos: nullableSbatch,
    partitions: z.record(partitionNameSchema, partitionLimitsSchema).default({}),
    modules: z.array(moduleSchema).default([]),
    setup: z.array(setupLineSchema).default([]),
    max_array_size: z.number().int().min(1).max(4_000_001).default(1001),
    /** SLURM's MaxJobCount: jobs and pending array tasks slurmctld holds at once (every user's); a submission of more tasks waits in sbatch. */
    max_job_count: z.number().int().min(1).max(100_000_000).default(10_000),
    /** SLURM's MinJobAge: how long slurmctld keeps a finished job; a job no source knows this long after submission is lost. */
    min_job_age_s: z.number().int().min(0).max(31_536_000).default(300),
    array_throttle: z.number().int().min(1).nullable().default(null),
    sbatch_options: sbatchOptionsSchema.default([]),
    /** Seconds before the time limit that SLURM signals the job (`--signal=B:USR1@<s>`), so it can write its state. */
    signal_grace_s: z.number().int().min(1).max(65535).default(60),
    /**
     * Directories put first in PATH for the submit script, where `sbatch` and
     * `scancel` are found: for a site whose sbatch is not on the PATH of a
     * non-login shell, or a site (or test) wrapper around it.
     */
    path_prepend: z.array(remoteDirSchema).max(16).default([]),
    /**
     * The content-addressed store of input blobs on the cluster (absolute, or
     * starting with $HOME or $SCRATCH); default `<workdir>/.hpcpipe/store`.
     * Name a directory shared by a group (with `store_group`) to deduplicate
     * uploads across users: every blob is checked against its hash before use.
     */
    store: z.string().optional(),
    /** The group that shares `store` (directories 2770, blobs 0444); none = a private store (700). */
    store_group: z.string().regex(/^[a-z_][a-z0-9_.-]{0,31}$/, { error: "expected a group name (letters, digits, '_', '.', '-')" }).optional(),
    /**
     * Whose step cache entries a run may use besides its own user's: cached results cannot be
     * checked against a hash, so only these users' and these groups' members' entries are trusted
     * (the writer of an entry is the owner of its file in the store).
     */
    cache_trust: z
      .object({
        users: z.array(z.string().regex(/^[a-z_][a-z0-9_.-]{0,31}$/, { error: "expected a user name" })).max(256).default([]),
        groups: z.array(z.string().regex(/^[a-z_][a-z0-9_.-]{0,31}$/, { error: "expected a group name" })).max(64).default([]),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.executor === "slurm" && c.connection === undefined) {
      ctx.addIssue({ code: "custom", message: "expected a connection (host, user, identity_file or agent) for executor slurm", path: ["connection"], input: c });
    }
    if (c.executor === "local" && c.connection !== undefined) {
      ctx.addIssue({ code: "custom", message: "connection is only for executor slurm; remove it or use executor: slurm", path: ["connection"], input: c });
    }
    if (c.store !== undefined) {
      const problem = workdirProblem(c.store, false);
      if (problem) ctx.addIssue({ code: "custom", message: problem, path: ["store"], input: c.store });
    }
    if (c.store_group !== undefined && c.store === undefined) {
      ctx.addIssue({ code: "custom", message: "store_group needs store: the directory that the group shares", path: ["store_group"], input: c.store_group });
    }
    if (c.workdir !== undefined) {
      const problem = workdirProblem(c.workdir, c.executor === "local");
      if (problem) ctx.addIssue({ code: "custom", message: problem, path: ["workdir"], input: c.workdir });
    }
    if (c.partition !== null && Object.keys(c.partitions).length > 0 && !(c.partition in c.partitions)) {
      ctx.addIssue({
        code: "custom",
        message: `expected one of the partitions listed under partitions (${Object.keys(c.partitions).join(", ")})`,
        path: ["partition"],
        input: c.partition,
      });
    }
  });

type ParsedClusterConfig = z.output<typeof clusterConfigSchema>;

/** A validated cluster config, with its defaults filled in. */
export interface ClusterConfig extends Omit<ParsedClusterConfig, "name" | "workdir"> {
  name: string;
  /** Where run directories live; may start with $HOME or $SCRATCH. */
  workdir: string;
  /** The file it was loaded from, or null. */
  source: string | null;
}

export const DEFAULT_WORKDIR = { slurm: "$HOME/hpcpipe-runs", local: ".hpcpipe/runs" } as const;

/**
 * Validates a parsed config object. `file` names it in errors; relative
 * identity_file and known_hosts paths are relative to its directory.
 */
export function parseClusterConfig(obj: unknown, file: string, source?: YamlSource): ClusterConfig {
  const problems: FieldProblem[] = [];
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
    throw new ConfigError(file, [{ path: "", expected: "expected a mapping with name, executor and (for slurm) connection" }]);
  }
  const parsed = parseWith(clusterConfigSchema, obj, [], problems, source);
  if (parsed === undefined || problems.length > 0) throw new ConfigError(file, problems);
  const dir = dirname(resolve(file));
  const local = (p: string): string => (isAbsolute(p) ? p : resolve(dir, p));
  const connection = parsed.connection && {
    ...parsed.connection,
    known_hosts: local(parsed.connection.known_hosts),
    ...(parsed.connection.identity_file !== undefined ? { identity_file: local(parsed.connection.identity_file) } : {}),
    ...(parsed.connection.jump
      ? {
          jump: {
            ...parsed.connection.jump,
            ...(parsed.connection.jump.identity_file !== undefined ? { identity_file: local(parsed.connection.jump.identity_file) } : {}),
          },
        }
      : {}),
  };
  const base = file.split("/").pop()?.replace(/\.ya?ml$/, "") ?? "cluster";
  return {
    ...parsed,
    name: parsed.name ?? base,
    workdir: parsed.workdir ?? DEFAULT_WORKDIR[parsed.executor],
    ...(connection ? { connection } : {}),
    source: file,
  };
}

const MEM_FACTORS: Record<string, number> = { K: 1 / 1024, M: 1, G: 1024, T: 1024 * 1024 };

/** Megabytes in a SLURM memory amount (`500M`, `4G`, `4000` = megabytes). */
export function memoryToMb(mem: string): number {
  if (!MEMORY_PATTERN.test(mem)) throw new Error(`not a memory amount: ${preview(mem)}`);
  const unit = mem.slice(-1);
  const factor = MEM_FACTORS[unit];
  return factor === undefined ? Number(mem) : Number(mem.slice(0, -1)) * factor;
}

/** GPUs a request asks for: `gpus`, else the count at the end of a `gpu[:type]:N` gres. */
export function gpusRequested(resources: Resources): number {
  if (resources.gpus !== undefined) return resources.gpus;
  const gres = resources.gres;
  if (gres === undefined) return 0;
  let total = 0;
  for (const part of gres.split(",")) {
    const fields = part.split(":");
    if (fields[0] !== "gpu") continue;
    const last = fields[fields.length - 1] ?? "";
    total += fields.length > 1 && /^\d+$/.test(last) ? Number(last) : 1;
  }
  return total;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/**
 * Checks a step's resources (merged with the defaults) against the limits
 * of its partition. Returns one clear message per problem, e.g.
 * "step thumbs.render_depth asks for 8 GPUs; partition gpu allows 4".
 */
export function checkResources(config: ClusterConfig, resources: Resources, stepKey: string): string[] {
  const problems: string[] = [];
  const partition = resources.partition ?? config.partition;
  if (partition === null || partition === undefined) return problems;
  const known = Object.keys(config.partitions);
  const limits = config.partitions[partition];
  if (limits === undefined) {
    if (known.length > 0) {
      problems.push(`step ${stepKey} asks for partition '${partition}', which cluster config ${config.name} does not list (it lists ${known.join(", ")})`);
    }
    return problems;
  }
  const where = `partition ${partition} allows`;
  if (limits.max_cpus !== undefined && resources.cpus !== undefined && resources.cpus > limits.max_cpus) {
    problems.push(`step ${stepKey} asks for ${plural(resources.cpus, "CPU")}; ${where} ${limits.max_cpus}`);
  }
  const gpus = gpusRequested(resources);
  if (limits.max_gpus !== undefined && gpus > limits.max_gpus) {
    problems.push(`step ${stepKey} asks for ${plural(gpus, "GPU")}; ${where} ${limits.max_gpus}`);
  }
  if (limits.max_mem !== undefined && resources.mem !== undefined && memoryToMb(resources.mem) > memoryToMb(limits.max_mem)) {
    problems.push(`step ${stepKey} asks for ${resources.mem} of memory; ${where} ${limits.max_mem}`);
  }
  if (limits.max_time !== undefined && resources.time !== undefined && slurmTimeToSeconds(resources.time) > slurmTimeToSeconds(limits.max_time)) {
    problems.push(`step ${stepKey} asks for a time limit of ${resources.time}; ${where} ${limits.max_time}`);
  }
  return problems;
}

/** What the compiler needs from a cluster config. */
export function toCompileTarget(config: ClusterConfig): CompileTarget {
  const defaults: Resources = {};
  if (config.partition !== null) defaults.partition = config.partition;
  if (config.account !== null) defaults.account = config.account;
  if (config.qos !== null) defaults.qos = config.qos;
  return {
    name: config.name,
    workdir: config.workdir,
    maxArraySize: config.max_array_size,
    arrayThrottle: config.array_throttle,
    defaults,
    modules: [...config.modules],
    setup: [...config.setup],
    sbatchOptions: [...config.sbatch_options],
    signalGraceS: config.signal_grace_s,
    partitions: Object.fromEntries(Object.entries(config.partitions).map(([name, l]) => [name, { max_time: l.max_time, max_mem: l.max_mem }])),
  };
}
