import { pino } from "pino";
import type { Logger } from "pino";

export type { Logger } from "pino";

/** The default logger: silent, so a library never writes unless given a logger. */
export const silentLogger: Logger = pino({ level: "silent" });

/** A pino logger at INFO writing JSON lines to a file descriptor or path (synchronously, so nothing is lost on exit). */
export function createLogger(options: { level?: string; destination?: string | number; name?: string } = {}): Logger {
  const dest = pino.destination({ dest: options.destination ?? 2, sync: true });
  return pino({ level: options.level ?? "info", name: options.name ?? "pipeline", base: undefined }, dest);
}
