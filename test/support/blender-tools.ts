/**
 * Whether the tools of the Blender examples are here: Blender that can import numpy (Blender
 * 3.4's glTF importer needs it) and ffmpeg with ffprobe. scripts/install-test-tools.sh installs
 * them (vitest global setup, root on Debian). Tests that need them skip with a loud notice when
 * they are missing, except under CI=true, where that is a failure.
 */
import { spawnSync } from "node:child_process";

const ci = process.env.CI?.toLowerCase();
export const inCI = ci === "true" || ci === "1";

/** Null when blender (with numpy), ffmpeg and ffprobe run; else what is missing. */
export function blenderToolsProblem(): string | null {
  for (const tool of ["ffmpeg", "ffprobe"]) {
    const run = spawnSync(tool, ["-version"], { encoding: "utf8" });
    if (run.status !== 0) return `${tool} is not installed`;
  }
  const blender = spawnSync("blender", ["-b", "--factory-startup", "-noaudio", "--python-exit-code", "1", "--python-expr", "import numpy"], {
    encoding: "utf8",
    timeout: 60_000,
  });
  if (blender.error || blender.status === null) return "blender is not installed";
  if (blender.status !== 0) return "blender cannot import numpy (python3-numpy is not installed)";
  return null;
}

/** Prints a loud notice that `what` is not tested because of `problem` (outside CI). */
export function warnUntested(problem: string, what: string): void {
  const bar = "!".repeat(80);
  console.warn(
    `\n${bar}\n!! ${problem}: ${what} is NOT tested.\n` +
      "!! Install with scripts/install-test-tools.sh (apt-get install -y --no-install-recommends\n" +
      `!! blender python3-numpy ffmpeg). Under CI=true this fails.\n${bar}\n`,
  );
}
