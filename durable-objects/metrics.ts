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
}

export type ObjectKind = "session" | "connection" | "shard";

export function zeroCounters(): Counters {
  return { requests: 0, webSocketMessages: 0, alarms: 0, rowsRead: 0, rowsWritten: 0, published: 0, delivered: 0 };
}

function addInto(target: Counters, source: Counters): void {
  for (const key of Object.keys(target) as (keyof Counters)[]) target[key] += source[key];
}

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

  #touch(): void {
    this.#timer ??= setTimeout(() => this.#flush(), FLUSH_MS);
  }

  #flush(): void {
    this.#timer = undefined;
    const counters = this.#counters;
    this.#counters = zeroCounters();
    this.#stub ??= this.#env.METRICS.get(this.#env.METRICS.idFromName("metrics"));
    this.#stub.add(this.#kind, counters).catch((e: unknown) => console.error("metrics report failed", e));
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
    };
  }

  async add(kind: ObjectKind, counters: Counters): Promise<void> {
    addInto(this.#totals.byKind[kind], counters);
    this.#totals.reports++;
    this.#saveTimer ??= setTimeout(() => {
      this.#saveTimer = undefined;
      this.ctx.storage.kv.put(TOTALS_KEY, this.#totals);
    }, FLUSH_MS);
  }

  async snapshot(): Promise<MetricsSnapshot> {
    const total = zeroCounters();
    for (const c of Object.values(this.#totals.byKind)) addInto(total, c);
    return {
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
}

export interface MetricsSnapshot {
  since: number;
  at: number;
  total: Counters;
  byKind: Record<ObjectKind, Counters>;
  reportingRequests: number;
}
