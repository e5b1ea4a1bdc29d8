/** Reconnection delays: exponential with jitter, bounded. */
export interface BackoffPolicy {
  tries: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { tries: 4, baseDelayMs: 250, maxDelayMs: 4_000 };

/** Delay before try `attempt` (0-based): base * 2^attempt capped at max, then scaled by a random factor in [0.5, 1). */
export function backoffDelay(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return Math.round(ceiling * (0.5 + random() * 0.5));
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
