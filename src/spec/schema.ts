/**
 * The YAML pipeline spec, validated with zod. Keys are snake_case. Each entry
 * of a `steps` list has exactly one of the keys `step`, `group`, `pipeline`,
 * `map`, which names its kind; entries are parsed one by one (see load.ts) so
 * an error names the path of the exact field.
 */
import { z } from "zod";
import { STEP_NAME_PATTERN } from "../core/step.js";
import { resourcesSchema, SLURM_TIME_PATTERN, slurmTimeToSeconds } from "../plan/resources.js";
import type { Resources } from "../plan/resources.js";
import { outputPathProblem } from "./command-step.js";
import { contextKeyProblem } from "./context-keys.js";
import { itemProblem } from "./map-step.js";
import { hasControlChar } from "./source.js";
import { MAX_ESCALATION, MAX_RETRIES, parseFactor, RETRY_REASONS } from "../plan/retry.js";

export const SPEC_ENTRY_KINDS = ["step", "group", "pipeline", "map"] as const;
export type SpecEntryKind = (typeof SPEC_ENTRY_KINDS)[number];

export const stepNameSchema = z
  .string()
  .regex(STEP_NAME_PATTERN, { error: "expected a name of 1-100 letters, digits, '_' or '-', not starting with '-' (dots are reserved)" });

export const contextKeySchema = z.string().superRefine((key, ctx) => {
  const problem = contextKeyProblem(key);
  if (problem) ctx.addIssue({ code: "custom", message: problem, input: key });
});

const keyList = z.array(contextKeySchema);

const versionSchema = z
  .string({
    error: (iss) => (iss.input === undefined ? undefined : `expected a string; quote versions ("1.0") so YAML does not read them as numbers`),
  })
  .min(1)
  .max(64)
  .refine((s) => !hasControlChar(s), { error: "must not contain a newline or control character" });

const commandSchema = z
  .string()
  .min(1, { error: "expected a non-empty string" })
  .refine((s) => s.trim() !== "", { error: "expected a non-empty string" })
  .refine((s) => !s.includes("\0"), { error: "must not contain a NUL byte" });

const outputPathSchema = z.string().superRefine((path, ctx) => {
  const problem = outputPathProblem(path);
  if (problem) ctx.addIssue({ code: "custom", message: `expected a relative path inside the working directory: ${problem}`, input: path });
});

/** A scalar a YAML user naturally writes as a value: strings, numbers, booleans (numbers and booleans become strings). */
function scalarText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  if (typeof value === "boolean") return String(value);
  return undefined;
}

/** Resources, where `time: 30` and `mem: 4000` (numbers in YAML) mean the same as the strings. */
export const specResourcesSchema: z.ZodType<Resources> = z.preprocess((value) => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
  const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const k of ["time", "mem"]) if (typeof copy[k] === "number") copy[k] = String(copy[k]);
  return copy;
}, resourcesSchema) as z.ZodType<Resources>;

const envSchema = z.record(z.string(), z.unknown()).transform((env, ctx) => {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    const problem = contextKeyProblem(k);
    if (problem) {
      ctx.addIssue({ code: "custom", message: problem.replace("context key", "environment variable name"), path: [k], input: k });
      continue;
    }
    const text = scalarText(v);
    if (text === undefined) ctx.addIssue({ code: "custom", message: "expected a string, number or boolean", path: [k], input: v });
    else if (text.includes("\0")) ctx.addIssue({ code: "custom", message: "must not contain a NUL byte", path: [k], input: v });
    else out[k] = text;
  }
  return out;
});

/** Initial context values: keys are shell identifiers, values strings, numbers or booleans. */
export const contextSchema = z.record(z.string(), z.unknown()).transform((context, ctx) => {
  const out: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(context)) {
    const problem = contextKeyProblem(k);
    if (problem) {
      ctx.addIssue({ code: "custom", message: problem, path: [k], input: k });
      continue;
    }
    if (typeof v === "string") {
      if (v.includes("\0")) ctx.addIssue({ code: "custom", message: "must not contain a NUL byte", path: [k], input: v });
      else out[k] = v;
    } else if ((typeof v === "number" && Number.isFinite(v)) || typeof v === "boolean") {
      out[k] = v;
    } else {
      ctx.addIssue({ code: "custom", message: `expected a string, number or boolean, got ${v === null ? "null (an empty value)" : Array.isArray(v) ? "a list" : typeof v}`, path: [k], input: v });
    }
  }
  return out;
});

const bundlePathSchema = z.string().superRefine((path, ctx) => {
  const problem = outputPathProblem(path);
  if (problem) ctx.addIssue({ code: "custom", message: `expected a path relative to the spec file: ${problem}`, input: path });
});

/** A local path or glob pattern (relative to the spec's directory, or absolute): one printable line. */
const localPathSchema = z
  .string()
  .min(1, { error: "expected a non-empty path" })
  .refine((s) => !hasControlChar(s), { error: "must not contain a newline or control character" });

const itemSchema = z.unknown().transform((item, ctx) => {
  const text = typeof item === "number" && Number.isFinite(item) ? String(item) : item;
  const problem = itemProblem(text);
  if (problem) {
    ctx.addIssue({ code: "custom", message: `item ${problem}`, input: item });
    return z.NEVER;
  }
  return text as string;
});

const throttleSchema = z.number().int().min(1);

const DURATION_EXPECTED = 'expected a duration like "10:00" (MM:SS), "1:00:00" or 5 (minutes)';
/** A positive SLURM time for task packing (`"10:00"` is MM:SS); a YAML number means minutes, like `time`. */
const packDurationSchema = z.preprocess(
  (v) => (typeof v === "number" && Number.isFinite(v) ? String(v) : v),
  z.string({ error: DURATION_EXPECTED }).superRefine((t, ctx) => {
    if (!SLURM_TIME_PATTERN.test(t)) ctx.addIssue({ code: "custom", message: DURATION_EXPECTED, input: t });
    else if (slurmTimeToSeconds(t) <= 0) ctx.addIssue({ code: "custom", message: "expected a duration longer than zero", input: t });
  }),
);

const RETRY_ON_EXPECTED = `expected an exit code 1-255 or one of ${RETRY_REASONS.join(", ")}`;
/** One `retry_on` entry: an exit code (a number, or its digits) or a reason name. */
const retryOnSchema = z.unknown().transform((v, ctx) => {
  const n = typeof v === "number" ? v : typeof v === "string" && /^\d{1,3}$/.test(v) ? Number(v) : null;
  if (n !== null) {
    if (Number.isInteger(n) && n >= 1 && n <= 255) return n;
  } else if (typeof v === "string" && (RETRY_REASONS as readonly string[]).includes(v)) return v as (typeof RETRY_REASONS)[number];
  ctx.addIssue({ code: "custom", message: RETRY_ON_EXPECTED, input: v });
  return z.NEVER;
});
const FACTOR_EXPECTED = `expected a factor like "x2" or "x1.5" (above 1, at most x${MAX_ESCALATION})`;
const factorSchema = z.unknown().transform((v, ctx) => {
  const f = typeof v === "string" ? parseFactor(v) : null;
  if (f === null) {
    ctx.addIssue({ code: "custom", message: FACTOR_EXPECTED, input: v });
    return z.NEVER;
  }
  return f;
});
/** Retries on the cluster (a command step; a map, per item): see src/plan/retry.ts. */
const retryFields = {
  retries: z.number().int().min(0).max(MAX_RETRIES).optional(),
  retry_on: z.array(retryOnSchema).min(1, { error: "expected at least one exit code or reason" }).optional(),
  on_timeout: z.object({ time: factorSchema }).strict().optional(),
  on_oom: z.object({ mem: factorSchema }).strict().optional(),
};
interface RetryFields {
  retries?: number | undefined;
  retry_on?: unknown;
  on_timeout?: unknown;
  on_oom?: unknown;
}
/** retry_on and the escalations only mean something with retries. */
function refineRetries(e: RetryFields, ctx: z.RefinementCtx): void {
  for (const k of ["retry_on", "on_timeout", "on_oom"] as const) {
    if (e[k] !== undefined && (e.retries ?? 0) === 0) {
      ctx.addIssue({ code: "custom", message: `${k} applies to retries: add retries: N (1-${MAX_RETRIES})`, path: [k], input: e[k] });
    }
  }
}

/** The children of a composite, parsed entry by entry afterwards. */
const childList = z.array(z.unknown()).min(1, { error: "expected a non-empty list of steps" });

export const commandEntrySchema = z
  .object({
    step: stepNameSchema,
    run: commandSchema,
    requires: keyList.optional(),
    provides: keyList.optional(),
    outputs: z.array(outputPathSchema).optional(),
    resources: specResourcesSchema.optional(),
    env: envSchema.optional(),
    continue_on_error: z.boolean().optional(),
    idempotent: z.boolean().optional(),
    version: versionSchema.optional(),
    fuse: z.boolean().optional(),
    batch: z.boolean().optional(),
    inputs: z.array(outputPathSchema).optional(),
    cache: z.boolean().optional(),
    ...retryFields,
  })
  .strict()
  .superRefine(refineRetries);

export const groupEntrySchema = z
  .object({
    group: stepNameSchema,
    parallel: z.boolean().optional(),
    throttle: throttleSchema.optional(),
    items_per_task: z.number().int().min(1).optional(),
    task_duration: packDurationSchema.optional(),
    item_duration: packDurationSchema.optional(),
    task_cpus: z.number().int().min(1).max(100_000).optional(),
    continue_on_error: z.boolean().optional(),
    version: versionSchema.optional(),
    fuse: z.boolean().optional(),
    steps: childList,
  })
  .strict()
  .superRefine((g, ctx) => {
    if (g.throttle !== undefined && g.parallel !== true) {
      ctx.addIssue({ code: "custom", message: "throttle limits a parallel group; add parallel: true or remove throttle", path: ["throttle"], input: g.throttle });
    }
    const packing = (["items_per_task", "task_duration", "item_duration", "task_cpus"] as const).find((k) => g[k] !== undefined);
    if (packing !== undefined && g.parallel !== true) {
      ctx.addIssue({
        code: "custom",
        message: `${packing} packs a parallel group's children into array tasks; add parallel: true or remove it`,
        path: [packing],
        input: g[packing],
      });
    } else refinePacking(g, ctx);
  });

export const pipelineEntrySchema = z
  .object({
    pipeline: stepNameSchema,
    continue_on_error: z.boolean().optional(),
    version: versionSchema.optional(),
    fuse: z.boolean().optional(),
    steps: childList,
  })
  .strict();

export const mapEntrySchema = z
  .object({
    map: stepNameSchema,
    items: z.array(itemSchema).optional(),
    items_file: z
      .string()
      .min(1)
      .refine((s) => !hasControlChar(s), { error: "must not contain a newline or control character" })
      .optional(),
    items_glob: z.union([localPathSchema, z.array(localPathSchema).min(1, { error: "expected at least one pattern" })]).optional(),
    stage_items: z.boolean().optional(),
    stage_with: z.union([localPathSchema, z.array(localPathSchema)]).optional(),
    items_root: localPathSchema.optional(),
    as: contextKeySchema.optional(),
    throttle: throttleSchema.optional(),
    continue_on_item_error: z.boolean().optional(),
    items_per_task: z.number().int().min(1).optional(),
    task_duration: packDurationSchema.optional(),
    item_duration: packDurationSchema.optional(),
    task_cpus: z.number().int().min(1).max(100_000).optional(),
    continue_on_error: z.boolean().optional(),
    version: versionSchema.optional(),
    fuse: z.boolean().optional(),
    ...retryFields,
    steps: childList,
  })
  .strict()
  .superRefine((m, ctx) => {
    refinePacking(m, ctx);
    refineItemSources(m, ctx);
    refineRetries(m, ctx);
  });

interface ItemSourceFields {
  items?: unknown;
  items_file?: string | undefined;
  items_glob?: string | string[] | undefined;
  stage_items?: boolean | undefined;
  stage_with?: string | string[] | undefined;
  items_root?: string | undefined;
}

/** Exactly one of items, items_file, items_glob; the staging fields only where items are local files. */
function refineItemSources(m: ItemSourceFields, ctx: z.RefinementCtx): void {
  const given = (["items", "items_file", "items_glob"] as const).filter((k) => m[k] !== undefined);
  if (given.length !== 1) {
    ctx.addIssue({
      code: "custom",
      message: given.length === 0 ? "expected items (a list), items_file (a file of lines) or items_glob (local files matching a pattern)" : `expected one of items, items_file or items_glob, not ${given.join(" and ")}`,
      path: given.length === 0 ? [] : [given[1] as string],
      input: m,
    });
    return;
  }
  if (m.items_glob !== undefined && m.stage_items !== undefined) {
    ctx.addIssue({ code: "custom", message: "items_glob always stages the files it matches; remove stage_items", path: ["stage_items"], input: m.stage_items });
  }
  const staged = m.items_glob !== undefined || m.stage_items === true;
  for (const k of ["stage_with", "items_root"] as const) {
    if (m[k] !== undefined && !staged) {
      ctx.addIssue({ code: "custom", message: `${k} applies to items that are local files: add items_glob, or stage_items: true with items or items_file`, path: [k], input: m[k] });
    }
  }
}

interface PackingFields {
  items_per_task?: number | undefined;
  task_duration?: string | undefined;
  item_duration?: string | undefined;
  task_cpus?: number | undefined;
}

/** The packing fields of a map or a parallel group go together as the compiler reads them. */
function refinePacking(m: PackingFields, ctx: z.RefinementCtx): void {
  if (m.items_per_task !== undefined && (m.task_duration !== undefined || m.item_duration !== undefined)) {
    ctx.addIssue({
      code: "custom",
      message: "expected items_per_task or task_duration with item_duration, not both",
      path: [m.task_duration !== undefined ? "task_duration" : "item_duration"],
      input: m,
    });
  } else if ((m.task_duration === undefined) !== (m.item_duration === undefined)) {
    const missing = m.task_duration === undefined ? "task_duration" : "item_duration";
    ctx.addIssue({
      code: "custom",
      message: `expected ${missing} too: task_duration / item_duration gives the items per task`,
      path: [missing === "task_duration" ? "item_duration" : "task_duration"],
      input: m,
    });
  } else if (m.task_cpus !== undefined && m.items_per_task === undefined && m.task_duration === undefined) {
    ctx.addIssue({
      code: "custom",
      message: "task_cpus applies to packed tasks: expected items_per_task (or task_duration with item_duration) too",
      path: ["task_cpus"],
      input: m.task_cpus,
    });
  }
}

export const specDocumentSchema = z
  .object({
    name: stepNameSchema,
    version: versionSchema.optional(),
    context: contextSchema.optional(),
    defaults: specResourcesSchema.optional(),
    bundle: z.array(bundlePathSchema).optional(),
    fuse: z.boolean().optional(),
    steps: childList,
  })
  .strict();

export type CommandEntry = z.output<typeof commandEntrySchema>;
export interface GroupEntry extends Omit<z.output<typeof groupEntrySchema>, "steps"> {
  steps: SpecEntry[];
}
export interface PipelineEntry extends Omit<z.output<typeof pipelineEntrySchema>, "steps"> {
  steps: SpecEntry[];
}
/**
 * A map entry; `items` holds the items whether they were inline or read from
 * `items_file`, or the staged paths (`inputs/<map>/...`) of local item files,
 * whose SHA-256 are in `itemHashes`.
 */
export interface MapEntry extends Omit<z.output<typeof mapEntrySchema>, "steps" | "items"> {
  items: string[];
  itemHashes?: string[];
  steps: SpecEntry[];
}
export type SpecEntry = CommandEntry | GroupEntry | PipelineEntry | MapEntry;
/** A validated spec document. */
export interface SpecDocument extends Omit<z.output<typeof specDocumentSchema>, "steps"> {
  steps: SpecEntry[];
}

/** Which kind an entry of a validated spec is. */
export function entryKind(entry: SpecEntry): SpecEntryKind {
  if ("step" in entry) return "step";
  if ("group" in entry) return "group";
  if ("map" in entry) return "map";
  return "pipeline";
}

export const ENTRY_SCHEMAS = {
  step: commandEntrySchema,
  group: groupEntrySchema,
  pipeline: pipelineEntrySchema,
  map: mapEntrySchema,
} as const;
