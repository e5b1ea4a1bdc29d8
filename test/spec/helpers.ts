import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import { loadSpec, SpecError } from "../../src/spec/load.js";
import type { LoadedSpec, LoadSpecOptions } from "../../src/spec/load.js";

/** A fresh directory under the OS temp dir; `cleanup` removes it. */
export function tempDir(prefix = "hpcpipe-spec-test-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes `files` (name → text) into a new temp dir and loads `spec.yaml` from it. */
export function loadText(yaml: string, files: Record<string, string> = {}, options: LoadSpecOptions = {}): LoadedSpec {
  const { dir, cleanup } = tempDir();
  try {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    const file = join(dir, "spec.yaml");
    writeFileSync(file, yaml);
    return loadSpec(file, options);
  } finally {
    cleanup();
  }
}

/** Loads `yaml` expecting a SpecError, and returns it. */
export function specErrorOf(yaml: string, files: Record<string, string> = {}, options: LoadSpecOptions = {}): SpecError {
  try {
    loadText(yaml, files, options);
  } catch (err) {
    expect(err).toBeInstanceOf(SpecError);
    return err as SpecError;
  }
  throw new Error("expected a SpecError, but the spec loaded");
}

/** A minimal valid header for specs written inline in tests. */
export const HEAD = "name: t\nsteps:\n";
