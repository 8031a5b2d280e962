/** API key scopes: the topic filters a key may publish to. */
import { validateTopicFilter } from "../mqtt/codec";
import { checkTopicFilterLimits, isSharedFilter } from "../topics";
import { isMqttString } from "./draft";

/** Why `filter` cannot be a key's scope, or undefined when it can. */
export function scopeProblem(filter: string): string | undefined {
  if (!isMqttString(filter)) return `${JSON.stringify(filter)} is not a valid MQTT string.`;
  if (validateTopicFilter(filter) !== undefined) return `${JSON.stringify(filter)} is not a valid topic filter.`;
  if (isSharedFilter(filter)) return `${JSON.stringify(filter)}: a shared subscription is not a place to publish to.`;
  // Nothing may be published to $ topics over HTTP, so a scope there would promise what is refused.
  if (filter.startsWith("$")) return `${JSON.stringify(filter)}: topics starting with $ belong to the broker.`;
  if (checkTopicFilterLimits(filter) !== undefined) return `${JSON.stringify(filter)} is too long or too deep.`;
  return undefined;
}
