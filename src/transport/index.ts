// The transport: the only module that imports ssh2. Everything else talks to a `Transport`.
export type { ExecOptions, ExecResult, FetchedFile, GetFilesOptions, PutFilesOptions, Transport } from "./transport.js";
export { SshTransport } from "./ssh.js";
export type { SshConnectOptions } from "./options.js";
export {
  AuthError,
  ConnectionError,
  ConnectionLostError,
  HostKeyError,
  RemoteCommandError,
  TransportError,
  type ConnectionPhase,
  type HostKeyProblem,
  type RemoteFailure,
} from "./errors.js";
export { argvToCommand, remotePath, RemotePath, sh, shQuote, ShellQuoteError, type ShellWord } from "./quote.js";
export { fingerprintSha256 } from "./known-hosts.js";
export { tarStream, type TarStreamEntry } from "./tar.js";
export { OTP_ENV, JUMP_OTP_ENV } from "./options.js";
export type { KbdContext, KbdPrompt, KbdPrompter, KbdRound } from "./otp.js";
export { DEFAULT_HOLDER_SETTINGS, holderLocation, holderStatus, startHolder, stopHolder, type HolderHandle, type HolderSettings } from "./holder/start.js";
export type { HolderInfo } from "./holder/protocol.js";
export { HolderDirError, SOCKET_DIR_ENV } from "./holder/socket-dir.js";
export { parseRemoteRead, readRemoteFiles, RemoteReadError, REMOTE_READ_SCRIPT } from "./read-files.js";
export type { RemoteReadAnswer, RemoteReadLimits, RemoteReadRequest, RemoteReadStatus } from "./read-files.js";
