// A userspace stand-in for `tc netem delay` on kernels built without netem:
// a TCP forwarder on 127.0.0.1 that holds every chunk for DELAY ms in each
// direction before passing it on (so every round trip through it costs
// 2 x DELAY more), in order. bench/submit.ts forks it and points a cluster
// config at its port; only the benchmark's own connections go through it.
//
//   node dist/bench/submit/delay-proxy.js TARGET_HOST TARGET_PORT DELAY_MS
//
// Prints `{"port": N}` on stdout (and sends it over IPC when forked) once listening.
import { createConnection, createServer } from "node:net";
import type { Socket } from "node:net";
import { pathToFileURL } from "node:url";

/** Forwards `from` to `to`, each chunk (and the end) `delayMs` later; setTimeout keeps equal delays in order. */
function pipeDelayed(from: Socket, to: Socket, delayMs: number): void {
  from.on("data", (chunk: Buffer) => {
    setTimeout(() => {
      if (!to.destroyed) to.write(chunk);
    }, delayMs);
  });
  from.on("end", () => {
    setTimeout(() => to.end(), delayMs);
  });
}

export function startDelayProxy(targetHost: string, targetPort: number, delayMs: number): Promise<{ port: number; close: () => void }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = createConnection({ host: targetHost, port: targetPort });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on("close", () => sockets.delete(s));
    }
    const fail = (): void => {
      // Like a dropped link: the other side sees the reset after the same delay.
      setTimeout(() => {
        client.destroy();
        upstream.destroy();
      }, delayMs);
    };
    client.on("error", fail);
    upstream.on("error", fail);
    pipeDelayed(client, upstream, delayMs);
    pipeDelayed(upstream, client, delayMs);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      if (address === null || typeof address === "string") return reject(new Error("no TCP address"));
      resolve({
        port: address.port,
        close: () => {
          for (const s of sockets) s.destroy();
          server.close();
        },
      });
    });
  });
}

async function main(): Promise<void> {
  const [host, portText, delayText] = process.argv.slice(2);
  const port = Number(portText);
  const delay = Number(delayText);
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535 || !Number.isFinite(delay) || delay < 0) {
    process.stderr.write("usage: delay-proxy.js TARGET_HOST TARGET_PORT DELAY_MS\n");
    process.exit(64);
  }
  const proxy = await startDelayProxy(host, port, delay);
  const hello = { port: proxy.port };
  process.stdout.write(`${JSON.stringify(hello)}\n`);
  process.send?.(hello);
  // Forked: end with the parent.
  process.on("disconnect", () => process.exit(0));
  process.on("SIGTERM", () => process.exit(0));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
