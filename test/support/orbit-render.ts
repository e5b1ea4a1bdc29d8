/**
 * Shared by the tests of Example 5, the orbit render (test/examples/orbit-render.test.ts on the
 * local executor, test/e2e/examples-blender.test.ts on the test cluster): a copy of the example
 * with fewer frames, ffprobe's facts about a video, and what the rendered frames must look like.
 */
import { spawnSync } from "node:child_process";
import { cpSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { z } from "zod";
import { changedShare, distinctSamples, foreground } from "./png.js";
import type { Image } from "./png.js";

export const ORBIT_EXAMPLE = fileURLToPath(new URL("../../examples/orbit-render/", import.meta.url));

/**
 * Copies examples/orbit-render into `dir` with its own frame-ranges.txt and returns the copy's
 * pipeline.yaml. A map's items are fixed when the plan is compiled, so rendering fewer frames
 * means a different items file (which the configure step also reads, being bundled).
 */
export function orbitExampleCopy(dir: string, ranges: readonly string[]): string {
  cpSync(ORBIT_EXAMPLE, dir, { recursive: true, filter: (src) => !/\.(gif|png)$/.test(src) });
  writeFileSync(join(dir, "frame-ranges.txt"), `# test copy\n${ranges.join("\n")}\n`);
  return join(dir, "pipeline.yaml");
}

const probeSchema = z.object({
  streams: z
    .array(
      z.object({
        codec_name: z.string(),
        width: z.number().int().positive(),
        height: z.number().int().positive(),
        nb_read_frames: z.string().regex(/^\d+$/),
      }),
    )
    .length(1),
});

export interface VideoFacts {
  codec: string;
  width: number;
  height: number;
  /** Frames counted by decoding the whole stream (ffprobe -count_frames). */
  frames: number;
}

/** ffprobe's codec, size and decoded frame count of the first video stream of `path`. */
export function probeVideo(path: string): VideoFacts {
  const run = spawnSync(
    "ffprobe",
    ["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "json", "--", path],
    { encoding: "utf8", timeout: 60_000 },
  );
  if (run.status !== 0) throw new Error(`ffprobe ${path} failed (${run.error?.message ?? `exit ${run.status}`}): ${run.stderr}`);
  const parsed = probeSchema.safeParse(JSON.parse(run.stdout));
  if (!parsed.success) throw new Error(`ffprobe ${path}: unexpected output ${run.stdout}: ${z.prettifyError(parsed.error)}`);
  const [stream] = parsed.data.streams;
  if (stream === undefined) throw new Error(`ffprobe ${path}: no video stream`);
  return { codec: stream.codec_name, width: stream.width, height: stream.height, frames: Number(stream.nb_read_frames) };
}

/**
 * Rendered frames of the orbit, in frame order: each `size` x `size`, not blank (the model is a
 * good share of the picture and stays inside it), and every frame different from every other
 * one (more than `minChange` of the pixels). Rendered at 2 fps, the bundled windmill's rotor
 * (four blades, one turn in 2 s) looks the same in every frame, so what changes is the camera
 * alone: 10-14% of the pixels between frames 60 degrees apart, 0% with a camera that does not
 * move (checked by breaking orbit.py once).
 */
export function expectOrbitFrames(frames: readonly { name: string; image: Image }[], size: number, minChange = 0.05, minCoverage = 0.03): void {
  for (const { name, image } of frames) {
    expect({ width: image.width, height: image.height }, name).toEqual({ width: size, height: size });
    expect(distinctSamples(image), `${name}: not one flat colour`).toBeGreaterThan(8);
    const fg = foreground(image);
    expect(fg.count / (size * size), `${name}: share of model pixels`).toBeGreaterThan(minCoverage);
    expect(fg.minX, `${name}: the model inside the frame (left)`).toBeGreaterThan(0);
    expect(fg.maxX, `${name}: the model inside the frame (right)`).toBeLessThan(size - 1);
    expect(fg.maxY - fg.minY, `${name}: model height in the frame`).toBeGreaterThan(size / 4);
  }
  for (let i = 0; i < frames.length; i++) {
    for (let j = i + 1; j < frames.length; j++) {
      const a = frames[i];
      const b = frames[j];
      if (a === undefined || b === undefined) continue;
      expect(changedShare(a.image, b.image), `${a.name} and ${b.name} differ (the camera moves)`).toBeGreaterThan(minChange);
    }
  }
}
