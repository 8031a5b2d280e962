import type { QoS } from "../mqtt/packets";
import { isSharedFilter, type SubscriptionMatch } from "../topics";
import type { Delivery, Message, Subscription } from "./types";

/** No Local: a message is not sent back to its publisher's own non-shared subscriptions [MQTT-3.8.3-3]. */
export function excludedByNoLocal(message: Message, match: SubscriptionMatch<Subscription>): boolean {
  return match.value.noLocal && message.origin === match.key && !isSharedFilter(match.filter);
}

/**
 * One delivery per session, whatever the number of its matching subscriptions (5.0 3.3.4):
 * what a topic shard sends for a message, live or replayed (recent.ts).
 */
export function deliveriesFor(message: Message, matches: readonly SubscriptionMatch<Subscription>[]): Map<string, Delivery> {
  const perClient = new Map<string, Delivery>();
  for (const m of matches) {
    if (excludedByNoLocal(message, m)) continue;
    const sub = m.value;
    const qos = minQos(message.qos, sub.qos); // [MQTT-3.8.4-8]
    // Retain As Published keeps RETAIN, otherwise it is cleared on forwarding [MQTT-3.3.1-12] [MQTT-3.3.1-13].
    const retain = sub.retainAsPublished && message.retain;
    const existing = perClient.get(m.key);
    if (!existing) {
      perClient.set(m.key, {
        message,
        qos,
        retain,
        ...(sub.subscriptionId !== undefined && { subscriptionIds: [sub.subscriptionId] }),
      });
      continue;
    }
    // Overlapping subscriptions: highest QoS, every subscription identifier [MQTT-3.3.4-3] [MQTT-3.3.4-5].
    existing.qos = Math.max(existing.qos, qos) as QoS;
    existing.retain = existing.retain || retain;
    if (sub.subscriptionId !== undefined) (existing.subscriptionIds ??= []).push(sub.subscriptionId);
  }
  return perClient;
}

export function minQos(a: QoS, b: QoS): QoS {
  return (a < b ? a : b) as QoS;
}
