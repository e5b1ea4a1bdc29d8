import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { checkResources, ConfigError, gpusRequested, memoryToMb, parseClusterConfig, splitWorkdir, toCompileTarget } from "../../src/cluster/config.js";
import type { ClusterConfig } from "../../src/cluster/config.js";
import { findClusterConfig, listClusterConfigs, loadClusterConfig } from "../../src/cluster/load.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "hpcpipe-cluster-test-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

function configErrorOf(yaml: string): ConfigError {
  const file = write("bad.yaml", yaml);
  try {
    loadClusterConfig(file);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const e = err as ConfigError;
    expect(e.file).toBe(file);
    expect(e.message.startsWith(file)).toBe(true);
    return e;
  }
  throw new Error("expected a ConfigError");
}

const SLURM_HEAD = "name: c\nexecutor: slurm\nconnection:\n  host: login.example.org\n  user: me\n";

describe("the shipped cluster configs", () => {
  it("local loads as a local executor with a relative work directory", () => {
    const c = loadClusterConfig("local");
    expect(c.executor).toBe("local");
    expect(c.connection).toBeUndefined();
    expect(c.workdir).toBe(".hpcpipe/runs");
    expect(c.source).toBe(resolve("cluster-configs/local.yaml"));
  });

  it("localcluster loads as the test cluster on 127.0.0.1:2222", () => {
    const c = loadClusterConfig("localcluster");
    expect(c.executor).toBe("slurm");
    expect(c.connection).toMatchObject({
      host: "127.0.0.1",
      port: 2222,
      user: "hpctest",
      identity_file: "/var/lib/hpcpipe-testcluster/id_ed25519",
      known_hosts: "/var/lib/hpcpipe-testcluster/known_hosts",
      login_shell: false,
    });
    expect(c.workdir).toBe("$HOME/hpcpipe-runs");
    expect(c.max_array_size).toBe(1001);
    expect(c.partition).toBe("debug");
  });

  it("example-university loads with a jump host, a GPU partition, an account, modules and $SCRATCH", () => {
    const c = loadClusterConfig("example-university");
    expect(c.connection?.jump?.host).toBe("bastion.hpc.example.edu");
    expect(c.connection?.identity_file).toBe(join(homedir(), ".ssh/id_ed25519"));
    expect(c.connection?.login_shell).toBe(true);
    expect(c.partitions.gpu).toMatchObject({ max_gpus: 4, max_time: "2-00:00:00" });
    expect(c.account).toBe("proj-graphics-2026");
    expect(c.modules).toContain("blender/3.4");
    expect(c.workdir).toBe("$SCRATCH/hpcpipe-runs");
  });

  it("are all listed by name", () => {
    expect(listClusterConfigs()).toEqual(expect.arrayContaining(["local", "localcluster", "example-university"]));
  });

  it("turn into a compile target with the cluster's defaults", () => {
    const t = toCompileTarget(loadClusterConfig("example-university"));
    expect(t).toMatchObject({ name: "example-university", maxArraySize: 1001, arrayThrottle: 200, signalGraceS: 120 });
    expect(t.defaults).toEqual({ partition: "cpu", account: "proj-graphics-2026", qos: "normal" });
  });
});

describe("finding a cluster config", () => {
  it("looks a bare name up in the search directories in order", () => {
    write("mine.yaml", "executor: local\n");
    const other = mkdtempSync(join(tmpdir(), "hpcpipe-cluster-test-"));
    try {
      writeFileSync(join(other, "mine.yaml"), "executor: slurm\n");
      expect(findClusterConfig("mine", { searchDirs: [dir, other] })).toBe(join(dir, "mine.yaml"));
      const c = loadClusterConfig("mine", { searchDirs: [dir, other] });
      expect(c.name).toBe("mine");
      expect(c.workdir).toBe(".hpcpipe/runs");
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it("names the directories searched and the configs available when a name is unknown", () => {
    write("known.yaml", "executor: local\n");
    expect(() => loadClusterConfig("nope", { searchDirs: [dir] })).toThrow(ConfigError);
    expect(() => loadClusterConfig("nope", { searchDirs: [dir] })).toThrow(`no cluster config named 'nope' in ${dir}; available: known`);
  });

  it("loads a path as given", () => {
    const file = write("x.yml", "executor: local\nname: xx\n");
    expect(loadClusterConfig(file).name).toBe("xx");
  });
});

describe("a malformed cluster config names the file and the field", () => {
  it("refuses an unknown key", () => {
    const e = configErrorOf(`${SLURM_HEAD}partiton: debug\n`);
    expect(e.path).toBe("partiton");
    expect(e.expected).toMatch(/unknown key "partiton"; allowed keys: name, executor, connection/);
    expect(e.location).toEqual({ line: 6, column: 1 });
  });

  it("refuses an unknown executor", () => {
    expect(configErrorOf("executor: pbs\n").message).toMatch(/bad\.yaml:1:1: executor: expected one of "slurm", "local"$/);
  });

  it("refuses slurm without a connection", () => {
    const e = configErrorOf("executor: slurm\n");
    expect(e.path).toBe("connection");
    expect(e.expected).toMatch(/expected a connection/);
  });

  it("refuses a port of the wrong type", () => {
    const e = configErrorOf(`${SLURM_HEAD}  port: "22"\n`);
    expect(e.path).toBe("connection.port");
    expect(e.expected).toBe('expected a number, got the string "22"');
  });

  it("refuses a host with shell characters", () => {
    expect(configErrorOf("executor: slurm\nconnection:\n  host: a;b\n").path).toBe("connection.host");
  });

  it("refuses an unknown key in the jump host", () => {
    expect(configErrorOf(`${SLURM_HEAD}  jump: { host: b, hops: 2 }\n`).path).toBe("connection.jump.hops");
  });

  it("refuses a work directory with another variable, a relative one for slurm, and '..'", () => {
    expect(configErrorOf(`${SLURM_HEAD}workdir: $WORK/runs\n`).path).toBe("workdir");
    expect(configErrorOf(`${SLURM_HEAD}workdir: runs\n`).expected).toMatch(/absolute path or one starting with \$HOME or \$SCRATCH/);
    expect(configErrorOf(`${SLURM_HEAD}workdir: $HOME/../x\n`).expected).toBe("must not contain '..'");
    expect(configErrorOf(`${SLURM_HEAD}workdir: $HOMEX\n`).expected).toBe("expected '/' after $HOME");
    expect(configErrorOf(`${SLURM_HEAD}workdir: "$HOME/a b"\n`).path).toBe("workdir");
  });

  it("refuses bad partition limits", () => {
    const e = configErrorOf(`${SLURM_HEAD}partitions:\n  gpu: { max_time: forever, max_gpus: -1 }\n`);
    expect(e.problems.map((p) => p.path)).toEqual(["partitions.gpu.max_time", "partitions.gpu.max_gpus"]);
  });

  it("refuses a partition name with a space", () => {
    const e = configErrorOf(`${SLURM_HEAD}partitions:\n  "bad name": {}\n`);
    expect(e.path).toBe('partitions["bad name"]');
    expect(e.expected).toMatch(/invalid key: expected a partition name/);
  });

  it("refuses a default partition not among the listed ones", () => {
    expect(configErrorOf(`${SLURM_HEAD}partition: big\npartitions: { small: {} }\n`).path).toBe("partition");
  });

  it("refuses a module name with shell characters and a setup line with a newline", () => {
    expect(configErrorOf(`${SLURM_HEAD}modules: ["blender; rm -rf ~"]\n`).path).toBe("modules[0]");
    expect(configErrorOf(`${SLURM_HEAD}setup: ["a\\nb"]\n`).path).toBe("setup[0]");
  });

  it("refuses an sbatch option that is not --name[=value] and a newline in the account", () => {
    expect(configErrorOf(`${SLURM_HEAD}sbatch_options: ["-p debug"]\n`).path).toBe("sbatch_options[0]");
    expect(configErrorOf(`${SLURM_HEAD}account: "a\\n#SBATCH --x"\n`).path).toBe("account");
  });

  it("refuses a YAML syntax error with its line", () => {
    expect(configErrorOf("executor: [local\n").message).toMatch(/bad\.yaml:\d+:\d+: YAML syntax error/);
  });

  it("refuses a connection for the local executor", () => {
    expect(configErrorOf("executor: local\nconnection: { host: x }\n").path).toBe("connection");
  });
});

describe("checking a step's resources against the partition limits", () => {
  const config: ClusterConfig = parseClusterConfig(
    {
      executor: "slurm",
      connection: { host: "h" },
      partition: "cpu",
      partitions: { cpu: { max_cpus: 32, max_mem: "64G", max_time: "1-00:00:00", max_gpus: 0 }, gpu: { max_gpus: 4, max_mem: "512G" } },
    },
    "c.yaml",
  );

  it("accepts a request within the limits", () => {
    expect(checkResources(config, { cpus: 32, mem: "64G", time: "24:00:00" }, "p.s")).toEqual([]);
    expect(checkResources(config, { partition: "gpu", gpus: 4 }, "p.s")).toEqual([]);
  });

  it("names the step, what it asks for and what the partition allows", () => {
    expect(checkResources(config, { partition: "gpu", gpus: 8 }, "thumbs.render_depth")).toEqual(["step thumbs.render_depth asks for 8 GPUs; partition gpu allows 4"]);
    expect(checkResources(config, { cpus: 64, mem: "65G", time: "2-00:00:00", gpus: 1 }, "p.s")).toEqual([
      "step p.s asks for 64 CPUs; partition cpu allows 32",
      "step p.s asks for 1 GPU; partition cpu allows 0",
      "step p.s asks for 65G of memory; partition cpu allows 64G",
      "step p.s asks for a time limit of 2-00:00:00; partition cpu allows 1-00:00:00",
    ]);
  });

  it("counts GPUs asked for through gres", () => {
    expect(checkResources(config, { partition: "gpu", gres: "gpu:a100:6" }, "p.s")).toEqual(["step p.s asks for 6 GPUs; partition gpu allows 4"]);
    expect(gpusRequested({ gres: "gpu:2,tmp:10G" })).toBe(2);
    expect(gpusRequested({ gres: "gpu" })).toBe(1);
  });

  it("refuses a partition the config does not list", () => {
    expect(checkResources(config, { partition: "huge" }, "p.s")).toEqual(["step p.s asks for partition 'huge', which cluster config c does not list (it lists cpu, gpu)"]);
  });

  it("checks nothing when neither the step nor the config names a partition", () => {
    const bare = parseClusterConfig({ executor: "local" }, "l.yaml");
    expect(checkResources(bare, { cpus: 1000, gpus: 99 }, "p.s")).toEqual([]);
  });

  it("reads memory amounts and work directories", () => {
    expect(memoryToMb("2G")).toBe(2048);
    expect(memoryToMb("4000")).toBe(4000);
    expect(memoryToMb("1T")).toBe(1024 * 1024);
    expect(splitWorkdir("$SCRATCH/runs")).toEqual({ base: "$SCRATCH", rest: "/runs" });
    expect(splitWorkdir("/abs/runs")).toEqual({ base: null, rest: "/abs/runs" });
  });
});
