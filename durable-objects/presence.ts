import { DurableObject } from "cloudflare:workers";
import { eq, sql } from "drizzle-orm";
import { createDb, schema } from "../db";
import {
  announcementPayload,
  announcementTopic,
  leaseMsOf,
  mergePatches,
  onEvent,
  onHttpSeen,
  onSweep,
  patchColumns,
  presenceShardOf,
  type Announcement,
  type DevicePatch,
  type HttpSighting,
  type LeaseState,
  type PresenceSettings,
  type Step,
} from "../core/presence";
import type { PresenceEvent } from "../core/session/types";
import { Batcher } from "../core/util/batcher";
import type { Env } from "../worker/env";
import { numberVar } from "./config";
import { Meter } from "./metrics";
import { Router } from "./router";

// ------------------------------------------------------------------ where a client's presence goes

export function presenceShardCount(env: Env): number {
  return Math.max(1, Math.floor(numberVar(env, "PRESENCE_SHARDS", 4)));
}

/** The PresenceDO of a client identifier's shard. */
export function presenceStub(env: Env, clientId: string): DurableObjectStub<PresenceDO> {
  return presenceShardStub(env, presenceShardOf(clientId, presenceShardCount(env)));
}

export function presenceShardStub(env: Env, index: number): DurableObjectStub<PresenceDO> {
  return env.PRESENCE.get(env.PRESENCE.idFromName(`presence-${index}`));
}

/** PRESENCE_LEASE in ms: a device stays online this long after its lease was last renewed. */
export function presenceLeaseMs(env: Env): number {
  return leaseMsOf(numberVar(env, "PRESENCE_LEASE", 90));
}

/** How often a failed call to the presence object is tried again before the event is given up (the lease then covers it). */
const SEND_ATTEMPTS = 4;

/**
 * The sending side, one per object that emits presence events (SessionDO, ConnectionDO): one
 * queue per presence shard with one record() call in flight, so the events of a client reach
 * its shard in order, and what comes meanwhile shares the next call. Never touches D1.
 * A call that fails is tried again with backoff; an event given up is covered by the lease
 * (an online device whose lease is not renewed turns offline by itself).
 */
export class PresenceSender {
  readonly #env: Env;
  readonly #queues = new Map<number, Batcher<PresenceEvent, undefined>>();

  constructor(env: Env) {
    this.#env = env;
  }

  send(event: PresenceEvent): Promise<void> {
    const index = presenceShardOf(event.clientId, presenceShardCount(this.#env));
    let queue = this.#queues.get(index);
    if (!queue) {
      queue = new Batcher<PresenceEvent, undefined>(async (events) => {
        for (let attempt = 1; ; attempt++) {
          try {
            await presenceShardStub(this.#env, index).record(events); // a new stub: a failed one may be broken
            return events.map(() => undefined);
          } catch (e) {
            if (attempt >= SEND_ATTEMPTS) throw e;
            await new Promise((r) => setTimeout(r, 100 * 4 ** attempt));
          }
        }
      }, 1000);
      this.#queues.set(index, queue);
    }
    return queue.push(event).catch((e: unknown) => console.error("presence event lost (the lease covers it)", e));
  }
}

// ------------------------------------------------------------------ the presence object

/** Rows of one D1 batch() (one D1 request): statements count towards a Worker invocation's 1,000 queries. */
const CHUNK_ROWS = 100;
/** D1 requests one alarm makes at most; the rest goes in the next alarm, at once. */
const CHUNKS_PER_ALARM = 8;
/** Expired leases swept per alarm at most. */
const SWEEP_ROWS = 1000;
/** How long an expired lease is kept (a late renewal of a live connection brings it back). */
const EXPIRED_LEASE_KEPT_MS = 24 * 3600_000;
const MAX_BACKOFF_MS = 60_000;

interface LeaseRow {
  client_id: string;
  connected_at: number;
  expires_at: number;
  renewed_at: number;
  transport: string;
  expired: number;
}
interface PendingRow {
  client_id: string;
  since: number;
  patch: string;
}

/**
 * Device presence for one shard of client identifiers (PRESENCE_SHARDS objects): the lease
 * table of its clients, and their changes waiting for D1. An event is stored here, merged
 * per client, before record() returns, so nothing is lost if the object is evicted before
 * its flush. Its alarm, every PRESENCE_FLUSH_MS while there is something to write, sweeps
 * the leases that ran out (offline, "lease-expired") and writes the changes to D1 in
 * batches (one D1 request per CHUNK_ROWS rows), deleting them only once D1 took them; a
 * failed flush is tried again with backoff (alarms survive eviction and restarts).
 * It also announces connects and disconnects on `$SYS/broker/clients/<id>/...`.
 */
export class PresenceDO extends DurableObject<Env> {
  readonly #meter: Meter;
  readonly #settings: PresenceSettings;
  readonly #flushMs: number;
  #router: Router | undefined;
  #alarmAt: number | null = null;
  /** The flush in flight (alarm), awaited by decommission. */
  #flushing: Promise<unknown> | undefined;
  #failures = 0;
  #chunkRows = CHUNK_ROWS;
  /** D1 requests made since this object started (also counted in the metrics, `d1Requests`). */
  #d1Requests = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#meter = new Meter(ctx, env, "presence");
    this.#settings = {
      leaseMs: presenceLeaseMs(env),
      httpWindowMs: Math.max(1_000, numberVar(env, "HTTP_PRESENCE_WINDOW", 300) * 1000),
    };
    this.#flushMs = Math.max(10, numberVar(env, "PRESENCE_FLUSH_MS", 1000));
    const store = ctx.storage.sql;
    store.exec(`CREATE TABLE IF NOT EXISTS pending (client_id TEXT NOT NULL, inflight INTEGER NOT NULL, since INTEGER NOT NULL, patch TEXT NOT NULL, PRIMARY KEY (client_id, inflight)) WITHOUT ROWID`);
    store.exec(
      `CREATE TABLE IF NOT EXISTS leases (client_id TEXT PRIMARY KEY, connected_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, renewed_at INTEGER NOT NULL, transport TEXT NOT NULL, expired INTEGER NOT NULL) WITHOUT ROWID`,
    );
    store.exec(`CREATE INDEX IF NOT EXISTS leases_by_expiry ON leases (expired, expires_at)`);
    store.exec(`CREATE TABLE IF NOT EXISTS decommissioned (client_id TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID`);
    void ctx.blockConcurrencyWhile(async () => {
      this.#alarmAt = await ctx.storage.getAlarm();
    });
  }

  // ---------------------------------------------------------------- RPC

  /** Presence events of socket holders (connect, disconnect, lease renewal), stored before this returns. */
  async record(events: PresenceEvent[]): Promise<void> {
    this.#meter.count("requests");
    for (const e of events) this.#apply(e.clientId, onEvent(e, this.#lease(e.clientId), this.#decommissionedAt(e.clientId), this.#settings));
    this.#wake();
  }

  /**
   * Devices named by HTTP ingest items: online with transport "http" for HTTP_PRESENCE_WINDOW,
   * one more reporting period (connection_count + 1) when they were offline.
   */
  async httpSeen(devices: HttpSighting[]): Promise<void> {
    this.#meter.count("requests");
    for (const d of devices) this.#apply(d.clientId, onHttpSeen(d, this.#lease(d.clientId), this.#decommissionedAt(d.clientId), this.#settings));
    this.#wake();
  }

  /**
   * DELETE /api/v1/devices/<id>: the client's pending changes are dropped, its lease removed,
   * and its row written at once (offline, "decommissioned", decommissioned_at = at). Changes
   * that arrive later for it are ignored until it connects again (registered anew).
   */
  async decommission(clientId: string, at: number): Promise<void> {
    this.#meter.count("requests");
    // A flush in flight may carry this client's last change: let it land first.
    while (this.#flushing) await this.#flushing;
    const lease = this.#lease(clientId);
    // A change not yet in D1 (a first connect within the flush interval) is written in the same
    // batch, before the mark, so the device has a record to mark.
    this.#returnInflight();
    const waiting = this.#exec<PendingRow>(`SELECT client_id, since, patch FROM pending WHERE client_id = ?`, clientId)[0];
    const d = schema.devices;
    const db = createDb(this.env.DB);
    const mark = db
      .update(d)
      .set({
        online: false,
        disconnectReason: "decommissioned",
        disconnectCode: null,
        disconnectedAt: sql`CASE WHEN ${d.online} = 1 THEN ${at} ELSE ${d.disconnectedAt} END`,
        leaseExpiresAt: null,
        decommissionedAt: at,
      })
      .where(eq(d.clientId, clientId));
    this.#countD1Request();
    if (waiting) await db.batch([upsertOf(db, clientId, JSON.parse(waiting.patch) as DevicePatch), mark]);
    else await mark;
    this.#exec(`DELETE FROM pending WHERE client_id = ?`, clientId);
    this.#exec(`DELETE FROM leases WHERE client_id = ?`, clientId);
    this.#exec(`INSERT OR REPLACE INTO decommissioned (client_id, at) VALUES (?, ?)`, clientId, at);
    if (lease && !lease.expired) {
      this.#announce({ event: "disconnected", clientId, at, transport: lease.transport, reason: "decommissioned" });
    }
  }

  /** This shard now: clients online (live leases), changes waiting for D1, D1 requests since the object started. */
  async status(): Promise<{ online: number; pending: number; d1Requests: number; nextFlushAt: number | null }> {
    this.#meter.count("requests");
    return {
      online: this.#onlineCount(),
      pending: this.#exec<{ n: number }>(`SELECT COUNT(*) AS n FROM pending`)[0]?.n ?? 0,
      d1Requests: this.#d1Requests,
      nextFlushAt: this.#alarmAt,
    };
  }

  // ---------------------------------------------------------------- the alarm: sweep and flush

  override async alarm(): Promise<void> {
    this.#meter.count("requests");
    this.#meter.count("alarms");
    this.#alarmAt = null;
    const now = Date.now();
    this.#sweep(now);
    this.#exec(`DELETE FROM leases WHERE expired = 1 AND expires_at < ?`, now - EXPIRED_LEASE_KEPT_MS);
    const flushing = this.#flushAll();
    this.#flushing = flushing;
    let result: FlushResult;
    try {
      result = await flushing;
    } finally {
      this.#flushing = undefined;
    }
    this.#reportOnline();
    this.#scheduleAfterFlush(result);
  }

  #sweep(now: number): void {
    const expired = this.#exec<LeaseRow>(`SELECT * FROM leases WHERE expired = 0 AND expires_at <= ? LIMIT ?`, now, SWEEP_ROWS);
    for (const row of expired) this.#apply(row.client_id, onSweep(row.client_id, leaseOf(row), now));
  }

  async #flushAll(): Promise<FlushResult> {
    for (let chunk = 0; chunk < CHUNKS_PER_ALARM; chunk++) {
      const rows = this.#takeChunk();
      if (rows.length === 0) return "done";
      if (!(await this.#write(rows))) return "failed";
    }
    return "more";
  }

  /**
   * The next rows to write, oldest first, marked in flight: changes that arrive while D1 is
   * being written merge into a new row, so a row is deleted only once what it held was written.
   */
  #takeChunk(): PendingRow[] {
    this.#returnInflight(); // left by a failed write, or by an object that died while writing
    this.#exec(
      `UPDATE pending SET inflight = 1 WHERE inflight = 0 AND client_id IN (SELECT client_id FROM pending WHERE inflight = 0 ORDER BY since LIMIT ?)`,
      this.#chunkRows,
    );
    return this.#exec<PendingRow>(`SELECT client_id, since, patch FROM pending WHERE inflight = 1`);
  }

  /** Rows in flight back among the waiting ones, under the changes that came since. */
  #returnInflight(): void {
    for (const row of this.#exec<PendingRow>(`SELECT client_id, since, patch FROM pending WHERE inflight = 1`)) {
      const later = this.#exec<PendingRow>(`SELECT client_id, since, patch FROM pending WHERE client_id = ? AND inflight = 0`, row.client_id)[0];
      const patch = later ? mergePatches(JSON.parse(row.patch) as DevicePatch, JSON.parse(later.patch) as DevicePatch) : (JSON.parse(row.patch) as DevicePatch);
      this.#exec(`DELETE FROM pending WHERE client_id = ?`, row.client_id);
      this.#exec(`INSERT INTO pending (client_id, inflight, since, patch) VALUES (?, 0, ?, ?)`, row.client_id, row.since, JSON.stringify(patch));
    }
  }

  /** One D1 batch() (one request) for the rows; true once D1 took them (they are deleted then). */
  async #write(rows: PendingRow[]): Promise<boolean> {
    const db = createDb(this.env.DB);
    const statements = rows.map((row) => upsertOf(db, row.client_id, JSON.parse(row.patch) as DevicePatch));
    this.#countD1Request();
    try {
      await db.batch(statements as [(typeof statements)[number], ...(typeof statements)[number][]]);
    } catch (e) {
      this.#failures++;
      // Too big a batch may be what fails: try smaller ones (down to one row).
      this.#chunkRows = Math.max(1, Math.floor(rows.length / 2));
      console.error(`presence flush of ${rows.length} rows to D1 failed (attempt ${this.#failures})`, e);
      this.#returnInflight();
      return false;
    }
    this.#failures = 0;
    this.#chunkRows = CHUNK_ROWS;
    this.#exec(`DELETE FROM pending WHERE inflight = 1`);
    return true;
  }

  #scheduleAfterFlush(result: FlushResult): void {
    const now = Date.now();
    const times: number[] = [];
    if (result === "more") times.push(now);
    else if (result === "failed") times.push(now + Math.min(MAX_BACKOFF_MS, this.#flushMs * 2 ** this.#failures));
    else if (this.#exec(`SELECT 1 FROM pending LIMIT 1`).length > 0) times.push(now + this.#flushMs); // came during the flush
    const lease = this.#exec<{ at: number | null }>(`SELECT MIN(expires_at) AS at FROM leases WHERE expired = 0`)[0]?.at;
    if (lease !== null && lease !== undefined) times.push(lease);
    if (times.length === 0) {
      this.#alarmAt = null;
      void this.ctx.storage.deleteAlarm();
      return;
    }
    this.#alarmAt = Math.max(now, Math.min(...times));
    void this.ctx.storage.setAlarm(this.#alarmAt);
  }

  /** A flush within PRESENCE_FLUSH_MS, unless the alarm comes sooner already. */
  #wake(): void {
    const at = Date.now() + this.#flushMs;
    if (this.#alarmAt !== null && this.#alarmAt <= at) return;
    this.#alarmAt = at;
    void this.ctx.storage.setAlarm(at);
  }

  #reportOnline(): void {
    this.#meter.gauge("connections", this.#onlineCount(), this.ctx.id.name ?? this.ctx.id.toString());
  }

  #onlineCount(): number {
    return this.#exec<{ n: number }>(`SELECT COUNT(*) AS n FROM leases WHERE expired = 0`)[0]?.n ?? 0;
  }

  #countD1Request(): void {
    this.#d1Requests++;
    this.#meter.count("d1Requests");
  }

  // ---------------------------------------------------------------- state

  #apply(clientId: string, step: Step): void {
    if (step.lease === null) this.#exec(`DELETE FROM leases WHERE client_id = ?`, clientId);
    else if (step.lease) {
      const l = step.lease;
      this.#exec(
        `INSERT OR REPLACE INTO leases (client_id, connected_at, expires_at, renewed_at, transport, expired) VALUES (?, ?, ?, ?, ?, ?)`,
        clientId,
        l.connectedAt,
        l.expiresAt,
        l.renewedAt,
        l.transport,
        l.expired ? 1 : 0,
      );
    }
    if (step.clearDecommission) this.#exec(`DELETE FROM decommissioned WHERE client_id = ?`, clientId);
    if (step.patch) this.#pend(clientId, step.patch);
    if (step.announce) this.#announce(step.announce);
  }

  /** Merged into the client's waiting change (one row per client). */
  #pend(clientId: string, patch: DevicePatch): void {
    const row = this.#exec<PendingRow>(`SELECT client_id, since, patch FROM pending WHERE client_id = ? AND inflight = 0`, clientId)[0];
    const merged = row ? mergePatches(JSON.parse(row.patch) as DevicePatch, patch) : patch;
    this.#exec(`INSERT OR REPLACE INTO pending (client_id, inflight, since, patch) VALUES (?, 0, ?, ?)`, clientId, row?.since ?? Date.now(), JSON.stringify(merged));
  }

  #lease(clientId: string): LeaseState | undefined {
    const row = this.#exec<LeaseRow>(`SELECT * FROM leases WHERE client_id = ?`, clientId)[0];
    return row && leaseOf(row);
  }

  #decommissionedAt(clientId: string): number | undefined {
    return this.#exec<{ at: number }>(`SELECT at FROM decommissioned WHERE client_id = ?`, clientId)[0]?.at;
  }

  /** `$SYS/broker/clients/<id>/connected|disconnected`, QoS 0, not retained, through the normal routing path. */
  #announce(a: Announcement): void {
    const topic = announcementTopic(a);
    if (topic === undefined) return;
    this.#router ??= new Router(this.env);
    this.#meter.count("published");
    this.#router
      .publish({ topic, payload: announcementPayload(a), qos: 0, retain: false, origin: "$SYS" })
      .catch((e: unknown) => console.error("presence announcement failed", e));
  }

  #exec<T = Record<string, unknown>>(query: string, ...bindings: unknown[]): T[] {
    return this.#meter.sql.exec(query, ...bindings).toArray() as T[];
  }
}

type FlushResult = "done" | "more" | "failed";

function leaseOf(row: LeaseRow): LeaseState {
  return {
    connectedAt: row.connected_at,
    expiresAt: row.expires_at,
    renewedAt: row.renewed_at,
    transport: row.transport === "http" ? "http" : "mqtt",
    expired: row.expired === 1,
  };
}

/**
 * The statement that writes one client's patch: an upsert setting only the patch's columns,
 * connection_count moved by its counts. A device first seen over HTTP gets protocol_version 0.
 */
function upsertOf(db: ReturnType<typeof createDb>, clientId: string, patch: DevicePatch) {
  const d = schema.devices;
  const columns = patchColumns(patch);
  const absolute = patch.countBase !== undefined ? patch.countBase + patch.countAdd : undefined;
  const insert = db.insert(d).values({ clientId, protocolVersion: 0, ...columns, connectionCount: absolute ?? patch.countAdd });
  const set = {
    ...columns,
    ...(absolute !== undefined
      ? { connectionCount: absolute }
      : patch.countAdd !== 0 && { connectionCount: sql`${d.connectionCount} + ${patch.countAdd}` }),
  };
  return Object.keys(set).length === 0 ? insert.onConflictDoNothing() : insert.onConflictDoUpdate({ target: d.clientId, set });
}
