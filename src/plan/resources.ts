import { z } from "zod";
import { preview } from "../core/preview.js";

/** A SLURM time limit: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS. */
export const SLURM_TIME_PATTERN = /^(?:\d+-\d{1,2}(?::\d{1,2}(?::\d{1,2})?)?|\d+(?::\d{1,2}){0,2})$/;

/** Text that goes on an #SBATCH line: printable, no newline or control character. */
export const sbatchValue = z
  .string()
  .min(1)
  .max(512)
  .refine((s) => ![...s].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f), {
    message: "must not contain a newline or control character",
  });

export const resourcesSchema = z
  .object({
    cpus: z.number().int().min(1).max(100_000).optional(),
    mem: z
      .string()
      .regex(/^\d+[KMGT]?$/, "memory like 500M, 4G or 4000 (megabytes)")
      .optional(),
    time: z.string().regex(SLURM_TIME_PATTERN, "a SLURM time like 30, 10:00, 1:00:00 or 1-00:00:00").optional(),
    gpus: z.number().int().min(0).max(1024).optional(),
    gres: sbatchValue.optional(),
    partition: sbatchValue.optional(),
    account: sbatchValue.optional(),
    qos: sbatchValue.optional(),
    constraint: sbatchValue.optional(),
    /** Extra sbatch options, each one `--name` or `--name=value`. */
    sbatch: z
      .array(sbatchValue.regex(/^--[a-z][a-z-]*(=.*)?$/, "an sbatch option like --exclusive or --mail-type=NONE"))
      .optional(),
  })
  .strict();

export type Resources = z.infer<typeof resourcesSchema>;

/** Seconds in a SLURM time limit string (validated by SLURM_TIME_PATTERN). */
export function slurmTimeToSeconds(time: string): number {
  if (!SLURM_TIME_PATTERN.test(time)) throw new Error(`not a SLURM time: ${preview(time)}`);
  let days = 0;
  let rest = time;
  const dash = time.indexOf("-");
  if (dash >= 0) {
    days = Number(time.slice(0, dash));
    rest = time.slice(dash + 1);
    const [h = "0", m = "0", s = "0"] = rest.split(":");
    return days * 86400 + Number(h) * 3600 + Number(m) * 60 + Number(s);
  }
  const parts = rest.split(":").map(Number);
  if (parts.length === 1) return (parts[0] ?? 0) * 60;
  if (parts.length === 2) return (parts[0] ?? 0) * 60 + (parts[1] ?? 0);
  return (parts[0] ?? 0) * 3600 + (parts[1] ?? 0) * 60 + (parts[2] ?? 0);
}

/** Resources of a step over the defaults; a step's own values win. */
export function mergeResources(defaults: Resources | undefined, own: Resources | undefined): Resources {
  return { ...(defaults ?? {}), ...(own ?? {}) };
}

/** A SLURM time limit for a number of seconds: HH:MM:SS, or D-HH:MM:SS past a day. */
export function secondsToSlurmTime(total: number): string {
  const d = Math.floor(total / 86400);
  const h = Math.floor((total % 86400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const hms = `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
  return d > 0 ? `${d}-${hms}` : hms;
}
