// Issue 6, "Hostile input, each a test", on the real test cluster (scripts/cluster/up.sh): the shared
// table of hostile values (test/security/hostile-values.ts) as context values, --set values and map
// items of a run submitted with the in-process CLI (`submit --wait`); as #SBATCH values read by the
// real sbatch; hostile state files planted in the run's states/ directory on the cluster; and host
// keys refused at the command line. The no-cluster half of the suite is test/security/; the index
// of which test proves which guarantee is test/security/README.md.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { remotePath } from "../../src/transport/index.js";
import type { SshTransport } from "../../src/transport/index.js";
import { fingerprintSha256 } from "../../src/transport/known-hosts.js";
import { cli } from "../cli/helpers.js";
import { e2eSkipped, runIdFrom, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";
import { hostileValues, isOneLine, MIB, newCanary } from "../security/hostile-values.js";
import type { HostileValue } from "../security/hostile-values.js";
import { fileTree } from "../security/support.js";

interface StateJson {
  success: boolean;
  error: string | null;
  meta: Record<string, unknown>;
  step_states: Record<string, { success: boolean; error: string | null; meta: Record<string, unknown> }>;
}

const canary = newCanary();
const HOSTILE = hostileValues(canary.path);
// What a context value may be (no NUL, fits an environment string) and what an item may be (one printable line).
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const CONTEXT_VALUES = HOSTILE.filter((h) => !h.value.includes("\0") && Buffer.byteLength(h.value) < 100_000);
const ITEMS = HOSTILE.filter((h) => h.value !== "" && h.value.length <= 4096 && isOneLine(h.value) && !CONTROL.test(h.value));

describe.skipIf(e2eSkipped)("hostile input on the test cluster", { timeout: 240_000 }, () => {
  let env: WorkflowEnv;
  let cluster: string;
  let remote: SshTransport;

  beforeAll(async () => {
    env = workflowEnv("hostile-input");
    cluster = env.config("testcluster");
    remote = await env.remote();
  });
  afterAll(async () => {
    await env?.cleanup();
  });

  /** Neither here nor on the cluster (the same machine, as the cluster's user) did any value run. */
  async function expectNoCanary(): Promise<void> {
    expect(canary.traces(), "a hostile value was executed here").toEqual([]);
    const there = await remote.exec(["sh", "-c", 'ls -d /tmp/"$1"* 2>/dev/null; find "$HOME" -name "$1*" 2>/dev/null; true', "sh", path.basename(canary.path)]);
    expect(there.stdout, "a hostile value was executed on the cluster").toBe("");
  }
  afterEach(async () => {
    if (remote) await expectNoCanary();
  });

  /** The files under `rel` of a run directory on the cluster, in one transfer. */
  async function remoteFiles(remoteDir: string, pattern: string): Promise<Map<string, string>> {
    const got = await remote.getFiles(remoteDir, pattern, { maxFileBytes: 2 * MIB });
    return new Map([...got].map(([name, content]) => [name, Buffer.isBuffer(content) ? content.toString("utf8") : `<${content.error}>`]));
  }

  describe("values submitted with submit --wait", () => {
    let runId: string;
    let remoteDir: string;
    let state: StateJson;
    const fromSet = CONTEXT_VALUES.filter((h) => ["subst", "squote_break", "dquote_break", "sbatch_newline", "dash", "unicode", "empty"].includes(h.id));

    beforeAll(async () => {
      const keys = [...CONTEXT_VALUES.map((h) => `c_${h.id}`), ...fromSet.map((h) => `s_${h.id}`)];
      const dump = [
        'mkdir -p "$HPCPIPE_OUT_DIR/vals"',
        ...keys.map((k) => `printf '%s' "$${k}" > "$HPCPIPE_OUT_DIR/vals/${k}"`),
        // The same values on stdout, for `hpcpipe logs`.
        ...keys.map((k) => `printf '%s\\n--\\n' "$${k}"`),
      ].join("\n");
      const itemStep = (dir: string) => ({
        step: "item",
        requires: ["item"],
        run: `mkdir -p "$HPCPIPE_OUT_DIR/${dir}" && printf '%s|%s' "$item" "$HPCPIPE_ITEM" > "$HPCPIPE_OUT_DIR/${dir}/$HPCPIPE_TASK"`,
      });
      const spec = env.spec(
        "hostile",
        JSON.stringify(
          {
            name: "hostile",
            context: Object.fromEntries(CONTEXT_VALUES.map((h) => [`c_${h.id}`, h.value])),
            steps: [
              { step: "dump", requires: keys, run: dump },
              { map: "each", items: ITEMS.map((h) => h.value), as: "item", steps: [itemStep("items")] },
              { map: "packed", items: ITEMS.map((h) => h.value), as: "item", items_per_task: 4, steps: [itemStep("packed")] },
            ],
          },
          null,
          1,
        ),
      );
      const submitted = await cli("submit", spec, "--cluster", cluster, "--wait", "--json", ...fromSet.map((h) => `--set=s_${h.id}=${h.value}`));
      expect(submitted.code, submitted.stderr).toBe(0);
      runId = runIdFrom(submitted.stderr);
      state = JSON.parse(submitted.stdout) as StateJson;
      remoteDir = (await env.record(runId)).remote_dir;
    }, 240_000);

    it("every context value (spec and --set) arrives in the step's environment byte for byte", async () => {
      expect(state.success).toBe(true);
      const vals = await remoteFiles(remoteDir, "out/vals/*");
      for (const h of CONTEXT_VALUES) expect(vals.get(`out/vals/c_${h.id}`), h.id).toBe(h.value);
      for (const h of fromSet) expect(vals.get(`out/vals/s_${h.id}`), h.id).toBe(h.value);
    });

    it("every item arrives in its task byte for byte, packed and not; the merged result names each as it is", async () => {
      const items = await remoteFiles(remoteDir, "out/items/*");
      const packed = await remoteFiles(remoteDir, "out/packed/*");
      ITEMS.forEach((h, i) => {
        expect(items.get(`out/items/${i}`), h.id).toBe(`${h.value}|${h.value}`);
        expect(packed.get(`out/packed/${i}`), h.id).toBe(`${h.value}|${h.value}`);
        expect(state.step_states[`hostile.each.${i}`]?.meta.item, h.id).toBe(h.value);
      });
    });

    it("logs prints the step's output as it is; status and collect print safely (no raw control characters, nothing executed)", async () => {
      const logs = await cli("logs", runId, "dump");
      expect(logs.code, logs.stderr).toBe(0);
      const keys = [...CONTEXT_VALUES.map((h) => h.value), ...fromSet.map((h) => h.value)];
      expect(logs.stdout).toBe(keys.map((v) => `${v}\n--\n`).join(""));
      for (const args of [["status", runId], ["status", runId, "--json"], ["collect", runId], ["collect", runId, "--json"], ["runs"]]) {
        const out = await cli(...args);
        expect(out.code, `${args.join(" ")}: ${out.stderr}`).toBe(0);
        // eslint-disable-next-line no-control-regex
        expect(out.stdout + out.stderr, args.join(" ")).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/);
      }
      const collected = JSON.parse((await cli("collect", runId, "--json")).stdout) as StateJson;
      ITEMS.forEach((h, i) => expect(collected.step_states[`hostile.packed.${i}`]?.meta.item, h.id).toBe(h.value));
    });
  });

  describe("#SBATCH values read by the real sbatch", () => {
    /** `scontrol show job` of a job: the MailUser field as SLURM stored it. */
    async function mailUser(jobId: string): Promise<string> {
      const shown = await remote.exec(["scontrol", "show", "job", jobId]);
      expect(shown.code, shown.stderr).toBe(0);
      const m = /^ {3}MailUser=(.*) MailType=FAIL$/m.exec(shown.stdout);
      if (!m) throw new Error(`no MailUser in: ${shown.stdout}`);
      return m[1] ?? "";
    }

    it("every accepted extra option value is one argument to sbatch, stored exactly as given", async () => {
      const values = HOSTILE.filter((h) => h.value !== "" && h.value.length <= 400 && !CONTROL.test(h.value));
      const steps = values.map((h: HostileValue) => ({ step: `m_${h.id}`, run: "true", resources: { sbatch: ["--mail-type=FAIL", `--mail-user=${h.value}`] } }));
      const spec = env.spec("mailusers", JSON.stringify({ name: "mailusers", steps }, null, 1));
      const submitted = await cli("submit", spec, "--cluster", cluster);
      expect(submitted.code, submitted.stderr).toBe(0);
      const runId = runIdFrom(submitted.stdout);
      try {
        const record = await env.record(runId);
        const plan = await env.store().readPlan(runId);
        for (const job of plan.jobs) {
          const h = values.find((v) => job.steps[0] === `mailusers.m_${v.id}`);
          expect(h, job.id).toBeDefined();
          if (h) expect(await mailUser(record.jobs[job.id] ?? ""), h.id).toBe(h.value);
        }
        expect(plan.jobs).toHaveLength(values.length);
      } finally {
        await cli("cancel", runId);
      }
    });

    it("a hostile partition reaches sbatch as one value: SLURM refuses it by name, nothing runs (exit 75)", async () => {
      const subst = HOSTILE.find((h) => h.id === "subst") as HostileValue;
      const spec = env.spec("badpartition", JSON.stringify({ name: "badpartition", steps: [{ step: "s", run: "true", resources: { partition: subst.value } }] }));
      const submitted = await cli("submit", spec, "--cluster", cluster);
      expect(submitted.code, submitted.stderr).toBe(75);
      expect(submitted.stderr).toMatch(/invalid partition/i);
      expect(submitted.stderr).toContain("No job was submitted");
    });
  });

  describe("hostile state files planted on the cluster", () => {
    const STEPS = ["corrupt", "truncated", "huge", "schema", "mismatch", "other", "keylink", "passwd", "dangling", "fifo", "good"];

    it("collect fails each one's own step with a clear error, does not hang, and writes nothing outside the run's local directory", async () => {
      const spec = env.spec("planted", JSON.stringify({ name: "planted", steps: STEPS.map((s) => ({ step: s, run: `echo ${s}` })) }, null, 1));
      const submitted = await cli("submit", spec, "--cluster", cluster, "--wait");
      expect(submitted.code, submitted.stderr).toBe(0);
      const runId = runIdFrom(submitted.stderr);
      const record = await env.record(runId);
      const states = `${record.remote_dir}/states`;
      const good = (await remoteFiles(record.remote_dir, "states/planted.good.json")).get("states/planted.good.json") ?? "";
      const other = (await remoteFiles(record.remote_dir, "states/planted.other.json")).get("states/planted.other.json") ?? "";
      expect(JSON.parse(good)).toMatchObject({ success: true, key: "planted.good" });
      const plant = await remote.exec([
        "sh",
        "-c",
        [
          'cd -- "$1" || exit 1',
          "printf '{\"success\": tr' > planted.corrupt.json",
          'head -c 200 planted.good.json > planted.truncated.json',
          `{ printf '{"x":"'; head -c ${MIB + 10} /dev/zero | tr '\\0' a; printf '"}'; } > planted.huge.json`,
          "printf '{\"key\":\"planted.schema\",\"success\":\"yes\"}' > planted.schema.json",
          "cp planted.other.json planted.mismatch.json",
          'rm -f planted.keylink.json planted.passwd.json planted.dangling.json planted.fifo.json',
          'ln -s "$HOME/.ssh/authorized_keys" planted.keylink.json',
          "ln -s /etc/passwd planted.passwd.json",
          'ln -s "$HOME/.ssh/id_ed25519" planted.dangling.json',
          "mkfifo planted.fifo.json",
          "cp planted.good.json 'planted..escape.json'",
          "cp planted.good.json '..json'",
          `cp planted.good.json '$(touch ${path.basename(canary.path)}).json'`,
        ].join("\n"),
        "sh",
        remotePath(states),
      ]);
      expect(plant.code, plant.stderr).toBe(0);
      expect(other).not.toBe("");

      // Nothing may appear outside the run's local directory: not next to HPCPIPE_HOME, not in the working directory.
      const cwd = mkdtempSync(path.join(env.dir, "cwd-"));
      const before = { parent: fileTree(env.dir), cwd: fileTree(cwd) };
      const previous = process.cwd();
      process.chdir(cwd);
      let collected;
      try {
        collected = await cli("collect", runId, "--json");
      } finally {
        process.chdir(previous);
      }
      expect(collected.code, collected.stderr).toBe(4);
      const result = JSON.parse(collected.stdout) as StateJson;
      const error = (step: string): string => result.step_states[`planted.${step}`]?.error ?? "";
      expect(error("corrupt")).toMatch(/states\/planted\.corrupt\.json is unusable: not valid JSON/);
      expect(error("truncated")).toMatch(/states\/planted\.truncated\.json is unusable: not valid JSON/);
      expect(error("huge")).toMatch(/states\/planted\.huge\.json is unusable: .*(exceeds|over) .*1048576/);
      expect(error("schema")).toMatch(/states\/planted\.schema\.json is unusable: not a valid state file: .*success/);
      expect(error("mismatch")).toMatch(/states\/planted\.mismatch\.json is unusable: state file names key "planted\.other", not "planted\.mismatch"/);
      expect(error("keylink")).toMatch(/states\/planted\.keylink\.json is unusable: .*symbolic link.*not a regular file/);
      expect(error("passwd")).toMatch(/states\/planted\.passwd\.json is unusable: .*symbolic link to "\/etc\/passwd", not a regular file/);
      expect(error("dangling")).toMatch(/states\/planted\.dangling\.json is unusable: .*symbolic link/);
      expect(error("fifo")).toMatch(/states\/planted\.fifo\.json is unusable: .*not a regular file/);
      for (const s of ["corrupt", "truncated", "huge", "schema", "mismatch", "keylink", "passwd", "dangling", "fifo"]) {
        expect(result.step_states[`planted.${s}`]?.success, s).toBe(false);
      }
      expect(result.step_states["planted.good"]?.success).toBe(true);
      expect(result.step_states["planted.other"]?.success).toBe(true);
      // Names that are no step's are reported, attributed to no step, and never used as paths.
      const stray = (result.meta.state_problems ?? []) as Array<{ file: string; error: string }>;
      expect(stray.map((p) => p.file).sort()).toEqual([`$(touch ${path.basename(canary.path)}).json`, "planted..escape.json"].sort());
      expect(collected.stderr).toContain("unusable state file planted.fifo.json");
      // No secret content came back in any message.
      expect(collected.stdout + collected.stderr).not.toContain("root:x:0:0");
      expect(collected.stdout + collected.stderr).not.toContain(readFileSync(`${env.facts.identityFile}.pub`, "utf8").split(" ")[1] ?? "x");

      const after = { parent: fileTree(env.dir), cwd: fileTree(cwd) };
      expect(after.cwd).toEqual(before.cwd);
      const added = after.parent.filter((p) => !before.parent.includes(p));
      expect(added.every((p) => p.startsWith(`home/runs/${runId}/`)), added.join(", ")).toBe(true);
      expect(statSync(path.join(env.home, "runs", runId, "result.json")).mode & 0o777).toBe(0o600);
    });
  });

  describe("host keys at the command line", () => {
    const spec = (): string => env.spec("hostkeys", "name: hostkeys\nsteps:\n  - step: s\n    run: \"true\"\n");

    it("a known_hosts file that group or others can write is refused (exit 69), naming the file and its mode, even with --accept-new-host-key", async () => {
      const file = path.join(env.dir, "loose_known_hosts");
      writeFileSync(file, readFileSync(env.facts.knownHostsFile));
      execFileSync("chmod", ["666", file]);
      const config = env.config("loose", { known_hosts: file });
      const before = readFileSync(file, "utf8");
      for (const extra of [[], ["--accept-new-host-key"]]) {
        const refused = await cli("submit", spec(), "--cluster", config, ...extra);
        expect(refused.code, refused.stderr).toBe(69);
        expect(refused.stderr).toContain(`${file} has mode 666: it is writable by group or others`);
        expect(refused.stderr).toContain(`chmod go-w ${file}`);
      }
      expect(readFileSync(file, "utf8")).toBe(before);
    });

    it("a changed host key is refused (exit 69) with the presented and the recorded fingerprints, even with --accept-new-host-key; known_hosts is left as it was", async () => {
      const other = path.join(env.dir, "other_host_key");
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", other]);
      const otherLine = readFileSync(`${other}.pub`, "utf8").trim();
      const file = path.join(env.dir, "changed_known_hosts");
      writeFileSync(file, `[${env.facts.host}]:${env.facts.port} ${otherLine}\n`, { mode: 0o600 });
      const config = env.config("changed", { known_hosts: file });
      const refused = await cli("submit", spec(), "--cluster", config, "--accept-new-host-key");
      expect(refused.code, refused.stderr).toBe(69);
      expect(refused.stderr).toContain("HOST KEY CHANGED");
      expect(refused.stderr).toContain(env.facts.hostKeyFingerprint);
      expect(refused.stderr).toContain(fingerprintSha256(Buffer.from(otherLine.split(" ")[1] ?? "", "base64")));
      expect(readFileSync(file, "utf8")).toBe(`[${env.facts.host}]:${env.facts.port} ${otherLine}\n`);
    });
  });
});
