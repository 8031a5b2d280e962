// Links between objects (docs/architecture.md, "Links") on a real broker that opens one from
// the first call (LINK_MIN_RATE 0): every session-to-shard and shard-to-session call goes over
// a WebSocket between the two objects, QoS 0 as casts. The QoS guarantees and the order of
// each publisher's messages hold as they do over RPC (the restart suites run without links:
// a link lost with a call in flight fails that call, as a dead object's RPC does).
import { afterEach, describe, expect, it } from "vitest";
import { useBroker } from "./broker";
import { closeAll, connect, sleep, topicBase, type Received } from "./clients";

const broker = useBroker({ vars: { MAX_PUBLISH_RATE: "0", LINK_MIN_RATE: "0", LINK_IDLE_MS: "1000" } });
afterEach(closeAll);

interface Metrics {
  byKind: Record<"session" | "shard", { requests: number; webSocketMessages: number; delivered: number }>;
}

async function metrics(): Promise<Metrics> {
  const res = await fetch(`${broker().httpUrl}/metrics`);
  expect(res.status).toBe(200);
  return (await res.json()) as Metrics;
}

/** Objects report their counters at most once a second. */
async function metricsAfterReport(): Promise<Metrics> {
  await sleep(1_500);
  return metrics();
}

/** The payload numbers received from one publisher at one QoS, in arrival order. */
function sequence(messages: Received[], publisher: string, qos: number): number[] {
  return messages.filter((m) => m.topic.endsWith(`/${publisher}`) && Number(m.payload.toString().split(":")[1]) === qos).map((m) => Number(m.payload.toString().split(":")[0]));
}

describe("links from the first call", () => {
  it("QoS 0, 1 and 2 from three publishers to two subscribers (5.0 fast path, 3.1.1 plain /mqtt): all arrive, QoS 2 once, each publisher's in order", async () => {
    const base = topicBase("links");
    const before = await metrics();
    const subs = [await connect(broker().url, { version: 5, route: "fast", label: "sub5" }), await connect(broker().url, { version: 4, route: "relay", label: "sub4" })];
    for (const s of subs) await s.subscribe(`${base}/#`, { qos: 2 });
    const pubs = await Promise.all(["p0", "p1", "p2"].map((label, i) => connect(broker().url, { version: i === 1 ? 4 : 5, route: i === 2 ? "relay" : "fast", label })));
    const N = 150;
    await Promise.all(
      pubs.map(async (p, k) => {
        const sent: Promise<unknown>[] = [];
        for (let i = 0; i < N; i++) {
          const qos = (i % 3) as 0 | 1 | 2;
          sent.push(p.publish(`${base}/p${k}`, `${i}:${qos}`, { qos }));
          if (i % 10 === 9) await Promise.all(sent.splice(0)); // bursts of 10, as a busy device
        }
        await Promise.all(sent);
      }),
    );
    for (const s of subs) {
      await s.inbox.waitFor(3 * N, 20_000);
      await s.inbox.settle(300);
      expect(s.inbox.length, s.inbox.describe()).toBe(3 * N); // nothing lost, QoS 2 not twice (QoS 1 not twice either, here)
      for (const k of [0, 1, 2]) {
        for (const qos of [0, 1, 2]) {
          const expected = Array.from({ length: N }, (_, i) => i).filter((i) => i % 3 === qos);
          expect(sequence(s.inbox.messages, `p${k}`, qos), `${s.inbox.label} p${k} QoS ${qos}`).toEqual(expected);
        }
      }
    }
    // The calls went over links: the shards received WebSocket messages, which only links send them.
    const after = await metricsAfterReport();
    expect(after.byKind.shard.webSocketMessages - (before.byKind.shard?.webSocketMessages ?? 0)).toBeGreaterThan(0);
  });

  it("a shared subscription over links: each message to exactly one member; when one leaves, the other gets the rest", async () => {
    const base = topicBase("links-shared");
    const a = await connect(broker().url, { version: 5, route: "fast", label: "a" });
    const b = await connect(broker().url, { version: 5, route: "fast", label: "b" });
    for (const m of [a, b]) await m.subscribe(`$share/g/${base}/#`, { qos: 0 });
    const pub = await connect(broker().url, { version: 5, route: "fast", label: "pub" });
    for (let i = 0; i < 40; i++) await pub.publish(`${base}/x`, `first-${i}`, { qos: 1 });
    await sleep(300);
    expect(a.inbox.length + b.inbox.length).toBe(40);
    expect(a.inbox.length).toBeGreaterThan(0);
    expect(b.inbox.length).toBeGreaterThan(0);
    await b.end();
    const bHad = b.inbox.length;
    for (let i = 0; i < 40; i++) await pub.publish(`${base}/x`, `second-${i}`, { qos: 0 });
    await a.inbox.waitFor(1, 5_000, (m) => m.payload.toString() === "second-39");
    expect(a.inbox.payloads().filter((p) => p.startsWith("second-"))).toEqual(Array.from({ length: 40 }, (_, i) => `second-${i}`));
    expect(b.inbox.length).toBe(bHad);
  });

  it("links idle for LINK_IDLE_MS close; the next messages open them again and arrive", async () => {
    const base = topicBase("links-idle");
    const sub = await connect(broker().url, { version: 5, route: "fast", label: "sub" });
    await sub.subscribe(`${base}/#`, { qos: 1 });
    const pub = await connect(broker().url, { version: 5, route: "fast", label: "pub" });
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 5; i++) await pub.publish(`${base}/t`, `r${round}-${i}`, { qos: (i % 2) as 0 | 1 });
      await sub.inbox.waitFor(5 * (round + 1), 5_000);
      if (round === 0) await sleep(2_500); // past LINK_IDLE_MS (1 s): both links closed meanwhile
    }
    expect(sub.inbox.payloads()).toEqual([0, 1].flatMap((r) => Array.from({ length: 5 }, (_, i) => `r${r}-${i}`)));
  });
});
