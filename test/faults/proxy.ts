// A TCP proxy on 127.0.0.1 between hpcpipe and the test cluster's real sshd, for fault injection:
// it forwards bytes unchanged and can cut every connection on command, or the live one once a
// chosen number of bytes has gone up (client -> sshd) or down (sshd -> client) since the cut was armed.
// The SSH session inside is end-to-end encrypted: the proxy sees only byte counts, never content.
import { readFileSync, writeFileSync } from "node:fs";
import net from "node:net";

interface Pair {
  id: number;
  client: net.Socket;
  upstream: net.Socket;
  up: number;
  down: number;
}

interface Rule {
  direction: "up" | "down";
  /** Cut once this many more bytes went that way on the connection open when the rule fires. */
  bytes: number;
  /** Totals (all connections) when the rule was armed. */
  from: number;
  resolve: (cut: CutReport) => void;
}

export interface CutReport {
  connection: number;
  up: number;
  down: number;
}

export class FaultProxy {
  readonly #server: net.Server;
  readonly #pairs = new Set<Pair>();
  #rules: Rule[] = [];
  #accepted = 0;
  #cuts = 0;
  #up = 0;
  #down = 0;
  #refuse = 0;

  private constructor(
    server: net.Server,
    readonly port: number,
    readonly target: { host: string; port: number },
  ) {
    this.#server = server;
  }

  /** Listens on 127.0.0.1 (a free port) and forwards to target. */
  static async start(target: { host: string; port: number }): Promise<FaultProxy> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("the proxy has no TCP address");
    const proxy = new FaultProxy(server, address.port, target);
    server.on("connection", (client) => proxy.#accept(client));
    return proxy;
  }

  /** Connections accepted so far (each SSH connect or reconnect is one). */
  get connections(): number {
    return this.#accepted;
  }

  /** Connections cut so far. */
  get cuts(): number {
    return this.#cuts;
  }

  /** Bytes forwarded client -> sshd and sshd -> client, over all connections. */
  get bytes(): { up: number; down: number } {
    return { up: this.#up, down: this.#down };
  }

  /** Cuts every live connection now (both TCP ends reset); returns how many. */
  cut(): number {
    const live = [...this.#pairs];
    for (const pair of live) this.#drop(pair);
    return live.length;
  }

  /** Cuts the live connection once `bytes` more bytes went `direction` (counted over all connections from now). */
  cutAfter(direction: "up" | "down", bytes: number): Promise<CutReport> {
    return new Promise((resolve) => {
      this.#rules.push({ direction, bytes, from: direction === "up" ? this.#up : this.#down, resolve });
    });
  }

  /** Refuses (closes at once) the next `count` connection attempts. */
  refuseNext(count: number): void {
    this.#refuse += count;
  }

  /** Accepts connections again after refuseNext. */
  acceptAll(): void {
    this.#refuse = 0;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: net.Socket): void {
    if (this.#refuse > 0) {
      this.#refuse -= 1;
      client.destroy();
      return;
    }
    this.#accepted += 1;
    const upstream = net.connect(this.target.port, this.target.host);
    const pair: Pair = { id: this.#accepted, client, upstream, up: 0, down: 0 };
    this.#pairs.add(pair);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    this.#forward(pair, client, upstream, "up");
    this.#forward(pair, upstream, client, "down");
    const gone = (): void => this.#drop(pair, false);
    for (const socket of [client, upstream]) {
      socket.on("error", gone);
      socket.on("close", gone);
    }
  }

  #forward(pair: Pair, from: net.Socket, to: net.Socket, direction: "up" | "down"): void {
    from.on("data", (chunk: Buffer) => {
      if (!this.#pairs.has(pair)) return;
      const total = direction === "up" ? this.#up : this.#down;
      const rule = this.#rules.find((r) => r.direction === direction);
      let part = chunk;
      let cutNow = false;
      if (rule) {
        const left = rule.from + rule.bytes - total;
        if (left <= chunk.length) {
          part = chunk.subarray(0, Math.max(0, left));
          cutNow = true;
        }
      }
      if (part.length > 0) {
        if (direction === "up") {
          this.#up += part.length;
          pair.up += part.length;
        } else {
          this.#down += part.length;
          pair.down += part.length;
        }
        if (!to.write(part)) {
          from.pause();
          to.once("drain", () => from.resume());
        }
      }
      if (cutNow && rule) {
        this.#rules = this.#rules.filter((r) => r !== rule);
        this.#drop(pair);
        rule.resolve({ connection: pair.id, up: pair.up, down: pair.down });
      }
    });
  }

  #drop(pair: Pair, counted = true): void {
    if (!this.#pairs.delete(pair)) return;
    if (counted) this.#cuts += 1;
    // resetAndDestroy sends a TCP RST: both peers see the connection die, as on a broken network path.
    pair.client.resetAndDestroy();
    pair.upstream.resetAndDestroy();
  }
}

/**
 * A known_hosts file for the proxy's port holding the cluster's host key (hpcpipe checks
 * `[127.0.0.1]:PORT`, and the key behind the proxy is the real sshd's).
 */
export function knownHostsForProxy(clusterKnownHosts: string, clusterPort: number, proxyPort: number, file: string): string {
  const lines = readFileSync(clusterKnownHosts, "utf8")
    .split("\n")
    .filter((line) => line.startsWith(`[127.0.0.1]:${clusterPort} `))
    .map((line) => line.replace(`[127.0.0.1]:${clusterPort} `, `[127.0.0.1]:${proxyPort} `));
  if (lines.length === 0) throw new Error(`no key for [127.0.0.1]:${clusterPort} in ${clusterKnownHosts}`);
  writeFileSync(file, `${lines.join("\n")}\n`, { mode: 0o600 });
  return file;
}
