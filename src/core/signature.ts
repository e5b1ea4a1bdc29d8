import { createHash } from "node:crypto";
import type { PipelineStep } from "./step.js";

const cache = new WeakMap<PipelineStep, string>();

/** Stable JSON: object keys sorted, so equal definitions hash equally. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  // eslint-disable-next-line no-restricted-syntax -- canonical JSON text (what is signed), not a message
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

/**
 * A 12-hex-digit digest of a step's definition (kind, name, version, contract,
 * flags, extra data, children). Same definition, same signature, in any process.
 * Steps are immutable after construction, so the digest is cached per instance.
 */
export function shortSignature(step: PipelineStep): string {
  const hit = cache.get(step);
  if (hit !== undefined) return hit;
  const definition = {
    kind: step.constructor.name,
    name: step.name,
    version: step.version,
    requires: step.requires,
    provides: step.provides,
    idempotent: step.idempotent,
    continue_on_error: step.continue_on_error,
    data: step.signatureData(),
    children: step.children.map(shortSignature),
  };
  const sig = createHash("sha256").update(canonicalJson(definition)).digest("hex").slice(0, 12);
  cache.set(step, sig);
  return sig;
}
