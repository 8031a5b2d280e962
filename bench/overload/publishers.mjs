// The overload bench's publishers: a child process (forked by bench/overload/run.mjs) running
// MQTT.js clients, so that their CPU does not delay the measuring process's timers and probes.
// Commands over IPC, each answered once:
//   connect   open `count` MQTT.js clients (no reconnect)
//   run       publish from every client until `durationMs` or `maxPerClient` messages:
//             QoS 0 flat out (as fast as the WebSocket stream takes them: the next publish
//             waits only when the stream asks to drain), QoS 1 with at most `window`
//             unacknowledged per client; with `rate`, at most that many messages per second
//             per client; optionally each payload starts with its sequence number
//   progress  published / acknowledged so far (while `run` is under way)
//   events    per client: when it connected, DISCONNECTs received (reason code), when it closed
//   close     end every client; exit
// Every loop is bounded in count and time.
import mqtt from "mqtt";
import { now, ranges, SEQ_DIGITS, sleep } from "./lib.mjs";

if (!process.send) throw new Error("publishers.mjs is forked by bench/overload/run.mjs");

/**
 * @typedef {object} Client
 * @property {string} clientId
 * @property {import("mqtt").MqttClient} c
 * @property {boolean} open
 * @property {number} connectedAt
 * @property {{ at: number, reasonCode: number, reasonString?: string }[]} disconnects
 * @property {number | undefined} closedAt
 * @property {string | undefined} error
 * @property {number} sent
 * @property {number} acked
 * @property {number} failed
 * @property {number} outstanding
 * @property {(() => void) | undefined} wake
 * @property {Uint8Array | undefined} status per sequence number: 1 sent, 2 acknowledged, 3 refused
 */

/** @type {Client[]} */
let clients = [];
/** PUBACK reason codes received, by code. @type {Record<number, number>} */
const pubackReasons = {};

/** @param {{ url: string, count: number, idPrefix: string, version?: 4 | 5, keepAlive?: number }} a */
async function connect(a) {
  /** @type {string[]} */
  const errors = [];
  const opened = await Promise.all(
    Array.from({ length: a.count }, (_, i) => {
      const clientId = `${a.idPrefix}${i}`;
      const c = mqtt.connect(a.url, {
        clientId,
        protocolVersion: a.version ?? 5,
        keepalive: a.keepAlive ?? 60,
        clean: true,
        reconnectPeriod: 0,
        connectTimeout: 30_000,
        wsOptions: { perMessageDeflate: false },
      });
      /** @type {Client} */
      const cl = { clientId, c, open: false, connectedAt: 0, disconnects: [], closedAt: undefined, error: undefined, sent: 0, acked: 0, failed: 0, outstanding: 0, wake: undefined, status: undefined };
      c.on("disconnect", (p) => cl.disconnects.push({ at: now(), reasonCode: p.reasonCode ?? 0, ...(p.properties?.reasonString && { reasonString: p.properties.reasonString }) }));
      c.on("packetreceive", (p) => {
        if (p.cmd === "puback") pubackReasons[p.reasonCode ?? 0] = (pubackReasons[p.reasonCode ?? 0] ?? 0) + 1;
      });
      c.on("error", (e) => (cl.error ??= e.message));
      c.on("close", () => {
        if (cl.open) cl.closedAt ??= now();
        cl.open = false;
        cl.wake?.();
      });
      return new Promise((/** @type {(c: Client | undefined) => void} */ resolve) => {
        c.once("connect", () => {
          cl.open = true;
          cl.connectedAt = now();
          resolve(cl);
        });
        c.once("close", () => {
          if (errors.length < 5) errors.push(`${clientId}: ${cl.error ?? "closed before CONNACK"}`);
          resolve(undefined);
        });
      });
    }),
  );
  clients = opened.filter((c) => c !== undefined);
  return { connected: clients.length, errors };
}

/**
 * Resolves when `p` does or at `deadline`, whichever comes first; true if `p` did.
 * @param {Promise<unknown>} p @param {number} deadline
 */
async function waitUntil(p, deadline) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const done = await Promise.race([p.then(() => true), new Promise((r) => (timer = setTimeout(() => r(false), Math.max(1, deadline - now()))))]);
  clearTimeout(timer);
  return done;
}

/**
 * @param {{ topic: string, qos: 0 | 1, payloadBytes: number, durationMs: number, maxPerClient: number,
 *           window?: number, rate?: number, stamp?: boolean, ackWaitMs?: number }} a
 * `topic` may contain {i}, the client's index.
 */
async function run(a) {
  const start = now();
  const end = start + a.durationMs;
  const window = a.window ?? 64;
  const fixed = Buffer.alloc(a.payloadBytes, 0x78);
  /** @param {number} seq */
  const payload = (seq) => {
    if (!a.stamp) return fixed;
    const p = Buffer.alloc(Math.max(SEQ_DIGITS, a.payloadBytes), 0x78);
    p.write(String(seq).padStart(SEQ_DIGITS, "0"), 0, "latin1");
    return p;
  };
  const total = () => clients.reduce((n, c) => n + c.sent, 0);
  /** Messages published by the end of each second. @type {number[]} */
  const perSecond = [];
  const tick = setInterval(() => perSecond.push(total()), 1_000);
  await Promise.all(
    clients.map(async (cl, i) => {
      const topic = a.topic.replace("{i}", String(i));
      if (a.stamp) cl.status = new Uint8Array(a.maxPerClient);
      let sinceYield = 0;
      while (cl.open && cl.sent < a.maxPerClient && now() < end) {
        const seq = cl.sent;
        if (a.rate) {
          const due = start + (seq * 1000) / a.rate;
          if (due > now()) {
            await sleep(Math.min(due, end) - now());
            continue;
          }
        }
        if (a.qos === 0) {
          let written = false;
          /** @type {() => void} */
          let onWritten = () => {};
          const p = new Promise((/** @type {(v?: unknown) => void} */ r) => (onWritten = r));
          cl.c.publish(topic, payload(seq), { qos: 0 }, (err) => {
            written = true;
            if (err) cl.failed++;
            onWritten();
          });
          cl.sent++;
          // The stream asked to drain: the next publish waits for it (or for the end).
          if (!written && !(await waitUntil(p, end))) break;
        } else if (cl.outstanding < window) {
          cl.outstanding++;
          cl.sent++;
          if (cl.status) cl.status[seq] = 1;
          cl.c.publish(topic, payload(seq), { qos: 1 }, (err) => {
            cl.outstanding--;
            if (err) cl.failed++;
            else cl.acked++;
            if (cl.status) cl.status[seq] = err ? 3 : 2;
            const w = cl.wake;
            cl.wake = undefined;
            w?.();
          });
        } else {
          await waitUntil(new Promise((/** @type {(v?: unknown) => void} */ r) => (cl.wake = r)), end);
          continue;
        }
        if (++sinceYield >= 64) {
          sinceYield = 0;
          await new Promise((r) => setImmediate(r));
        }
      }
    }),
  );
  const endAt = now();
  clearInterval(tick);
  perSecond.push(total());
  // Acknowledgements of what was sent, for a bounded time.
  const ackDeadline = endAt + (a.ackWaitMs ?? 10_000);
  while (clients.some((c) => c.open && c.outstanding > 0) && now() < ackDeadline) await sleep(50);
  const first = clients[0];
  return {
    startAt: start,
    endAt,
    published: total(),
    perSecond,
    acked: clients.reduce((s, c) => s + c.acked, 0),
    failed: clients.reduce((s, c) => s + c.failed, 0),
    unacked: clients.reduce((s, c) => s + c.outstanding, 0),
    perClient: clients.map((c) => c.sent),
    pubackReasons,
    // Stamped runs: sequence numbers of the first client that were sent but not acknowledged.
    ...(first?.status && { notAcked: ranges(first.status, (v) => v === 1 || v === 3, first.sent) }),
  };
}

function events() {
  return clients.map((c) => ({
    clientId: c.clientId,
    connectedAt: c.connectedAt,
    open: c.open,
    disconnects: c.disconnects,
    closedAt: c.closedAt ?? null,
    error: c.error ?? null,
  }));
}

async function close() {
  for (const c of clients) c.c.end(true);
  const deadline = now() + 3_000;
  while (clients.some((c) => c.open) && now() < deadline) await sleep(50);
  return { closed: clients.length };
}

/** @type {Record<string, (a: any) => unknown>} */
const ops = {
  connect,
  run,
  progress: () => ({ published: clients.reduce((s, c) => s + c.sent, 0), acked: clients.reduce((s, c) => s + c.acked, 0), open: clients.filter((c) => c.open).length }),
  events,
  close,
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
    process.send?.({ id, ok: true, result: await fn(args ?? {}) });
  } catch (e) {
    process.send?.({ id, ok: false, error: e instanceof Error ? e.message : String(e) });
  }
});
// The parent going away ends this process.
process.on("disconnect", () => process.exit(0));
process.send({ ready: true });
