import type { DisconnectReason } from "./reasons";
import type { Transport } from "./patch";

/**
 * A presence event as published on `$SYS/broker/clients/<clientId>/connected` and
 * `.../disconnected` (non-retained, QoS 0; docs/presence.md). Times are epoch ms.
 */
export type Announcement =
  | {
      event: "connected";
      clientId: string;
      at: number;
      transport: Transport;
      protocolVersion?: number;
      username?: string;
      remoteAddress?: string;
    }
  | {
      event: "disconnected";
      clientId: string;
      at: number;
      transport: Transport;
      reason: DisconnectReason;
      code?: number;
      willFired?: boolean;
      sessionExpiresAt?: number | null;
    };

/**
 * The topic of an announcement; undefined when the client identifier cannot be a topic
 * level: empty, or holding a wildcard character (`+`, `#` are not allowed in a topic name
 * [MQTT-4.7.1-1]). A `/` in it adds levels: `$SYS/broker/clients/+/connected` then does not
 * match, `$SYS/broker/clients/#` does.
 */
export function announcementTopic(a: Announcement): string | undefined {
  if (a.clientId === "" || /[+#]/.test(a.clientId)) return undefined;
  return `$SYS/broker/clients/${a.clientId}/${a.event}`;
}

/** The payload: the announcement as JSON (UTF-8). */
export function announcementPayload(a: Announcement): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(a));
}
