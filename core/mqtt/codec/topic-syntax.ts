/**
 * Topic Name and Topic Filter syntax (5.0 section 4.7, shared subscriptions 4.8.2). The
 * decoder rejects a PUBLISH whose Topic Name is invalid, but a SUBSCRIBE or UNSUBSCRIBE is
 * decoded whatever its filters look like: 5.0 answers an invalid filter with SUBACK 0x8F
 * for that filter alone, so the session layer calls validateTopicFilter per filter.
 */
import { ReasonCode } from "../packets";

const SLASH = 0x2f;
const PLUS = 0x2b;
const HASH = 0x23;
const SHARE_PREFIX = "$share/";

/** 0x90 Topic Name invalid, or undefined when the name is valid. */
export function validateTopicName(name: string): number | undefined {
  // At least one character [MQTT-4.7.3-1]. (A 5.0 PUBLISH may carry an empty name with a
  // Topic Alias; the decoder handles that case before calling this.)
  if (name.length === 0) return ReasonCode.TopicNameInvalid;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    // No wildcards in a Topic Name [MQTT-3.3.2-2] [MQTT-4.7.0-1]; no U+0000 [MQTT-4.7.3-2].
    if (c === PLUS || c === HASH || c === 0) return ReasonCode.TopicNameInvalid;
  }
  return undefined;
}

/** 0x8F Topic Filter invalid, or undefined when the filter is valid. */
export function validateTopicFilter(filter: string): number | undefined {
  if (filter.length === 0) return ReasonCode.TopicFilterInvalid; // [MQTT-4.7.3-1]
  let start = 0;
  if (filter.startsWith(SHARE_PREFIX)) {
    // $share/{ShareName}/{filter}: ShareName at least one character [MQTT-4.8.2-1], without
    // "/", "+" or "#", followed by "/" and a Topic Filter [MQTT-4.8.2-2].
    const slash = filter.indexOf("/", SHARE_PREFIX.length);
    if (slash === -1 || slash === SHARE_PREFIX.length || slash === filter.length - 1) {
      return ReasonCode.TopicFilterInvalid;
    }
    for (let i = SHARE_PREFIX.length; i < slash; i++) {
      const c = filter.charCodeAt(i);
      if (c === PLUS || c === HASH) return ReasonCode.TopicFilterInvalid;
    }
    start = slash + 1;
  }
  return levelsValid(filter, start) ? undefined : ReasonCode.TopicFilterInvalid;
}

function levelsValid(filter: string, start: number): boolean {
  const end = filter.length;
  for (let i = start; i < end; i++) {
    const c = filter.charCodeAt(i);
    if (c === 0) return false; // [MQTT-4.7.3-2]
    const levelStart = i === start || filter.charCodeAt(i - 1) === SLASH;
    if (c === HASH) {
      // "#" on its own or after "/", and last [MQTT-4.7.1-1] (5.0) [MQTT-4.7.1-2] (3.1.1).
      if (!levelStart || i !== end - 1) return false;
    } else if (c === PLUS) {
      // "+" occupies an entire level [MQTT-4.7.1-2] (5.0) [MQTT-4.7.1-3] (3.1.1).
      if (!levelStart || (i + 1 < end && filter.charCodeAt(i + 1) !== SLASH)) return false;
    }
  }
  return true;
}
