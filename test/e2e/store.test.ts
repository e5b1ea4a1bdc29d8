// The content-addressed store on the real test cluster (src/store/staging.ts): a submission sends only
// the blobs the store lacks, in one stream, and lays out the run's work/ from the store with hard links
// (never symlinks), read-only; a corrupt or purged blob is noticed and sent again; an upload cut short
// keeps the whole blobs it delivered; two uploads of one blob end with one good copy; a blob owned by
// another user is copied and verified, never linked.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashBundle, layoutRun, missingBlobs, sendBlobs, storeDir } from "../../src/store/index.js";
import type { StagedFile } from "../../src/store/index.js";
import { remotePath } from "../../src/transport/index.js";
import type { SshTransport } from "../../src/transport/index.js";
import { cli } from "../cli/helpers.js";
import { e2eSkipped, readRemote, runIdFrom, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";

describe.skipIf(e2eSkipped)("the content-addressed store on the test cluster", { timeout: 120_000 }, () => {
  let env: WorkflowEnv;
  let cluster: string;
  let remote: SshTransport;
  let specDir: string;
  let store: string;
  let home: string;

  const sh = async (script: string): Promise<string> => {
    const r = await remote.exec(["bash", "-c", script]);
    if (r.code !== 0) throw new Error(`${script}: exit ${r.code}: ${r.stderr}`);
    return r.stdout;
  };
  const blobPath = (hash: string): string => `${store.replace("$HOME", home)}/blobs/${hash.slice(0, 2)}/${hash}`;

  beforeAll(async () => {
    env = workflowEnv("store");
    cluster = env.config("storecluster");
    remote = await env.remote();
    home = (await sh('printf %s "$HOME"')).trim();
    store = storeDir({ workdir: env.workdir });
    // A spec whose bundle holds a glTF that refers to its .bin by a relative path, a nested directory and a big file.
    specDir = path.join(env.dir, "assets");
    mkdirSync(path.join(specDir, "models", "deep"), { recursive: true });
    writeFileSync(path.join(specDir, "models", "a.gltf"), JSON.stringify({ asset: { version: "2.0" }, buffers: [{ uri: "a.bin", byteLength: 4 }] }));
    writeFileSync(path.join(specDir, "models", "a.bin"), Buffer.from([1, 2, 3, 4]));
    writeFileSync(path.join(specDir, "models", "deep", "same-as-a.bin"), Buffer.from([1, 2, 3, 4]));
    writeFileSync(path.join(specDir, "big.dat"), randomBytes(12 * 1024 * 1024));
    writeFileSync(
      path.join(specDir, "pipeline.yaml"),
      [
        "name: staged",
        "bundle: [models/, big.dat]",
        "steps:",
        "  - step: check",
        // It inspects each run's layout: never restored from the step cache.
        "    cache: false",
        "    run: |",
        "      set -e",
        "      test \"$(stat -c %s models/a.bin)\" = 4",
        "      sha256sum big.dat models/a.bin models/deep/same-as-a.bin > out.txt",
        "      find . -type l | wc -l >> out.txt",
        "      stat -c '%a %h %n' models/a.gltf big.dat >> out.txt",
        "",
      ].join("\n"),
    );
  }, 120_000);
  afterAll(async () => {
    await env?.cleanup();
  });

  const submit = async (): Promise<{ runId: string; stderr: string; out: string }> => {
    const r = await cli("submit", path.join(specDir, "pipeline.yaml"), "--cluster", cluster, "--wait");
    expect(r.code, r.stderr).toBe(0);
    const runId = runIdFrom(r.stderr);
    const record = await env.record(runId);
    const out = (await readRemote(remote, record.remote_dir, "work/out.txt")) ?? "";
    return { runId, stderr: r.stderr, out };
  };

  it("sends every blob once, then nothing: work/ is laid out by hard links, read-only, no symlinks", async () => {
    const first = await submit();
    // 4 files, 3 distinct blobs (a.bin and deep/same-as-a.bin are one).
    expect(first.stderr).toMatch(/bundle: 4 file\(s\); 0 blob\(s\) already in the store; sending 3 \(12\.0 MiB\)/);
    const lines = first.out.trim().split("\n");
    expect(lines[1]?.split(/\s+/)[0]).toBe(lines[2]?.split(/\s+/)[0]);
    expect(lines[3]).toBe("0"); // no symlinks
    // Mode 444 and at least 2 links (the store's blob and this run's file).
    expect(lines[4]).toMatch(/^444 [2-9]\d* models\/a\.gltf$/);
    expect(lines[5]).toMatch(/^444 [2-9]\d* big\.dat$/);

    const second = await submit();
    expect(second.stderr).toMatch(/bundle: 4 file\(s\); 3 blob\(s\) already in the store; sending 0 \(0 B\)/);
    expect(second.out.split("\n").slice(0, 3)).toEqual(first.out.split("\n").slice(0, 3));
    // Sharded by the first two hex digits, every blob read-only.
    const listing = await sh(`cd ${remotePath(`${store}/blobs`).toShell()} && find . -type f -printf '%m %P\\n' | sort`);
    const blobs = listing.trim().split("\n");
    expect(blobs).toHaveLength(3);
    for (const b of blobs) expect(b).toMatch(/^444 ([0-9a-f]{2})\/\1[0-9a-f]{62}$/);
  });

  it("a corrupt blob is noticed at layout and sent again; a purged one is sent again", async () => {
    const [big] = await hashBundle([{ abs: path.join(specDir, "big.dat"), rel: "work/big.dat", size: 12 * 1024 * 1024 }]);
    const [bin] = await hashBundle([{ abs: path.join(specDir, "models", "a.bin"), rel: "work/models/a.bin", size: 4 }]);
    if (!big || !bin) throw new Error("no hashes");
    // Corrupt the big blob in place (its inode is shared with the earlier runs' work/ files, as on a real store),
    // and purge the small one, as a scratch purge would.
    await sh(`f=${remotePath(blobPath(big.sha256)).toShell()}; chmod u+w "$f" && printf corrupt | dd of="$f" bs=1 seek=100 conv=notrunc status=none && rm -f ${remotePath(blobPath(bin.sha256)).toShell()}`);
    const again = await submit();
    expect(again.stderr).toMatch(/2 blob\(s\) already in the store; sending 1 \(4 B\)/);
    expect(again.stderr).toMatch(/the store had 1 corrupt or missing blob\(s\); sending them again/);
    expect(again.out).toContain(`${big.sha256}  big.dat`);
    expect(again.out).toContain(`${bin.sha256}  models/a.bin`);
  });

  const blobsOf = async (n: number, size: number): Promise<StagedFile[]> => {
    const dir = path.join(env.dir, `blobs-${randomBytes(3).toString("hex")}`);
    mkdirSync(dir);
    const files = Array.from({ length: n }, (_, i) => {
      const abs = path.join(dir, `f${i}`);
      writeFileSync(abs, randomBytes(size));
      return { abs, rel: `work/f${i}`, size };
    });
    return hashBundle(files);
  };

  it("an upload cut short keeps the blobs it delivered whole: the next query recovers them and asks only for the rest", async () => {
    const blobs = await blobsOf(6, 256 * 1024);
    const options = { store };
    // The stream fails in the middle of the 4th blob, as a dropped connection would cut it.
    const cut: StagedFile = { ...(blobs[3] as StagedFile), size: (blobs[3] as StagedFile).size - 1000 };
    await expect(sendBlobs(remote, [...blobs.slice(0, 3), cut, ...blobs.slice(4)], options)).rejects.toThrow();
    // The receiving end keeps running after the cut (it promotes what arrived whole); the next submission comes later.
    // Wait (bounded) until no receiving script of this store runs and its directory is gone.
    const busy = async (): Promise<boolean> =>
      (await sh(`pgrep -u "$(id -u)" -f 'hpcpipe-store-[r]eceive' >/dev/null && echo busy; ls -A ${remotePath(`${store}/incoming`).toShell()}`)).trim() !== "";
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < 100 && (await busy()); i++) await new Promise((r) => setTimeout(r, 100));
    const { missing, recovered } = await missingBlobs(remote, blobs, options);
    expect(missing.map((b) => b.sha256)).toEqual(blobs.slice(3).map((b) => b.sha256));
    // Either the receiving script promoted them itself, or the query recovered them from its directory.
    const stored = await sh(`for h in ${blobs.map((b) => b.sha256).join(" ")}; do [ -f ${remotePath(`${store}/blobs`).toShell()}/\${h:0:2}/$h ] && echo "$h"; done; true`);
    expect(stored.trim().split("\n")).toEqual(blobs.slice(0, 3).map((b) => b.sha256));
    expect(recovered).toBeGreaterThanOrEqual(0);
    // An upload whose process died (its directory left behind, its pid gone) is recovered by the next query.
    const left = `${store}/incoming/${(await sh("hostname -s")).trim()}.999999.1`;
    const fifth = blobs[4] as StagedFile;
    await remote.putFiles(left, new Map([[fifth.sha256, execFileSync("cat", [fifth.abs])]]));
    const after = await missingBlobs(remote, blobs, options);
    expect(after.recovered).toBe(1);
    expect(after.missing.map((b) => b.sha256)).toEqual([blobs[3]?.sha256, blobs[5]?.sha256]);
    expect((await sh(`ls -A ${remotePath(`${store}/incoming`).toShell()}`)).trim()).toBe("");
  });

  it("two uploads of the same blobs at once end with one good copy of each", async () => {
    const blobs = await blobsOf(4, 512 * 1024);
    const options = { store };
    await Promise.all([sendBlobs(remote, blobs, options), sendBlobs(remote, blobs, options)]);
    const sums = await sh(`cd ${remotePath(`${store}/blobs`).toShell()} && for h in ${blobs.map((b) => b.sha256).join(" ")}; do sha256sum "\${h:0:2}/$h"; done`);
    expect(sums.trim().split("\n").map((l) => l.split(/\s+/)[0])).toEqual(blobs.map((b) => b.sha256));
    expect((await missingBlobs(remote, blobs, options)).missing).toEqual([]);
  });

  it("a blob owned by another user is copied and verified, never linked", async () => {
    const [blob] = await blobsOf(1, 4096);
    if (!blob) throw new Error("no blob");
    const options = { store };
    await sendBlobs(remote, [blob], options);
    // As root on this single host: the blob now belongs to another user (as in a store shared by a group).
    execFileSync("chown", ["nobody", blobPath(blob.sha256)]);
    const runDir = `${env.workdir}/layout-test`;
    await remote.putFiles(runDir, new Map([["placeholder", "x"]]));
    const laid = await layoutRun(remote, runDir, [{ ...blob, rel: "work/x.bin" }], options);
    expect(laid).toEqual({ bad: [], linked: 0, copied: 1 });
    const stat = await sh(`stat -c '%a %h %U' ${remotePath(`${runDir}/work/x.bin`).toShell()}`);
    expect(stat.trim()).toBe(`444 1 ${env.facts.user}`);
  });

  it("cache ls shows sizes; cache prune removes only own blobs that no run directory holds and that were unused for the age", async () => {
    const local = store.replace("$HOME", home);
    const ls = await cli("cache", "ls", "--cluster", cluster, "--json");
    expect(ls.code, ls.stderr).toBe(0);
    const before = JSON.parse(ls.stdout) as { blobs: number; bytes: number; unlinked: number; prunable: number };
    // The pipeline's 3; 4 of the cut upload (3 delivered + 1 recovered); 4 sent twice at once; 1 owned by "nobody".
    expect(before.blobs).toBe(3 + 4 + 4 + 1);
    expect(before.bytes).toBeGreaterThan(12 * 1024 * 1024);
    // Everything last used two hours ago; then a submission uses the pipeline's 3 blobs again (and its runs hold them).
    execFileSync("bash", ["-c", 'find "$1/blobs" -type f -exec touch -h -d "2 hours ago" {} +', "age", local]);
    const used = await submit();
    expect(used.stderr).toMatch(/3 blob\(s\) already in the store; sending 0/);
    const dry = await cli("cache", "prune", "--cluster", cluster, "--older-than", "1h", "--dry-run", "--json");
    expect(dry.code, dry.stderr).toBe(0);
    const planned = JSON.parse(dry.stdout) as { prunable: number; removed: number; blobs: number };
    // The blobs sent directly by the tests above were never laid out into a run (the one owned by "nobody" is not ours).
    expect(planned).toMatchObject({ prunable: 4 + 4, removed: 0, blobs: before.blobs });
    const pruned = await cli("cache", "prune", "--cluster", cluster, "--older-than", "1h");
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.stdout).toMatch(/and 8 blob\(s\)/);
    const after = JSON.parse((await cli("cache", "ls", "--cluster", cluster, "--json")).stdout) as { blobs: number };
    expect(after.blobs).toBe(before.blobs - 8);
    // The pipeline's blobs were kept: the next submission sends nothing.
    expect((await submit()).stderr).toMatch(/3 blob\(s\) already in the store; sending 0/);
    // Once no run directory holds them and they are old, they go too; a later submission sends them again.
    await sh(`rm -rf ${remotePath(`${env.workdir}/staged`).toShell()} ${remotePath(`${env.workdir}/layout-test`).toShell()}`);
    execFileSync("bash", ["-c", 'find "$1/blobs" -type f -exec touch -h -d "2 hours ago" {} +', "age", local]);
    expect((await cli("cache", "prune", "--cluster", cluster, "--older-than", "1h")).stdout).toMatch(/and 3 blob\(s\), 12\.0 MiB/);
    expect((await submit()).stderr).toMatch(/0 blob\(s\) already in the store; sending 3/);
    const bad = await cli("cache", "prune", "--cluster", cluster, "--older-than", "soon");
    expect(bad.code).toBe(64);
    expect(bad.stderr).toContain('--older-than: expected an age such as 30d, 12h or 90m, got "soon"');
  });
});
