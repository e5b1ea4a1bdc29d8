import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { readYamlFile } from "../spec/source.js";
import { packageRoot } from "../version.js";
import { ConfigError, parseClusterConfig } from "./config.js";
import type { ClusterConfig } from "./config.js";

export interface LoadClusterConfigOptions {
  /** Directories searched for a bare name, in order. Default: ./cluster-configs, then the package's cluster-configs/. */
  searchDirs?: readonly string[];
}

/** A bare config name (looked up in the search directories) rather than a path. */
const BARE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

export function defaultSearchDirs(): string[] {
  const dirs = [resolve("cluster-configs"), join(packageRoot(), "cluster-configs")];
  return [...new Set(dirs)];
}

function isBareName(nameOrPath: string): boolean {
  return BARE_NAME.test(nameOrPath) && !/\.ya?ml$/.test(nameOrPath);
}

/** The config names (file names without .yaml) found in the search directories, first directory first. */
export function listClusterConfigs(searchDirs: readonly string[] = defaultSearchDirs()): string[] {
  const names: string[] = [];
  for (const dir of searchDirs) {
    let files: string[];
    try {
      files = readdirSync(dir);
    } catch {
      continue;
    }
    for (const f of files.sort()) {
      const m = /^(.+)\.ya?ml$/.exec(f);
      if (m?.[1] !== undefined && !names.includes(m[1])) names.push(m[1]);
    }
  }
  return names;
}

/** Where a bare name or a path leads, or a ConfigError naming what was searched. */
export function findClusterConfig(nameOrPath: string, options: LoadClusterConfigOptions = {}): string {
  if (!isBareName(nameOrPath)) return nameOrPath;
  const dirs = options.searchDirs ?? defaultSearchDirs();
  for (const dir of dirs) {
    for (const ext of [".yaml", ".yml"]) {
      const candidate = join(dir, `${nameOrPath}${ext}`);
      if (existsSync(candidate)) return candidate;
    }
  }
  const known = listClusterConfigs(dirs);
  throw new ConfigError(nameOrPath, [
    {
      path: "",
      expected: `no cluster config named '${nameOrPath}' in ${dirs.join(", ")}${known.length > 0 ? `; available: ${known.join(", ")}` : ""}`,
    },
  ]);
}

/**
 * Loads a cluster config by bare name (`localcluster`: looked up as
 * `<dir>/localcluster.yaml` in the search directories) or by path. Throws
 * ConfigError naming the file and the field.
 */
export function loadClusterConfig(nameOrPath: string, options: LoadClusterConfigOptions = {}): ClusterConfig {
  const file = findClusterConfig(nameOrPath, options);
  const source = readYamlFile(file, (problems) => new ConfigError(file, problems));
  return parseClusterConfig(source.value, file, source);
}
