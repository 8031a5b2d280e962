/**
 * Whole MQTT exchanges over WebSocket inside workerd: the Worker, the ConnectionDO relay
 * (`/mqtt`) and the SessionDO fast path (`/mqtt/<clientId>`), the TopicShardDOs, for MQTT
 * 3.1.1 and 5.0. Packets are built and read with the project codec.
 *
 * Every test uses its own client identifiers and topics (the shards, `shard-N`, are shared
 * by every test of the file), so no test depends on another or on storage isolation.
 */
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { encodePacket } from "../../core/mqtt/codec";
import type { Packet, ProtocolVersion, PublishPacket } from "../../core/mqtt/packets";
import {
  connect,
  connectPacket,
  enc,
  holdObject,
  openSocket,
  publish,
  socketClient,
  subscribe,
  text,
  unique,
  type ConnectOptions,
  type PacketOf,
  type Route,
} from "./mqtt-client";
import { SqlSessionStore } from "../../durable-objects/storage/sql-session-store";
import { shardCountFromEnv, shardName } from "../../durable-objects/config";
import { shardOfTopic } from "../../core/topics";
import { concatBytes } from "../../core/util/bytes";

function sessionStub(clientId: string) {
  return env.SESSIONS.get(env.SESSIONS.idFromName(clientId));
}

async function outboundCount(clientId: string): Promise<number> {
  return runInDurableObject(sessionStub(clientId), (_i, state) => new SqlSessionStore(state.storage.sql).outboundCount());
}

/** A QoS 1 delivery as a shard sends it to a session's deliver(). */
function qos1Delivery(topic: string, payload: string) {
  return { message: { topic, payload: enc(payload), qos: 1 as const, retain: false, origin: "someone" }, qos: 1 as const, retain: false };
}

/** Rows of the outbound table (a group of messages is one). */
async function outboundRows(clientId: string): Promise<number> {
  return runInDurableObject(sessionStub(clientId), (_i, state) => state.storage.sql.exec(`SELECT count(*) AS n FROM outbound`).one().n as number);
}

async function inboundQos2Count(clientId: string): Promise<number> {
  return runInDurableObject(sessionStub(clientId), (_i, state) => new SqlSessionStore(state.storage.sql).inboundQos2Count());
}

/** The object holding a client's socket: the SessionDO on the fast path, its ConnectionDO on the relay. */
async function socketHolder(route: Route, clientId: string): Promise<DurableObjectStub> {
  if (route === "fast") return sessionStub(clientId);
  const linkId = await runInDurableObject(sessionStub(clientId), (_i, state) =>
    state.storage.sql.exec<{ link_id: string }>(`SELECT link_id FROM link`).toArray()[0]?.link_id,
  );
  expect(linkId).toBeTypeOf("string");
  return env.CONNECTIONS.get(env.CONNECTIONS.idFromString(linkId!));
}

const ok = (reasonCode: number | undefined): number => reasonCode ?? 0;

const COMBINATIONS: [string, Route, ProtocolVersion][] = [
  ["MQTT 3.1.1 through the relay (/mqtt)", "relay", 4],
  ["MQTT 3.1.1 on the fast path (/mqtt/<clientId>)", "fast", 4],
  ["MQTT 5.0 through the relay (/mqtt)", "relay", 5],
  ["MQTT 5.0 on the fast path (/mqtt/<clientId>)", "fast", 5],
];

describe.each(COMBINATIONS)("%s", (_name, route, v) => {
  const persistent: ConnectOptions = v === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false };

  it("CONNECT → CONNACK, session not present; PINGREQ → PINGRESP; DISCONNECT closes", async () => {
    const id = unique("c");
    const { client, connack } = await connect(route, v, id);
    expect(connack.sessionPresent).toBe(false);
    if (v === 5) {
      expect(connack.properties).toMatchObject({ receiveMaximum: 64, maximumPacketSize: 1048576, retainAvailable: 1, sharedSubscriptionAvailable: 1 });
    } else {
      expect(connack.properties).toBeUndefined();
    }
    client.send({ type: "pingreq" });
    await client.next("pingresp");
    client.send({ type: "disconnect" });
    await client.waitClosed();
    expect(client.problems).toEqual([]);
  });

  it("after the objects are evicted (hibernation), the connection carries on: PINGREQ, SUBSCRIBE and delivery", async () => {
    const id = unique("hib");
    const { client } = await connect(route, v, id);
    await evictDurableObject(await socketHolder(route, id));
    if (route === "relay") await evictDurableObject(sessionStub(id));
    client.send({ type: "pingreq" });
    await client.next("pingresp");
    const topic = unique("hib") + "/t";
    await subscribe(client, 7, topic, 1);
    await evictDurableObject(sessionStub(id));
    const { client: pub } = await connect(route, v, unique("hibpub"));
    pub.send(publish(topic, "after sleep", 1, 3));
    await pub.next("puback");
    const got = await client.next("publish");
    expect(text(got.payload)).toBe("after sleep");
    expect(client.problems).toEqual([]);
    expect(client.closed).toBeUndefined();
  });

  it("SUBSCRIBE → SUBACK; QoS 1 PUBLISH from a second client: PUBACK to it, PUBLISH to the subscriber, whose PUBACK frees the message", async () => {
    const sid = unique("sub");
    const pid = unique("pub");
    const topic = unique("q1") + "/temp";
    const { client: sub } = await connect(route, v, sid);
    await subscribe(sub, 1, topic.replace(/temp$/, "+"), 1, v === 5 ? { subscriptionId: 42 } : {});
    const { client: pub } = await connect(route, v, pid);

    pub.send(publish(topic, "21.5", 1, 10));
    const puback = await pub.next("puback");
    expect(puback.packetId).toBe(10);
    expect(ok(puback.reasonCode)).toBe(0);

    const got = await sub.next("publish");
    expect({ topic: got.topic, payload: text(got.payload), qos: got.qos, retain: got.retain, dup: got.dup }).toEqual({
      topic,
      payload: "21.5",
      qos: 1,
      retain: false,
      dup: false,
    });
    expect(got.packetId).toBeGreaterThan(0);
    if (v === 5) expect(got.properties?.subscriptionIdentifiers).toEqual([42]);
    // Stored until the subscriber acknowledges it.
    expect(await outboundCount(sid)).toBe(1);
    sub.send({ type: "puback", packetId: got.packetId! });
    await expect.poll(() => outboundCount(sid), { timeout: 2000, interval: 10 }).toBe(0);

    await pub.expectSilence(50);
    await sub.expectSilence(50);
    sub.close();
    pub.close();
  });

  it("QoS 1 deliver() calls arriving together (from several shards) are sent at once and stored in one row: each returns once its messages are stored", async () => {
    const sid = unique("grp");
    const { client: sub } = await connect(route, v, sid);
    const delivery = (payload: string) => qos1Delivery("grp/t", payload);
    const stub = sessionStub(sid);
    const results = await Promise.all([stub.deliver([delivery("a"), delivery("b")]), stub.deliver([delivery("c")]), stub.deliver([delivery("d")])]);
    expect(results).toEqual([{ live: true }, { live: true }, { live: true }]);
    expect(await outboundCount(sid)).toBe(4); // all stored by the time the calls returned
    expect(await outboundRows(sid)).toBe(1); // in one row
    const got = [await sub.next("publish"), await sub.next("publish"), await sub.next("publish"), await sub.next("publish")];
    expect(got.map((p) => text(p.payload))).toEqual(["a", "b", "c", "d"]);
    for (const p of got.slice(0, 3)) sub.send({ type: "puback", packetId: p.packetId! });
    // The group is rewritten with the one left (a wake from hibernation must not send the others again).
    await expect.poll(() => outboundCount(sid), { timeout: 2000, interval: 10 }).toBe(1);
    sub.send({ type: "puback", packetId: got[3]!.packetId! });
    await expect.poll(() => outboundRows(sid), { timeout: 2000, interval: 10 }).toBe(0); // acknowledged rows go on the flush timer
    sub.close();
  });

  it("QoS 1 messages the client acknowledges at once are never written; deliver() returns after the acknowledgements", async () => {
    const sid = unique("ack");
    const { client: sub } = await connect(route, v, sid);
    const delivery = (payload: string) => qos1Delivery("ack/t", payload);
    const stub = sessionStub(sid);
    const call = stub.deliver([delivery("a"), delivery("b")]);
    // Acknowledge as the messages arrive: the call cannot return before.
    for (let i = 0; i < 2; i++) {
      const p = await sub.next("publish");
      sub.send({ type: "puback", packetId: p.packetId! });
    }
    expect(await call).toEqual({ live: true });
    // Not written: a row stored and then acknowledged would still be here, its delete waiting
    // for the 50 ms flush timer (test/core/session/16-deferred-store.test.ts counts the writes).
    expect(await outboundRows(sid)).toBe(0);
    sub.close();
  });

  it("QoS 0 is delivered with QoS min(message, granted) and no acknowledgement", async () => {
    const topic = unique("q0");
    const { client: sub } = await connect(route, v, unique("sub"));
    await subscribe(sub, 1, topic, 0);
    const { client: pub } = await connect(route, v, unique("pub"));
    pub.send(publish(topic, "fire and forget", 0), publish(topic, "downgraded", 2, 5));
    await pub.next("pubrec");
    const [a, b] = [await sub.next("publish"), await sub.next("publish")];
    expect([text(a.payload), a.qos, a.packetId]).toEqual(["fire and forget", 0, undefined]);
    expect([text(b.payload), b.qos, b.packetId]).toEqual(["downgraded", 0, undefined]);
    sub.close();
    pub.close();
  });

  it("QoS 2 both sides: PUBREC/PUBREL/PUBCOMP, delivered exactly once even when the publisher retransmits", async () => {
    const sid = unique("sub");
    const pid = unique("pub");
    const topic = unique("q2");
    const { client: sub } = await connect(route, v, sid);
    await subscribe(sub, 1, topic, 2);
    const { client: pub } = await connect(route, v, pid);

    // Publisher side [MQTT-4.3.3].
    pub.send(publish(topic, "once", 2, 7));
    expect(await pub.next("pubrec")).toMatchObject({ type: "pubrec", packetId: 7 });
    expect(await inboundQos2Count(pid)).toBe(1);
    pub.send(publish(topic, "once", 2, 7, { dup: true })); // retransmission before PUBREL [MQTT-4.3.3-9]
    expect(await pub.next("pubrec")).toMatchObject({ packetId: 7 });
    pub.send({ type: "pubrel", packetId: 7 });
    const pubcomp = await pub.next("pubcomp");
    expect(pubcomp.packetId).toBe(7);
    expect(ok(pubcomp.reasonCode)).toBe(0);
    expect(await inboundQos2Count(pid)).toBe(0);

    // Subscriber side.
    const got = await sub.next("publish");
    expect([text(got.payload), got.qos, got.dup]).toEqual(["once", 2, false]);
    sub.send({ type: "pubrec", packetId: got.packetId! });
    expect(await sub.next("pubrel")).toMatchObject({ packetId: got.packetId });
    sub.send({ type: "pubcomp", packetId: got.packetId! });
    await expect.poll(() => outboundCount(sid), { timeout: 2000, interval: 10 }).toBe(0);
    await sub.expectSilence(100); // no second copy
    sub.close();
    pub.close();
  });

  it("PUBREL for an unknown packet identifier is answered with PUBCOMP (0x92 in 5.0)", async () => {
    const { client } = await connect(route, v, unique("c"));
    client.send({ type: "pubrel", packetId: 999 });
    const pubcomp = await client.next("pubcomp");
    expect(pubcomp.packetId).toBe(999);
    if (v === 5) expect(pubcomp.reasonCode).toBe(0x92);
    client.close();
  });

  it("a retained message is sent on SUBSCRIBE, RETAIN set, after the SUBACK", async () => {
    const topic = unique("ret");
    const { client: pub } = await connect(route, v, unique("pub"));
    pub.send(publish(topic, "last known", 1, 1, { retain: true }));
    const puback = await pub.next("puback");
    if (v === 5) expect(puback.reasonCode).toBe(0x10); // No matching subscribers
    const { client: sub } = await connect(route, v, unique("sub"));
    await subscribe(sub, 3, topic, 1);
    const got = await sub.next("publish");
    expect([got.topic, text(got.payload), got.retain, got.qos]).toEqual([topic, "last known", true, 1]);
    sub.send({ type: "puback", packetId: got.packetId! });
    // A live message on the same topic is forwarded with RETAIN cleared [MQTT-3.3.1-12].
    pub.send(publish(topic, "live", 0, undefined, { retain: true }));
    const live = await sub.next("publish");
    expect([text(live.payload), live.retain]).toEqual(["live", false]);
    pub.close();
    sub.close();
  });

  it("the Will is published when the connection closes without DISCONNECT [MQTT-3.1.2-8]", async () => {
    const willTopic = unique("will") + "/status";
    const { client: watcher } = await connect(route, v, unique("watcher"));
    await subscribe(watcher, 1, willTopic, 1);
    const { client: dying } = await connect(route, v, unique("dying"), {
      will: { topic: willTopic, payload: enc("offline"), qos: 1, retain: false },
    });
    dying.ws.close(1001, "network gone");
    const will = await watcher.next("publish");
    expect([will.topic, text(will.payload), will.qos]).toEqual([willTopic, "offline", 1]);
    watcher.close();
  });

  it("a normal DISCONNECT discards the Will [MQTT-3.1.2-10]", async () => {
    const willTopic = unique("will");
    const { client: watcher } = await connect(route, v, unique("watcher"));
    await subscribe(watcher, 1, willTopic, 1);
    const { client: leaving } = await connect(route, v, unique("leaving"), {
      will: { topic: willTopic, payload: enc("offline"), qos: 1, retain: false },
    });
    leaving.send({ type: "disconnect" });
    await leaving.waitClosed();
    await watcher.expectSilence(250);
    watcher.close();
  });

  it("a persistent session is present after reconnecting and the QoS 1 message queued meanwhile is delivered", async () => {
    const sid = unique("persist");
    const topic = unique("queued");
    const first = await connect(route, v, sid, persistent);
    expect(first.connack.sessionPresent).toBe(false);
    await subscribe(first.client, 1, topic, 1);
    first.client.send({ type: "disconnect" });
    await first.client.waitClosed();

    const { client: pub } = await connect(route, v, unique("pub"));
    pub.send(publish(topic, "while you were away", 1, 1), publish(topic, "qos 0 is not kept", 0));
    const puback = await pub.next("puback");
    expect(ok(puback.reasonCode)).toBe(0); // the offline session accepted it
    await expect.poll(() => outboundCount(sid), { timeout: 2000, interval: 10 }).toBe(1);

    const again = await connect(route, v, sid, persistent);
    expect(again.connack.sessionPresent).toBe(true); // [MQTT-3.2.2-2]
    const got = await again.client.next("publish");
    expect([got.topic, text(got.payload), got.qos]).toEqual([topic, "while you were away", 1]);
    again.client.send({ type: "puback", packetId: got.packetId! });
    await expect.poll(() => outboundCount(sid), { timeout: 2000, interval: 10 }).toBe(0);
    // The subscription came back with the session.
    pub.send(publish(topic, "live again", 0));
    expect(text((await again.client.next("publish")).payload)).toBe("live again");
    await again.client.expectSilence(50);
    again.client.close();
    pub.close();
  });

  it("a clean session is not present after reconnecting and keeps no subscriptions", async () => {
    const sid = unique("clean");
    const topic = unique("t");
    const first = await connect(route, v, sid);
    await subscribe(first.client, 1, topic, 1);
    first.client.send({ type: "disconnect" });
    await first.client.waitClosed();
    const again = await connect(route, v, sid);
    expect(again.connack.sessionPresent).toBe(false);
    const { client: pub } = await connect(route, v, unique("pub"));
    pub.send(publish(topic, "nobody", 1, 1));
    await pub.next("puback");
    await again.client.expectSilence(100);
    again.client.close();
    pub.close();
  });

  it("a second connection with the same client identifier takes the session over [MQTT-3.1.4-3]", async () => {
    const id = unique("twice");
    const { client: old } = await connect(route, v, id, persistent);
    const { client: fresh, connack } = await connect(route, v, id, persistent);
    expect(connack.sessionPresent).toBe(true);
    if (v === 5) expect(await old.next("disconnect")).toMatchObject({ reasonCode: 0x8e });
    await old.waitClosed();
    fresh.send({ type: "pingreq" });
    await fresh.next("pingresp");
    fresh.close();
  });

  it("CONNACK is the first packet sent, even when PINGREQ follows CONNECT at once [MQTT-3.2.0-1]", async () => {
    const id = unique("eager");
    const client = await socketClient(route, v, id);
    client.send(connectPacket(v, id), { type: "pingreq" }, { type: "pingreq" });
    await client.next("connack");
    await client.next("pingresp");
    await client.next("pingresp");
    client.close();
  });

  it("one byte per WebSocket message: packets are reassembled [MQTT-6.0.0-2]", async () => {
    const id = unique("bytes");
    const topic = unique("split");
    const client = await socketClient(route, v, id);
    const sendByBytes = (p: Packet) => {
      for (const b of encodePacket(p, v)) client.sendBytes(new Uint8Array([b]));
    };
    sendByBytes(connectPacket(v, id));
    expect((await client.next("connack")).reasonCode).toBe(0);
    sendByBytes({ type: "subscribe", packetId: 2, subscriptions: [{ topicFilter: topic, qos: 1 }] });
    expect((await client.next("suback")).reasonCodes).toEqual([1]);
    sendByBytes(publish(topic, "x".repeat(200), 1, 3)); // two-byte Remaining Length, split too
    const got = await client.nextUnordered(["publish", "puback"]);
    const echoed = got.find((p) => p.type === "publish") as PublishPacket;
    expect(text(echoed.payload)).toBe("x".repeat(200));
    client.close();
  });

  it("several packets in one WebSocket message, and packets straddling message boundaries", async () => {
    const id = unique("many");
    const topic = unique("batch");
    const client = await socketClient(route, v, id);
    const connect = encodePacket(connectPacket(v, id), v);
    const sub = encodePacket({ type: "subscribe", packetId: 1, subscriptions: [{ topicFilter: topic, qos: 1 }] }, v);
    client.sendBytes(concatBytes([connect, sub, encodePacket({ type: "pingreq" }, v)]));
    await client.next("connack");
    await client.nextUnordered(["suback", "pingresp"]);

    const batch = concatBytes([
      encodePacket(publish(topic, "a", 1, 11), v),
      encodePacket(publish(topic, "b", 1, 12), v),
      encodePacket({ type: "pingreq" }, v),
      encodePacket(publish(topic, "c", 1, 13), v),
    ]);
    // Cut in 5-byte pieces: packet boundaries fall inside messages.
    for (let i = 0; i < batch.length; i += 5) client.sendBytes(batch.subarray(i, i + 5));
    const got = await client.nextUnordered(["puback", "puback", "puback", "publish", "publish", "publish", "pingresp"]);
    const pubacks = got.filter((p) => p.type === "puback").map((p) => (p as PacketOf<"puback">).packetId);
    expect(pubacks).toEqual([11, 12, 13]); // acks in the order the publishes arrived [MQTT-4.6.0-2]
    expect(got.filter((p) => p.type === "publish").map((p) => text((p as PublishPacket).payload))).toEqual(["a", "b", "c"]);
    client.close();
  });

  it("PINGRESP waits until the packets sent before the PINGREQ have reached the session; one per PINGREQ", async () => {
    const id = unique("pace");
    const topic = unique("pace");
    const { client } = await connect(route, v, id);
    // Hold the session: no event reaches it until the gate opens.
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const hold = holdObject(sessionStub(id), gate);
    await hold.held;
    for (let i = 1; i <= 5; i++) client.send(publish(topic, `m${i}`, 0));
    client.send({ type: "pingreq" });
    // On the relay the ConnectionDO answers PINGREQ itself, but not ahead of the PUBLISHes it
    // still has to hand to the session (on the fast path the held session answers nothing).
    await client.expectSilence(150);
    open();
    await hold.done;
    await client.next("pingresp");
    // With nothing before them, PINGREQs are answered at once, also several in one message.
    client.send({ type: "pingreq" });
    client.sendBytes(concatBytes([encodePacket({ type: "pingreq" }, v), encodePacket({ type: "pingreq" }, v)]));
    for (let i = 0; i < 3; i++) await client.next("pingresp");
    await client.expectSilence(50);
    client.close();
  });

  it("QoS 2 when the publisher's session dies while routing (no PUBREC went out): the retransmission is routed again, and the message arrives once", async () => {
    const topic = unique("q2crash");
    const { client: sub } = await connect(route, v, unique("q2sub"));
    await subscribe(sub, 1, topic, 2);
    const pubId = unique("q2pub");
    const { client: pub } = await connect(route, v, pubId, persistent);
    // Hold the topic's shard, so the PUBLISH is taken in (its identifier recorded) but not yet routed.
    const shard = env.SHARDS.get(env.SHARDS.idFromName(shardName(shardOfTopic(topic, shardCountFromEnv(env)))));
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const hold = holdObject(shard, gate);
    await hold.held;
    pub.send(publish(topic, "once", 2, 7));
    await expect.poll(() => inboundQos2Count(pubId), { timeout: 2000, interval: 10 }).toBe(1);
    // The publisher's session dies with the routing in flight, as in a crash: what it kept in
    // memory is gone, and no PUBREC was sent.
    await runInDurableObject(sessionStub(pubId), (_instance, state) => state.abort("crash")).catch(() => undefined);
    open();
    await hold.done;
    // The client retransmits, on a new connection: routed again under the same message
    // identifier; a subscriber that got the first routing drops the copy [MQTT-4.3.3].
    pub.close();
    const { client: again } = await connect(route, v, pubId, persistent);
    again.send(publish(topic, "once", 2, 7, { dup: true }));
    expect((await again.next("pubrec")).packetId).toBe(7);
    again.send({ type: "pubrel", packetId: 7 });
    await again.next("pubcomp");
    const got = await sub.next("publish");
    expect(text(got.payload)).toBe("once");
    await sub.expectSilence(200); // once, not twice
    sub.close();
    again.close();
  });

  it("a subscriber's session takes a QoS 2 message in once when it comes again with the same message identifier", async () => {
    const sid = unique("dedupe");
    const { client: sub } = await connect(route, v, sid);
    const copy = {
      message: { topic: "d/t", payload: enc("one"), qos: 2 as const, retain: false, origin: "p", messageId: unique("m") },
      qos: 2 as const,
      retain: false,
    };
    expect(await sessionStub(sid).deliver([copy])).toEqual({ live: true });
    expect(await sessionStub(sid).deliver([copy])).toEqual({ live: true });
    expect(text((await sub.next("publish")).payload)).toBe("one");
    await sub.expectSilence(100);
    expect(await outboundCount(sid)).toBe(1);
    sub.close();
  });

  it("a malformed packet after CONNECT: DISCONNECT 0x81 (5.0), then the connection closes [MQTT-4.13.1-1]", async () => {
    const willTopic = unique("will");
    const { client: watcher } = await connect(route, v, unique("watcher"));
    await subscribe(watcher, 1, willTopic, 0);
    const { client } = await connect(route, v, unique("bad"), { will: { topic: willTopic, payload: enc("bye"), qos: 0, retain: false } });
    // SUBSCRIBE with its reserved flags 0000 instead of 0010 [MQTT-3.8.1-1].
    const good = encodePacket({ type: "subscribe", packetId: 1, subscriptions: [{ topicFilter: "a", qos: 0 }] }, v);
    const bad = good.slice();
    bad[0] = 0x80;
    client.sendBytes(bad);
    if (v === 5) expect(await client.next("disconnect")).toMatchObject({ reasonCode: 0x81 });
    await client.waitClosed();
    await client.expectSilence(0);
    // An error close is not a normal DISCONNECT: the Will goes out.
    expect(text((await watcher.next("publish")).payload)).toBe("bye");
    watcher.close();
  });

  it("a Remaining Length longer than four bytes: DISCONNECT 0x81 (5.0), then the connection closes", async () => {
    const { client } = await connect(route, v, unique("badlen"));
    client.sendBytes(new Uint8Array([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]));
    await client.waitClosed();
    if (v === 5) expect(client.received.at(-1)).toMatchObject({ type: "disconnect", reasonCode: 0x81 });
  });

  it("a first packet that is not CONNECT closes the connection [MQTT-3.1.0-1]", async () => {
    const client = await socketClient(route, v, unique("noconnect"));
    client.send({ type: "pingreq" });
    await client.waitClosed();
    expect(client.received).toEqual([]);
  });

  it("keep alive: the object's alarm is due 1.5 × keep alive after the last packet; when it runs, the connection closes and the Will is published [MQTT-3.1.2-24]", async () => {
    const id = unique("sleepy");
    const willTopic = unique("will");
    const { client: watcher } = await connect(route, v, unique("watcher"));
    await subscribe(watcher, 1, willTopic, 1);
    const before = Date.now();
    const { client } = await connect(route, v, id, {
      keepAlive: 1,
      will: { topic: willTopic, payload: enc("timed out"), qos: 1, retain: false },
    });
    const after = Date.now();
    const holder = await socketHolder(route, id);
    const alarm = await runInDurableObject(holder, (_i, state) => state.storage.getAlarm());
    expect(alarm).not.toBeNull();
    expect(alarm!).toBeGreaterThanOrEqual(before + 1500);
    expect(alarm!).toBeLessThanOrEqual(after + 1500);

    await scheduler.wait(Math.max(0, alarm! - Date.now()) + 100);
    // workerd may already have run the alarm on its own; either way it has run now.
    await runDurableObjectAlarm(holder);
    await client.waitClosed();
    if (v === 5 && route === "fast") expect(client.received.at(-1)).toMatchObject({ type: "disconnect", reasonCode: 0x8d });
    const will = await watcher.next("publish");
    expect([will.topic, text(will.payload)]).toEqual([willTopic, "timed out"]);
    watcher.close();
  });
});

describe.each([["relay"], ["fast"]] as const)("keep alive across hibernation (%s)", (route) => {
  // The socket attachment's lastSeen may lag by a quarter of the keep alive interval (it is not
  // rewritten on every packet); after the object is evicted the deadline must count from the
  // later end, never close a client that sent a packet within 1.5 × keep alive.
  it("a packet sent just before eviction keeps the connection open past the attachment's deadline [MQTT-3.1.2-24]", async () => {
    const id = unique("nap");
    const { client } = await connect(route, 5, id, { keepAlive: 2 });
    const connected = Date.now();
    await scheduler.wait(300);
    client.send({ type: "pingreq" });
    await client.next("pingresp");
    const pinged = Date.now();
    const holder = await socketHolder(route, id);
    await evictDurableObject(holder);
    if (route === "relay") await evictDurableObject(sessionStub(id));
    // Past 1.5 × keep alive from the CONNECT, before it from the PINGREQ.
    await scheduler.wait(Math.max(0, connected + 3100 - Date.now()));
    expect(Date.now()).toBeLessThan(pinged + 3000);
    await runDurableObjectAlarm(holder);
    client.send({ type: "pingreq" });
    await client.next("pingresp");
    expect(client.closed).toBeUndefined();
    client.close();
  });
});

describe("WebSocket handshake", () => {
  it("accepts the MQTT 3.1 subprotocol name mqttv3.1 and echoes it", async () => {
    const res = await openSocket("relay", unique("c"), "mqttv3.1");
    expect(res.status).toBe(101);
    expect(res.headers.get("Sec-WebSocket-Protocol")).toBe("mqttv3.1");
    res.webSocket!.accept();
    res.webSocket!.close(1000);
  });

  it("fast path: a CONNECT whose client identifier differs from the URL is refused (0x85 / return code 2)", async () => {
    for (const v of [4, 5] as const) {
      const client = await socketClient("fast", v, unique("url"));
      client.send(connectPacket(v, "someone-else"));
      const connack = await client.next("connack");
      expect(connack.reasonCode).toBe(v === 5 ? 0x85 : 2);
      await client.waitClosed();
    }
  });

  it("relay: an empty client identifier is assigned one (5.0 Assigned Client Identifier)", async () => {
    const client = await socketClient("relay", 5, "(empty)");
    client.send(connectPacket(5, ""));
    const connack = await client.next("connack");
    expect(connack.reasonCode).toBe(0);
    expect(connack.properties?.assignedClientIdentifier).toMatch(/.+/);
    client.close();
  });
});
