import { canonicalJson } from "../core/signature.js";
import { secondsToSlurmTime, slurmTimeToSeconds } from "../plan/resources.js";
import type { Resources } from "../plan/resources.js";
import { preview } from "../core/preview.js";

export function sameResources(a: Resources, b: Resources): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

const MEM_UNITS: Record<string, number> = { K: 1 / 1024, M: 1, G: 1024, T: 1024 * 1024 };

export function memMb(mem: string): number {
  const unit = mem.slice(-1);
  const factor = MEM_UNITS[unit];
  return factor === undefined ? Number(mem) : Number(mem.slice(0, -1)) * factor;
}

/**
 * All tasks of an array share one resource request: the largest of each
 * amount; names (partition, account, qos, constraint, gres, options) must agree.
 */
export function combineResources(list: Resources[], key: string, problems: string[]): Resources {
  const first = list[0];
  if (!first) return {};
  const out: Resources = { ...first };
  for (const r of list.slice(1)) {
    if (r.cpus !== undefined) out.cpus = Math.max(out.cpus ?? 1, r.cpus);
    if (r.gpus !== undefined) out.gpus = Math.max(out.gpus ?? 0, r.gpus);
    if (r.mem !== undefined && (out.mem === undefined || memMb(r.mem) > memMb(out.mem))) out.mem = r.mem;
    if (r.time !== undefined && (out.time === undefined || slurmTimeToSeconds(r.time) > slurmTimeToSeconds(out.time))) {
      out.time = secondsToSlurmTime(slurmTimeToSeconds(r.time));
    }
    for (const name of ["partition", "account", "qos", "constraint", "gres"] as const) {
      if (r[name] !== first[name]) {
        problems.push(`${key}: its tasks run as one array job, so they must share ${name}; found ${preview(first[name])} and ${preview(r[name])}`);
      }
    }
    if (canonicalJson(r.sbatch ?? []) !== canonicalJson(first.sbatch ?? [])) {
      problems.push(`${key}: its tasks run as one array job, so they must share extra sbatch options`);
    }
  }
  return out;
}

/** Steps run one after another in one task: the largest amounts, and the time of all of them together. */
export function sequenceResources(list: Resources[], key: string, problems: string[]): Resources {
  const combined = combineResources(list, key, problems);
  const summed = sumTime(list);
  return summed.time === undefined ? combined : { ...combined, time: summed.time };
}

/** A fused job needs the time of all its steps together. */
export function sumTime(list: Resources[]): Resources {
  const first = list[0] ?? {};
  const times = list.map((r) => r.time);
  if (times.some((t) => t === undefined)) return { ...first };
  return { ...first, time: secondsToSlurmTime(times.reduce((s, t) => s + slurmTimeToSeconds(t as string), 0)) };
}
