import { changedValues, sysValues, type RetainedAlert, type SysStats } from "../core/metrics";
import type { Message } from "../core/session/types";
import type { Env } from "../worker/env";
import { Router } from "./router";

/** `$SYS/broker/alerts/retained`: JSON `{ count, threshold, at }` (at: ISO 8601) while raised; cleared by an empty retained message. */
export const RETAINED_ALERT_TOPIC = "$SYS/broker/alerts/retained";

const encoder = new TextEncoder();

/**
 * Publishes the broker's statistics through the normal routing path, as Mosquitto does:
 * retained, QoS 0, so a new subscriber sees the latest values at once. Only the values that
 * changed since the last publication go out; after this object restarts, all of them again.
 */
export class SysPublisher {
  readonly #router: Router;
  /** What each topic was last published with. */
  readonly #last = new Map<string, string>();

  constructor(env: Env) {
    this.#router = new Router(env);
  }

  /** Publishes the statistics that changed; resolves with how many topics were published. */
  async publish(stats: SysStats): Promise<number> {
    const changed = changedValues(this.#last, sysValues(stats));
    await Promise.all(changed.map(([topic, payload]) => this.#router.publish(sysMessage(topic, payload))));
    for (const [topic, payload] of changed) this.#last.set(topic, payload);
    return changed.length;
  }

  /** The retained alert's state: its JSON while raised, an empty retained message (deletes it) once cleared [MQTT-3.3.1-6]. */
  async alert(alert: RetainedAlert | null): Promise<void> {
    const payload = alert ? JSON.stringify({ count: alert.count, threshold: alert.threshold, at: new Date(alert.at).toISOString() }) : "";
    await this.#router.publish(sysMessage(RETAINED_ALERT_TOPIC, payload));
  }
}

function sysMessage(topic: string, payload: string): Message {
  return { topic, payload: encoder.encode(payload), qos: 0, retain: true, origin: "$SYS" };
}
