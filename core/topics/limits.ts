/**
 * Configurable limits on topic names and filters: length in bytes and number of levels.
 * Syntax (wildcard placement, empty topics, U+0000) is checked by
 * core/mqtt/codec/topic-syntax.ts, not here.
 */

import { ReasonCode } from "../mqtt/packets";
import { parseSharedFilter } from "./match";
import { utf8ByteLength } from "./utf8";

export interface TopicLimits {
  /** Maximum UTF-8 length in bytes of a topic name or of a whole topic filter. */
  maxBytes: number;
  /** Maximum number of levels (separators + 1); a shared filter counts its inner filter. */
  maxLevels: number;
}

/**
 * Defaults: the protocol's own ceiling on length, 65,535 bytes [MQTT-4.7.3-3], and a level
 * count that bounds the depth of the subscription trie.
 */
export const DEFAULT_TOPIC_LIMITS: TopicLimits = { maxBytes: 65535, maxLevels: 128 };

/** 0x90 Topic Name invalid when the topic name exceeds the limits, else undefined. */
export function checkTopicNameLimits(
  topic: string,
  limits: TopicLimits = DEFAULT_TOPIC_LIMITS,
): typeof ReasonCode.TopicNameInvalid | undefined {
  return withinLimits(topic, topic, limits) ? undefined : ReasonCode.TopicNameInvalid;
}

/** 0x8F Topic Filter invalid when the topic filter exceeds the limits, else undefined. */
export function checkTopicFilterLimits(
  filter: string,
  limits: TopicLimits = DEFAULT_TOPIC_LIMITS,
): typeof ReasonCode.TopicFilterInvalid | undefined {
  const levels = parseSharedFilter(filter)?.filter ?? filter;
  return withinLimits(filter, levels, limits) ? undefined : ReasonCode.TopicFilterInvalid;
}

/** Levels of a topic name or filter: `a` has 1, `/a` and `a/` have 2. */
export function countLevels(topic: string): number {
  let n = 1;
  for (let i = topic.indexOf("/"); i >= 0; i = topic.indexOf("/", i + 1)) n++;
  return n;
}

function withinLimits(whole: string, levels: string, limits: TopicLimits): boolean {
  // Cheap bound first: a string of L UTF-16 units encodes to between L and 3L bytes.
  if (whole.length > limits.maxBytes) return false;
  if (whole.length * 3 > limits.maxBytes && utf8ByteLength(whole) > limits.maxBytes) return false;
  return countLevels(levels) <= limits.maxLevels;
}
