import type { PresenceEvent } from "../session/types";
import type { Announcement } from "./sys";
import type { DevicePatch, Transport } from "./patch";

/**
 * The presence object's record of one client's current connection (its shard of clients):
 * which connection holds the lease and until when. Kept after the lease ran out (`expired`)
 * so that a renewal that comes late from a live connection brings it back, and a late
 * disconnect of it does not announce it twice.
 */
export interface LeaseState {
  /** Identifies the connection (MQTT: when it was accepted; HTTP: when the reporting period began). */
  connectedAt: number;
  expiresAt: number;
  renewedAt: number;
  transport: Transport;
  expired: boolean;
}

export interface PresenceSettings {
  /** PRESENCE_LEASE, ms. */
  leaseMs: number;
  /** HTTP_PRESENCE_WINDOW, ms. */
  httpWindowMs: number;
}

/** What one change does: the lease (undefined: unchanged, null: deleted), the row patch, the announcement. */
export interface Step {
  lease?: LeaseState | null;
  patch?: DevicePatch;
  announce?: Announcement;
  /** The client was decommissioned and connects again: registered anew. */
  clearDecommission?: true;
}

const NOTHING: Step = {};

/**
 * One event from a socket holder, against the client's lease and its decommission mark.
 * Events of one client come in order (one queue per sender); what is checked here is what
 * order cannot promise: a renewal (it comes from the ConnectionDO, apart from the session's
 * events) or a disconnect of a connection that is not the current one.
 */
export function onEvent(e: PresenceEvent, lease: LeaseState | undefined, decommissionedAt: number | undefined, s: PresenceSettings): Step {
  if (e.renewal) {
    if (!lease || lease.connectedAt !== e.connectedAt || decommissionedAt !== undefined) return NOTHING;
    const renewed: LeaseState = { ...lease, expiresAt: e.at + s.leaseMs, renewedAt: e.at, expired: false };
    if (!lease.expired) return { lease: renewed, patch: { leaseExpiresAt: renewed.expiresAt, lastSeenAt: e.at, countAdd: 0 } };
    // Swept as expired, yet the connection lives (its renewal came late): online again.
    return {
      lease: renewed,
      patch: { online: true, leaseExpiresAt: renewed.expiresAt, lastSeenAt: e.at, disconnectReason: null, disconnectCode: null, countAdd: 0 },
      announce: { event: "connected", clientId: e.clientId, at: e.at, transport: lease.transport },
    };
  }
  if (e.online) {
    if (decommissionedAt !== undefined && e.at <= decommissionedAt) return NOTHING;
    const expiresAt = e.at + s.leaseMs;
    const anew = decommissionedAt !== undefined;
    return {
      lease: { connectedAt: e.connectedAt, expiresAt, renewedAt: e.at, transport: "mqtt", expired: false },
      patch: {
        online: true,
        transport: "mqtt",
        protocolVersion: e.protocolVersion ?? 4,
        username: e.username ?? null,
        remoteAddress: e.remoteAddress ?? null,
        connectedAt: e.connectedAt,
        lastSeenAt: e.at,
        leaseExpiresAt: expiresAt,
        disconnectReason: null,
        disconnectCode: null,
        willFired: false,
        sessionExpiresAt: null,
        decommissionedAt: null,
        ...(anew && { disconnectedAt: null, countBase: 0 }),
        countAdd: 1,
      },
      announce: {
        event: "connected",
        clientId: e.clientId,
        at: e.at,
        transport: "mqtt",
        ...(e.protocolVersion !== undefined && { protocolVersion: e.protocolVersion }),
        ...(e.username !== undefined && { username: e.username }),
        ...(e.remoteAddress !== undefined && { remoteAddress: e.remoteAddress }),
      },
      ...(anew && { clearDecommission: true as const }),
    };
  }
  // Offline.
  if (decommissionedAt !== undefined) return NOTHING; // stays "decommissioned"
  if (lease && lease.connectedAt > e.connectedAt) return NOTHING; // a newer connection holds it
  const reason = e.reason ?? "connection-lost";
  const tail = {
    ...(e.willFired !== undefined && { willFired: e.willFired }),
    ...(e.sessionExpiresAt !== undefined && { sessionExpiresAt: e.sessionExpiresAt }),
  };
  if (lease?.expired && lease.connectedAt === e.connectedAt && reason === "lease-expired") {
    // The sweep already wrote it offline (at the lease's end) and announced it.
    return { lease: null, patch: { ...tail, countAdd: 0 } };
  }
  return {
    lease: null,
    patch: {
      online: false,
      disconnectedAt: e.at,
      lastSeenAt: e.at,
      leaseExpiresAt: e.at,
      disconnectReason: reason,
      disconnectCode: e.code ?? null,
      ...tail,
      countAdd: 0,
    },
    ...(!lease?.expired && {
      announce: {
        event: "disconnected" as const,
        clientId: e.clientId,
        at: e.at,
        transport: lease?.transport ?? "mqtt",
        reason,
        ...(e.code !== undefined && { code: e.code }),
        ...tail,
      },
    }),
  };
}

/** A device seen over HTTP (an ingest item named it): online for the window, renewed at half of it. */
export interface HttpSighting {
  clientId: string;
  at: number;
  remoteAddress?: string;
}

export function onHttpSeen(d: HttpSighting, lease: LeaseState | undefined, decommissionedAt: number | undefined, s: PresenceSettings): Step {
  if (decommissionedAt !== undefined && d.at <= decommissionedAt) return NOTHING;
  const live = lease && !lease.expired;
  if (live && lease.transport === "mqtt") return NOTHING; // its MQTT connection already keeps it online
  const expiresAt = d.at + s.httpWindowMs;
  if (live) {
    if (d.at - lease.renewedAt < s.httpWindowMs / 2) return NOTHING; // at most one write per half window
    return {
      lease: { ...lease, expiresAt, renewedAt: d.at },
      patch: { leaseExpiresAt: expiresAt, lastSeenAt: d.at, ...(d.remoteAddress !== undefined && { remoteAddress: d.remoteAddress }), countAdd: 0 },
    };
  }
  const anew = decommissionedAt !== undefined;
  return {
    lease: { connectedAt: d.at, expiresAt, renewedAt: d.at, transport: "http", expired: false },
    patch: {
      online: true,
      transport: "http",
      connectedAt: d.at,
      lastSeenAt: d.at,
      leaseExpiresAt: expiresAt,
      disconnectReason: null,
      disconnectCode: null,
      willFired: false,
      sessionExpiresAt: null,
      decommissionedAt: null,
      ...(d.remoteAddress !== undefined && { remoteAddress: d.remoteAddress }),
      ...(anew && { disconnectedAt: null, countBase: 0 }),
      countAdd: 1,
    },
    announce: {
      event: "connected",
      clientId: d.clientId,
      at: d.at,
      transport: "http",
      ...(d.remoteAddress !== undefined && { remoteAddress: d.remoteAddress }),
    },
    ...(anew && { clearDecommission: true as const }),
  };
}

/** The sweep: a lease that ran out turns the device offline, "lease-expired", disconnected when it ended. */
export function onSweep(clientId: string, lease: LeaseState, now: number): Step {
  if (lease.expired || lease.expiresAt > now) return NOTHING;
  return {
    lease: { ...lease, expired: true },
    patch: { online: false, disconnectedAt: lease.expiresAt, disconnectReason: "lease-expired", disconnectCode: null, countAdd: 0 },
    announce: { event: "disconnected", clientId, at: lease.expiresAt, transport: lease.transport, reason: "lease-expired" },
  };
}
