/**
 * Links between objects (durable-objects/link.ts) inside workerd: a Link opened from this test
 * to a real SessionDO or TopicShardDO, its calls, what happens when it is lost or idle, and
 * what a client that asks for one gets.
 */
import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { shardCountFromEnv, shardName } from "../../durable-objects/config";
import { CAST_SYNC_EVERY, LINK_HEADER, LINK_TAG, Links, linkOptionsFromEnv, linkRequest } from "../../durable-objects/link";
import { encodeCall, decodeLinkFrame, LinkFrameKind } from "../../core/util/link-frame";
import { shardOfTopic } from "../../core/topics";
import type { Delivery } from "../../core/session/types";
import { BASE, connect, enc, subscribe, text, unique, until } from "./mqtt-client";

const always = { minRate: 0, idleMs: 60_000, maxOpen: 8 };

function sessionStub(clientId: string) {
  return env.SESSIONS.get(env.SESSIONS.idFromName(clientId));
}

function delivery(topic: string, payload: string, qos: 0 | 1 = 0): Delivery {
  return { message: { topic, payload: enc(payload), qos, retain: false }, qos, retain: false };
}

/** A link to a session, and a counter of the calls that went by RPC instead. */
function linkToSession(clientId: string, options = always) {
  const stub = sessionStub(clientId);
  const counted = { answers: 0, rpc: 0 };
  const link = new Links(options, () => counted.answers++).to(() => stub.fetch(linkRequest()));
  const deliver = (deliveries: Delivery[]) =>
    link.call("deliver", [deliveries], () => {
      counted.rpc++;
      return stub.deliver(deliveries);
    });
  return { link, deliver, counted, stub };
}

/**
 * A connected client subscribed at `qos` to links/<id>, and an open link to its session: one
 * message ("warm") went by RPC while the link opened, and was read.
 */
async function linkedSubscriber(prefix: string, qos: 0 | 1) {
  const id = unique(prefix);
  const { client } = await connect("fast", 5, id);
  await subscribe(client, 1, `links/${id}`, qos);
  const linked = linkToSession(id);
  await linked.deliver([delivery(`links/${id}`, "warm")]);
  await client.next("publish");
  await until(() => linked.link.isOpen, 3000, () => "the link did not open");
  return { id, client, ...linked };
}

describe("LINK_* settings", () => {
  it("reads the rate, \"off\", the idle time and the cap; keeps the defaults for nonsense", () => {
    expect(linkOptionsFromEnv({})).toEqual({ minRate: 5, idleMs: 5000, maxOpen: 256 });
    expect(linkOptionsFromEnv({ LINK_MIN_RATE: "0", LINK_IDLE_MS: "250", LINK_MAX_OPEN: "3" })).toEqual({ minRate: 0, idleMs: 250, maxOpen: 3 });
    expect(linkOptionsFromEnv({ LINK_MIN_RATE: "off" })).toMatchObject({ minRate: Number.POSITIVE_INFINITY, maxOpen: 0 });
    expect(linkOptionsFromEnv({ LINK_MIN_RATE: "-1", LINK_IDLE_MS: "x", LINK_MAX_OPEN: "" })).toEqual({ minRate: 5, idleMs: 5000, maxOpen: 256 });
  });
});

describe("a shard's link to a session", () => {
  it("the first call goes by RPC while the link opens; the next ones over it, in order, to the client", async () => {
    const id = unique("link-sub");
    const { client } = await connect("fast", 5, id);
    await subscribe(client, 1, `links/${id}`, 1); // the session exists; deliveries go to its client
    const { link, deliver, counted } = linkToSession(id);
    expect(await deliver([delivery(`links/${id}`, "m0")])).toEqual({ live: true });
    expect(counted.rpc).toBe(1);
    await until(() => link.isOpen, 3000, () => "the link did not open");
    for (let i = 1; i <= 20; i++) expect(await deliver([delivery(`links/${id}`, `m${i}`), delivery(`links/${id}`, `m${i}b`)])).toEqual({ live: true });
    expect(counted.rpc).toBe(1);
    expect(counted.answers).toBe(20);
    const got: string[] = [];
    for (let i = 0; i < 41; i++) got.push(text((await client.next("publish")).payload));
    expect(got).toEqual(["m0", ...Array.from({ length: 20 }, (_, k) => [`m${k + 1}`, `m${k + 1}b`]).flat()]);
    client.close();
  });

  it("QoS 1 over a link: answered once the client acknowledges, the message never written", async () => {
    const { id, client, deliver, counted } = await linkedSubscriber("link-q1", 1);
    let answered = false;
    const call = deliver([delivery(`links/${id}`, "q1", 1)]).then((r) => ((answered = true), r));
    const p = await client.next("publish");
    expect(p.qos).toBe(1);
    await scheduler.wait(50);
    expect(answered).toBe(false); // held until acknowledged or stored (QOS1_STORE_DELAY_MS 250 here)
    client.send({ type: "puback", packetId: p.packetId! });
    expect(await call).toEqual({ live: true });
    expect(counted.rpc).toBe(1);
    const rows = await runInDurableObject(sessionStub(id), (_i, state) => state.storage.sql.exec("SELECT COUNT(*) AS n FROM outbound").one()["n"]);
    expect(rows).toBe(0);
    client.close();
  });

  it("a link is not a client: the session's client socket and its Will are untouched when the link closes", async () => {
    const id = unique("link-close");
    const { client } = await connect("fast", 5, id);
    await subscribe(client, 1, `links/${id}`, 0);
    const { link, deliver } = linkToSession(id);
    await deliver([delivery(`links/${id}`, "a")]);
    await until(() => link.isOpen, 3000, () => "the link did not open");
    const sockets = await runInDurableObject(sessionStub(id), (_i, state) => ({ links: state.getWebSockets(LINK_TAG).length, all: state.getWebSockets().length }));
    expect(sockets).toEqual({ links: 1, all: 2 });
    await runInDurableObject(sessionStub(id), (_i, state) => state.getWebSockets(LINK_TAG).forEach((ws) => ws.close(1000, "test")));
    await until(() => !link.isOpen, 3000, () => "the link was not seen closed");
    // The next call goes by RPC and reaches the client, still connected.
    expect(await deliver([delivery(`links/${id}`, "b")])).toEqual({ live: true });
    expect(text((await client.next("publish")).payload)).toBe("a");
    expect(text((await client.next("publish")).payload)).toBe("b");
    client.send({ type: "pingreq" });
    await client.next("pingresp");
    client.close();
  });

  it("a call in flight when the link is lost fails; the next one goes by RPC and a new link opens", async () => {
    const { id, client, link, deliver, counted } = await linkedSubscriber("link-lost", 1);
    // Held: the client does not acknowledge. Its outcome is read at once (no unhandled rejection meanwhile).
    const held = deliver([delivery(`links/${id}`, "held", 1)]).then(
      () => "answered",
      (e: Error) => e.message,
    );
    await client.next("publish");
    await runInDurableObject(sessionStub(id), (_i, state) => state.getWebSockets(LINK_TAG).forEach((ws) => ws.close(1011, "test")));
    expect(await held).toMatch(/link lost/);
    const rpcBefore = counted.rpc;
    await deliver([delivery(`links/${id}`, "after")]);
    expect(counted.rpc).toBe(rpcBefore + 1);
    await until(() => link.isOpen, 3000, () => "no new link");
    client.close();
  });

  it("closes after LINK_IDLE_MS without a call, so its caller may leave memory", async () => {
    const id = unique("link-idle");
    const { link, deliver } = linkToSession(id, { minRate: 0, idleMs: 150, maxOpen: 8 });
    await deliver([delivery(`links/${id}`, "x")]);
    await until(() => link.isOpen, 3000, () => "the link did not open");
    await until(() => !link.isOpen, 3000, () => "the idle link stayed open");
    const left = await runInDurableObject(sessionStub(id), (_i, state) => state.getWebSockets(LINK_TAG).length);
    expect(left).toBe(0);
  });

  it("opens only once the calls reach LINK_MIN_RATE per second, and never past LINK_MAX_OPEN", async () => {
    const slow = linkToSession(unique("link-rate"), { minRate: 5, idleMs: 60_000, maxOpen: 8 });
    for (let i = 0; i < 4; i++) await slow.deliver([delivery("links/rate", `${i}`)]);
    await scheduler.wait(50);
    expect(slow.link.isOpen).toBe(false);
    await slow.deliver([delivery("links/rate", "5th")]);
    await until(() => slow.link.isOpen, 3000, () => "the link did not open at the rate");

    const links = new Links({ minRate: 0, idleMs: 60_000, maxOpen: 1 });
    const [a, b] = [unique("cap-a"), unique("cap-b")].map((id) => {
      const stub = sessionStub(id);
      return { link: links.to(() => stub.fetch(linkRequest())), stub };
    });
    await a!.link.call("deliver", [[]], () => a!.stub.deliver([]));
    await until(() => a!.link.isOpen, 3000, () => "first link not open");
    await b!.link.call("deliver", [[]], () => b!.stub.deliver([]));
    await scheduler.wait(50);
    expect(b!.link.isOpen).toBe(false);
    expect(links.open).toBe(1);
  });

  it("a frame that is not a call closes the link; an unknown method is answered with an error", async () => {
    const res = await sessionStub(unique("link-bad")).fetch(linkRequest());
    const ws = res.webSocket!;
    ws.accept();
    ws.binaryType = "arraybuffer";
    const answers: ArrayBuffer[] = [];
    let closed: number | undefined;
    ws.addEventListener("message", (e) => answers.push(e.data as ArrayBuffer));
    ws.addEventListener("close", (e) => (closed = e.code));
    ws.send(encodeCall(1, "adminEnd", []));
    await until(() => answers.length === 1, 3000, () => "no answer");
    expect(decodeLinkFrame(answers[0]!)).toEqual({ kind: LinkFrameKind.Error, id: 1, message: "no method adminEnd" });
    ws.send(new Uint8Array([1, 2, 3]));
    await until(() => closed !== undefined, 3000, () => "not closed");
    expect(closed).toBe(1002);
  });
});

describe("casts (QoS 0)", () => {
  it("resolve at once with the assumed answer and are not answered, but one in CAST_SYNC_EVERY goes as a call; all arrive in order", async () => {
    const id = unique("cast-sub");
    const { client } = await connect("fast", 5, id);
    await subscribe(client, 1, `links/${id}`, 0);
    const stub = sessionStub(id);
    const counted = { answers: 0, rpc: 0 };
    const link = new Links(always, () => counted.answers++).to(() => stub.fetch(linkRequest()));
    const deliver = (payload: string) =>
      link.call("deliver", [[delivery(`links/${id}`, payload)]], () => (counted.rpc++, stub.deliver([delivery(`links/${id}`, payload)])), { assumed: { live: true } });
    await deliver("rpc");
    await until(() => link.isOpen, 3000, () => "the link did not open");
    const n = 2 * CAST_SYNC_EVERY;
    for (let i = 0; i < n; i++) expect(await deliver(`c${i}`)).toEqual({ live: true });
    expect(counted.rpc).toBe(1);
    expect(counted.answers).toBe(2); // the calls among them (every CAST_SYNC_EVERY-th), nothing for the casts
    const got: string[] = [];
    for (let i = 0; i <= n; i++) got.push(text((await client.next("publish")).payload));
    expect(got).toEqual(["rpc", ...Array.from({ length: n }, (_, i) => `c${i}`)]);
    client.close();
  });

  it("a cast to a session that is gone is reported to the caller", async () => {
    const id = unique("cast-gone"); // never connected: no session record
    const stub = sessionStub(id);
    const reports: unknown[] = [];
    const link = new Links(always).to(() => stub.fetch(linkRequest()), (method, value) => reports.push([method, value]));
    const cast = { assumed: { live: true } };
    await link.call("deliver", [[delivery("links/gone", "a")]], () => stub.deliver([delivery("links/gone", "a")]), cast);
    await until(() => link.isOpen, 3000, () => "the link did not open");
    expect(await link.call("deliver", [[delivery("links/gone", "b")]], () => Promise.reject(new Error("went by RPC")), cast)).toEqual({ live: true });
    await until(() => reports.length === 1, 3000, () => "no report");
    expect(reports).toEqual([["deliver", { live: false }]]);
  });

  it("the shard forgets a subscriber whose session ended, from the report on a cast", async () => {
    const id = unique("cast-forget");
    const topic = `links/forget/${id}`;
    const { client } = await connect("fast", 5, id);
    await subscribe(client, 1, topic, 0);
    const shard = env.SHARDS.get(env.SHARDS.idFromName(shardName(shardOfTopic(topic, shardCountFromEnv(env)))));
    const links = () => runInDurableObject(sessionStub(id), (_i, state) => state.getWebSockets(LINK_TAG).length);
    // LINK_MIN_RATE (5) calls within a second open the shard's link to the session.
    for (let i = 0; i < 25 && (await links()) === 0; i++) await shard.publish({ topic, payload: enc(`${i}`), qos: 0, retain: false });
    expect(await links()).toBe(1);
    client.send({ type: "disconnect" }); // clean start, expiry 0: the session ends with the connection
    await client.waitClosed();
    await shard.publish({ topic, payload: enc("after"), qos: 0, retain: false });
    const subscribed = () =>
      runInDurableObject(shard, (_i, state) => state.storage.sql.exec("SELECT COUNT(*) AS n FROM subscriptions WHERE client_id = ?", id).one()["n"]);
    for (let i = 0; i < 100 && (await subscribed()) !== 0; i++) await scheduler.wait(20);
    expect(await subscribed()).toBe(0);
  });
});

describe("a session's link to a shard", () => {
  it("publishBatch over the link reaches the subscribers, with the matched count", async () => {
    const id = unique("link-shard-sub");
    const topic = `links/shard/${id}`;
    const { client } = await connect("fast", 5, id);
    await subscribe(client, 1, topic, 0);
    const shard = env.SHARDS.get(env.SHARDS.idFromName(shardName(shardOfTopic(topic, shardCountFromEnv(env)))));
    const link = new Links(always).to(() => shard.fetch(linkRequest()));
    const message = { topic, payload: enc("p0"), qos: 0 as const, retain: false };
    await link.call("publishBatch", [[message], [Date.now()]], () => shard.publishBatch([message], [Date.now()]));
    await until(() => link.isOpen, 3000, () => "the link did not open");
    const result = await link.call("publishBatch", [[{ ...message, payload: enc("p1") }, { ...message, payload: enc("p2") }], [null, null]], () => {
      throw new Error("went by RPC");
    });
    expect(result).toEqual([{ matched: 1 }, { matched: 1 }]);
    const got = [];
    for (let i = 0; i < 3; i++) got.push(text((await client.next("publish")).payload));
    expect(got).toEqual(["p0", "p1", "p2"]);
    client.close();
  });

  it("a shard answers nothing but a link's upgrade by fetch", async () => {
    const shard = env.SHARDS.get(env.SHARDS.idFromName(shardName(0)));
    expect((await shard.fetch(new Request("https://x/", { headers: { Upgrade: "websocket" } }))).status).toBe(404);
    expect((await shard.fetch(new Request("https://x/"))).status).toBe(404);
  });
});

describe("clients cannot open a link", () => {
  it("the Worker strips the link header: a client that sends it gets an MQTT connection, and a link frame is refused as not CONNECT", async () => {
    const id = unique("link-spoof");
    const res = await exports.default.fetch(
      new Request(`${BASE}/mqtt/${id}`, { headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": "mqtt", [LINK_HEADER]: "1" } }),
    );
    expect(res.status).toBe(101);
    expect(res.headers.get("Sec-WebSocket-Protocol")).toBe("mqtt");
    const ws = res.webSocket!;
    ws.accept();
    let closed: { code: number; reason: string } | undefined;
    ws.addEventListener("close", (e) => (closed = { code: e.code, reason: e.reason }));
    ws.send(encodeCall(1, "deliver", [[delivery(`links/${id}`, "injected")]]));
    await until(() => closed !== undefined, 3000, () => "not closed");
    expect(closed).toEqual({ code: 1002, reason: "CONNECT expected" });
    const links = await runInDurableObject(sessionStub(id), (_i, state) => state.getWebSockets(LINK_TAG).length);
    expect(links).toBe(0);
  });
});
