/** The message of an error, without a stack; for one-line reports. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.name === "Error" || err.name === "" ? err.message : `${err.name}: ${err.message}`;
  return String(err);
}
