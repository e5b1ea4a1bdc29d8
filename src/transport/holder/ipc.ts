/** Messages between `hpcpipe connect` and the holder process it starts (Node IPC), validated with zod. */
import { z } from "zod";
import { infoSchema } from "./protocol.js";

const roundSchema = z.object({ name: z.string(), instructions: z.string(), prompts: z.array(z.object({ prompt: z.string(), echo: z.boolean() })) });
const contextSchema = z.object({ target: z.string(), jump: z.boolean(), reason: z.string().optional(), attempt: z.number().int().optional(), keyAccepted: z.boolean().optional() });

export const toHolderSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("start"),
    /** SshConnectOptions without functions or env (JSON). */
    options: z.record(z.string(), z.unknown()),
    socketPath: z.string(),
    chain: z.array(z.string()).min(1),
    idleMs: z.number().int().positive(),
    maxChannels: z.number().int().positive(),
  }),
  z.object({ type: z.literal("answer"), id: z.number().int(), answers: z.array(z.string()) }),
  z.object({ type: z.literal("cancel"), id: z.number().int(), message: z.string() }),
]);
export type ToHolder = z.infer<typeof toHolderSchema>;

export const errorKindSchema = z.enum(["auth", "hostkey", "connection", "transport", "other"]);

export const fromHolderSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("prompt"), id: z.number().int(), round: roundSchema, context: contextSchema }),
  z.object({ type: z.literal("ready"), info: infoSchema }),
  z.object({
    type: z.literal("failed"),
    kind: errorKindSchema,
    message: z.string(),
    host: z.string().optional(),
    port: z.number().optional(),
    phase: z.enum(["connect", "handshake", "auth", "dropped"]).optional(),
    problem: z.enum(["unknown", "changed", "revoked", "unsafe-known-hosts"]).optional(),
    fingerprint: z.string().nullable().optional(),
  }),
]);
export type FromHolder = z.infer<typeof fromHolderSchema>;
