import { ReasonCode } from "../mqtt/packets";

/**
 * Why a device went offline, as the devices table and the `$SYS/.../disconnected` event name
 * it. The MQTT reason code goes beside it (`disconnect_code`) when there was one.
 */
export const DISCONNECT_REASONS = [
  /** The client sent DISCONNECT (0x00, or 0x04 "with Will"). */
  "normal",
  /** The client sent DISCONNECT with an error reason code (>= 0x80). */
  "client-error",
  /** No packet within one and a half keep alive intervals [MQTT-3.1.2-24] (0x8D). */
  "keepalive-timeout",
  /** Another connection with the same client identifier took the session over [MQTT-3.1.4-3] (0x8E). */
  "taken-over",
  /** The client broke the protocol: malformed packet, protocol error, packet too large, ... (code beside it). */
  "protocol-error",
  /** Closed for publishing faster than the rate limits (0x96 / 0x97). */
  "rate-limited",
  /** The broker failed (a storage error, 0x80 decided by the server). */
  "server-error",
  /** An operator disconnected it (POST /api/v1/devices/<id>/disconnect, 0x98). */
  "admin-disconnect",
  /** The network connection closed without DISCONNECT. */
  "connection-lost",
  /**
   * Nothing renewed its lease in time: the connection vanished without a close event (the
   * runtime restarted, the object holding the socket was evicted), or an HTTP device stopped
   * reporting within its window.
   */
  "lease-expired",
  /** DELETE /api/v1/devices/<id>. */
  "decommissioned",
] as const;

export type DisconnectReason = (typeof DISCONNECT_REASONS)[number];

/**
 * How the session learned that its connection ended: the client sent DISCONNECT (`client`),
 * the broker closed it (`server`: protocol error, keep alive, take-over, operator), the socket
 * closed without DISCONNECT (`lost`), or the socket was gone without any close event, found
 * missing after a restart (`vanished`).
 */
export type Ending = "client" | "server" | "lost" | "vanished";

export interface DisconnectCause {
  reason: DisconnectReason;
  /** The MQTT reason code, when one was sent or decided. */
  code?: number;
}

const SERVER_ERRORS: ReadonlySet<number> = new Set([
  ReasonCode.UnspecifiedError,
  ReasonCode.ImplementationSpecificError,
  ReasonCode.ServerUnavailable,
  ReasonCode.ServerBusy,
  ReasonCode.ServerShuttingDown,
]);

/** The reason name (and code) of a connection that ended with `code`, learned as `ending`. */
export function disconnectCause(code: number, ending: Ending): DisconnectCause {
  if (ending === "vanished") return { reason: "lease-expired" };
  if (ending === "client") {
    // [MQTT-3.14.2.1] codes below 0x80 are normal disconnections (0x04: publish the Will).
    return code < 0x80 ? { reason: "normal", code } : { reason: "client-error", code };
  }
  switch (code) {
    case ReasonCode.KeepAliveTimeout:
      return { reason: "keepalive-timeout", code };
    case ReasonCode.SessionTakenOver:
      return { reason: "taken-over", code };
    case ReasonCode.AdministrativeAction:
      return { reason: "admin-disconnect", code };
    case ReasonCode.MessageRateTooHigh:
    case ReasonCode.QuotaExceeded:
      return { reason: "rate-limited", code };
  }
  if (ending === "lost") return { reason: "connection-lost" };
  if (SERVER_ERRORS.has(code)) return { reason: "server-error", code };
  return { reason: "protocol-error", code };
}
