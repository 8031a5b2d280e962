/**
 * Pure rules of the retained-message admin operations (list, delete matching, stale sweep):
 * which shards a filter can touch, in which order a shard's topic index is walked for a
 * page, which rows an age selection takes, and the opaque cursor of a listing across shards.
 * No I/O: the TopicShard object runs the SQL, the Worker the HTTP.
 */

import { retainedLookup } from "./retained-range";
import { hasWildcard, shardOfTopic, topicHash } from "./shard";

/**
 * The shards whose retained messages a filter can match. A filter without a wildcard is one
 * topic name [MQTT-4.7.3-4], stored on that name's shard; a wildcard filter can match a name
 * on any shard. Unlike `shardsForFilter`, a `$share/` prefix is not stripped: a shared
 * subscription gets no retained messages (5.0 section 4.8.2), so callers refuse such filters.
 */
export function retainedShards(filter: string, shardCount: number): number[] {
  if (!hasWildcard(filter)) return [shardOfTopic(filter, shardCount)];
  return Array.from({ length: shardCount }, (_, i) => i);
}

/**
 * One piece of a walk over a shard's topic index, in UTF-8 byte order (SQLite BINARY):
 * `low <= topic` (`topic = low` when `exact`), `topic < high` when `high` is set.
 */
export interface ScanSegment {
  readonly low: string;
  readonly high: string | undefined;
  readonly exact: boolean;
}

/**
 * The index segments holding every topic name `filter` can match, in ascending topic order,
 * so a page read segment after segment, each `ORDER BY topic`, comes out sorted and a cursor
 * "after this topic" resumes it. retainedLookup's exact name is the parent of a trailing `#`
 * and sorts before its range (`a/b` < `a/b/...`); its ranges are already ascending and disjoint.
 */
export function retainedScan(filter: string): ScanSegment[] {
  const { exact, ranges } = retainedLookup(filter);
  const segments: ScanSegment[] = [];
  if (exact !== undefined) segments.push({ low: exact, high: undefined, exact: true });
  for (const { low, high } of ranges) segments.push({ low, high, exact: false });
  return segments;
}

/**
 * Compares two strings in UTF-8 byte order, which is code point order and SQLite's BINARY
 * collation (JavaScript's `<` compares UTF-16 code units: U+10000 before U+FFFF).
 */
export function compareUtf8(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(j)!;
    if (x !== y) return x < y ? -1 : 1;
    i += x > 0xffff ? 2 : 1;
    j += y > 0xffff ? 2 : 1;
  }
  return a.length - i === 0 ? (b.length - j === 0 ? 0 : -1) : 1;
}

/**
 * A segment's part after the cursor `after` (exclusive), as one lower bound: a range scan
 * with two lower bounds on the same column uses only one of them for the index seek and
 * filters the rest row by row, so every page would re-read the segment from its start.
 * Undefined when nothing of the segment is after the cursor.
 */
export function segmentAfter(segment: ScanSegment, after: string | undefined): { from: string; inclusive: boolean } | undefined {
  if (after === undefined || compareUtf8(after, segment.low) < 0) return { from: segment.low, inclusive: true };
  if (segment.exact) return undefined; // after >= the exact name: done with it
  if (segment.high !== undefined && compareUtf8(after, segment.high) >= 0) return undefined;
  return { from: after, inclusive: false };
}

/**
 * The "stored at" cutoff of `older_than` seconds: a message is older than N seconds when it
 * was stored at or before now - N s. Undefined seconds: no age condition.
 */
export function olderThanCutoff(now: number, olderThanSeconds: number | undefined): number | undefined {
  if (olderThanSeconds === undefined) return undefined;
  return now - Math.round(olderThanSeconds * 1000);
}

/** What an admin operation does with one stored row it walked over. */
export type RowVerdict = "take" | "skip" | "expired";

/**
 * Whether a row walked over is taken by a selection: `expired` when its Message Expiry
 * Interval has passed (no longer retained: removed, never listed or counted [MQTT-3.3.2-5]),
 * `take` when it matches the filter (rows of a range may not: `a/+/c` walks all of `a/...`)
 * and is old enough, else `skip`.
 */
export function selectRow(
  row: { topic: string; storedAt: number; expiresAt: number | null },
  selection: { matches: (topic: string) => boolean; cutoff: number | undefined; now: number },
): RowVerdict {
  if (row.expiresAt !== null && row.expiresAt <= selection.now) return "expired";
  if (!selection.matches(row.topic)) return "skip";
  if (selection.cutoff !== undefined && row.storedAt > selection.cutoff) return "skip";
  return "take";
}

// ------------------------------------------------------------------------------ cursor

/** Where a listing across shards stopped: the next page starts after `after` on shard `shard`. */
export interface RetainedCursor {
  shard: number;
  /** Last topic walked on that shard (the next page takes topics after it); undefined: from the start. */
  after: string | undefined;
}

interface CursorWire {
  v: 1;
  /** Shard index. */
  s: number;
  /** Last topic walked, absent at a shard's start. */
  a?: string;
  /** Hash of the filter and of the shard count: a cursor is refused with another filter or shard count. */
  f: number;
}

function cursorCheck(filter: string, shardCount: number): number {
  return topicHash(`${shardCount}\u0000${filter}`);
}

/** The opaque cursor (base64url of a small JSON) of a listing of `filter` over `shardCount` shards. */
export function encodeCursor(cursor: RetainedCursor, filter: string, shardCount: number): string {
  const wire: CursorWire = { v: 1, s: cursor.shard, f: cursorCheck(filter, shardCount) };
  if (cursor.after !== undefined) wire.a = cursor.after;
  return base64UrlEncode(new TextEncoder().encode(JSON.stringify(wire)));
}

/**
 * Reads a cursor made by {@link encodeCursor} for the same filter and shard count; undefined
 * when it is malformed, or was made for another filter or shard count.
 */
export function decodeCursor(text: string, filter: string, shardCount: number): RetainedCursor | undefined {
  const bytes = base64UrlDecode(text);
  if (!bytes) return undefined;
  let wire: unknown;
  try {
    wire = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes));
  } catch {
    return undefined;
  }
  if (typeof wire !== "object" || wire === null) return undefined;
  const w = wire as Partial<CursorWire>;
  if (w.v !== 1 || typeof w.s !== "number" || !Number.isInteger(w.s) || w.s < 0 || w.s >= shardCount) return undefined;
  if (w.f !== cursorCheck(filter, shardCount)) return undefined;
  if (w.a !== undefined && typeof w.a !== "string") return undefined;
  return { shard: w.s, after: w.a };
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** Base64url without padding (RFC 4648 section 5). */
export function base64UrlEncode(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((bytes.length - i) * 8) / 6));
    for (let k = 0; k < chars; k++) out += ALPHABET[(n >> (18 - 6 * k)) & 63];
  }
  return out;
}

/** Decodes unpadded base64url; undefined on any other character or an impossible length. */
export function base64UrlDecode(text: string): Uint8Array | undefined {
  if (text.length % 4 === 1) return undefined;
  const out = new Uint8Array(Math.floor((text.length * 6) / 8));
  let bits = 0;
  let acc = 0;
  let j = 0;
  for (let i = 0; i < text.length; i++) {
    const v = ALPHABET.indexOf(text[i]!);
    if (v < 0) return undefined;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[j++] = (acc >> bits) & 0xff;
    }
  }
  // The leftover bits must be zero: one text per byte string (canonical encoding).
  if ((acc & ((1 << bits) - 1)) !== 0) return undefined;
  return out;
}
