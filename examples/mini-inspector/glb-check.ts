/**
 * Structural checks of a GLB container (glTF 2.0 binary) before parsing, so
 * a truncated or corrupt file is rejected with a precise reason instead of a
 * RangeError from deep inside a typed-array constructor.
 *
 * Layout: 12-byte header (magic "glTF", version 2, total length), then
 * chunks of (length, type, data): first JSON, then optionally BIN.
 */
export const GLB_MAGIC = 0x46546c67; // "glTF"
const CHUNK_JSON = 0x4e4f534a;
const CHUNK_BIN = 0x004e4942;

export class GlbFormatError extends Error {
  override name = "GlbFormatError";
}

export function looksLikeGlb(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true) === GLB_MAGIC;
}

/** Throws GlbFormatError describing the first problem found; returns the chunk layout when sound. */
export function checkGlb(bytes: Uint8Array): { jsonLength: number; binLength: number | null } {
  if (bytes.length < 12) throw new GlbFormatError(`file is ${bytes.length} bytes, shorter than the 12-byte GLB header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, true);
  if (magic !== GLB_MAGIC) throw new GlbFormatError(`not a GLB file (magic 0x${magic.toString(16).padStart(8, "0")}, expected "glTF")`);
  const version = view.getUint32(4, true);
  if (version !== 2) throw new GlbFormatError(`GLB version ${version} is not supported (only glTF 2.0)`);
  const declared = view.getUint32(8, true);
  if (declared > bytes.length) {
    throw new GlbFormatError(`truncated: the header declares ${declared} bytes but the file has ${bytes.length}`);
  }
  if (declared < bytes.length) {
    throw new GlbFormatError(`the header declares ${declared} bytes but the file has ${bytes.length} (trailing data)`);
  }

  let offset = 12;
  const readChunk = (what: string): { length: number; type: number } => {
    if (offset + 8 > declared) throw new GlbFormatError(`truncated: no room for the ${what} chunk header at byte ${offset}`);
    const length = view.getUint32(offset, true);
    const type = view.getUint32(offset + 4, true);
    if (offset + 8 + length > declared) {
      throw new GlbFormatError(`truncated: the ${what} chunk at byte ${offset} declares ${length} bytes, only ${declared - offset - 8} remain`);
    }
    if (length % 4 !== 0) throw new GlbFormatError(`the ${what} chunk at byte ${offset} has length ${length}, not a multiple of 4`);
    return { length, type };
  };

  const json = readChunk("JSON");
  if (json.type !== CHUNK_JSON) throw new GlbFormatError(`the first chunk is 0x${json.type.toString(16)}, expected JSON`);
  offset += 8 + json.length;
  let binLength: number | null = null;
  if (offset < declared) {
    const bin = readChunk("BIN");
    if (bin.type === CHUNK_BIN) binLength = bin.length;
    offset += 8 + bin.length;
  }
  return { jsonLength: json.length, binLength };
}
