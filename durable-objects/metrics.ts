import { DurableObject } from "cloudflare:workers";
import type { Env } from "../worker/env";
import type { SqlExec } from "./storage/sql-session-store";
import { GaugeTable, RateRing, ratesOf, ReportPacer, retainedAlertStep } from "../core/metrics";
import type { GaugeEntry, RateRingState, RateWindow, RetainedAlert, SysStats } from "../core/metrics";
import { createDb } from "../db";
import { countOnline, countSessions } from "../db/counts";
import { numberVar } from "./config";
import { SysPublisher } from "./sys-publisher";

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
  /** Requests to D1 (a batch() is one): presence flushes and decommissions. */
  d1Requests: number;
  /** CONNECTs refused for their credentials (wrong password, bad token, unknown user). */
  authFailures: number;
  /** CONNECTs refused for any reason of security (credentials, not authorized, Will topic denied). */
  connectRefused: number;
  /** PUBLISH packets (and Wills) the ACL refused. */
  aclDeniedPublish: number;
  /** SUBSCRIBE topic filters the ACL refused. */
  aclDeniedSubscribe: number;
  /** Messages not delivered to a subscriber the ACL does not let read their topic. */
  aclDeniedRead: number;
  /** WebSocket upgrades refused by the limits: rate per address, pending connections, penalties. */
  upgradesRefused: number;
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

/** "admission": the AdmissionDO shards (an admit and a release per MQTT upgrade). */
export type ObjectKind = "session" | "connection" | "shard" | "presence" | "admission" | "worker";

/**
 * A current value an object reports (not a count): the MetricsDO keeps the latest value per
 * reporting object, name and label, and sums them (GET /metrics `gauges`). "retained" and
 * "subscriptions" per topic shard (label: its name, "shard-<i>"), "connections" per presence shard.
 */
export type GaugeName = "retained" | "subscriptions" | "connections";
export interface GaugeValue {
  name: GaugeName;
  value: number;
  /** e.g. the shard's name; shown per label in GET /metrics and /api/v1/stats. */
  label?: string;
}
/** The gauges of one object, sent with its counters. */
export interface GaugeReport {
  /** The reporting object's id (`ctx.id.toString()`). */
  id: string;
  gauges: GaugeValue[];
}

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
    d1Requests: 0,
    authFailures: 0,
    connectRefused: 0,
    aclDeniedPublish: 0,
    aclDeniedSubscribe: 0,
    aclDeniedRead: 0,
    upgradesRefused: 0,
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

/** Reports an object may send in a row after a quiet spell (ReportPacer). */
const REPORT_BURST = 2;

/**
 * How long a report waits for the rest of the event that counted (its steps between awaits:
 * an RPC's round trip). Holding an object this long instead of FLUSH_MS is what ReportPacer is for.
 */
const REPORT_SETTLE_MS = 25;

/**
 * Counts one object's work and reports it to the MetricsDO: a busy object about once per
 * second, so the reporting adds about one request per busy object per second whatever the
 * message rate; an object woken now and then at the end of the turn that counted, without a
 * timer that would keep it from hibernating (ReportPacer).
 */
export class Meter {
  readonly #env: Env;
  readonly #kind: ObjectKind;
  readonly #sql: SqlStorage;
  #counters = zeroCounters();
  #drops: Record<string, ClientDrops> = {};
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When reports go: at once for an object woken now and then, about once a second when busy. */
  readonly #pacer = new ReportPacer(FLUSH_MS, REPORT_BURST, REPORT_SETTLE_MS);
  #stub: DurableObjectStub<MetricsDO> | undefined;
  /**
   * One report in flight at a time, so reports arrive in the order they were made: a gauge is
   * "last value wins" at the MetricsDO, and an older report overtaking a newer one would bring
   * back a value already replaced (a retained alert raised again after it cleared).
   */
  #sending = false;
  /** Something was counted or gauged since the last report was made. */
  #dirty = false;
  readonly #id: string;
  /** Latest value of each gauge, by name and label; every report carries them all (a few numbers). */
  readonly #gauges = new Map<string, GaugeValue>();

  constructor(ctx: DurableObjectState, env: Env, kind: ObjectKind) {
    this.#env = env;
    this.#kind = kind;
    this.#sql = ctx.storage.sql;
    this.#id = ctx.id.toString();
    markRuntimeStart();
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

  /**
   * The object's current value of a gauge (e.g. its retained messages), reported with the next
   * flush (within a second). Report 0 rather than nothing: the MetricsDO keeps the last value.
   */
  gauge(name: GaugeName, value: number, label?: string): void {
    const g: GaugeValue = label === undefined ? { name, value } : { name, value, label };
    this.#gauges.set(`${name}|${label ?? ""}`, g);
    this.#touch();
  }

  #touch(): void {
    // After a quiet spell the timer waits REPORT_SETTLE_MS, not FLUSH_MS: a pending timer keeps
    // the object from hibernating, and its duration is billed meanwhile (ReportPacer says why).
    this.#dirty = true;
    this.#timer ??= setTimeout(() => this.#flush(), this.#pacer.delay(Date.now()));
  }

  #flush(): void {
    this.#timer = undefined;
    if (this.#sending) return; // sent again, with what was counted meanwhile, once the report in flight is done
    this.#dirty = false;
    this.#pacer.reported(Date.now());
    const counters = this.#counters;
    const drops = this.#drops;
    this.#counters = zeroCounters();
    this.#drops = {};
    this.#stub ??= this.#env.METRICS.get(this.#env.METRICS.idFromName("metrics"));
    const gauges: GaugeReport | undefined = this.#gauges.size > 0 ? { id: this.#id, gauges: [...this.#gauges.values()] } : undefined;
    this.#sending = true;
    this.#stub
      .add(this.#kind, counters, drops, gauges)
      .catch((e: unknown) => console.error("metrics report failed", e))
      .finally(() => {
        this.#sending = false;
        if (this.#dirty) this.#touch();
      });
  }
}

/**
 * Counts of the stateless Worker (kind "worker"; e.g. the messages HTTP ingest publishes),
 * gathered per isolate and reported like an object's: at most once per second, the report
 * kept alive with `waitUntil` of the request that started the second.
 */
let workerCounters = zeroCounters();
let workerFlush: Promise<void> | undefined;
export function countInWorker(env: Env, ctx: { waitUntil(promise: Promise<unknown>): void }, key: keyof Counters, n = 1): void {
  workerCounters[key] += n;
  if (workerFlush) return;
  workerFlush = new Promise<void>((resolve) => setTimeout(resolve, FLUSH_MS))
    .then(async () => {
      const counters = workerCounters;
      workerCounters = zeroCounters();
      workerFlush = undefined;
      await env.METRICS.get(env.METRICS.idFromName("metrics")).add("worker", counters);
    })
    .catch((e: unknown) => console.error("metrics report failed", e));
  ctx.waitUntil(workerFlush);
}

/**
 * The run of the broker this runtime hosts: set by the first object that starts in it (every
 * Meter and the MetricsDO mark it). Locally all objects share one isolate, so a run is one
 * `npm start` process; on Cloudflare it is the isolate that hosts the metrics object
 * (docs/sys-topics.md, "Uptime").
 */
let runtimeRun: { id: string; startedAt: number } | undefined;
export function markRuntimeStart(): { id: string; startedAt: number } {
  return (runtimeRun ??= { id: crypto.randomUUID(), startedAt: Date.now() });
}

/**
 * Objects whose `published` messages are the broker's own (presence events on $SYS), not
 * messages received from clients: counted per kind, left out of "messages received".
 */
const BROKER_PUBLISHERS: ReadonlySet<string> = new Set<ObjectKind>(["presence"]);

/** MQTT PUBLISH messages received from clients and sent to clients, from counters per kind. */
function messagesOf(byKind: Partial<Record<string, Counters>>): { received: number; sent: number } {
  let received = 0;
  let sent = 0;
  for (const [kind, c] of Object.entries(byKind)) {
    if (!c) continue;
    if (!BROKER_PUBLISHERS.has(kind)) received += c.published ?? 0;
    sent += c.delivered ?? 0;
  }
  return { received, sent };
}

/** The $SYS statistics stop when no client traffic was reported for this long (an idle broker is not woken forever). */
export const SYS_IDLE_MS = 5 * 60_000;
/**
 * How often the $SYS publisher counts sessions in D1 (a full read of `devices`): 1 ms per row
 * the last count read (so at most about 86 million rows read a day, whatever the registry's
 * size), at least every 5 minutes, at most every 5 seconds.
 */
export function sessionsRecountMs(rowsRead: number): number {
  return Math.min(5 * 60_000, Math.max(5_000, rowsRead));
}

/**
 * Totals of every object's counters, the latest gauges, message rates and the retained alert;
 * and, while the broker is in use, the `$SYS/broker/...` statistics every SYS_INTERVAL seconds.
 * Totals are saved at most once per second (one row), so they survive this object being
 * evicted between reports; `since` is saved as soon as the totals are created.
 */
export class MetricsDO extends DurableObject<Env> {
  #totals: StoredTotals;
  #saveTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #run: StoredRun;
  readonly #gauges: GaugeTable;
  readonly #ring: RateRing;
  #alert: StoredAlert;
  readonly #sys: SysPublisher;
  #alarmArmed = false;
  /** The last count of sessions in D1 (`sessionsRecountMs` apart). */
  #sessions: { n: number; rowsRead: number; at: number } | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const stored = ctx.storage.kv.get<StoredTotals>(TOTALS_KEY);
    this.#totals = stored ?? {
      since: Date.now(),
      byKind: { session: zeroCounters(), connection: zeroCounters(), shard: zeroCounters(), presence: zeroCounters(), admission: zeroCounters(), worker: zeroCounters() },
      reports: 0,
      drops: {},
    };
    this.#totals.drops ??= {}; // totals saved before drops were counted
    // Saved at once: `since` must not move if this object is evicted before its first report is saved.
    if (!stored) ctx.storage.kv.put(TOTALS_KEY, this.#totals);
    this.#ring = new RateRing(this.#totals.ring);
    this.#gauges = new GaugeTable(ctx.storage.kv.get<GaugeEntry[]>(GAUGES_KEY) ?? []);
    this.#alert = ctx.storage.kv.get<StoredAlert>(ALERT_KEY) ?? { alert: null, announced: true };

    // A new runtime is a new run: uptime and the $SYS counts start again from here.
    const runtime = markRuntimeStart();
    const run = ctx.storage.kv.get<StoredRun>(RUN_KEY);
    if (run?.id === runtime.id) {
      this.#run = run;
    } else {
      this.#run = { id: runtime.id, startedAt: runtime.startedAt, base: structuredClone(this.#totals.byKind) };
      ctx.storage.kv.put(RUN_KEY, this.#run);
    }
    this.#sys = new SysPublisher(env);
  }

  async add(kind: ObjectKind, counters: Counters, drops: Record<string, ClientDrops> = {}, gauges?: GaugeReport): Promise<void> {
    const now = Date.now();
    addInto((this.#totals.byKind[kind] ??= zeroCounters()), counters);
    addDrops(this.#totals.drops, drops, DROP_CLIENTS_KEPT);
    this.#totals.reports++;
    const { received, sent } = messagesOf({ [kind]: counters });
    if (received || sent) this.#ring.add(now, { received, sent });
    // Client traffic (not the $SYS messages' own deliveries, which send but receive nothing).
    const active = counters.webSocketMessages > 0 || counters.published > 0;
    if (active) this.#totals.lastActivity = now;
    if (gauges && this.#gauges.report(kind, gauges.id, gauges.gauges, now)) {
      this.ctx.storage.kv.put(GAUGES_KEY, this.#gauges.entries());
      this.#checkRetainedAlert(now);
    }
    this.#saveTimer ??= setTimeout(() => {
      this.#saveTimer = undefined;
      this.#totals.ring = this.#ring.state;
      this.ctx.storage.kv.put(TOTALS_KEY, this.#totals);
    }, FLUSH_MS);
    if (!this.#alert.announced) await this.#announceAlert();
    if (active) await this.#armSys(now);
  }

  /** Every SYS_INTERVAL seconds while the broker is in use: the $SYS statistics that changed. */
  override async alarm(): Promise<void> {
    this.#alarmArmed = false;
    const interval = this.#sysInterval();
    if (interval <= 0) return;
    const now = Date.now();
    this.#checkRetainedAlert(now); // the threshold may have changed with the configuration
    if (!this.#alert.announced) await this.#announceAlert();
    try {
      await this.#sys.publish(await this.#sysStats(now));
    } catch (e) {
      console.error("$SYS statistics not published:", e);
    }
    if (now - (this.#totals.lastActivity ?? 0) < SYS_IDLE_MS) {
      await this.ctx.storage.setAlarm(now + interval * 1000);
      this.#alarmArmed = true;
    }
  }

  async snapshot(): Promise<MetricsSnapshot> {
    const now = Date.now();
    const total = this.#sum();
    const runByKind = this.#runByKind();
    const byClient = Object.entries(this.#totals.drops).sort((a, b) => b[1].at - a[1].at);
    return {
      drops: {
        qos0: total.droppedQos0,
        queue: total.droppedQueued,
        rate: total.rateLimited,
        byClient: Object.fromEntries(byClient),
      },
      since: this.#totals.since,
      at: now,
      total,
      byKind: structuredClone(this.#totals.byKind),
      // The reports themselves are requests too; they are counted here, not in `total`.
      reportingRequests: this.#totals.reports,
      messages: messagesOf(this.#totals.byKind),
      run: {
        startedAt: this.#run.startedAt,
        uptime: Math.floor((now - this.#run.startedAt) / 1000),
        total: sumOf(Object.values(runByKind)),
        messages: messagesOf(runByKind),
      },
      rates: { received: ratesOf(this.#ring, now, "received"), sent: ratesOf(this.#ring, now, "sent") },
      gauges: {
        connections: this.#gauges.sum("connections") ?? null,
        subscriptions: { total: this.#gauges.sum("subscriptions") ?? null, byShard: this.#gauges.byLabel("subscriptions") },
        retained: { total: this.#gauges.sum("retained") ?? null, byShard: this.#gauges.byLabel("retained") },
      },
      alerts: { retained: this.#alert.alert, retainedThreshold: this.#threshold() },
    };
  }

  #sum(): Counters {
    return sumOf(Object.values(this.#totals.byKind));
  }

  /** Counters per kind since this run started: the totals less what they were at its start. */
  #runByKind(): Record<string, Counters> {
    const out: Record<string, Counters> = {};
    for (const [kind, c] of Object.entries(this.#totals.byKind)) {
      const base: Partial<Counters> = this.#run.base[kind as ObjectKind] ?? {};
      const run = zeroCounters();
      for (const key of Object.keys(c) as (keyof Counters)[]) run[key] = c[key] - (base[key] ?? 0);
      out[kind] = run;
    }
    return out;
  }

  #sysInterval(): number {
    return numberVar(this.env, "SYS_INTERVAL", 10);
  }

  #threshold(): number {
    return numberVar(this.env, "RETAINED_ALERT_THRESHOLD", 100_000);
  }

  async #armSys(now: number): Promise<void> {
    if (this.#alarmArmed || this.#sysInterval() <= 0) return;
    this.#alarmArmed = true;
    // The first statistics go out at once: a run's uptime and counts are seen without waiting.
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(now);
  }

  #checkRetainedAlert(now: number): void {
    const total = this.#gauges.sum("retained");
    if (total === undefined) return;
    // The alert's own retained message is not what it warns about (the band between raising
    // above the threshold and clearing below it absorbs a report that does not include it yet).
    const count = Math.max(0, total - (this.#alert.alert && this.#alert.announced ? 1 : 0));
    const step = retainedAlertStep(this.#alert.alert, count, this.#threshold(), now);
    if (!step.change) return;
    if (step.change.kind === "raised") {
      console.warn(`retained messages: ${count} passed the threshold ${step.change.alert.threshold}: alert raised ($SYS/broker/alerts/retained)`);
    } else {
      console.log(`retained messages: ${count}, below the threshold ${step.change.previous.threshold} again: alert cleared`);
    }
    this.#alert = { alert: step.alert, announced: false };
    this.ctx.storage.kv.put(ALERT_KEY, this.#alert);
  }

  /** Publishes the alert (or its clearing) once; tried again on the next report or alarm if it failed. */
  async #announceAlert(): Promise<void> {
    const alert = this.#alert.alert;
    try {
      await this.#sys.alert(alert);
    } catch (e) {
      console.error("retained alert not published:", e);
      return;
    }
    if (this.#alert.alert === alert) {
      this.#alert.announced = true;
      this.ctx.storage.kv.put(ALERT_KEY, this.#alert);
    }
  }

  async #sysStats(now: number): Promise<SysStats> {
    const runByKind = this.#runByKind();
    const run = sumOf(Object.values(runByKind));
    const messages = messagesOf(runByKind);
    const db = createDb(this.env.DB);
    let connected = this.#gauges.sum("connections");
    try {
      // Without presence shards reporting, the registry answers (index-backed: reads the online rows only).
      connected ??= await countOnline(db, now);
      if (this.#sessions === undefined || now - this.#sessions.at >= sessionsRecountMs(this.#sessions.rowsRead)) {
        this.#sessions = { ...(await countSessions(db, now)), at: now };
      }
    } catch (e) {
      console.error("$SYS: device registry not readable:", e);
    }
    const stats: SysStats = {
      uptimeSeconds: (now - this.#run.startedAt) / 1000,
      received: messages.received,
      sent: messages.sent,
      dropped: run.droppedQos0 + run.droppedQueued,
      rates: { received: ratesOf(this.#ring, now, "received"), sent: ratesOf(this.#ring, now, "sent") },
    };
    if (connected !== undefined) stats.connected = connected;
    if (this.#sessions) stats.sessions = this.#sessions.n;
    const retained = this.#gauges.sum("retained");
    if (retained !== undefined) stats.retained = retained;
    const subscriptions = this.#gauges.sum("subscriptions");
    if (subscriptions !== undefined) stats.subscriptions = subscriptions;
    return stats;
  }
}

const TOTALS_KEY = "totals";
const RUN_KEY = "run";
const GAUGES_KEY = "gauges";
const ALERT_KEY = "alert";

interface StoredTotals {
  /** When these totals were created: they count from then on, across restarts. */
  since: number;
  byKind: Record<ObjectKind, Counters>;
  reports: number;
  /** Per client, the most recent DROP_CLIENTS_KEPT. */
  drops: Record<string, ClientDrops>;
  /** Messages received and sent per 10 s, the last 15 minutes. */
  ring?: RateRingState;
  /** Epoch ms of the last report of client traffic (keeps the $SYS alarm going). */
  lastActivity?: number;
}

/** This run of the broker: its runtime's id, when it started, and the totals (per kind) then. */
interface StoredRun {
  id: string;
  startedAt: number;
  base: Partial<Record<ObjectKind, Counters>>;
}

function sumOf(list: Counters[]): Counters {
  const total = zeroCounters();
  for (const c of list) addInto(total, c);
  return total;
}

interface StoredAlert {
  alert: RetainedAlert | null;
  /** Whether the current state (raised or cleared) was published on $SYS/broker/alerts/retained. */
  announced: boolean;
}

export interface MetricsSnapshot {
  /** Messages dropped by the per-client bounds, and connections closed for their rates: totals and per client (latest first). */
  drops: { qos0: number; queue: number; rate: number; byClient: Record<string, ClientDrops> };
  /** Epoch ms the totals (`total`, `byKind`, `drops`, `reportingRequests`) count from: they carry over restarts. */
  since: number;
  at: number;
  total: Counters;
  byKind: Record<ObjectKind, Counters>;
  reportingRequests: number;
  /** MQTT PUBLISH messages received from clients (not the broker's own $SYS events) and sent to clients, since `since`. */
  messages: { received: number; sent: number };
  /** This run of the broker (a runtime restart is a new run): its start, uptime in seconds, counters since its start. */
  run: { startedAt: number; uptime: number; total: Counters; messages: { received: number; sent: number } };
  /** MQTT PUBLISH messages per second over the last 1, 5 and 15 minutes. */
  rates: { received: Record<RateWindow, number>; sent: Record<RateWindow, number> };
  /** Sums of the latest values the objects reported; null where no object reported one yet. */
  gauges: {
    connections: number | null;
    subscriptions: { total: number | null; byShard: Record<string, number> };
    retained: { total: number | null; byShard: Record<string, number> };
  };
  alerts: { retained: RetainedAlert | null; retainedThreshold: number };
}
