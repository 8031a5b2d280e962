/**
 * What one presence flush writes to a device's row in D1: only the columns a change set
 * (undefined: left as it is), and how connection_count moves. Changes of one client merge
 * into one patch until the flush, the later one winning column by column, the counts adding
 * up: a connect and a disconnect within one flush interval cost one row write.
 */
export interface DevicePatch {
  online?: boolean;
  transport?: Transport;
  /** 0 for a device only ever seen over HTTP (the column is NOT NULL). */
  protocolVersion?: number;
  username?: string | null;
  remoteAddress?: string | null;
  connectedAt?: number;
  disconnectedAt?: number | null;
  lastSeenAt?: number;
  leaseExpiresAt?: number | null;
  disconnectReason?: string | null;
  disconnectCode?: number | null;
  willFired?: boolean;
  sessionExpiresAt?: number | null;
  decommissionedAt?: number | null;
  /** connection_count is first set to this (a decommissioned device registered anew). */
  countBase?: number;
  /** Then this is added: connections (MQTT) or reporting periods (HTTP) begun. */
  countAdd: number;
}

export type Transport = "mqtt" | "http";

/** The row columns a patch may set, in a fixed order (everything but the counts). */
export const PATCH_COLUMNS = [
  "online",
  "transport",
  "protocolVersion",
  "username",
  "remoteAddress",
  "connectedAt",
  "disconnectedAt",
  "lastSeenAt",
  "leaseExpiresAt",
  "disconnectReason",
  "disconnectCode",
  "willFired",
  "sessionExpiresAt",
  "decommissionedAt",
] as const satisfies readonly (keyof DevicePatch)[];

export type PatchColumn = (typeof PATCH_COLUMNS)[number];

/** `later` applied over `earlier`: its columns win, counts add up (a base in `later` restarts them). */
export function mergePatches(earlier: DevicePatch, later: DevicePatch): DevicePatch {
  const merged: DevicePatch = { ...earlier };
  for (const column of PATCH_COLUMNS) {
    const value = later[column];
    if (value !== undefined) (merged as unknown as Record<string, unknown>)[column] = value;
  }
  if (later.countBase !== undefined) {
    merged.countBase = later.countBase;
    merged.countAdd = later.countAdd;
  } else {
    merged.countAdd = earlier.countAdd + later.countAdd;
  }
  return merged;
}

/** The columns a patch sets, with their values. */
export function patchColumns(patch: DevicePatch): Partial<Pick<DevicePatch, PatchColumn>> {
  const set: Record<string, unknown> = {};
  for (const column of PATCH_COLUMNS) if (patch[column] !== undefined) set[column] = patch[column];
  return set as Partial<Pick<DevicePatch, PatchColumn>>;
}
