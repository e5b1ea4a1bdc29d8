import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { keyOfStateFile, parseStateText, readStateDir } from "../../src/collect/read-states.js";
import { STATE_FILE_MAX_BYTES } from "../../src/plan/state-file.js";
import { stateFile } from "../local/helpers.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "hpcpipe-states-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const json = (key: string, success = true): string => JSON.stringify(stateFile(key, success));

describe("parseStateText", () => {
  it("accepts a valid state file whose key matches its name", () => {
    const r = parseStateText("p.a.json", json("p.a"));
    expect(r).toMatchObject({ ok: true, key: "p.a", state: { key: "p.a", success: true, slurm: { job_id: "7" } } });
  });

  it.each([
    ["p a.json", /is not <step key>\.json/],
    ["../p.a.json", /is not <step key>\.json/],
    ["p.a.txt", /is not <step key>\.json/],
    [".p.a.json", /is not <step key>\.json/],
  ])("refuses the file name %j", (name, message) => {
    const r = parseStateText(name, json("p.a"));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(message);
  });

  it("refuses text over the size cap without parsing it", () => {
    const r = parseStateText("p.a.json", " ".repeat(STATE_FILE_MAX_BYTES + 1));
    expect(r).toEqual({ ok: false, error: `state file is ${STATE_FILE_MAX_BYTES + 1} bytes, over the ${STATE_FILE_MAX_BYTES}-byte limit` });
  });

  it("says what is wrong with invalid JSON, an empty file, and a schema violation", () => {
    const bad = parseStateText("p.a.json", "{nope");
    expect(bad.ok || bad.error).toMatch(/^not valid JSON/);
    const empty = parseStateText("p.a.json", "");
    expect(empty.ok || empty.error).toBe("state file is empty");
    const schema = parseStateText("p.a.json", JSON.stringify({ ...stateFile("p.a", true), success: "yes", duration_s: -1 }));
    expect(schema.ok || schema.error).toMatch(/^not a valid state file: success: .*; duration_s: /);
  });

  it("refuses a file whose key field differs from its name", () => {
    const r = parseStateText("p.b.json", json("p.a"));
    expect(r.ok || r.error).toBe('state file names key "p.a", not "p.b" as its file name says');
  });

  it("maps file names to keys", () => {
    expect(keyOfStateFile("thumbs.validate.12.check.json")).toBe("thumbs.validate.12.check");
    expect(keyOfStateFile("thumbs..x.json")).toBeNull();
    expect(keyOfStateFile("thumbs.json.tmp.12")).toBeNull();
  });
});

describe("readStateDir", () => {
  it("reads every valid state, ignoring temp files of atomic writes and other files", async () => {
    await writeFile(join(dir, "p.a.json"), json("p.a"));
    await writeFile(join(dir, "p.b.json"), json("p.b", false));
    await writeFile(join(dir, ".p.c.json.tmp.1234"), '{"success":tr');
    await writeFile(join(dir, "notes.txt"), "hello");
    const r = await readStateDir(dir);
    expect([...r.states.keys()]).toEqual(["p.a", "p.b"]);
    expect(r.states.get("p.b")?.success).toBe(false);
    expect(r.problems).toEqual([]);
  });

  it("returns a problem per unusable file and keeps the good ones", async () => {
    await writeFile(join(dir, "p.a.json"), json("p.a"));
    await writeFile(join(dir, "p.big.json"), `"${"x".repeat(STATE_FILE_MAX_BYTES)}"`);
    await writeFile(join(dir, "p.corrupt.json"), "{");
    await writeFile(join(dir, "p.wrong.json"), json("p.a"));
    await writeFile(join(dir, "bad name.json"), json("p.a"));
    await mkdir(join(dir, "p.dir.json"));
    await symlink("/etc/hostname", join(dir, "p.link.json"));
    const r = await readStateDir(dir);
    expect([...r.states.keys()]).toEqual(["p.a"]);
    const byFile = Object.fromEntries(r.problems.map((p) => [p.file, p.error]));
    expect(Object.keys(byFile).sort()).toEqual(["bad name.json", "p.big.json", "p.corrupt.json", "p.dir.json", "p.link.json", "p.wrong.json"]);
    expect(byFile["p.big.json"]).toMatch(/over the 1048576-byte limit/);
    expect(byFile["p.corrupt.json"]).toMatch(/^not valid JSON/);
    expect(byFile["p.wrong.json"]).toMatch(/names key "p\.a"/);
    expect(byFile["bad name.json"]).toMatch(/is not <step key>\.json/);
    expect(byFile["p.dir.json"]).toBe("not a regular file");
    expect(byFile["p.link.json"]).toBe("not a regular file");
  });

  it("gives nothing, and no error, for a states directory that does not exist", async () => {
    expect(await readStateDir(join(dir, "missing"))).toEqual({ states: new Map(), problems: [] });
  });

  it("reads two thousand state files quickly", async () => {
    await Promise.all(Array.from({ length: 2000 }, (_, i) => writeFile(join(dir, `p.m.${i}.s.json`), json(`p.m.${i}.s`))));
    const started = performance.now();
    const r = await readStateDir(dir);
    const ms = performance.now() - started;
    expect(r.states.size).toBe(2000);
    expect(ms).toBeLessThan(3000);
  });
});
