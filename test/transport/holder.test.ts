// The connection holder's local guards and wire format, on the real filesystem (no network):
// the socket directory must be the user's own, mode 700 and not a symlink; socket paths must fit.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { encodeFrame, Frame, FrameReader } from "../../src/transport/holder/protocol.js";
import { checkHolderDir, dirProblem, ensureHolderDir, holderDir, holderKey, HolderDirError, socketPathFor } from "../../src/transport/holder/socket-dir.js";
import { parseClusterConfig } from "../../src/cluster/index.js";
import { sshOptionsOf } from "../../src/app/connect.js";
import { parseDuration } from "../../cli/commands/connect.js";

describe("the connection-holder directory", () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), "hpcpipe-holder-dir-"));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it("is created with mode 700 when missing, and then accepted", async () => {
    const dir = path.join(root, "sock");
    await ensureHolderDir(dir);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    await expect(checkHolderDir(dir)).resolves.toBeUndefined();
  });

  it("is refused when group or others may enter it, naming the mode and the fix", async () => {
    const dir = path.join(root, "open");
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    await expect(ensureHolderDir(dir)).rejects.toThrow(/its mode is 755; it must be 700.*HPCPIPE_SOCKET_DIR/s);
  });

  it("is refused when it is a symbolic link, even to a safe directory", async () => {
    const real = path.join(root, "real");
    mkdirSync(real, { mode: 0o700 });
    const link = path.join(root, "link");
    symlinkSync(real, link);
    expect(await dirProblem(link)).toBe("it is a symbolic link");
    await expect(ensureHolderDir(link)).rejects.toBeInstanceOf(HolderDirError);
  });

  it("is refused when it is a file", async () => {
    const file = path.join(root, "file");
    writeFileSync(file, "");
    expect(await dirProblem(file)).toBe("it is not a directory");
  });

  it("defaults to $XDG_RUNTIME_DIR/hpcpipe, else /tmp/hpcpipe-<uid>; HPCPIPE_SOCKET_DIR overrides both", () => {
    expect(holderDir({ XDG_RUNTIME_DIR: "/run/user/1000" })).toBe("/run/user/1000/hpcpipe");
    expect(holderDir({})).toBe(`/tmp/hpcpipe-${process.getuid?.() ?? 0}`);
    expect(holderDir({ XDG_RUNTIME_DIR: "/run/user/1000", HPCPIPE_SOCKET_DIR: "/x/y" })).toBe("/x/y");
  });

  it("gives one short socket per login target, and refuses a path too long for a unix socket", () => {
    const a = socketPathFor("/tmp/hpcpipe-0", ["u@a:22"]);
    expect(a).toMatch(/^\/tmp\/hpcpipe-0\/[0-9a-f]{16}\.sock$/);
    expect(socketPathFor("/tmp/hpcpipe-0", ["j@bastion:22", "u@a:22"])).not.toBe(a);
    expect(holderKey(["u@a:22"])).toBe(holderKey(["u@a:22"]));
    expect(() => socketPathFor(`/tmp/${"d".repeat(90)}`, ["u@a:22"])).toThrow(/longer than 104 bytes.*HPCPIPE_SOCKET_DIR/);
  });
});

describe("the holder's frames", () => {
  it("come back whole and in order however the byte stream is cut", () => {
    const bytes = Buffer.concat([encodeFrame(Frame.HELLO, { version: 1, target: ["u@h:22"] }), encodeFrame(Frame.STDIN, Buffer.from("abc")), encodeFrame(Frame.STDIN_EOF)]);
    for (const cut of [1, 2, 5, 7, bytes.length]) {
      const reader = new FrameReader();
      const frames = [];
      for (let at = 0; at < bytes.length; at += cut) frames.push(...reader.push(bytes.subarray(at, at + cut)));
      expect(frames.map((f) => f.type)).toEqual([Frame.HELLO, Frame.STDIN, Frame.STDIN_EOF]);
      expect(frames[1]?.payload.toString()).toBe("abc");
    }
  });

  it("refuse a frame longer than the limit", () => {
    const head = Buffer.alloc(5);
    head.writeUInt8(Frame.STDIN, 0);
    head.writeUInt32BE(64 * 1024 * 1024, 1);
    expect(() => new FrameReader().push(head)).toThrow(/larger than/);
  });
});

describe("one-time code settings", () => {
  const base = { name: "c", executor: "slurm", connection: { host: "login.example.org", user: "me" } };

  it("otp_command and otp_env reach the SSH options, for the target and for the jump host", () => {
    const config = parseClusterConfig(
      { ...base, connection: { ...base.connection, otp_command: "oathtool --totp @/home/me/.otp", otp_env: "SITE_OTP", jump: { host: "bastion.example.org", otp_env: "BASTION_OTP" } } },
      "c.yaml",
    );
    const options = sshOptionsOf(config);
    expect(options).toMatchObject({ otpCommand: "oathtool --totp @/home/me/.otp", otpEnv: "SITE_OTP", clusterName: "c", jump: { otpEnv: "BASTION_OTP" } });
  });

  it("an otp_command with a newline or an otp_env that is not a variable name is refused, naming the field", () => {
    expect(() => parseClusterConfig({ ...base, connection: { ...base.connection, otp_command: "a\nb" } }, "c.yaml")).toThrow(/connection\.otp_command/);
    expect(() => parseClusterConfig({ ...base, connection: { ...base.connection, otp_env: "1-BAD" } }, "c.yaml")).toThrow(/connection\.otp_env/);
  });

  it("--persist takes 90s, 30m, 8h, 1d or seconds, and refuses anything else", () => {
    expect(parseDuration("8h", "--persist")).toBe(8 * 3600);
    expect(parseDuration("90s", "--persist")).toBe(90);
    expect(parseDuration("1d", "--persist")).toBe(86400);
    expect(parseDuration("600", "--persist")).toBe(600);
    expect(() => parseDuration("8 hours", "--persist")).toThrow(/--persist expects a duration/);
    expect(() => parseDuration("0", "--persist")).toThrow(/--persist/);
    expect(() => parseDuration("31d", "--persist")).toThrow(/at most 30d/);
  });
});
