import { copyFileSync, cpSync, mkdirSync, readdirSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { generateBatch } from "../batch-validate/generate.js";

/**
 * The batch thumbnailer's models: N glTF models from the batch validator's
 * deterministic generator (none broken: cubes, scenes, animated .gltf + .bin,
 * and empty scenes, which have nothing to render), `models.txt` (the map's
 * items) and, unless OUTDIR is the example itself, its pipeline.yaml and bpy/.
 */
export function exampleDir(): string {
  // Compiled to dist/examples/batch-thumbnails/; the sources (pipeline.yaml, bpy/) stay in examples/.
  const here = dirname(fileURLToPath(import.meta.url));
  return here.includes(`${join("dist", "examples")}`) ? resolve(here, "../../../examples/batch-thumbnails") : here;
}

export async function writeThumbnailBatch(outDir: string, n: number): Promise<string[]> {
  const out = resolve(outDir);
  const batch = await generateBatch(n, { brokenEvery: 0 });
  rmSync(join(out, "models"), { recursive: true, force: true });
  mkdirSync(join(out, "models"), { recursive: true });
  const items: string[] = [];
  for (const [path, bytes] of batch.files) {
    if (path === "expected.json") continue;
    writeFileSync(join(out, path), bytes);
  }
  for (const m of batch.models) items.push(m.path);
  const source = exampleDir();
  if (realpathSync(source) !== realpathSync(out)) {
    copyFileSync(join(source, "pipeline.yaml"), join(out, "pipeline.yaml"));
    cpSync(join(source, "bpy"), join(out, "bpy"), { recursive: true });
    for (const name of readdirSync(join(out, "bpy"))) if (name === "__pycache__") rmSync(join(out, "bpy", name), { recursive: true });
  }
  return items;
}

async function main(argv: string[]): Promise<number> {
  const [outDir, count] = argv;
  const n = Number(count);
  if (outDir === undefined || !Number.isInteger(n) || n < 1) {
    process.stderr.write("usage: generate OUTDIR N   (N glTF models into OUTDIR/models/, OUTDIR/models.txt, pipeline.yaml, bpy/)\n");
    return 2;
  }
  const items = await writeThumbnailBatch(outDir, n);
  process.stdout.write(`${items.length} models in ${resolve(outDir, "models")}; items in ${resolve(outDir, "models.txt")}\n`);
  return 0;
}

if (process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((code) => (process.exitCode = code), (err: unknown) => {
    process.stderr.write(`generate: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
