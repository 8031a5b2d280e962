import { DurableObject } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { createDb, schema } from "../db";
import type { PresenceEvent } from "../core/session/types";
import type { Env } from "../worker/env";

/**
 * Device presence in D1: one upsert per connect or disconnect (never per message).
 * Failures are logged, not thrown: presence must not break the MQTT session.
 */
export async function recordPresence(env: Env, event: PresenceEvent): Promise<void> {
  const db = createDb(env.DB);
  const d = schema.devices;
  try {
    if (event.online) {
      await db
        .insert(d)
        .values({
          clientId: event.clientId,
          username: event.username ?? null,
          protocolVersion: event.protocolVersion ?? 4,
          online: true,
          connectedAt: event.at,
          lastSeenAt: event.at,
          willFired: false,
        })
        .onConflictDoUpdate({
          target: d.clientId,
          set: {
            username: event.username ?? null,
            protocolVersion: event.protocolVersion ?? 4,
            online: true,
            connectedAt: event.at,
            lastSeenAt: event.at,
            disconnectReason: null,
            willFired: false,
          },
        });
    } else {
      await db
        .update(d)
        .set({
          online: false,
          disconnectedAt: event.at,
          lastSeenAt: event.at,
          disconnectReason: reasonName(event.reason ?? 0),
          willFired: event.willFired ?? false,
        })
        .where(eq(d.clientId, event.clientId));
    }
  } catch (e) {
    console.error("presence write failed", e);
  }
}

const REASONS: Record<number, string> = {
  0x00: "normal",
  0x04: "disconnect-with-will",
  0x80: "connection-lost",
  0x81: "malformed-packet",
  0x82: "protocol-error",
  0x8d: "keepalive-timeout",
  0x8e: "taken-over",
  0x93: "receive-maximum-exceeded",
  0x94: "topic-alias-invalid",
  0x95: "packet-too-large",
};

function reasonName(code: number): string {
  return REASONS[code] ?? `reason-0x${code.toString(16).padStart(2, "0")}`;
}

/** Device presence batching (being built: issue 11). */
export class PresenceDO extends DurableObject<Env> {}
