/**
 * Base64 decoding for HTTP ingest (payload_encoding "base64", correlation data in headers).
 * Core code has no `atob`, so this is the small table decoder. Both alphabets are accepted
 * (RFC 4648 section 4, standard, and section 5, URL-safe), padding optional; anything else
 * (whitespace, a stray character, an impossible length, non-zero trailing bits) is refused,
 * so a mangled payload is never published as garbage.
 */

const VALUES = new Int16Array(128).fill(-1);
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".split("").forEach((c, i) => (VALUES[c.charCodeAt(0)] = i));
VALUES["-".charCodeAt(0)] = 62;
VALUES["_".charCodeAt(0)] = 63;

/** The bytes encoded by `text`, or undefined when it is not base64. */
export function decodeBase64(text: string): Uint8Array | undefined {
  let end = text.length;
  if (end % 4 === 0 && end > 0) {
    if (text.charCodeAt(end - 1) === 0x3d) end--;
    if (text.charCodeAt(end - 1) === 0x3d) end--;
  }
  if (end % 4 === 1) return undefined; // no length of bytes encodes to 4n+1 characters
  const out = new Uint8Array(Math.floor((end * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? VALUES[c]! : -1;
    if (v < 0) return undefined;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
      acc &= (1 << bits) - 1;
    }
  }
  if (acc !== 0) return undefined; // non-canonical: the leftover bits must be zero (RFC 4648 3.5)
  return out;
}
