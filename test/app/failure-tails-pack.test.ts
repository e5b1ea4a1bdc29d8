/**
 * The failure tails of a run (and the report's log tails) for packed items: the end of the item's section of its
 * task's slot log, named by its state's meta.log, not another item's lines of the same slot.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { failedStepTails } from "../../src/app/failure-tails.js";
import { CompletedState } from "../../src/core/completed-state.js";
import { interpretAnswers, readLocalFiles, reportRequests } from "../../src/report/files.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const M = (key: string): string => `\n\x1ehpcpipe ${key}\n`;

describe("failure tails of packed items", () => {
  it("shows the failed item's section of its slot log's stderr", async () => {
    const runDir = mkdtempSync(join(tmpdir(), "hpcpipe-tails-pack-"));
    dirs.push(runDir);
    mkdirSync(join(runDir, "logs"));
    writeFileSync(join(runDir, "logs", "p.m.items-0-9.s0.err"), `${M("p.m.2.b")}boom 2\n${M("p.m.3.a")}fine\n${M("p.m.3.b")}boom 3\nstill 3\n${M("p.m.4.a")}other item\n`);
    writeFileSync(join(runDir, "logs", "p.m.items-0-9.s0.out"), `${M("p.m.3.b")}out of 3\n`);
    const failed = (key: string): CompletedState => CompletedState.fail(`${key} failed`, { meta: { exit_code: 3, log: "logs/p.m.items-0-9.s0" } });
    const state = new CompletedState({ success: false, step_states: { "p.m.3.b": failed("p.m.3.b"), "p.m.7.b": failed("p.m.7.b") } });
    const { tails } = await failedStepTails(runDir, state);
    expect(tails[0]).toMatchObject({ step: "p.m.3.b", log: "logs/p.m.items-0-9.s0.err", stderr_tail: ["boom 3", "still 3"], missing: null });
    // Its section is not in the slot log (the log was cut, or another slot's): said so, not another item's lines.
    expect(tails[1]).toMatchObject({ step: "p.m.7.b", log: "logs/p.m.items-0-9.s0.err", stderr_tail: [], missing: "no section of p.m.7.b" });

    // The report asks for a slot log once for all the items that share it.
    const slotLogs = new Map([["p.m.3.b", "logs/p.m.items-0-9.s0"], ["p.m.2.b", "logs/p.m.items-0-9.s0"]]);
    const requests = reportRequests(["p.m.3.b", "p.m.2.b"], [], slotLogs);
    const answers = await readLocalFiles(runDir, requests);
    expect(answers.size).toBe(2);
    const { logs } = interpretAnswers(["p.m.3.b", "p.m.2.b"], [], answers, slotLogs);
    expect(logs.get("p.m.2.b")?.find((t) => t.stream === "stderr")?.lines).toEqual(["boom 2"]);
    expect(logs.get("p.m.3.b")?.find((t) => t.stream === "stdout")?.lines).toEqual(["out of 3"]);
  });
});
