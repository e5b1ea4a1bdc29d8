/**
 * ONE list of the messages SLURM clients print when slurmctld or slurmdbd is
 * briefly overloaded or unreachable (observed on SLURM 22.05.8). A command
 * that failed with one of them may succeed when asked again; an sbatch that
 * failed with one may still have queued its job. The submit script
 * (templates/submit.hbs) is rendered from this list and
 * docs/runtime-contract.md quotes it (both tested).
 */
export const TRANSIENT_SLURM_ERRORS = [
  "Socket timed out on send/recv operation",
  "Resource temporarily unavailable",
  "Unable to contact slurm controller",
  "Zero Bytes were transmitted or received",
  "Communication connection failure",
] as const;

/** The text holds one of the transient messages (case-insensitive). */
export function isTransientSlurmError(text: string): boolean {
  const lower = text.toLowerCase();
  return TRANSIENT_SLURM_ERRORS.some((message) => lower.includes(message.toLowerCase()));
}
