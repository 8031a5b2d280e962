/**
 * Assignment of the topic space to N TopicShard objects.
 *
 * A topic's shard is a hash of its whole name, so hot prefixes (`devices/...`) spread over
 * all shards. Shard assignment is persisted (retained messages and subscriptions live on
 * their shard), so the hash is fixed forever: FNV-1a (32-bit) over the UTF-8 bytes, then
 * murmur3's fmix32 finaliser, then modulo N.
 *
 * Why the finaliser: the low k bits of an FNV-1a hash depend only on the low k bits of each
 * input byte, so with a power-of-two N plain `fnv % N` sends `x/a`, `x/q`, `x/A` and `x/Q`
 * to the same shard. fmix32 lets every input bit reach every output bit.
 */

import { parseSharedFilter } from "./match";
import { isLowSurrogate } from "./utf8";

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a, 32-bit, over the UTF-8 encoding of `s` (lone surrogates as U+FFFD, like TextEncoder). */
export function fnv1a32(s: string): number {
  let h = FNV_OFFSET;
  const add = (b: number): void => {
    h = Math.imul(h ^ b, FNV_PRIME);
  };
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      add(c);
    } else if (c < 0x800) {
      add(0xc0 | (c >> 6));
      add(0x80 | (c & 0x3f));
    } else if (c >= 0xd800 && c <= 0xdbff && isLowSurrogate(s.charCodeAt(i + 1))) {
      c = 0x10000 + ((c - 0xd800) << 10) + (s.charCodeAt(++i) - 0xdc00);
      add(0xf0 | (c >> 18));
      add(0x80 | ((c >> 12) & 0x3f));
      add(0x80 | ((c >> 6) & 0x3f));
      add(0x80 | (c & 0x3f));
    } else {
      if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd; // lone surrogate
      add(0xe0 | (c >> 12));
      add(0x80 | ((c >> 6) & 0x3f));
      add(0x80 | (c & 0x3f));
    }
  }
  return h >>> 0;
}

/** murmur3's 32-bit finaliser (fmix32): a bijection that mixes every bit into every bit. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The stable 32-bit shard hash of a topic name. */
export function topicHash(topic: string): number {
  return fmix32(fnv1a32(topic));
}

/** The shard, in [0, shardCount), that holds the topic name. */
export function shardOfTopic(topic: string, shardCount: number): number {
  checkShardCount(shardCount);
  return topicHash(topic) % shardCount;
}

/** Whether the filter holds a wildcard (`+` or `#`), ignoring any `$share/{group}/` prefix. */
export function hasWildcard(filter: string): boolean {
  const inner = parseSharedFilter(filter)?.filter ?? filter;
  return inner.includes("+") || inner.includes("#");
}

/**
 * The shards a subscription must be registered on. A filter without wildcards (after
 * stripping `$share/{group}/`) matches only the topic equal to it, so it lives on that
 * topic's shard; a filter with `+` or `#` may match topics on any shard, so it is on all.
 */
export function shardsForFilter(filter: string, shardCount: number): number[] {
  checkShardCount(shardCount);
  const inner = parseSharedFilter(filter)?.filter ?? filter;
  if (inner.includes("+") || inner.includes("#")) {
    return Array.from({ length: shardCount }, (_, i) => i);
  }
  return [topicHash(inner) % shardCount];
}

function checkShardCount(shardCount: number): void {
  if (!Number.isInteger(shardCount) || shardCount < 1 || shardCount > 0xffffffff) {
    throw new RangeError(`shard count must be a positive integer, got ${shardCount}`);
  }
}
