/**
 * UTF-8 for MQTT strings (5.0 section 1.5.4, 3.1.1 section 1.5.3). Decoding uses one shared
 * fatal TextDecoder (which rejects ill-formed input: overlongs, surrogates, truncation);
 * the MQTT-specific code point rules are checked here. Encoding writes straight into the
 * packet buffer, so no intermediate arrays are allocated.
 */
import { malformed } from "./errors";

// ignoreBOM: a leading U+FEFF MUST NOT be skipped or stripped by the receiver [MQTT-1.5.4-3].
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Decodes buf[start, end) as an MQTT UTF-8 Encoded String, or throws Malformed (0x81). */
export function decodeUtf8(buf: Uint8Array, start: number, end: number): string {
  let s: string;
  try {
    s = decoder.decode(buf.subarray(start, end));
  } catch {
    // Ill-formed UTF-8, including encoded surrogates U+D800..U+DFFF
    // [MQTT-1.5.4-1] (5.0) [MQTT-1.5.3-1] (3.1.1).
    return malformed("UTF-8 string is not well-formed [MQTT-1.5.4-1]");
  }
  // UTF-8 never encodes U+0000 other than as 0x00 (the overlong C0 80 is rejected above).
  if (s.indexOf("\u0000") !== -1) {
    malformed("UTF-8 string contains U+0000 [MQTT-1.5.4-2]");
  }
  return s;
}

/**
 * Byte length of s in UTF-8. Throws (programmer error) on a lone surrogate or U+0000,
 * which no MQTT string may carry.
 */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      if (c === 0) throw new RangeError("MQTT strings must not contain U+0000");
      n += 1;
    } else if (c < 0x800) {
      n += 2;
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const d = s.charCodeAt(i + 1);
      if (c > 0xdbff || !(d >= 0xdc00 && d <= 0xdfff)) {
        throw new RangeError("MQTT strings must not contain a lone surrogate");
      }
      n += 4;
      i++;
    } else {
      n += 3;
    }
  }
  return n;
}

/** Writes s as UTF-8 at pos; returns the new position. s must have passed utf8Length. */
export function writeUtf8(buf: Uint8Array, pos: number, s: string): number {
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      buf[pos++] = c;
    } else if (c < 0x800) {
      buf[pos++] = 0xc0 | (c >> 6);
      buf[pos++] = 0x80 | (c & 0x3f);
    } else if (c >= 0xd800 && c <= 0xdbff) {
      c = 0x10000 + ((c - 0xd800) << 10) + (s.charCodeAt(++i) - 0xdc00);
      buf[pos++] = 0xf0 | (c >> 18);
      buf[pos++] = 0x80 | ((c >> 12) & 0x3f);
      buf[pos++] = 0x80 | ((c >> 6) & 0x3f);
      buf[pos++] = 0x80 | (c & 0x3f);
    } else {
      buf[pos++] = 0xe0 | (c >> 12);
      buf[pos++] = 0x80 | ((c >> 6) & 0x3f);
      buf[pos++] = 0x80 | (c & 0x3f);
    }
  }
  return pos;
}

/**
 * True if buf[start, end) is well-formed UTF-8 (Unicode table 3-7: no overlongs, no
 * surrogates, nothing above U+10FFFF). Used for payloads marked as UTF-8, which are not
 * subject to the other string rules of section 1.5.4. Scans without allocating.
 */
export function isWellFormedUtf8(buf: Uint8Array, start = 0, end = buf.length): boolean {
  let i = start;
  while (i < end) {
    const b = buf[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0; // overlong
      else if (b === 0xed) hi = 0x9f; // surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90; // overlong
      else if (b === 0xf4) hi = 0x8f; // above U+10FFFF
    } else return false;
    if (i + need >= end) return false; // truncated sequence
    const b1 = buf[i + 1]!;
    if (b1 < lo || b1 > hi) return false;
    for (let k = 2; k <= need; k++) {
      const bk = buf[i + k]!;
      if (bk < 0x80 || bk > 0xbf) return false;
    }
    i += need + 1;
  }
  return true;
}
