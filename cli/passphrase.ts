import { createInterface } from "node:readline";
import { Writable } from "node:stream";

/** Reads a passphrase from the terminal without echoing it. */
export function promptPassphrase(identityFile: string): Promise<string | undefined> {
  process.stderr.write(`Passphrase for ${identityFile}: `);
  let muted = true;
  const output = new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (!muted) process.stderr.write(chunk);
      done();
    },
  });
  const rl = createInterface({ input: process.stdin, output, terminal: true });
  return new Promise((resolve) => {
    rl.question("", (answer) => {
      muted = false;
      process.stderr.write("\n");
      rl.close();
      resolve(answer === "" ? undefined : answer);
    });
    rl.on("SIGINT", () => {
      rl.close();
      process.stderr.write("\n");
      resolve(undefined);
    });
  });
}
