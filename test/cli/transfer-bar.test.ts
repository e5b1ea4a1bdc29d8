import { describe, expect, it } from "vitest";
import { transferBar, transferLine } from "../../cli/transfer-bar.js";

describe("the upload progress bar", () => {
  it("shows bytes, percentage, rate and ETA", () => {
    expect(transferLine("upload", 5 * 1024 ** 2, 20 * 1024 ** 2, 2, 10)).toBe("upload [###.......]  25% 5.0 MiB / 20.0 MiB  2.5 MiB/s  ETA 6s");
    expect(transferLine("upload", 0, 100, 0, 4)).toBe("upload [....]   0% 0 B / 100 B  0 B/s  ETA --");
    expect(transferLine("upload", 1024 ** 3, 1024 ** 3 * 200, 10, 4)).toMatch(/ETA 33m10s$/);
  });
  it("draws on a terminal only, redraws at most every 100 ms, and clears its line at the end", () => {
    const written: string[] = [];
    let t = 0;
    const tty = { isTTY: true, write: (s: string) => written.push(s) } as unknown as NodeJS.WriteStream;
    const bar = transferBar(tty, "upload", () => t);
    t = 150;
    bar.update(10, 100);
    t = 180;
    bar.update(20, 100); // within 100 ms: not drawn
    t = 300;
    bar.update(100, 100);
    bar.end();
    expect(written).toHaveLength(3);
    expect(written[0]?.startsWith("\r\u001b[2Kupload [##......................]  10% 10 B / 100 B")).toBe(true);
    expect(written[2]).toBe("\r\x1b[2K");
    const pipe = { isTTY: false, write: (s: string) => written.push(s) } as unknown as NodeJS.WriteStream;
    const none = transferBar(pipe, "upload", () => t);
    none.update(1, 2);
    none.end();
    expect(written).toHaveLength(3);
  });
});
