/**
 * Which stored topic names a Topic Filter can match, as ranges of a table keyed by topic
 * name, so that the retained messages for a new subscription are read by an index range
 * scan instead of a scan of every retained message.
 *
 * Ranges are in UTF-8 byte order, which is code point order and SQLite's BINARY collation
 * (memcmp of the UTF-8 text); not JavaScript's `<`, which compares UTF-16 code units and
 * puts U+10000 before U+FFFF.
 *
 * The filter is taken literally, as {@link topicMatches} takes it (no `$share/` stripping:
 * retained messages are not sent for shared subscriptions, 5.0 section 4.8.2). Inputs are
 * assumed syntactically valid; on invalid input this stays total and never throws.
 */

import { isLowSurrogate } from "./utf8";

/** Topic names `t` with `low <= t < high` in UTF-8 byte order; `high` undefined: no upper bound. */
export interface TopicRange {
  readonly low: string;
  readonly high: string | undefined;
}

/** Where the topic names a filter can match are: one exact name and/or ranges. */
export interface RetainedLookup {
  /** A topic name to look up exactly: the whole filter when it has no wildcard, or the parent level of a trailing `#`. */
  readonly exact: string | undefined;
  /** Ranges holding every other topic name the filter can match (and possibly some it does not). */
  readonly ranges: readonly TopicRange[];
}

/**
 * Where the topic names matched by `filter` can be, as lookups on an index of topic names.
 *
 * Every topic name `t` with `topicMatches(filter, t)` is the `exact` name or lies in one of
 * the `ranges` (no false negatives). The ranges may hold names that do not match (`a/+/c`
 * gives every name starting with `a/`), so the caller still matches each row; but they
 * hold only names that share the filter's literal levels before its first wildcard.
 *
 * - no wildcard level, `a/b`: exactly `a/b` [MQTT-4.7.3-4];
 * - `a/b/+/c`, `a/b/+`: the names starting with `a/b/`;
 * - `a/b/#`: `a/b` itself and the names starting with `a/b/` [MQTT-4.7.1-2];
 * - a leading wildcard, `+/x` or `#`: every name except those starting with `$` [MQTT-4.7.2-1];
 * - a `#` that is not the last level matches nothing [MQTT-4.7.1-2]: no lookup at all.
 */
export function retainedLookup(filter: string): RetainedLookup {
  const levels = filter.split("/");
  const first = levels.findIndex((level) => level === "+" || level === "#");
  if (first < 0) return { exact: filter, ranges: [] };
  const multiLevel = levels[first] === "#";
  // [MQTT-4.7.1-2] `#` must be the last level; topicMatches matches nothing otherwise.
  if (multiLevel && first !== levels.length - 1) return { exact: undefined, ranges: [] };
  if (first === 0) {
    // [MQTT-4.7.2-1] A filter starting with a wildcard does not match names starting with `$`:
    // everything below "$" and everything from "%" (the code point after "$") on.
    return { exact: undefined, ranges: [{ low: "", high: "$" }, { low: "%", high: undefined }] };
  }
  const parent = levels.slice(0, first).join("/");
  const prefix = `${parent}/`;
  return {
    // [MQTT-4.7.1-2] `#` also matches its parent level: `a/b/#` matches `a/b`.
    exact: multiLevel ? parent : undefined,
    ranges: [{ low: prefix, high: prefixUpperBound(prefix) }],
  };
}

/**
 * The least string greater, in UTF-8 byte order, than every string starting with `prefix`:
 * `prefix` with its last code point incremented, after dropping trailing U+10FFFF (which
 * has no successor). Undefined when there is none (empty, or only U+10FFFF).
 *
 * Works on code points, not bytes, so the bound is always valid text (incrementing the last
 * byte of a multi-byte character would not be); UTF-8 preserves code point order, so
 * `prefix <= s < bound` holds exactly for the strings `s` that start with `prefix`.
 * Surrogates are not code points of any UTF-8 text: U+D7FF is followed by U+E000. A lone
 * surrogate is taken as U+FFFD, the character it is encoded as.
 */
export function prefixUpperBound(prefix: string): string | undefined {
  let end = prefix.length;
  while (end > 0) {
    let start = end - 1;
    let c = prefix.charCodeAt(start);
    if (isLowSurrogate(c) && start > 0 && isHighSurrogate(prefix.charCodeAt(start - 1))) {
      start--;
      c = 0x10000 + ((prefix.charCodeAt(start) - 0xd800) << 10) + (c - 0xdc00);
    } else if (c >= 0xd800 && c <= 0xdfff) {
      c = 0xfffd; // lone surrogate
    }
    if (c < 0x10ffff) return prefix.slice(0, start) + String.fromCodePoint(c === 0xd7ff ? 0xe000 : c + 1);
    end = start; // U+10FFFF: no successor, carry into the previous code point
  }
  return undefined;
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}
