// PUBLISH and the QoS 0/1/2 flows in both directions: MQTT 3.1.1 sections 3.3-3.7 and 4.3,
// MQTT 5.0 sections 3.3-3.7, 4.3, 4.9 (flow control) and 3.3.2.3.4 (topic aliases).
import { describe, expect, it } from "vitest";
import { ReasonCode } from "../../../core/mqtt/packets.js";
import { Session } from "../../../core/session/session.js";
import { Harness, ack, bytes, delivery, kinds, message, pick, publish, text } from "./harness.js";

describe("03 inbound PUBLISH", () => {
  it("QoS 0: routed without a ticket, nothing sent", () => {
    const h = new Harness();
    h.connect(4);
    const effects = h.packet(publish("a/b", "hello", 0, undefined, { retain: true }));
    expect(kinds(effects)).toEqual(["route"]);
    const route = pick(effects, "route")[0]!;
    expect(route.ticket).toBeUndefined();
    expect(route.message).toStrictEqual({ topic: "a/b", payload: bytes("hello"), qos: 0, retain: true, origin: "c1" });
  });

  it("QoS 1: routed with a ticket; PUBACK only after routed() [MQTT-4.3.2-2]", () => {
    const h = new Harness();
    h.connect(4);
    const effects = h.packet(publish("a", "x", 1, 7));
    expect(kinds(effects)).toEqual(["route"]);
    const ticket = pick(effects, "route")[0]!.ticket!;
    expect(ticket).toBeTypeOf("number");
    const acked = h.session.routed(ticket, 3);
    expect(h.one(acked, "puback")).toStrictEqual({ type: "puback", packetId: 7 });
    expect(h.session.routed(ticket, 3)).toEqual([]); // a ticket completes once
  });

  it("QoS 1: PUBACKs go out in arrival order when routing completes out of order [MQTT-4.6.0-2]", () => {
    const h = new Harness();
    h.connect(5);
    const tickets = [1, 2, 3].map((id) => pick(h.packet(publish("a", "x", 1, id)), "route")[0]!.ticket!);
    expect(h.session.routed(tickets[2]!, 1)).toEqual([]);
    expect(h.session.routed(tickets[1]!, 1)).toEqual([]);
    const acks = h.sentOf(h.session.routed(tickets[0]!, 1), "puback");
    expect(acks.map((a) => a.packetId)).toEqual([1, 2, 3]);
  });

  it("5.0 QoS 1 with no matching subscriber: PUBACK 0x10", () => {
    const h = new Harness();
    h.connect(5);
    const t = pick(h.packet(publish("a", "x", 1, 9)), "route")[0]!.ticket!;
    expect(h.one(h.session.routed(t, 0), "puback")).toStrictEqual({
      type: "puback",
      packetId: 9,
      reasonCode: ReasonCode.NoMatchingSubscribers,
    });
  });

  it("3.1.1 QoS 1 with no matching subscriber: a plain PUBACK", () => {
    const h = new Harness();
    h.connect(4);
    const t = pick(h.packet(publish("a", "x", 1, 9)), "route")[0]!.ticket!;
    expect(h.one(h.session.routed(t, 0), "puback")).toStrictEqual({ type: "puback", packetId: 9 });
  });

  it("5.0 routing failure: PUBACK 0x83; 3.1.1: the connection closes", () => {
    const h5 = new Harness();
    h5.connect(5);
    const t5 = pick(h5.packet(publish("a", "x", 1, 4)), "route")[0]!.ticket!;
    expect(h5.one(h5.session.routeFailed(t5, h5.now), "puback").reasonCode).toBe(0x83);

    const h4 = new Harness();
    h4.connect(4);
    const t4 = pick(h4.packet(publish("a", "x", 1, 4)), "route")[0]!.ticket!;
    const effects = h4.session.routeFailed(t4, h4.now);
    expect(kinds(effects)).toContain("close");
    expect(h4.sent(effects)).toEqual([]);
  });

  it("5.0 a routing failure keeps the acknowledgement order [MQTT-4.6.0-2]", () => {
    const h = new Harness();
    h.connect(5);
    const t1 = pick(h.packet(publish("a", "1", 1, 1)), "route")[0]!.ticket!;
    const t2 = pick(h.packet(publish("a", "2", 1, 2)), "route")[0]!.ticket!;
    // The second fails first: its PUBACK 0x83 must wait for the first's.
    expect(h.sentOf(h.session.routeFailed(t2, h.now), "puback")).toEqual([]);
    const acks = h.sentOf(h.session.routed(t1, 1), "puback");
    expect(acks.map((a) => [a.packetId, a.reasonCode ?? 0])).toEqual([
      [1, 0],
      [2, 0x83],
    ]);
  });

  it("a QoS 2 publish whose routing failed may be sent again and is routed again", () => {
    const h = new Harness();
    h.connect(5);
    const t = pick(h.packet(publish("a", "1", 2, 8)), "route")[0]!.ticket!;
    expect(h.one(h.session.routeFailed(t, h.now), "pubrec").reasonCode).toBe(0x83);
    expect(h.store.inboundQos2(8)).toBeUndefined();
    expect(kinds(h.packet(publish("a", "1", 2, 8)))).toEqual(["route"]);
  });

  it("routing that completes after the connection is gone acknowledges nothing, on no connection", () => {
    const h = new Harness();
    h.connectPersistent(5);
    const t = pick(h.packet(publish("a", "1", 1, 1)), "route")[0]!.ticket!;
    h.session.connectionLost(0x8d, h.now);
    expect(h.session.routed(t, 1)).toEqual([]);
    h.connectPersistent(5);
    expect(h.session.routed(t, 1)).toEqual([]);
    expect(h.session.routeFailed(t, h.now)).toEqual([]);
    // Tickets of the new connection are new numbers.
    const t2 = pick(h.packet(publish("a", "2", 1, 1)), "route")[0]!.ticket!;
    expect(t2).not.toBe(t);
    expect(h.one(h.session.routed(t2, 1), "puback").packetId).toBe(1);
  });

  it("inbound QoS 2 state survives a reconnect to a present session: PUBREL completes it", () => {
    const h = new Harness();
    h.connectPersistent(5);
    h.session.routed(pick(h.packet(publish("a", "x", 2, 5)), "route")[0]!.ticket!, 1);
    h.session.connectionLost(0x8d, h.now);
    h.connectPersistent(5);
    expect(kinds(h.packet(publish("a", "x", 2, 5, { dup: true })))).toEqual(["send:pubrec"]);
    expect(h.one(h.packet(ack("pubrel", 5)), "pubcomp").reasonCode).toBeUndefined();
  });

  it("a clean start forgets inbound QoS 2 state", () => {
    const h = new Harness();
    h.connectPersistent(5);
    h.session.routed(pick(h.packet(publish("a", "x", 2, 5)), "route")[0]!.ticket!, 1);
    h.session.connectionLost(0x8d, h.now);
    h.connect(5, { clean: true });
    expect(h.store.inboundQos2Count()).toBe(0);
    expect(kinds(h.packet(publish("a", "x", 2, 5)))).toEqual(["route"]);
  });

  it("QoS 2: PUBREC after routed(); a retransmission (DUP) is not routed again but acknowledged; PUBREL -> PUBCOMP [MQTT-4.3.3]", () => {
    const h = new Harness();
    h.connect(5);
    const first = h.packet(publish("a", "x", 2, 5));
    expect(kinds(first)).toEqual(["route"]);
    // Retransmitted before routing completes: nothing yet, no second route.
    expect(h.packet(publish("a", "x", 2, 5, { dup: true }))).toEqual([]);
    const rec = h.session.routed(pick(first, "route")[0]!.ticket!, 1);
    expect(h.one(rec, "pubrec")).toStrictEqual({ type: "pubrec", packetId: 5 });
    // Retransmitted after PUBREC: PUBREC again, not routed [MQTT-4.3.3-9].
    const again = h.packet(publish("a", "x", 2, 5, { dup: true }));
    expect(kinds(again)).toEqual(["send:pubrec"]);
    expect(h.one(h.packet(ack("pubrel", 5)), "pubcomp")).toStrictEqual({ type: "pubcomp", packetId: 5 });
    expect(h.store.inboundQos2(5)).toBeUndefined();
    // The identifier is free again: a new publish with it is a new message.
    expect(kinds(h.packet(publish("a", "y", 2, 5)))).toEqual(["route"]);
  });

  it("QoS 2 state survives a new Session object over the same store", () => {
    const h = new Harness();
    h.connect(4);
    h.session.routed(pick(h.packet(publish("a", "x", 2, 5)), "route")[0]!.ticket!, 1);
    h.rehydrate();
    expect(kinds(h.packet(publish("a", "x", 2, 5, { dup: true })))).toEqual(["send:pubrec"]);
    expect(h.one(h.packet(ack("pubrel", 5)), "pubcomp").reasonCode).toBeUndefined();
  });

  it("QoS 2 taken in but not known routed when the broker died: the retransmission is routed again under the same message identifier, PUBREC once routed", () => {
    const h = new Harness();
    h.connectPersistent(4);
    const [first] = pick(h.packet(publish("a", "x", 2, 5)), "route");
    const id = first!.message.messageId;
    expect(id).toBeTypeOf("string");
    // The broker dies here: routed() never comes, no PUBREC was sent.
    h.rehydrate();
    h.connectPersistent(4);
    const [again] = pick(h.packet(publish("a", "x", 2, 5, { dup: true })), "route");
    expect(again!.message.messageId).toBe(id);
    expect(text(again!.message.payload)).toBe("x");
    expect(h.one(h.session.routed(again!.ticket!, 1), "pubrec")).toStrictEqual({ type: "pubrec", packetId: 5 });
    // Now known routed: a further retransmission, even after another restart, is only acknowledged.
    h.rehydrate();
    h.connectPersistent(4);
    expect(kinds(h.packet(publish("a", "x", 2, 5, { dup: true })))).toEqual(["send:pubrec"]);
  });

  it("each QoS 2 publish gets its own message identifier; QoS 0 and 1 get none", () => {
    let n = 0;
    const h = new Harness();
    h.session = new Session(h.store, h.limits, () => `id-${++n}`);
    h.connect(5);
    const ids = [1, 2].map((pid) => pick(h.packet(publish("a", "x", 2, pid)), "route")[0]!.message.messageId);
    expect(ids).toEqual(["id-1", "id-2"]);
    expect(h.store.inboundQos2(2)).toEqual({ messageId: "id-2", routed: false });
    expect(pick(h.packet(publish("a", "x", 1, 3)), "route")[0]!.message.messageId).toBeUndefined();
    expect(pick(h.packet(publish("a", "x", 0)), "route")[0]!.message.messageId).toBeUndefined();
  });

  it("a subscriber's session drops a QoS 2 message it already took in (routed again after a crash), for an hour", () => {
    const h = new Harness();
    h.connect(5);
    const copy = () => delivery("a", "once", 2, { message: message("a", "once", 2, { messageId: "m-1" }) });
    expect(h.sentOf(h.deliver(copy()), "publish")).toHaveLength(1);
    expect(h.sentOf(h.deliver(copy()), "publish")).toEqual([]);
    expect(h.store.outboundCount()).toBe(1);
    // Within one call the same message may come twice (a shared and a plain subscription): both go.
    const both = h.session.deliver([delivery("b", "twice", 0, { message: message("b", "twice", 2, { messageId: "m-2" }) }), delivery("b", "twice", 0, { message: message("b", "twice", 2, { messageId: "m-2" }) })], h.now);
    expect(h.sentOf(both.effects, "publish")).toHaveLength(2);
    // Remembered for an hour, then forgotten.
    h.advance(3_600_000 + 60_000);
    h.deliver(delivery("c", "later", 0));
    expect(h.store.seenMessage("m-1")).toBe(false);
  });

  it("5.0 PUBREL for an unknown packet identifier: PUBCOMP 0x92", () => {
    const h = new Harness();
    h.connect(5);
    expect(h.one(h.packet(ack("pubrel", 77)), "pubcomp")).toStrictEqual({
      type: "pubcomp",
      packetId: 77,
      reasonCode: ReasonCode.PacketIdentifierNotFound,
    });
  });

  it("5.0 PUBREL repeated after resuming the session (PUBCOMP lost): PUBCOMP Success", () => {
    const h = new Harness();
    h.connectPersistent(5);
    h.session.routed(pick(h.packet(publish("a", "x", 2, 9)), "route")[0]!.ticket!, 1);
    h.packet(ack("pubrel", 9)); // completed; the PUBCOMP is lost with the connection
    h.session.connectionLost(ReasonCode.UnspecifiedError, h.now);
    h.connectPersistent(5);
    expect(h.one(h.packet(ack("pubrel", 9)), "pubcomp")).toStrictEqual({ type: "pubcomp", packetId: 9 });
  });

  it("3.1.1 PUBREL for an unknown packet identifier: a plain PUBCOMP", () => {
    const h = new Harness();
    h.connect(4);
    expect(h.one(h.packet(ack("pubrel", 77)), "pubcomp")).toStrictEqual({ type: "pubcomp", packetId: 77 });
  });

  it("5.0 Receive Maximum exceeded: DISCONNECT 0x93 and close [MQTT-3.3.4-9]", () => {
    const h = new Harness({ receiveMaximum: 2 });
    h.connect(5);
    // Two QoS 2 messages acknowledged with PUBREC, whose PUBREL the client still owes.
    for (const id of [1, 2]) h.session.routed(pick(h.packet(publish("a", String(id), 2, id)), "route")[0]!.ticket!, 1);
    const effects = h.packet(publish("a", "3", 1, 3));
    expect(kinds(effects).slice(0, 2)).toEqual(["send:disconnect", "close"]);
    expect(h.one(effects, "disconnect").reasonCode).toBe(ReasonCode.ReceiveMaximumExceeded);
    expect(pick(effects, "close")[0]!.reason).toBe(0x93);
    expect(pick(effects, "route")).toEqual([]);
    expect(h.session.connected).toBe(false);
  });

  it("publishes the broker is still routing do not count against Receive Maximum: a client is never disconnected because the broker is behind", () => {
    const h = new Harness({ receiveMaximum: 2 });
    h.connect(5);
    const tickets: number[] = [];
    for (let id = 1; id <= 10; id++) {
      const effects = h.packet(publish("a", String(id), (id % 2 ? 1 : 2) as 1 | 2, id));
      expect(kinds(effects)).toEqual(["route"]);
      tickets.push(pick(effects, "route")[0]!.ticket!);
    }
    expect(h.session.connected).toBe(true);
    // Once routed, the acks go out in arrival order [MQTT-4.6.0-2].
    const acks = tickets.flatMap((t) => h.session.routed(t, 1));
    expect(acks.map((e) => (e.kind === "send" ? e.packet.type : e.kind))).toEqual(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? "pubrec" : "puback")),
    );
  });

  it("the receive window frees when the acknowledgement is sent", () => {
    const h = new Harness({ receiveMaximum: 1 });
    h.connect(5);
    const t = pick(h.packet(publish("a", "1", 1, 1)), "route")[0]!.ticket!;
    h.session.routed(t, 1);
    expect(kinds(h.packet(publish("a", "2", 1, 2)))).toEqual(["route"]);
  });

  it("QoS 2 counts against Receive Maximum until PUBCOMP, once", () => {
    const h = new Harness({ receiveMaximum: 2 });
    h.connect(5);
    // One QoS 2 publish being routed, then a QoS 1: two in flight, within the maximum of 2.
    h.packet(publish("a", "1", 2, 1));
    expect(kinds(h.packet(publish("a", "2", 1, 2)))).toEqual(["route"]);
  });

  it("QoS 2 still counts after PUBREC until PUBREL", () => {
    const h = new Harness({ receiveMaximum: 1 });
    h.connect(5);
    h.session.routed(pick(h.packet(publish("a", "1", 2, 1)), "route")[0]!.ticket!, 1);
    expect(h.one(h.packet(publish("a", "2", 1, 2)), "disconnect").reasonCode).toBe(0x93);
  });

  it("5.0 Subscription Identifier on an inbound PUBLISH: DISCONNECT 0x82 [MQTT-3.3.4-6]", () => {
    const h = new Harness();
    h.connect(5);
    const effects = h.packet(publish("a", "x", 0, undefined, { properties: { subscriptionIdentifiers: [3] } }));
    expect(h.one(effects, "disconnect").reasonCode).toBe(ReasonCode.ProtocolError);
    expect(kinds(effects)).toContain("close");
    expect(pick(effects, "route")).toEqual([]);
  });

  it("message properties and Message Expiry travel with the routed message", () => {
    const h = new Harness();
    h.connect(5);
    const effects = h.packet(
      publish("a", "x", 0, undefined, {
        properties: {
          contentType: "text/plain",
          payloadFormatIndicator: 1,
          responseTopic: "r",
          correlationData: bytes("id"),
          userProperties: [["k", "v"], ["k", "w"]],
          messageExpiryInterval: 30,
        },
      }),
    );
    expect(pick(effects, "route")[0]!.message).toStrictEqual({
      topic: "a",
      payload: bytes("x"),
      qos: 0,
      retain: false,
      origin: "c1",
      properties: {
        contentType: "text/plain",
        payloadFormatIndicator: 1,
        responseTopic: "r",
        correlationData: bytes("id"),
        userProperties: [["k", "v"], ["k", "w"]],
      },
      expiresAt: h.now + 30_000,
    });
  });
});

describe("03 inbound topic aliases (5.0)", () => {
  it("an alias is set with a topic, then used with an empty topic", () => {
    const h = new Harness({ topicAliasMaximum: 4 });
    h.connect(5);
    const set = h.packet(publish("sensors/1", "a", 0, undefined, { properties: { topicAlias: 2 } }));
    expect(pick(set, "route")[0]!.message.topic).toBe("sensors/1");
    const use = h.packet(publish("", "b", 0, undefined, { properties: { topicAlias: 2 } }));
    expect(pick(use, "route")[0]!.message.topic).toBe("sensors/1");
    // Re-pointed to another topic.
    h.packet(publish("sensors/2", "c", 0, undefined, { properties: { topicAlias: 2 } }));
    expect(pick(h.packet(publish("", "d", 0, undefined, { properties: { topicAlias: 2 } })), "route")[0]!.message.topic).toBe(
      "sensors/2",
    );
  });

  it("an unknown alias with an empty topic: DISCONNECT 0x82", () => {
    const h = new Harness({ topicAliasMaximum: 4 });
    h.connect(5);
    const effects = h.packet(publish("", "b", 0, undefined, { properties: { topicAlias: 3 } }));
    expect(h.one(effects, "disconnect").reasonCode).toBe(ReasonCode.ProtocolError);
  });

  it("alias 0 or above the Topic Alias Maximum: DISCONNECT 0x94 [MQTT-3.3.2-8] [MQTT-3.3.2-9]", () => {
    for (const alias of [0, 5]) {
      const h = new Harness({ topicAliasMaximum: 4 });
      h.connect(5);
      const effects = h.packet(publish("t", "b", 0, undefined, { properties: { topicAlias: alias } }));
      expect(h.one(effects, "disconnect").reasonCode).toBe(ReasonCode.TopicAliasInvalid);
      expect(kinds(effects)).toContain("close");
    }
  });

  it("aliases do not survive the connection", () => {
    const h = new Harness({ topicAliasMaximum: 4 });
    h.connectPersistent(5);
    h.packet(publish("t", "a", 0, undefined, { properties: { topicAlias: 1 } }));
    h.session.connectionLost(0x80, h.now);
    h.connectPersistent(5);
    const effects = h.packet(publish("", "b", 0, undefined, { properties: { topicAlias: 1 } }));
    expect(h.one(effects, "disconnect").reasonCode).toBe(ReasonCode.ProtocolError);
  });
});

describe("03 outbound QoS 1/2", () => {
  it("QoS 1 delivery: PUBLISH with a packet identifier, kept until PUBACK", () => {
    const h = new Harness();
    h.connect(4);
    const effects = h.deliver(delivery("a/b", "hi", 1));
    const p = h.one(effects, "publish");
    expect(p).toStrictEqual({ type: "publish", topic: "a/b", payload: bytes("hi"), qos: 1, retain: false, dup: false, packetId: 1 });
    expect(h.store.outboundCount()).toBe(1);
    expect(h.store.outboundByPacketId(1)?.state).toBe("sent");
    expect(h.packet(ack("puback", 1))).toEqual([]);
    expect(h.session.unflushedWrites).toBe(true); // the row's delete waits for the host's flush
    h.session.flushWrites();
    expect(h.store.outboundCount()).toBe(0);
    // A duplicate PUBACK is ignored.
    expect(h.packet(ack("puback", 1))).toEqual([]);
    expect(h.session.unflushedWrites).toBe(false);
  });

  it("an acknowledged row is deleted with the next write to the queue, in the same turn", () => {
    const h = new Harness();
    h.connect(4);
    h.deliver(delivery("a", "1"), delivery("a", "2"));
    h.packet(ack("puback", 1));
    expect(h.store.outboundCount()).toBe(2);
    h.deliver(delivery("a", "3")); // its insert takes the pending delete along
    expect(h.session.unflushedWrites).toBe(false);
    expect(h.store.outboundCount()).toBe(2);
    expect(h.store.outboundByPacketId(1)).toBeUndefined();
  });

  it("the packet identifier of an acknowledged message is free before its row is deleted", () => {
    const h = new Harness({ receiveMaximum: 2 });
    h.connect(5, { properties: { receiveMaximum: 1 } });
    h.deliver(delivery("a", "1"));
    expect(h.sentOf(h.deliver(delivery("a", "2")), "publish")).toEqual([]); // window of 1: queued
    const [next] = h.sentOf(h.packet(ack("puback", 1)), "publish");
    expect(text(next!.payload)).toBe("2"); // the window opened at once
    expect(h.store.outboundByPacketId(1)).toBeUndefined(); // markSent took the delete along
  });

  it("an acknowledgement lost with the object (not flushed) means a resend with DUP: at least once [MQTT-4.3.2]", () => {
    const h = new Harness();
    h.connectPersistent(4);
    h.deliver(delivery("a", "x"));
    h.packet(ack("puback", 1));
    h.rehydrate(); // evicted before the timer flushed: the row is still there
    h.session.connectionLost(ReasonCode.UnspecifiedError, h.now);
    const again = h.one(h.connectPersistent(4), "publish");
    expect([again.packetId, again.dup, text(again.payload)]).toEqual([1, true, "x"]);
    h.packet(ack("puback", 1));
    h.session.flushWrites();
    expect(h.store.outboundCount()).toBe(0);
  });

  it("QoS 0 delivery: sent at once, never stored", () => {
    const h = new Harness();
    h.connect(4);
    const p = h.one(h.deliver(delivery("a", "x", 0)), "publish");
    expect(p.qos).toBe(0);
    expect(p.packetId).toBeUndefined();
    expect(h.store.outboundCount()).toBe(0);
  });

  it("packet identifiers increase and skip those in use", () => {
    const h = new Harness();
    h.connect(4);
    const ids = h.sentOf(h.deliver(delivery("a", "1"), delivery("a", "2"), delivery("a", "3")), "publish").map((p) => p.packetId);
    expect(ids).toEqual([1, 2, 3]);
    h.packet(ack("puback", 2));
    expect(h.one(h.deliver(delivery("a", "4")), "publish").packetId).toBe(4);
  });

  it("the in-flight window is the client's Receive Maximum: the third waits for an ack [MQTT-4.9.0-2]", () => {
    const h = new Harness();
    h.connect(5, { properties: { receiveMaximum: 2 } });
    const first = h.deliver(delivery("a", "1"), delivery("a", "2"), delivery("a", "3"));
    expect(h.sentOf(first, "publish").map((p) => text(p.payload))).toEqual(["1", "2"]);
    expect(h.store.outboundCount()).toBe(3);
    expect(h.store.outbound(10).map((e) => e.state)).toEqual(["sent", "sent", "queued"]);
    const next = h.packet(ack("puback", 1));
    expect(h.sentOf(next, "publish").map((p) => text(p.payload))).toEqual(["3"]);
    expect(h.deliver(delivery("a", "4"))).toEqual([]);
  });

  it("the window and packet identifiers stay right across a wake-up (index rebuilt from the store)", () => {
    const h = new Harness();
    h.connect(5, { properties: { receiveMaximum: 2 } });
    const first = h.sentOf(h.deliver(delivery("a", "1", 1), delivery("a", "2", 2), delivery("a", "3", 1)), "publish");
    expect(first.map((p) => [text(p.payload), p.packetId])).toEqual([["1", 1], ["2", 2]]);
    h.packet(ack("pubrec", 2)); // QoS 2 now released, still in flight
    h.rehydrate();
    expect(h.deliver(delivery("a", "4", 1))).toEqual([]); // window still full, and "3" is ahead of it
    const [third] = h.sentOf(h.packet(ack("puback", 1)), "publish");
    expect(text(third!.payload)).toBe("3");
    expect(third!.packetId).not.toBe(2); // 2 is still in flight (released, awaiting PUBCOMP)
    const [fourth] = h.sentOf(h.packet(ack("pubcomp", 2)), "publish");
    expect(text(fourth!.payload)).toBe("4");
    expect(fourth!.packetId).not.toBe(third!.packetId);
    h.packet(ack("puback", third!.packetId!));
    h.packet(ack("puback", fourth!.packetId!));
    h.session.flushWrites();
    expect(h.store.outboundCount()).toBe(0);
  });

  it("QoS 2 delivery: PUBLISH -> PUBREC -> PUBREL -> PUBCOMP [MQTT-4.3.3]", () => {
    const h = new Harness();
    h.connect(5);
    const p = h.one(h.deliver(delivery("a", "x", 2)), "publish");
    expect(p.qos).toBe(2);
    const rel = h.packet(ack("pubrec", p.packetId!));
    expect(h.one(rel, "pubrel")).toStrictEqual({ type: "pubrel", packetId: p.packetId });
    expect(h.store.outboundByPacketId(p.packetId!)?.state).toBe("released");
    // A duplicate PUBREC gets PUBREL again.
    expect(h.one(h.packet(ack("pubrec", p.packetId!)), "pubrel").packetId).toBe(p.packetId);
    expect(h.packet(ack("pubcomp", p.packetId!))).toEqual([]);
    h.session.flushWrites();
    expect(h.store.outboundCount()).toBe(0);
  });

  it("PUBCOMP before PUBREC is ignored; PUBACK for a QoS 2 message is ignored", () => {
    const h = new Harness();
    h.connect(5);
    const p = h.one(h.deliver(delivery("a", "x", 2)), "publish");
    expect(h.packet(ack("pubcomp", p.packetId!))).toEqual([]);
    expect(h.packet(ack("puback", p.packetId!))).toEqual([]);
    expect(h.store.outboundCount()).toBe(1);
  });

  it("5.0 PUBREC for an unknown identifier: PUBREL 0x92", () => {
    const h = new Harness();
    h.connect(5);
    expect(h.one(h.packet(ack("pubrec", 42)), "pubrel").reasonCode).toBe(ReasonCode.PacketIdentifierNotFound);
  });

  it("5.0 PUBREC with a reason code >= 0x80 ends the flow and frees the window", () => {
    const h = new Harness();
    h.connect(5, { properties: { receiveMaximum: 1 } });
    const effects = h.deliver(delivery("a", "1", 2), delivery("a", "2", 2));
    const p = h.one(effects, "publish");
    const next = h.packet(ack("pubrec", p.packetId!, ReasonCode.QuotaExceeded));
    expect(h.sentOf(next, "pubrel")).toEqual([]);
    expect(h.sentOf(next, "publish").map((x) => text(x.payload))).toEqual(["2"]);
    expect(h.store.outboundCount()).toBe(1);
  });

  it("the delivered QoS is the one deliver() was given, not the message's", () => {
    const h = new Harness();
    h.connect(4);
    const d = { message: message("a", "x", 2), qos: 1 as const, retain: true };
    const p = h.one(h.deliver(d), "publish");
    expect(p.qos).toBe(1);
    expect(p.retain).toBe(true);
  });

  it("5.0 Subscription Identifiers and message properties go to the subscriber", () => {
    const h = new Harness();
    h.connect(5);
    const d = delivery("a", "x", 0, { subscriptionIds: [4, 9] });
    d.message.properties = { contentType: "c", userProperties: [["a", "1"]] };
    const p = h.one(h.deliver(d), "publish");
    expect(p.properties).toStrictEqual({ contentType: "c", userProperties: [["a", "1"]], subscriptionIdentifiers: [4, 9] });
  });

  it("3.1.1: no properties on a delivered PUBLISH", () => {
    const h = new Harness();
    h.connect(4);
    const d = delivery("a", "x", 0, { subscriptionIds: [4] });
    d.message.properties = { contentType: "c" };
    d.message.expiresAt = h.now + 5000;
    expect(h.one(h.deliver(d), "publish").properties).toBeUndefined();
  });
});

describe("03 outbound topic aliases (5.0)", () => {
  it("none when the client's Topic Alias Maximum is 0 (the default)", () => {
    const h = new Harness();
    h.connect(5);
    const p = h.one(h.deliver(delivery("a/b", "x", 0)), "publish");
    expect(p.topic).toBe("a/b");
    expect(p.properties?.topicAlias).toBeUndefined();
  });

  it("first send carries topic and alias, the next the alias and an empty topic [MQTT-3.3.2-12]", () => {
    const h = new Harness();
    h.connect(5, { properties: { topicAliasMaximum: 2 } });
    const first = h.one(h.deliver(delivery("a/b", "1", 0)), "publish");
    expect(first.topic).toBe("a/b");
    expect(first.properties?.topicAlias).toBe(1);
    const second = h.one(h.deliver(delivery("a/b", "2", 1)), "publish");
    expect(second.topic).toBe("");
    expect(second.properties?.topicAlias).toBe(1);
    const other = h.one(h.deliver(delivery("c", "3", 0)), "publish");
    expect([other.topic, other.properties?.topicAlias]).toEqual(["c", 2]);
    // Aliases exhausted: the topic goes in full.
    const third = h.one(h.deliver(delivery("d", "4", 0)), "publish");
    expect([third.topic, third.properties?.topicAlias]).toEqual(["d", undefined]);
  });

  it("a delivery dropped as too large does not consume the alias the client never saw", () => {
    const h = new Harness();
    h.connect(5, { properties: { topicAliasMaximum: 2, maximumPacketSize: 100 } });
    expect(h.deliver(delivery("big/topic", "x".repeat(200), 0))).toEqual([]);
    const p = h.one(h.deliver(delivery("big/topic", "small", 0)), "publish");
    // The client has no mapping for an alias it never received: the topic must be present.
    expect(p.topic).toBe("big/topic");
  });
});

describe("03 message expiry and packet size", () => {
  it("expired deliveries are dropped [MQTT-3.3.2-5]", () => {
    const h = new Harness();
    h.connect(5);
    const d = delivery("a", "x", 1);
    d.message.expiresAt = h.now;
    expect(h.deliver(d)).toEqual([]);
    expect(h.store.outboundCount()).toBe(0);
  });

  it("the remaining interval is sent [MQTT-3.3.2-6]", () => {
    const h = new Harness();
    h.connect(5);
    const d = delivery("a", "x", 0);
    d.message.expiresAt = h.now + 9_500;
    expect(h.one(h.deliver(d), "publish").properties?.messageExpiryInterval).toBe(10);
  });

  it("a queued message that expires while waiting for the window is dropped", () => {
    const h = new Harness();
    h.connect(5, { properties: { receiveMaximum: 1 } });
    const a = delivery("a", "1");
    const b = delivery("a", "2");
    b.message.expiresAt = h.now + 1000;
    const p = h.one(h.deliver(a, b), "publish");
    h.advance(2000);
    expect(h.packet(ack("puback", p.packetId!))).toEqual([]);
    expect(h.store.outboundCount()).toBe(0);
  });

  it("expired queued messages do not hold back the live ones behind them", () => {
    const h = new Harness();
    h.connectPersistent(5, { properties: { receiveMaximum: 2 } });
    h.packet({ type: "disconnect" });
    const ds = ["1", "2", "3"].map((s) => delivery("a", s));
    ds[0]!.message.expiresAt = h.now + 1000;
    ds[1]!.message.expiresAt = h.now + 1000;
    h.deliver(...ds);
    h.advance(5000);
    const effects = h.connectPersistent(5, { properties: { receiveMaximum: 2 } });
    expect(h.sentOf(effects, "publish").map((p) => text(p.payload))).toEqual(["3"]);
  });

  it("deliveries larger than the client's Maximum Packet Size are dropped [MQTT-3.1.2-24]", () => {
    const h = new Harness();
    h.connect(5, { properties: { maximumPacketSize: 64 } });
    expect(h.deliver(delivery("a", "x".repeat(100), 0))).toEqual([]);
    expect(h.deliver(delivery("a", "x".repeat(100), 1))).toEqual([]);
    expect(h.store.outboundCount()).toBe(0);
    const small = h.one(h.deliver(delivery("a", "ok", 1)), "publish");
    expect(small.payload).toEqual(bytes("ok"));
  });

  it("the Maximum Packet Size counts the whole packet", () => {
    const h = new Harness();
    h.connect(5, { properties: { maximumPacketSize: 12 } });
    // 2 header + 3 topic ("a" with length) + 1 property length + payload
    expect(h.sent(h.deliver(delivery("a", "x".repeat(6), 0)))).toHaveLength(1); // 12 bytes
    expect(h.deliver(delivery("a", "x".repeat(7), 0))).toEqual([]); // 13 bytes
  });
});
