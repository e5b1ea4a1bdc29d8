import { randomBytes } from "node:crypto";
import type { Clock } from "../core/clock.js";
import { systemClock } from "../core/clock.js";

/** A run id that sorts by time and cannot collide between concurrent submitters: 20261128-161900-a1b2c3. */
export function newRunId(clock: Clock = systemClock): string {
  const iso = clock.isoNow(); // 2026-11-28T16:19:00.000Z
  const stamp = `${iso.slice(0, 10).replace(/-/g, "")}-${iso.slice(11, 19).replace(/:/g, "")}`;
  return `${stamp}-${randomBytes(3).toString("hex")}`;
}
