import { DurableObject } from "cloudflare:workers";
import type { Env } from "../worker/env";
import type { SqlExec } from "./storage/sql-session-store";

/**
 * What one object did, in the units Cloudflare bills: requests (each RPC method call, each
 * fetch, each alarm), incoming WebSocket messages (billed 20:1), SQLite rows read and
 * written; and, for the cost per message, MQTT messages published and delivered.
 */
export interface Counters {
  requests: number;
  webSocketMessages: number;
  alarms: number;
  rowsRead: number;
  rowsWritten: number;
  published: number;
  delivered: number;
  /** QoS 0 messages dropped for clients that did not keep up (their backlog over its bound). */
  droppedQos0: number;
  /** Queued QoS 1/2 messages dropped, oldest first, to keep a session's queue within its bounds. */
  droppedQueued: number;
  /** Connections closed for publishing faster than the rate limits (0x96 / 0x97). */
  rateLimited: number;
}

/** Drops per client, as GET /metrics shows them under `drops.byClient`. */
export interface ClientDrops {
  qos0: number;
  queue: number;
  rate: number;
  /** Epoch ms of the latest. */
  at: number;
}
export type DropCause = keyof Omit<ClientDrops, "at">;
const COUNTER_OF_DROP: Record<DropCause, keyof Counters> = { qos0: "droppedQos0", queue: "droppedQueued", rate: "rateLimited" };

export type ObjectKind = "session" | "connection" | "shard";

export function zeroCounters(): Counters {
  return {
    requests: 0,
    webSocketMessages: 0,
    alarms: 0,
    rowsRead: 0,
    rowsWritten: 0,
    published: 0,
    delivered: 0,
    droppedQos0: 0,
    droppedQueued: 0,
    rateLimited: 0,
  };
}

function addInto(target: Counters, source: Counters): void {
  // `?? 0`: totals saved before a counter existed lack it.
  for (const key of Object.keys(source) as (keyof Counters)[]) target[key] = (target[key] ?? 0) + source[key];
}

function addDrops(target: Record<string, ClientDrops>, source: Record<string, ClientDrops>, keep: number): void {
  for (const [clientId, d] of Object.entries(source)) {
    const t = target[clientId] ?? { qos0: 0, queue: 0, rate: 0, at: 0 };
    delete target[clientId]; // re-inserted last: the object keeps insertion order, newest last
    target[clientId] = { qos0: t.qos0 + d.qos0, queue: t.queue + d.queue, rate: t.rate + d.rate, at: Math.max(t.at, d.at) };
  }
  const ids = Object.keys(target);
  for (let i = 0; i < ids.length - keep; i++) delete target[ids[i]!];
}

/** Clients whose drops GET /metrics lists, the most recent ones. */
const DROP_CLIENTS_KEPT = 1000;

/** How often an object reports to the metrics object while it is busy (one RPC per period). */
const FLUSH_MS = 1_000;

/**
 * Counts one object's work and reports it to the MetricsDO at most once per second, so the
 * reporting adds about one request per busy object per second, whatever the message rate.
 */
export class Meter {
  readonly #env: Env;
  readonly #kind: ObjectKind;
  readonly #sql: SqlStorage;
  #counters = zeroCounters();
  #drops: Record<string, ClientDrops> = {};
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stub: DurableObjectStub<MetricsDO> | undefined;

  constructor(ctx: DurableObjectState, env: Env, kind: ObjectKind) {
    this.#env = env;
    this.#kind = kind;
    this.#sql = ctx.storage.sql;
  }

  /** SQL that counts the rows each statement reads and writes; statements run to completion. */
  readonly sql: SqlExec = {
    exec: (query: string, ...bindings: unknown[]) => {
      const cursor = this.#sql.exec(query, ...bindings);
      const rows = cursor.toArray();
      this.#counters.rowsRead += cursor.rowsRead;
      this.#counters.rowsWritten += cursor.rowsWritten;
      this.#touch();
      return { toArray: () => rows };
    },
  };

  count(key: keyof Counters, n = 1): void {
    this.#counters[key] += n;
    this.#touch();
  }

  /** Messages for a client dropped by a bound, or its connection closed for its rate. */
  drop(clientId: string, cause: DropCause, n: number): void {
    const d = (this.#drops[clientId] ??= { qos0: 0, queue: 0, rate: 0, at: 0 });
    d[cause] += n;
    d.at = Date.now();
    this.count(COUNTER_OF_DROP[cause], n);
  }

  #touch(): void {
    this.#timer ??= setTimeout(() => this.#flush(), FLUSH_MS);
  }

  #flush(): void {
    this.#timer = undefined;
    const counters = this.#counters;
    const drops = this.#drops;
    this.#counters = zeroCounters();
    this.#drops = {};
    this.#stub ??= this.#env.METRICS.get(this.#env.METRICS.idFromName("metrics"));
    this.#stub.add(this.#kind, counters, drops).catch((e: unknown) => console.error("metrics report failed", e));
  }
}

/**
 * Totals of every object's counters. Saved at most once per second (one row), so they
 * survive this object being evicted between reports.
 */
export class MetricsDO extends DurableObject<Env> {
  #totals: StoredTotals;
  #saveTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#totals = ctx.storage.kv.get<StoredTotals>(TOTALS_KEY) ?? {
      since: Date.now(),
      byKind: { session: zeroCounters(), connection: zeroCounters(), shard: zeroCounters() },
      reports: 0,
      drops: {},
    };
    this.#totals.drops ??= {}; // totals saved before drops were counted
  }

  async add(kind: ObjectKind, counters: Counters, drops: Record<string, ClientDrops> = {}): Promise<void> {
    addInto(this.#totals.byKind[kind], counters);
    addDrops(this.#totals.drops, drops, DROP_CLIENTS_KEPT);
    this.#totals.reports++;
    this.#saveTimer ??= setTimeout(() => {
      this.#saveTimer = undefined;
      this.ctx.storage.kv.put(TOTALS_KEY, this.#totals);
    }, FLUSH_MS);
  }

  async snapshot(): Promise<MetricsSnapshot> {
    const total = zeroCounters();
    for (const c of Object.values(this.#totals.byKind)) addInto(total, c);
    const byClient = Object.entries(this.#totals.drops).sort((a, b) => b[1].at - a[1].at);
    return {
      drops: {
        qos0: total.droppedQos0,
        queue: total.droppedQueued,
        rate: total.rateLimited,
        byClient: Object.fromEntries(byClient),
      },
      since: this.#totals.since,
      at: Date.now(),
      total,
      byKind: structuredClone(this.#totals.byKind),
      // The reports themselves are requests too; they are counted here, not in `total`.
      reportingRequests: this.#totals.reports,
    };
  }
}

const TOTALS_KEY = "totals";

interface StoredTotals {
  since: number;
  byKind: Record<ObjectKind, Counters>;
  reports: number;
  /** Per client, the most recent DROP_CLIENTS_KEPT. */
  drops: Record<string, ClientDrops>;
}

export interface MetricsSnapshot {
  /** Messages dropped by the per-client bounds, and connections closed for their rates: totals and per client (latest first). */
  drops: { qos0: number; queue: number; rate: number; byClient: Record<string, ClientDrops> };
  since: number;
  at: number;
  total: Counters;
  byKind: Record<ObjectKind, Counters>;
  reportingRequests: number;
}
