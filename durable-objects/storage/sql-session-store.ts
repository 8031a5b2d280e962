import type { InboundQos2, OutboundEntry, OutboundState, SentEntry, SessionRecord, SessionStore } from "../../core/session/store";
import { deliverySize } from "../../core/session/outbound";
import type { Delivery, Subscription } from "../../core/session/types";
import { decodeJson, encodeJson } from "./json";

/** The subset of Durable Object SQL storage the store uses (also met by a better-sqlite3 adapter in tests). */
export interface SqlExec {
  exec(query: string, ...bindings: any[]): { toArray(): Record<string, SqlValue>[] };
}
type SqlValue = string | number | null | ArrayBuffer | Uint8Array;

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS session (id INTEGER PRIMARY KEY CHECK (id = 1), record TEXT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS subscriptions (filter TEXT PRIMARY KEY, options TEXT NOT NULL)`,
  // No AUTOINCREMENT and no index on packet_id: each would add a row written per message
  // (sqlite_sequence, index entries), and rows written are what storage is billed on. A
  // rowid primary key still grows with each insert; the table is small (in flight + queue).
  // `size`: deliverySize of the entry, so the queue's bound in bytes is read without decoding rows.
  // A group (enqueueSentGroup): state 'sent', no packet_id, `delivery` holds the JSON array of
  // its entries (each with its packet identifier), `entries` how many: several QoS 1 messages
  // for one row written.
  `CREATE TABLE IF NOT EXISTS outbound (seq INTEGER PRIMARY KEY, packet_id INTEGER, state TEXT NOT NULL, delivery TEXT NOT NULL, size INTEGER NOT NULL DEFAULT 0, entries INTEGER NOT NULL DEFAULT 1)`,
  `DROP INDEX IF EXISTS outbound_packet_id`,
  // `routed`: every subscriber's session accepted the message, so PUBREC may go (see Session).
  `CREATE TABLE IF NOT EXISTS inbound_qos2_messages (packet_id INTEGER PRIMARY KEY, message_id TEXT NOT NULL, routed INTEGER NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS seen_messages (message_id TEXT PRIMARY KEY, at INTEGER NOT NULL)`,
];
/** The table of sessions stored before message identifiers: its entries were all acknowledged. */
const LEGACY_QOS2 = "inbound_qos2";

/**
 * SessionStore over Durable Object SQLite. Each call is one statement or a few; rows written
 * per QoS 1 delivery sent at once: one insert and one delete, or a share of a group's
 * (enqueueSentGroup: one insert and one delete for all of its messages).
 */
export class SqlSessionStore implements SessionStore {
  readonly #sql: SqlExec;

  constructor(sql: SqlExec) {
    this.#sql = sql;
    for (const statement of SCHEMA) sql.exec(statement);
    if (!this.#rows(`SELECT 1 AS x FROM pragma_table_info('outbound') WHERE name = 'size'`).length) {
      // Stored before the queue had a byte bound: its entries count as 0 bytes until sent.
      sql.exec(`ALTER TABLE outbound ADD COLUMN size INTEGER NOT NULL DEFAULT 0`);
    }
    if (!this.#rows(`SELECT 1 AS x FROM pragma_table_info('outbound') WHERE name = 'entries'`).length) {
      // Stored before groups: every row is one entry.
      sql.exec(`ALTER TABLE outbound ADD COLUMN entries INTEGER NOT NULL DEFAULT 1`);
    }
    const legacy = this.#rows(`SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = ?`, LEGACY_QOS2);
    if (legacy.length > 0) {
      // PUBREC was sent for those (the old code sent it once routed): routed, under a made-up id.
      sql.exec(
        `INSERT OR IGNORE INTO inbound_qos2_messages (packet_id, message_id, routed) SELECT packet_id, 'legacy-' || packet_id, 1 FROM ${LEGACY_QOS2}`,
      );
      sql.exec(`DROP TABLE ${LEGACY_QOS2}`);
    }
  }

  #rows<T>(query: string, ...bindings: unknown[]): T[] {
    return this.#sql.exec(query, ...bindings).toArray() as T[];
  }

  load(): SessionRecord | undefined {
    const row = this.#rows<{ record: string }>(`SELECT record FROM session WHERE id = 1`)[0];
    return row ? decodeJson<SessionRecord>(row.record) : undefined;
  }
  save(record: SessionRecord): void {
    this.#sql.exec(`INSERT OR REPLACE INTO session (id, record) VALUES (1, ?)`, encodeJson(record));
  }
  clear(): void {
    for (const table of ["session", "subscriptions", "outbound", "inbound_qos2_messages", "seen_messages"]) this.#sql.exec(`DELETE FROM ${table}`);
  }

  subscriptions(): Subscription[] {
    return this.#rows<{ options: string }>(`SELECT options FROM subscriptions ORDER BY filter`)
      
      .map((r) => decodeJson<Subscription>(r.options));
  }
  getSubscription(filter: string): Subscription | undefined {
    const row = this.#rows<{ options: string }>(`SELECT options FROM subscriptions WHERE filter = ?`, filter)[0];
    return row ? decodeJson<Subscription>(row.options) : undefined;
  }
  putSubscription(subscription: Subscription): void {
    this.#sql.exec(
      `INSERT OR REPLACE INTO subscriptions (filter, options) VALUES (?, ?)`,
      subscription.filter,
      encodeJson(subscription),
    );
  }
  deleteSubscription(filter: string): boolean {
    const existed = this.getSubscription(filter) !== undefined;
    if (existed) this.#sql.exec(`DELETE FROM subscriptions WHERE filter = ?`, filter);
    return existed;
  }

  enqueue(delivery: Delivery, state: OutboundState, packetId?: number): number {
    const row = this.#rows<{ seq: number }>(
        `INSERT INTO outbound (packet_id, state, delivery, size) VALUES (?, ?, ?, ?) RETURNING seq`,
        packetId ?? null,
        state,
        encodeJson(delivery),
        deliverySize(delivery),
      )
      [0]!;
    return row.seq;
  }
  enqueueSentGroup(entries: SentEntry[]): number {
    const row = this.#rows<{ seq: number }>(
      `INSERT INTO outbound (packet_id, state, delivery, size, entries) VALUES (NULL, 'sent', ?, 0, ?) RETURNING seq`,
      encodeJson(entries),
      entries.length,
    )[0]!;
    return row.seq;
  }
  keepInGroup(seq: number, packetIds: number[]): void {
    const row = this.#rows<OutboundRow>(`SELECT seq, packet_id, state, delivery FROM outbound WHERE seq = ?`, seq)[0];
    if (!row || !isGroup(row)) return;
    const keep = new Set(packetIds);
    const left = decodeJson<SentEntry[]>(row.delivery).filter((e) => keep.has(e.packetId));
    if (left.length === 0) this.deleteOutbound(seq);
    else this.#sql.exec(`UPDATE outbound SET delivery = ?, entries = ? WHERE seq = ?`, encodeJson(left), left.length, seq);
  }
  outbound(limit: number): OutboundEntry[] {
    return this.#rows<OutboundRow>(`SELECT seq, packet_id, state, delivery FROM outbound ORDER BY seq LIMIT ?`, limit)
      .flatMap(toEntries)
      .slice(0, limit);
  }
  outboundCount(): number {
    return this.#rows<{ n: number }>(`SELECT coalesce(sum(entries), 0) AS n FROM outbound`)[0]!.n;
  }
  inFlightCount(): number {
    return this.#rows<{ n: number }>(`SELECT coalesce(sum(entries), 0) AS n FROM outbound WHERE state != 'queued'`)[0]!.n;
  }
  inFlight(): OutboundEntry[] {
    return this.#rows<OutboundRow>(
      `SELECT seq, packet_id, state, delivery FROM outbound WHERE state != 'queued' ORDER BY seq`,
    ).flatMap(toEntries);
  }
  queued(limit: number): OutboundEntry[] {
    return this.#rows<OutboundRow>(
      `SELECT seq, packet_id, state, delivery FROM outbound WHERE state = 'queued' ORDER BY seq LIMIT ?`,
      limit,
    ).map(toEntry);
  }
  outboundByPacketId(packetId: number): OutboundEntry | undefined {
    const row = this.#rows<OutboundRow>(
        `SELECT seq, packet_id, state, delivery FROM outbound WHERE packet_id = ? AND state != 'queued' LIMIT 1`,
        packetId,
      )
      [0];
    if (row) return toEntry(row);
    const groups = this.#rows<OutboundRow>(`SELECT seq, packet_id, state, delivery FROM outbound WHERE packet_id IS NULL AND state != 'queued' ORDER BY seq`);
    return groups.flatMap(toEntries).find((e) => e.packetId === packetId);
  }
  updateOutbound(seq: number, state: OutboundState, packetId?: number): void {
    // Never a group (no packet_id while in flight): its entries only leave it.
    const ungrouped = `seq = ? AND NOT (packet_id IS NULL AND state != 'queued')`;
    if (packetId === undefined) this.#sql.exec(`UPDATE outbound SET state = ? WHERE ${ungrouped}`, state, seq);
    else this.#sql.exec(`UPDATE outbound SET state = ?, packet_id = ? WHERE ${ungrouped}`, state, packetId, seq);
  }
  deleteOutbound(seq: number): void {
    this.#sql.exec(`DELETE FROM outbound WHERE seq = ?`, seq);
  }
  dropOldestQueued(): { size: number } | undefined {
    const row = this.#rows<{ seq: number; size: number }>(`SELECT seq, size FROM outbound WHERE state = 'queued' ORDER BY seq LIMIT 1`)[0];
    if (!row) return undefined;
    this.deleteOutbound(row.seq);
    return { size: row.size };
  }
  queuedBytes(): number {
    return this.#rows<{ n: number }>(`SELECT coalesce(sum(size), 0) AS n FROM outbound WHERE state = 'queued'`)[0]!.n;
  }

  inboundQos2(packetId: number): InboundQos2 | undefined {
    const row = this.#rows<{ message_id: string; routed: number }>(
      `SELECT message_id, routed FROM inbound_qos2_messages WHERE packet_id = ?`,
      packetId,
    )[0];
    return row && { messageId: row.message_id, routed: row.routed === 1 };
  }
  addInboundQos2(packetId: number, messageId: string): void {
    this.#sql.exec(`INSERT OR IGNORE INTO inbound_qos2_messages (packet_id, message_id, routed) VALUES (?, ?, 0)`, packetId, messageId);
  }
  markInboundQos2Routed(packetId: number): void {
    this.#sql.exec(`UPDATE inbound_qos2_messages SET routed = 1 WHERE packet_id = ?`, packetId);
  }
  deleteInboundQos2(packetId: number): boolean {
    const existed = this.inboundQos2(packetId) !== undefined;
    if (existed) this.#sql.exec(`DELETE FROM inbound_qos2_messages WHERE packet_id = ?`, packetId);
    return existed;
  }
  inboundQos2Count(): number {
    return this.#rows<{ n: number }>(`SELECT count(*) AS n FROM inbound_qos2_messages`)[0]!.n;
  }

  seenMessage(messageId: string): boolean {
    return this.#rows(`SELECT 1 AS x FROM seen_messages WHERE message_id = ?`, messageId).length > 0;
  }
  rememberMessage(messageId: string, at: number): void {
    this.#sql.exec(`INSERT OR REPLACE INTO seen_messages (message_id, at) VALUES (?, ?)`, messageId, at);
  }
  forgetMessagesBefore(at: number): void {
    this.#sql.exec(`DELETE FROM seen_messages WHERE at < ?`, at);
  }
}

interface OutboundRow {
  seq: number;
  packet_id: number | null;
  state: string;
  delivery: string;
}

/** A group row: in flight without a packet identifier of its own (queued rows have none either). */
function isGroup(row: OutboundRow): boolean {
  return row.packet_id === null && row.state !== "queued";
}

function toEntries(row: OutboundRow): OutboundEntry[] {
  if (!isGroup(row)) return [toEntry(row)];
  return decodeJson<SentEntry[]>(row.delivery).map((e) => ({ seq: row.seq, delivery: e.delivery, packetId: e.packetId, state: "sent" as const, grouped: true }));
}

function toEntry(row: OutboundRow): OutboundEntry {
  return {
    seq: row.seq,
    state: row.state as OutboundState,
    delivery: decodeJson<Delivery>(row.delivery),
    ...(row.packet_id !== null && { packetId: row.packet_id }),
  };
}
