// `hpcpipe connect` against a real sshd that asks for a key AND a TOTP code (scripts/cluster/otp-sshd.sh,
// same test user and SLURM cluster as the shared sshd): one code, then every command rides on the
// holder's login. The CLI runs as real child processes (compiled by test/support/build-cli.ts) without
// a terminal, so a command that could not use the holder would fail for want of a code.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SshTransport } from "../../src/transport/index.js";
import type { SshConnectOptions, SshTransport as Transport } from "../../src/transport/index.js";
import { FaultProxy } from "../faults/proxy.js";
import { buildCli } from "../support/build-cli.js";
import { ensureOtpSshd, freshCode, wrongCode, type OtpFacts } from "../support/otp-sshd.js";
import { e2eSkipped, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

const OTHER_USER = "hpcpipe-other";

describe.skipIf(e2eSkipped)("one login with a one-time code shared by many commands (hpcpipe connect)", { timeout: 180_000 }, () => {
  let env: WorkflowEnv;
  let facts: OtpFacts;
  let plain: Transport;
  let buildDir: string;
  let main: string;
  let socketDir: string;
  let cluster: string;

  beforeAll(async () => {
    facts = await ensureOtpSshd();
    env = workflowEnv("otp");
    plain = await env.remote();
    buildDir = mkdtempSync(path.join(tmpdir(), "hpcpipe-otp-cli-"));
    // Bundled as `npm run build` bundles it: the holder program must be found outside the bundle.
    main = await buildCli(buildDir, { bundle: true });
    // Short and private: the holder's socket lives here (HPCPIPE_SOCKET_DIR), created by `connect`.
    socketDir = path.join(mkdtempSync("/tmp/hp-"), "s");
    cluster = path.join(env.dir, "otp.yaml");
    writeFileSync(
      cluster,
      [
        "name: otp",
        "executor: slurm",
        "connection:",
        `  host: ${facts.host}`,
        `  port: ${facts.port}`,
        `  user: ${facts.user}`,
        `  identity_file: ${facts.identityFile}`,
        `  known_hosts: ${facts.knownHostsFile}`,
        "  connect_timeout_s: 20",
        `workdir: ${env.workdir}`,
        `partition: ${env.facts.partition}`,
        "",
      ].join("\n"),
    );
  }, 400_000);

  afterAll(async () => {
    if (main) await hpcpipe(["disconnect", cluster]).catch(() => undefined);
    await env?.cleanup();
    if (buildDir) rmSync(buildDir, { recursive: true, force: true });
    if (socketDir) rmSync(path.dirname(socketDir), { recursive: true, force: true });
  });

  /** The CLI with no terminal; `code` is put in HPCPIPE_SSH_OTP when given (else there is no way to give one). */
  function hpcpipe(args: string[], code?: string): Promise<Exit> {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, HPCPIPE_HOME: env.home, HPCPIPE_SOCKET_DIR: socketDir };
    delete childEnv.HPCPIPE_SSH_OTP;
    if (code !== undefined) childEnv.HPCPIPE_SSH_OTP = code;
    const child = spawn(process.execPath, [main, ...args], { cwd: env.dir, env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    return new Promise((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (code) => resolve({ code, stdout, stderr }));
    });
  }

  /** Library options for the same login target, with no way to give a code: only the holder can serve them. */
  function holderOptions(): SshConnectOptions {
    return { host: facts.host, port: facts.port, user: facts.user, knownHostsFile: facts.knownHostsFile, identityFile: facts.identityFile, prompter: null, env: { HOME: "/root", HPCPIPE_SOCKET_DIR: socketDir } };
  }

  function holderPid(): number {
    const status = execFileSync(process.execPath, [main, "connect", cluster, "--status"], { env: { ...process.env, HPCPIPE_SOCKET_DIR: socketDir }, encoding: "utf8" });
    const pid = Number(/holder pid (\d+)/.exec(status)?.[1]);
    if (!Number.isInteger(pid)) throw new Error(`no holder: ${status}`);
    return pid;
  }

  const spec = (name: string, step = "hello"): string => env.spec(name, [`name: ${name}`, "steps:", `  - step: ${step}`, "    run: echo hello from the two-factor login", ""].join("\n"));

  it("one code serves connect, submit, status, logs, collect and pull; commands with no code of their own ride on the holder", async () => {
    const connected = await hpcpipe(["connect", cluster, "--persist", "10m", "--max-channels", "2"], await freshCode(facts));
    expect(connected.code, connected.stderr).toBe(0);
    expect(connected.stdout).toContain(`connected to ${facts.user}@${facts.host}:${facts.port}`);

    const twofa = env.spec("twofa", ["name: twofa", "steps:", "  - step: hello", "    run: |", "      echo hello from the two-factor login", "      mkdir -p out && printf 'made behind a one-time code\\n' > out/greeting.txt", "    outputs: [out/greeting.txt]", ""].join("\n"));
    const submitted = await hpcpipe(["submit", twofa, "--cluster", cluster, "--wait"]);
    expect(submitted.code, submitted.stderr).toBe(0);
    const runId = /\brun (\d{8}-\d{6}-[0-9a-f]+)/.exec(submitted.stdout + submitted.stderr)?.[1] ?? "";
    expect(runId).not.toBe("");
    const status = await hpcpipe(["status", runId]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain("finished: ok");
    const logs = await hpcpipe(["logs", runId, "hello"]);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toContain("hello from the two-factor login");
    const collected = await hpcpipe(["collect", runId]);
    expect(collected.code, collected.stderr).toBe(0);
    expect(collected.stdout).toContain("result: ok");
    const to = path.join(env.dir, "pulled");
    const pulled = await hpcpipe(["pull", runId, "--to", to]);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(readFileSync(path.join(to, "out/greeting.txt"), "utf8")).toBe("made behind a one-time code\n");

    const again = await hpcpipe(["connect", cluster]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/already connected .*no new login was needed/);
    expect(Number(/(\d+) command\(s\) served/.exec(again.stdout)?.[1])).toBeGreaterThanOrEqual(5);
  });

  it("commands sharing the holder stay within its channel cap (--max-channels 2)", async () => {
    const transport = await SshTransport.connect(holderOptions());
    try {
      expect(transport.usesHolder).toBe(true);
      const dir = `/tmp/hpcpipe-cap-${process.pid}`;
      await transport.exec(["mkdir", "-p", dir]);
      // Each command counts the commands running beside it (itself included) while it sleeps.
      const script = `cd ${dir} && touch "run.$$" && ls run.* | wc -l > "seen.$$" && sleep 0.6 && rm -f "run.$$"`;
      await Promise.all(Array.from({ length: 6 }, () => transport.exec(["bash", "-c", script])));
      const seen = (await transport.exec(["bash", "-c", `cat ${dir}/seen.* && rm -rf ${dir}`])).stdout.trim().split("\n").map(Number);
      expect(seen).toHaveLength(6);
      expect(Math.max(...seen)).toBeLessThanOrEqual(2);
    } finally {
      await transport.close();
    }
  });

  it("another local user cannot use the socket: the directory is the user's own, mode 700, and the socket 600", () => {
    const socket = holderSocket();
    expect(lstatSync(socketDir).mode & 0o777).toBe(0o700);
    expect(lstatSync(socket).mode & 0o777).toBe(0o600);
    try {
      execFileSync("id", [OTHER_USER], { stdio: "ignore" });
    } catch {
      execFileSync("useradd", ["--no-create-home", "--shell", "/usr/sbin/nologin", OTHER_USER]);
    }
    const probe = `require("net").connect(${JSON.stringify(socket)}).on("connect",()=>{console.log("CONNECTED");process.exit(0)}).on("error",(e)=>{console.log(e.code);process.exit(3)})`;
    let output = "";
    let exit = 0;
    try {
      output = execFileSync("runuser", ["-u", OTHER_USER, "--", process.execPath, "-e", probe], { encoding: "utf8", cwd: "/" });
    } catch (error) {
      const e = error as { status: number; stdout: string };
      exit = e.status;
      output = e.stdout;
    }
    expect(output.trim()).toBe("EACCES");
    expect(exit).toBe(3);
  });

  function holderSocket(): string {
    const status = execFileSync(process.execPath, [main, "connect", cluster, "--status"], { env: { ...process.env, HPCPIPE_SOCKET_DIR: socketDir }, encoding: "utf8" });
    expect(status).toContain("connected to");
    const sockets = execFileSync("ls", [socketDir], { encoding: "utf8" }).split("\n").filter((f) => f.endsWith(".sock"));
    expect(sockets).toHaveLength(1);
    return path.join(socketDir, sockets[0] ?? "");
  }

  it("a killed holder leaves nothing that blocks the next connect; a command meanwhile says a new code is needed", async () => {
    const socket = holderSocket();
    const riding = await SshTransport.connect({ ...holderOptions(), reconnect: { tries: 1, baseDelayMs: 10 } });
    expect(riding.usesHolder).toBe(true);
    expect((await riding.exec(["echo", "via holder"])).stdout).toBe("via holder\n");
    process.kill(holderPid(), "SIGKILL");
    await new Promise((r) => setTimeout(r, 300));
    expect(existsSync(socket)).toBe(true); // the stale socket is still there...

    // The command that was using it must log in again, which needs a new code: it says so.
    const lost = await riding.exec(["echo", "again"], { retrySafe: true }).catch((e: unknown) => e);
    await riding.close();
    expect(String(lost)).toMatch(/asks for a one-time code \(keyboard-interactive login\) because the connection holder \(hpcpipe connect\) ended/);

    const without = await hpcpipe(["runs"]);
    expect(without.code).toBe(0);
    const status = await hpcpipe(["connect", cluster, "--status"]);
    expect(status.stdout).toContain("not connected");
    const submit = await hpcpipe(["submit", spec("nocode"), "--cluster", cluster]);
    expect(submit.code).toBe(69);
    expect(submit.stderr).toContain("asks for a one-time code");
    expect(submit.stderr).toContain("HPCPIPE_SSH_OTP=<code>");

    const reconnected = await hpcpipe(["connect", cluster, "--persist", "10m"], await freshCode(facts));
    expect(reconnected.code, reconnected.stderr).toBe(0); // ...and does not stand in the way
    expect(reconnected.stdout).toContain("connected to");
    const disconnected = await hpcpipe(["disconnect", cluster]);
    expect(disconnected.stdout).toContain("disconnected from cluster otp");
    expect(existsSync(socket)).toBe(false);
  });

  it("when the holder's own SSH connection drops, the holder ends and removes its socket; its users are told a new code is needed", async () => {
    // The holder reaches the sshd through a TCP proxy that can cut the connection.
    const proxy = await FaultProxy.start({ host: facts.host, port: facts.port });
    try {
      const knownHosts = path.join(env.dir, "proxy_known_hosts");
      writeFileSync(knownHosts, readFileSync(facts.knownHostsFile, "utf8").replace(`[${facts.host}]:${facts.port} `, `[127.0.0.1]:${proxy.port} `));
      const proxied = path.join(env.dir, "proxied.yaml");
      writeFileSync(proxied, readFileSync(cluster, "utf8").replace("name: otp", "name: proxied").replace(`port: ${facts.port}`, `port: ${proxy.port}`).replace(facts.knownHostsFile, knownHosts));
      const connected = await hpcpipe(["connect", proxied, "--persist", "5m"], await freshCode(facts));
      expect(connected.code, connected.stderr).toBe(0);
      const logFile = /log: (\S+)/.exec(connected.stdout)?.[1] ?? "";
      const options: SshConnectOptions = { ...holderOptions(), port: proxy.port, knownHostsFile: knownHosts, reconnect: { tries: 1, baseDelayMs: 10 } };
      const riding = await SshTransport.connect(options);
      expect(riding.usesHolder).toBe(true);
      expect((await riding.exec(["echo", "before the drop"])).stdout).toBe("before the drop\n");

      expect(proxy.cut()).toBe(1);
      for (let i = 0; i < 50 && (await hpcpipe(["connect", proxied, "--status"])).stdout.startsWith("connected"); i++) await new Promise((r) => setTimeout(r, 100));
      expect((await hpcpipe(["connect", proxied, "--status"])).stdout).toContain("not connected");
      expect(readFileSync(logFile, "utf8")).toContain("ended: the SSH connection dropped");

      const lost = await riding.exec(["echo", "after"], { retrySafe: true }).catch((e: unknown) => e);
      await riding.close();
      expect(String(lost)).toMatch(/asks for a one-time code \(keyboard-interactive login\) because the connection holder \(hpcpipe connect\) ended/);
    } finally {
      await proxy.close();
    }
  });

  it("on a terminal, the server's question is shown naming the host, the code typed is not echoed, and the login is kept", async () => {
    // A real pseudo-terminal (util-linux `script`): the CLI sees a TTY on stdin and stderr.
    const childEnv: NodeJS.ProcessEnv = { ...process.env, HPCPIPE_HOME: env.home, HPCPIPE_SOCKET_DIR: socketDir };
    delete childEnv.HPCPIPE_SSH_OTP;
    const command = [process.execPath, main, "connect", cluster, "--persist", "2s"].map((w) => `'${w}'`).join(" ");
    const child = spawn("script", ["-qfec", command, "/dev/null"], { env: childEnv, stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    const code = await freshCode(facts);
    let typed = false;
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (!typed && /One-time password[^\n]*: ?$/.test(output)) {
        typed = true;
        child.stdin.write(`${code}\r`);
      }
    });
    const exit = await new Promise<number | null>((resolve) => child.once("close", resolve));
    expect(output).toContain(`Login to ${facts.user}@${facts.host}:${facts.port}`);
    expect(output).toContain(`[${facts.user}@${facts.host}:${facts.port}] One-time password`);
    expect(output).not.toContain(code);
    expect(output).toContain("connected to");
    expect(exit).toBe(0);

    // --persist 2s: with no command using it, the holder ends by itself and removes its socket.
    const socket = holderSocket();
    await new Promise((r) => setTimeout(r, 3_500));
    expect(existsSync(socket)).toBe(false);
    expect((await hpcpipe(["connect", cluster, "--status"])).stdout).toContain("not connected");
  });

  it("a jump host that asks for its own code gets it from HPCPIPE_SSH_OTP_JUMP, and the holder keeps the login through it", async () => {
    // Target: the shared key-only sshd; jump host: the key + TOTP sshd. One known_hosts for both.
    const knownHosts = path.join(env.dir, "both_known_hosts");
    writeFileSync(knownHosts, readFileSync(env.facts.knownHostsFile, "utf8") + readFileSync(facts.knownHostsFile, "utf8"));
    const jumpCluster = path.join(env.dir, "viajump.yaml");
    writeFileSync(
      jumpCluster,
      [
        "name: viajump",
        "executor: slurm",
        "connection:",
        `  host: ${env.facts.host}`,
        `  port: ${env.facts.port}`,
        `  user: ${env.facts.user}`,
        `  identity_file: ${env.facts.identityFile}`,
        `  known_hosts: ${knownHosts}`,
        "  jump:",
        `    host: ${facts.host}`,
        `    port: ${facts.port}`,
        `    user: ${facts.user}`,
        `    identity_file: ${facts.identityFile}`,
        `workdir: ${env.workdir}`,
        "",
      ].join("\n"),
    );
    const withoutCode = await hpcpipe(["connect", jumpCluster]);
    expect(withoutCode.code).toBe(69);
    expect(withoutCode.stderr).toContain(`the jump host ${facts.user}@${facts.host}:${facts.port} asks for a one-time code`);
    expect(withoutCode.stderr).toContain("HPCPIPE_SSH_OTP_JUMP=<code>");

    const childEnv: NodeJS.ProcessEnv = { ...process.env, HPCPIPE_SOCKET_DIR: socketDir, HPCPIPE_SSH_OTP_JUMP: await freshCode(facts) };
    delete childEnv.HPCPIPE_SSH_OTP;
    const connected = execFileSync(process.execPath, [main, "connect", jumpCluster, "--persist", "1m"], { env: childEnv, encoding: "utf8" });
    expect(connected).toContain(`connected to ${facts.user}@${facts.host}:${facts.port} -> ${env.facts.user}@${env.facts.host}:${env.facts.port}`);
    const via = await SshTransport.connect({
      host: env.facts.host,
      port: env.facts.port,
      user: env.facts.user,
      identityFile: env.facts.identityFile,
      knownHostsFile: knownHosts,
      prompter: null,
      env: { HOME: "/root", HPCPIPE_SOCKET_DIR: socketDir },
      jump: { host: facts.host, port: facts.port, user: facts.user, identityFile: facts.identityFile, knownHostsFile: knownHosts },
    });
    try {
      expect(via.usesHolder).toBe(true);
      expect((await via.exec(["echo", "through the jump"])).stdout).toBe("through the jump\n");
    } finally {
      await via.close();
    }
    expect((await hpcpipe(["disconnect", jumpCluster])).stdout).toContain("disconnected from cluster viajump");
  });

  it("a wrong code gives a clear error, and nothing is submitted", async () => {
    const code = wrongCode(facts);
    const connect = await hpcpipe(["connect", cluster], code);
    expect(connect.code).toBe(69);
    expect(connect.stderr).toContain("the key was accepted, then the server refused the code from HPCPIPE_SSH_OTP");
    expect(connect.stderr).not.toContain(code);
    expect((await hpcpipe(["connect", cluster, "--status"])).stdout).toContain("not connected");

    const submit = await hpcpipe(["submit", spec("wrongcode", "never_submitted"), "--cluster", cluster], wrongCode(facts));
    expect(submit.code).toBe(69);
    expect(submit.stderr).toContain("refused the code from HPCPIPE_SSH_OTP");
    // No run directory was uploaded, and no job of that step exists (job names end with the step's name).
    const remote = await plain.exec(["bash", "-c", `ls -d ${env.workdir}/wrongcode 2>/dev/null; { squeue -h -u ${env.facts.user} -o %j; sacct -X -n -P -S now-1hours -o JobName; } | grep -c never_submitted; true`]);
    expect(remote.stdout.trim()).toBe("0");
  });
});
