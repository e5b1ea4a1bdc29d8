// Connection failures that need no sshd: a closed port, a server that never speaks, a server that
// speaks something else. Each becomes a ConnectionError naming the phase, quickly.
import { createServer, type Server, type Socket } from "node:net";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConnectionError } from "../../src/transport/errors.js";
import { SshTransport } from "../../src/transport/ssh.js";
import { runOk, tempDir } from "./helpers.js";

let dir: string;
let cleanup: () => void;
let key: string;
const servers: Server[] = [];
const sockets: Socket[] = [];

beforeEach(() => {
  ({ dir, cleanup } = tempDir("connect-failures"));
  key = path.join(dir, "id");
  runOk("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
});
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
  cleanup();
});

function listen(onConnection: (socket: Socket) => void): Promise<number> {
  const server = createServer((socket) => {
    sockets.push(socket);
    onConnection(socket);
  });
  servers.push(server);
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port)));
}

const options = (port: number) => ({ host: "127.0.0.1", port, user: "nobody", identityFile: key, knownHostsFile: path.join(dir, "known_hosts"), connectTimeoutMs: 400 });

describe("SshTransport.connect failures", () => {
  it("reports a closed port as a ConnectionError in the connect phase", async () => {
    const port = await listen(() => undefined);
    await new Promise((resolve) => servers.pop()?.close(resolve));
    const error = await SshTransport.connect(options(port)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error).toMatchObject({ phase: "connect", host: "127.0.0.1", port });
    expect((error as Error).message).toContain("ECONNREFUSED");
  });

  it("gives up on a server that accepts but never speaks SSH after connectTimeoutMs", async () => {
    const port = await listen(() => undefined);
    const started = Date.now();
    const error = await SshTransport.connect(options(port)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error).toMatchObject({ phase: "handshake" });
    expect((error as Error).message).toContain("timed out after 400 ms during the SSH handshake");
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it("reports a server that is not SSH as a handshake failure", async () => {
    const port = await listen((socket) => socket.end("HTTP/1.1 400 Bad Request\r\n\r\n"));
    const error = await SshTransport.connect(options(port)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error).toMatchObject({ phase: "handshake" });
  });
});
