// One client process of the bench (forked by bench/run.mjs): runs many MQTT clients (the lean
// client or MQTT.js) in named groups and answers the parent's commands over IPC:
//   connect  open `count` clients (optionally subscribed) in a group
//   publish  run a group's publishers for a bounded time and count (flood, window or rate)
//   stats    deliveries (count, first/last time, latencies and their arrival times) of a group
//   stopConnecting  end a group's `connect` early (it returns what it has opened so far)
//   close    close a group's clients (or only `count` of them); cpu: this process's CPU; exit
// Every loop is bounded in time and count. Times shared with the parent are epoch ms
// (performance.timeOrigin + performance.now()); latencies use hrtime inside this process.
import mqtt from "mqtt";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { LeanClient } from "./lib/lean-client.mjs";

const codecPath = process.env.BENCH_CODEC;
if (!codecPath || !process.send) throw new Error("client-worker.mjs is started by bench/run.mjs");
const codec = await import(pathToFileURL(codecPath).href);

const now = () => performance.timeOrigin + performance.now();
const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));
const MAX_LATENCY_SAMPLES = 200_000;
/** How late this process's event loop ran, between two `cpu` calls: a stalled client shows here, not as broker latency. */
const loopDelay = monitorEventLoopDelay({ resolution: 5 });
loopDelay.enable();

/** MQTT.js behind the lean client's interface. */
class MqttJsClient {
  /** @param {{ url: string, clientId: string, version?: 4 | 5, keepAlive?: number, onPublish?: (p: any) => void, onClose?: (c: any) => void }} o */
  constructor({ url, clientId, version = 4, keepAlive = 60, onPublish, onClose }) {
    this.url = url;
    this.clientId = clientId;
    this.version = version;
    this.keepAlive = keepAlive;
    this.onPublish = onPublish ?? (() => {});
    this.onClose = onClose ?? (() => {});
    /** @type {import("mqtt").MqttClient | undefined} */
    this.c = undefined;
    this.open = false;
    this.closeReason = "";
  }
  /** @param {number} timeoutMs */
  connect(timeoutMs = 30_000) {
    return new Promise((resolve, reject) => {
      const c = mqtt.connect(this.url, {
        clientId: this.clientId,
        protocolVersion: this.version,
        keepalive: this.keepAlive,
        clean: true,
        reconnectPeriod: 0,
        connectTimeout: timeoutMs,
        wsOptions: { perMessageDeflate: false },
      });
      this.c = c;
      c.once("connect", (p) => {
        this.open = true;
        resolve(p);
      });
      c.on("error", (e) => {
        this.closeReason ||= `error: ${e.message}`;
        reject(e);
      });
      c.on("close", () => {
        this.closeReason ||= "closed";
        const was = this.open;
        this.open = false;
        reject(new Error(`${this.clientId}: closed before CONNACK`));
        if (was) this.onClose(this);
      });
      c.on("message", (_topic, payload, packet) => this.onPublish({ payload, qos: packet.qos }));
    });
  }
  /** @param {string} filter @param {0 | 1 | 2} qos */
  subscribe(filter, qos) {
    return /** @type {import("mqtt").MqttClient} */ (this.c).subscribeAsync(filter, { qos });
  }
  /** Resolves when written (QoS 0) or acknowledged (QoS 1/2). */
  publish(/** @type {string} */ topic, /** @type {Uint8Array} */ payload, /** @type {0 | 1 | 2} */ qos) {
    return new Promise((resolve, reject) => {
      /** @type {import("mqtt").MqttClient} */ (this.c).publish(topic, /** @type {Buffer} */ (payload), { qos }, (err) => (err ? reject(err) : resolve(undefined)));
    });
  }
  get bufferedAmount() {
    return 0;
  }
  /** PINGREQ through MQTT.js's packet writer; resolves on the next PINGRESP. */
  ping() {
    const c = /** @type {any} */ (this.c);
    return new Promise((resolve) => {
      const on = (/** @type {any} */ p) => {
        if (p.cmd !== "pingresp") return;
        c.off("packetreceive", on);
        c.off("close", on2);
        resolve(undefined);
      };
      const on2 = () => {
        c.off("packetreceive", on);
        resolve(undefined);
      };
      c.on("packetreceive", on);
      c.once("close", on2);
      c._sendPacket({ cmd: "pingreq" });
    });
  }
  close() {
    this.c?.end(true);
  }
}

/**
 * @typedef {object} Group
 * @property {string} kind
 * @property {any[]} clients
 * @property {number} delivered
 * @property {number} firstAt
 * @property {number} lastAt
 * @property {number[] | null} latencies
 * @property {number[] | null} latencyAt arrival time (epoch ms) of each latency sample: the parent
 *   cuts the run into windows by send time (arrival minus latency)
 * @property {number} lostConnections
 * @property {string[]} closeReasons
 * @property {boolean} [stop] set by stopConnecting: open no more clients
 */
/** @type {Map<string, Group>} */
const groups = new Map();

/** @param {string} name */
function group(name) {
  const g = groups.get(name);
  if (!g) throw new Error(`no group ${name}`);
  return g;
}

/**
 * @param {{ group: string, kind: "lean" | "mqttjs", url: string, route: "fast" | "url", count: number,
 *           idPrefix: string, version?: 4 | 5, keepAlive?: number, concurrency?: number,
 *           subscribe?: { filter: string, qos: 0 | 1 | 2 }, recordLatency?: boolean, timeoutMs?: number,
 *           credentials?: { username?: string, password?: string }[], hold?: boolean }} a
 * `credentials`: the i-th client connects with `credentials[i % length]` (lean clients only);
 * `hold: false`: close each client once its CONNACK arrived (connection rate: nothing kept open).
 */
async function connect(a) {
  /** @type {Group} */
  const g = { kind: a.kind, clients: [], delivered: 0, firstAt: 0, lastAt: 0, latencies: a.recordLatency ? [] : null, latencyAt: a.recordLatency ? [] : null, lostConnections: 0, closeReasons: [] };
  groups.set(a.group, g);
  const onPublish = (/** @type {any} */ p) => {
    const t = now();
    if (g.delivered === 0) g.firstAt = t;
    g.lastAt = t;
    g.delivered++;
    if (g.latencies && g.latencies.length < MAX_LATENCY_SAMPLES && p.payload.length >= 8) {
      const view = new DataView(p.payload.buffer, p.payload.byteOffset, 8);
      g.latencies.push(Number(process.hrtime.bigint() - view.getBigUint64(0)) / 1e6);
      g.latencyAt?.push(t);
    }
  };
  const onClose = (/** @type {any} */ c) => {
    g.lostConnections++;
    const age = c.connectedAt ? ` after ${Math.round((Date.now() - c.connectedAt) / 1000)} s open` : "";
    if (g.closeReasons.length < 5) g.closeReasons.push(`${c.clientId}: ${c.closeReason}${age}`);
  };
  const started = now();
  /** @type {string[]} */
  const errors = [];
  let failed = 0;
  let next = 0;
  let connectedOnly = 0;
  const deadline = started + (a.timeoutMs ?? 120_000);
  const one = async () => {
    while (next < a.count && now() < deadline && !g.stop) {
      const i = next++;
      const clientId = `${a.idPrefix}${i}`;
      const url = a.route === "fast" ? `${a.url}/${encodeURIComponent(clientId)}` : a.url;
      const auth = a.credentials?.length ? a.credentials[i % a.credentials.length] : undefined;
      if (auth && a.kind !== "lean") throw new Error("credentials: lean clients only");
      const o = { url, clientId, codec, version: a.version ?? 4, keepAlive: a.keepAlive ?? 60, onPublish, onClose, ...auth };
      const client = a.kind === "lean" ? new LeanClient(o) : new MqttJsClient(o);
      /** @type {any} */ (client).index = i;
      try {
        await client.connect(Math.max(1_000, Math.min(30_000, deadline - now())));
        if (a.subscribe) await withTimeout(client.subscribe(a.subscribe.filter, a.subscribe.qos), 30_000, "SUBACK");
        if (a.hold === false) {
          connectedOnly++;
          client.close();
          continue;
        }
        g.clients.push(client);
      } catch (e) {
        failed++;
        if (errors.length < 5) errors.push(e instanceof Error ? e.message : String(e));
        try {
          client.close();
        } catch {
          // ignore
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(a.concurrency ?? 50, a.count)) }, one));
  return { connected: g.clients.length + connectedOnly, failed, notAttempted: a.count - next, ms: now() - started, errors };
}

/**
 * @template T
 * @param {Promise<T>} p @param {number} ms @param {string} what
 * @returns {Promise<T>}
 */
function withTimeout(p, ms, what) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
    }),
  ]);
}

/**
 * @param {{ group: string, topic: string, indexOffset?: number, qos: 0 | 1 | 2, durationMs: number,
 *           maxMessages: number, payloadBytes: number, window?: number, rate?: number, stamp?: boolean,
 *           startAt?: number, ackWaitMs?: number, syncEvery?: number, syncWindow?: number }} a
 * `topic` may contain {i} (the client's global index: `indexOffset` plus its index in `connect`). Without `rate`: each client publishes as fast
 * as it may (lean QoS 0: as fast as the socket takes it; otherwise `window` unacknowledged
 * publishes per client). With `rate`: the group publishes `rate` messages/s in total.
 */
async function publish(a) {
  const g = group(a.group);
  if (a.startAt) await sleep(Math.max(0, a.startAt - now()));
  const start = now();
  const end = start + a.durationMs;
  const cap = a.maxMessages;
  const window = a.window ?? 16;
  const syncEvery = a.syncEvery ?? 16;
  const syncWindow = a.syncWindow ?? 4;
  const clients = g.clients.map((client, k) => ({
    client,
    // The client's index in its `connect` (not its place in the group, which is the order the
    // CONNACKs arrived in): the i-th client publishes as the i-th credentials' user.
    topic: a.topic.replace("{i}", String((a.indexOffset ?? 0) + (client.index ?? k))),
    sent: 0,
    outstanding: 0,
    /** @type {(() => void) | undefined} */
    wake: undefined,
  }));
  let published = 0;
  let acked = 0;
  let failed = 0;
  const fixedPayload = new Uint8Array(a.payloadBytes).fill(0x61);
  const payload = () => {
    if (!a.stamp) return fixedPayload;
    const p = new Uint8Array(Math.max(8, a.payloadBytes));
    new DataView(p.buffer).setBigUint64(0, process.hrtime.bigint());
    return p;
  };
  /** @param {(typeof clients)[number]} c */
  const sendOne = (c) => {
    c.sent++;
    published++;
    const r = c.client.publish(c.topic, payload(), a.qos);
    if (r) {
      c.outstanding++;
      r.then(
        () => acked++,
        () => failed++,
      ).finally(() => {
        c.outstanding--;
        const w = c.wake;
        c.wake = undefined;
        w?.();
      });
    }
  };

  if (a.rate) {
    // Fixed total rate: every ~2 ms send what is due, round robin over the clients.
    let k = 0;
    while (now() < end && published < cap * clients.length) {
      const due = Math.min(cap * clients.length, Math.floor(((now() - start) * a.rate) / 1000)) - published;
      for (let n = 0; n < due; n++) {
        const c = /** @type {(typeof clients)[number]} */ (clients[k++ % clients.length]);
        if (c.client.open) sendOne(c);
        else published++, failed++;
      }
      await sleep(2);
    }
  } else {
    await Promise.all(
      clients.map(async (c) => {
        const lean0 = g.kind === "lean" && a.qos === 0 && !a.stamp;
        const bytes = lean0 ? codec.encodePacket({ type: "publish", topic: c.topic, payload: fixedPayload, qos: 0, retain: false, dup: false }, c.client.version) : undefined;
        /** @type {Promise<unknown>[]} QoS 0 flow control: one PINGREQ after every `syncEvery` publishes, at most `syncWindow` unanswered */
        const pings = [];
        while (c.sent < cap && c.client.open) {
          const t = now();
          if (t >= end) break;
          if (a.qos === 0) {
            for (let n = 0; n < syncEvery && c.sent < cap; n++) {
              if (lean0) {
                c.client.sendRaw(bytes);
                c.sent++;
                published++;
              } else sendOne(c);
            }
            pings.push(c.client.ping());
            if (pings.length >= syncWindow) await withTimeout(/** @type {Promise<unknown>} */ (pings.shift()), Math.max(1, end - now()), "PINGRESP").catch(() => {});
            else await new Promise((r) => setImmediate(r));
          } else if (c.outstanding < window) {
            sendOne(c);
            if (c.sent % 32 === 0) await new Promise((r) => setImmediate(r));
          } else {
            await new Promise((/** @type {(v?: unknown) => void} */ r) => {
              c.wake = r;
              setTimeout(r, Math.max(1, end - t)).unref();
            });
          }
        }
      }),
    );
  }
  const endAt = now();
  // Let acknowledgements of what was sent arrive (bounded).
  const ackDeadline = endAt + (a.ackWaitMs ?? 5_000);
  while (clients.some((c) => c.outstanding > 0) && now() < ackDeadline) await sleep(20);
  return { published, acked, failed, unacked: clients.reduce((s, c) => s + c.outstanding, 0), startAt: start, endAt, clients: clients.length, open: clients.filter((c) => c.client.open).length };
}

/** @param {{ group: string, latencies?: boolean }} a */
function stats(a) {
  const g = group(a.group);
  return {
    delivered: g.delivered,
    firstAt: g.firstAt,
    lastAt: g.lastAt,
    open: g.clients.filter((c) => c.open).length,
    clients: g.clients.length,
    lostConnections: g.lostConnections,
    closeReasons: g.closeReasons,
    ...(a.latencies && g.latencies ? { latencies: g.latencies, latencyAt: g.latencyAt } : {}),
  };
}

/** @param {{ group: string }} a */
function stopConnecting(a) {
  const g = groups.get(a.group);
  if (g) g.stop = true;
  return { stopped: g !== undefined };
}

/** @param {{ group: string, count?: number }} a `count`: close only that many (the group stays while clients remain) */
async function close(a) {
  const g = groups.get(a.group);
  if (!g) return { closed: 0, remaining: 0 };
  const some = a.count !== undefined && a.count < g.clients.length;
  const closing = some ? g.clients.splice(g.clients.length - /** @type {number} */ (a.count)) : g.clients;
  if (!some) groups.delete(a.group);
  for (const c of closing) {
    try {
      c.close();
    } catch {
      // ignore
    }
  }
  // Give DISCONNECTs a moment to leave (bounded).
  const deadline = now() + 3_000;
  while (closing.some((c) => c.open) && now() < deadline) await sleep(50);
  return { closed: closing.length, remaining: some ? g.clients.length : 0 };
}

/** @type {Record<string, (a: any) => unknown>} */
const ops = {
  connect,
  publish,
  stats,
  stopConnecting,
  close,
  cpu: () => {
    const r = { ...process.cpuUsage(), rss: process.memoryUsage().rss, loopDelayMaxMs: loopDelay.max / 1e6 };
    loopDelay.reset();
    return r;
  },
  exit: () => {
    setTimeout(() => process.exit(0), 10);
    return {};
  },
};

process.on("message", async (/** @type {any} */ msg) => {
  const { id, op, args } = msg;
  try {
    const fn = ops[op];
    if (!fn) throw new Error(`unknown op ${op}`);
    const result = await fn(args ?? {});
    process.send?.({ id, ok: true, result });
  } catch (e) {
    process.send?.({ id, ok: false, error: e instanceof Error ? `${e.message}` : String(e) });
  }
});
// The parent going away ends this process.
process.on("disconnect", () => process.exit(0));
process.send({ ready: true });
