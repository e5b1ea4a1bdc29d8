// A shim `sbatch` for fault injection on the real test cluster: a directory of its own in the test
// user's home, put first in PATH of the submit script only through a cluster config's `path_prepend`
// (nothing else on the cluster sees it). Each call is counted and logged (with the time), then, as
// configured: fails with a real transient SLURM message for the first N calls, fails for good at the
// K-th call with the real "Invalid partition" message, sleeps at the D-th call (a window to cut the
// connection or kill the submitter in), and otherwise execs the real /usr/bin/sbatch.
import { randomBytes } from "node:crypto";
import { remotePath } from "../../src/transport/index.js";
import type { Transport } from "../../src/transport/index.js";

/** The messages SLURM 22.05 prints when slurmctld times out or is busy (sbatch exits 1). */
export const TRANSIENT_MESSAGES = ["Socket timed out on send/recv operation", "Resource temporarily unavailable"] as const;
/** What sbatch prints for a partition that does not exist (test/fixtures/slurm/sbatch-bad-partition.json). */
export const PERMANENT_MESSAGE = "Invalid partition name specified";

export interface ShimBehaviour {
  /** The first N calls fail with the transient messages, in turn. */
  transientFirst?: number;
  /** The K-th call fails for good (0: never). */
  failAt?: number;
  /** The D-th call sleeps delayS seconds before doing anything else (0: never). */
  delayAt?: number;
  delayS?: number;
  /** The Q-th call submits the job with the real sbatch, then fails with the first transient message (0: never). */
  queuedThenTransientAt?: number;
}

export interface ShimCall {
  n: number;
  /** Seconds since the epoch when the call started. */
  at: number;
  args: string;
}

const SCRIPT = String.raw`#!/bin/bash
# hpcpipe test shim for sbatch (test/faults/sbatch-shim.ts); removed when the tests end.
set -u
dir=__DIR__
n=0
[[ -r $dir/calls ]] && read -r n <"$dir/calls"
n=$((n + 1))
printf '%s\n' "$n" >"$dir/calls"
printf '%s %s %s\n' "$n" "$(date +%s.%N)" "$*" >>"$dir/log"
transient_first=0 fail_at=0 delay_at=0 delay_s=0 queued_at=0
while IFS='=' read -r key value; do
  case $key in
    queued_at) queued_at=$value ;;
    transient_first) transient_first=$value ;;
    fail_at) fail_at=$value ;;
    delay_at) delay_at=$value ;;
    delay_s) delay_s=$value ;;
  esac
done <"$dir/config"
if ((delay_at > 0 && n == delay_at)); then
  printf '%s\n' "$n" >"$dir/delaying"
  sleep "$delay_s"
fi
if ((n <= transient_first)); then
  if ((n % 2 == 1)); then msg='__T0__'; else msg='__T1__'; fi
  printf 'sbatch: error: Batch job submission failed: %s\n' "$msg" >&2
  exit 1
fi
if ((queued_at > 0 && n == queued_at)); then
  /usr/bin/sbatch "$@" >/dev/null 2>&1
  printf 'sbatch: error: Batch job submission failed: %s\n' '__T0__' >&2
  exit 1
fi
if ((fail_at > 0 && n == fail_at)); then
  printf 'sbatch: error: invalid partition specified: hpcpipe-fault\nsbatch: error: Batch job submission failed: __P__\n' >&2
  exit 1
fi
exec /usr/bin/sbatch "$@"
`;

export class SbatchShim {
  private constructor(
    private readonly remote: Transport,
    /** The shim's directory on the cluster (absolute). */
    readonly dir: string,
  ) {}

  /** Installs the shim under the test user's home; `bin` is what a cluster config's path_prepend names. */
  static async install(remote: Transport): Promise<SbatchShim> {
    const home = (await remote.exec(["sh", "-c", 'printf %s "$HOME"'])).stdout;
    if (!home.startsWith("/")) throw new Error(`unexpected remote HOME ${JSON.stringify(home)}`);
    const dir = `${home}/.hpcpipe-faults-${randomBytes(4).toString("hex")}`;
    const script = SCRIPT.replace("__DIR__", dir)
      .replaceAll("__T0__", TRANSIENT_MESSAGES[0])
      .replace("__T1__", TRANSIENT_MESSAGES[1])
      .replace("__P__", PERMANENT_MESSAGE);
    await remote.putFiles(dir, new Map([["bin/sbatch", script], ["config", ""]]), { executable: new Set(["bin/sbatch"]) });
    return new SbatchShim(remote, dir);
  }

  get bin(): string {
    return `${this.dir}/bin`;
  }

  /** Sets what the next calls do and resets the call count and log. */
  async configure(behaviour: ShimBehaviour): Promise<void> {
    const config = [
      `transient_first=${behaviour.transientFirst ?? 0}`,
      `fail_at=${behaviour.failAt ?? 0}`,
      `delay_at=${behaviour.delayAt ?? 0}`,
      `delay_s=${behaviour.delayS ?? 0}`,
      `queued_at=${behaviour.queuedThenTransientAt ?? 0}`,
      "",
    ].join("\n");
    await this.remote.putFiles(this.dir, new Map([["config", config], ["calls", "0\n"], ["log", ""], ["delaying", ""]]));
  }

  async calls(): Promise<ShimCall[]> {
    const out = await this.remote.exec(["cat", remotePath(`${this.dir}/log`)], { retrySafe: true });
    return out.stdout
      .split("\n")
      .filter(Boolean)
      .map((line) => {
        const [n = "", at = "", ...args] = line.split(" ");
        return { n: Number(n), at: Number(at), args: args.join(" ") };
      });
  }

  /** True once the configured slow call has started sleeping. */
  async delaying(): Promise<boolean> {
    const out = await this.remote.exec(["cat", remotePath(`${this.dir}/delaying`)], { retrySafe: true });
    return out.stdout.trim() !== "";
  }

  async remove(): Promise<void> {
    await this.remote.exec(["rm", "-rf", "--", remotePath(this.dir)], { retrySafe: true });
  }
}
