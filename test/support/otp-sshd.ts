// The second test sshd that asks for a key AND a one-time code (scripts/cluster/otp-sshd.sh),
// and fresh TOTP codes for it computed with oathtool. pam_oath refuses a code whose time step
// is not newer than the last one it accepted, so codes are taken from successive steps: the
// current one if still unused, else a later one inside the server's window (the script sets 40).
import { execFile, execFileSync } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { z } from "zod";

/** The script, found from this file whether it runs from test/support or compiled under dist/ (bench). */
function findScript(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++, dir = path.dirname(dir)) {
    const candidate = path.join(dir, "scripts", "cluster", "otp-sshd.sh");
    if (existsSync(candidate)) return candidate;
  }
  throw new Error("scripts/cluster/otp-sshd.sh not found above test/support");
}
export const OTP_SSHD_SCRIPT = findScript();
const STATE_DIR = process.env.HPCPIPE_TESTCLUSTER_DIR ?? "/var/lib/hpcpipe-testcluster";

export const OtpFactsSchema = z.object({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  user: z.string().regex(/^[a-z_][a-z0-9_-]*$/),
  identityFile: z.string().startsWith("/"),
  knownHostsFile: z.string().startsWith("/"),
  usersFile: z.string().startsWith("/"),
  secretHex: z.string().regex(/^[0-9a-f]{40}$/),
  pamService: z.string().min(1),
});
export type OtpFacts = z.infer<typeof OtpFactsSchema>;

/** Starts (or checks) the key + TOTP sshd; installs libpam-oath and oathtool on a fresh machine. */
export async function ensureOtpSshd(): Promise<OtpFacts> {
  await promisify(execFile)("bash", [OTP_SSHD_SCRIPT], { timeout: 300_000 });
  const file = path.join(STATE_DIR, "otp", "otp.json");
  return OtpFactsSchema.parse(JSON.parse(readFileSync(file, "utf8")));
}

const STEP_S = 30;
/** How far ahead of the clock a code may be (below the server's window of 40 steps). */
const MAX_AHEAD = 38;
/** The server's window (window=40 in its PAM line). */
const WINDOW = 40;

/** Codes for `count` successive steps from `first`, in order (one oathtool call). */
function codesFrom(facts: OtpFacts, first: number, count: number): string[] {
  const at = new Date(first * STEP_S * 1000 + 1000).toISOString().replace(/\.\d+Z$/, "").replace("T", " ") + " UTC";
  return execFileSync("oathtool", ["--totp", "--now", at, "-w", String(count - 1), facts.secretHex], { encoding: "utf8" }).trim().split("\n");
}

/**
 * The time step of the last code pam_oath accepted. Its users file keeps that code and when it was
 * used ("HOTP/T30 user - secret <n> <otp> <time>"), so the step is found among the steps near that time.
 */
function lastAcceptedStep(facts: OtpFacts): number {
  let text: string;
  try {
    text = readFileSync(facts.usersFile, "utf8");
  } catch {
    return 0;
  }
  const fields = text.split("\n").find((l) => l.startsWith("HOTP/T30"))?.split(/\s+/) ?? [];
  const otp = fields[5];
  const used = Date.parse(`${(fields[6] ?? "").replace(/L$/, "")}Z`);
  if (otp === undefined || Number.isNaN(used)) return 0;
  const first = Math.floor(used / 1000 / STEP_S) - WINDOW;
  const index = codesFrom(facts, first, 2 * WINDOW + 1).indexOf(otp);
  return index < 0 ? 0 : first + index;
}

function codeAt(facts: OtpFacts, step: number): string {
  return codesFrom(facts, step, 1)[0] ?? "";
}

/** Runs `action` holding a lock file beside the users file, so test files running at once never take the same step. */
async function withStepLock<T>(facts: OtpFacts, action: () => Promise<T>): Promise<T> {
  const lock = path.join(path.dirname(facts.usersFile), "test-code.lock");
  for (let waited = 0; ; waited += 50) {
    try {
      closeSync(openSync(lock, "wx", 0o600));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      // A holder of the lock that died leaves it behind: it never holds it for long.
      const age = Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (waited > 60_000 || age > 60_000) rmSync(lock, { force: true });
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    return await action();
  } finally {
    rmSync(lock, { force: true });
  }
}

/**
 * A code pam_oath has not seen: for a step after every step used so far (by the server's record,
 * and by every test process, which reserve steps in a file beside the users file).
 */
export async function freshCode(facts: OtpFacts): Promise<string> {
  const reservedFile = path.join(path.dirname(facts.usersFile), "test-code.reserved");
  return withStepLock(facts, async () => {
    const reserved = Number(existsSync(reservedFile) ? readFileSync(reservedFile, "utf8").trim() : 0) || 0;
    const now = Math.floor(Date.now() / 1000 / STEP_S);
    const step = Math.max(now, lastAcceptedStep(facts) + 1, reserved + 1);
    while (step > Math.floor(Date.now() / 1000 / STEP_S) + MAX_AHEAD) await new Promise((r) => setTimeout(r, 1000));
    writeFileSync(reservedFile, `${step}\n`, { mode: 0o600 });
    return codeAt(facts, step);
  });
}

/** A six-digit code that is not valid now (nor near now). */
export function wrongCode(facts: OtpFacts): string {
  const now = Math.floor(Date.now() / 1000 / STEP_S);
  const near = new Set(codesFrom(facts, now - WINDOW - 5, 2 * WINDOW + 11));
  for (let n = 0; ; n++) {
    const candidate = String((123_456 + n * 7_919) % 1_000_000).padStart(6, "0");
    if (!near.has(candidate)) return candidate;
  }
}

/** The shell command (for otp_command) that prints a fresh code, given one computed now. */
export function printCodeCommand(code: string): string {
  return `printf '%s\\n' ${code}`;
}
