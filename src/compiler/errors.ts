/** A pipeline that cannot become SLURM jobs; the message names the steps and keys at fault. */
export class CompileError extends Error {
  override name = "CompileError";
  constructor(
    message: string,
    readonly problems: string[] = [message],
  ) {
    super(message);
  }
}
