import { validateTopicFilter } from "../mqtt/codec";
import { prefixUpperBound } from "../topics";

/** The presence columns of a device row in D1 (db/schema.ts `devices`), times in epoch ms. */
export interface PresenceColumns {
  online: boolean;
  leaseExpiresAt: number | null;
  disconnectedAt: number | null;
  disconnectReason: string | null;
  disconnectCode: number | null;
}

/** Presence as a reader must show it. */
export interface Presence {
  online: boolean;
  disconnectedAt: number | null;
  disconnectReason: string | null;
  disconnectCode: number | null;
}

/**
 * A device is online only while its lease runs: `online = 1 AND lease_expires_at > now`. A
 * row still marked online whose lease has run out is offline with the reason "lease-expired",
 * disconnected when the lease ended: the object that held its connection vanished without a
 * close event, and the presence sweeper may not have rewritten the row yet.
 */
export function presenceOf(row: PresenceColumns, now: number): Presence {
  if (!row.online) {
    return { online: false, disconnectedAt: row.disconnectedAt, disconnectReason: row.disconnectReason, disconnectCode: row.disconnectCode };
  }
  if (row.leaseExpiresAt !== null && row.leaseExpiresAt > now) {
    return { online: true, disconnectedAt: row.disconnectedAt, disconnectReason: null, disconnectCode: null };
  }
  return { online: false, disconnectedAt: row.leaseExpiresAt, disconnectReason: "lease-expired", disconnectCode: null };
}

/**
 * Client identifiers starting with `prefix`, as a half-open range `low <= id < high` that the
 * primary key answers (SQLite compares TEXT in UTF-8 byte order, BINARY collation): no LIKE,
 * so `%` and `_` in a prefix are plain characters. `high` is undefined when no string bounds
 * the range (a prefix of U+10FFFF only): then `id >= low` alone.
 */
export function clientIdRange(prefix: string): { low: string; high: string | undefined } {
  return { low: prefix, high: prefixUpperBound(prefix) };
}

/** A template of DECOMMISSION_RETAINED that gave no filter for a client identifier, and why. */
export interface SkippedTemplate {
  template: string;
  reason: string;
}

/**
 * The retained-message filters to clear when a device is decommissioned: each comma-separated
 * template of DECOMMISSION_RETAINED with every `%c` replaced by the client identifier. A
 * client identifier with `+` or `#` would turn a template into a wildcard over other devices
 * (`devices/+/#` clears every device's topics), so such a template is skipped, as is one that
 * is no valid topic filter; the caller reports the skipped ones.
 */
export function decommissionFilters(templates: string, clientId: string): { filters: string[]; skipped: SkippedTemplate[] } {
  const filters: string[] = [];
  const skipped: SkippedTemplate[] = [];
  for (const raw of templates.split(",")) {
    const template = raw.trim();
    if (template === "") continue;
    if (template.includes("%c") && /[+#\u0000]/.test(clientId)) {
      skipped.push({ template, reason: "the client identifier contains a wildcard character (+ or #) or U+0000" });
      continue;
    }
    const filter = template.split("%c").join(clientId);
    if (validateTopicFilter(filter) !== undefined) {
      skipped.push({ template, reason: `"${filter}" is not a valid topic filter` });
      continue;
    }
    if (!filters.includes(filter)) filters.push(filter);
  }
  return { filters, skipped };
}
