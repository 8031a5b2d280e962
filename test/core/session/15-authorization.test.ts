// Access control in the session (core/session/authorize.ts over core/policy/acl.ts): PUBLISH
// QoS 0/1/2, SUBSCRIBE, live, queued and retained delivery, the Will at CONNECT and when it
// fires, for 3.1.1 and 5.0. The rules are swapped mid-test as the objects do when they reload.
import { describe, expect, it } from "vitest";
import { ReasonCode, type ProtocolVersion, type Will } from "../../../core/mqtt/packets.js";
import { AclPolicy, type AclAction, type AclRule, type Authorizer, type Principal } from "../../../core/policy/index.js";
import { Session } from "../../../core/session/session.js";
import type { Effect } from "../../../core/session/types.js";
import { Harness, ack, bytes, connectPacket, delivery, kinds, pick, publish, sub, type ConnectOptions } from "./harness.js";

let nextId = 1;
const rule = (topic: string, action: AclAction, allow: boolean, who: { username?: string; clientId?: string } = {}): AclRule => ({
  id: nextId++,
  username: who.username ?? null,
  clientId: who.clientId ?? null,
  topic,
  action,
  allow,
});

/** What the object does: one authorizer for the session's life, delegating to the latest snapshot of the rules. */
class Rules implements Authorizer {
  policy: AclPolicy;
  constructor(rules: AclRule[], allowAnonymous = false) {
    this.policy = new AclPolicy(rules, { allowAnonymous });
  }
  set(rules: AclRule[], allowAnonymous = false): void {
    this.policy = new AclPolicy(rules, { allowAnonymous });
  }
  authorizePublish(p: Principal, topic: string): boolean {
    return this.policy.authorizePublish(p, topic);
  }
  authorizeSubscribe(p: Principal, filter: string): boolean {
    return this.policy.authorizeSubscribe(p, filter);
  }
  authorizeRead(p: Principal, topic: string): boolean {
    return this.policy.authorizeRead(p, topic);
  }
}

class AuthHarness extends Harness {
  readonly rules: Rules;
  constructor(rules: AclRule[], allowAnonymous = false) {
    super();
    this.rules = new Rules(rules, allowAnonymous);
    this.rehydrate();
  }
  override rehydrate(): void {
    this.session = new Session(this.store, this.limits, undefined, this.rules);
  }
  connectAs(version: ProtocolVersion, principal: Principal | undefined, o: ConnectOptions = {}): Effect[] {
    this.version = version;
    return this.session.connect(connectPacket(version, o), this.now, false, principal);
  }
}

const alice: Principal = { clientId: "c1", username: "alice", method: "password" };
const denials = (effects: Effect[]) => pick(effects, "denied").map((d) => `${d.action}:${d.topic}:${d.count}`);
const aliceRules = () => [rule("alice/#", "all", true, { username: "alice" }), rule("alice/locked/key", "all", false)];

describe("15 authorization: the principal", () => {
  it("is kept with the session: the host's, or anonymous with the CONNECT's user name", () => {
    const h = new AuthHarness([]);
    h.connectAs(4, alice, { username: "alice" });
    expect(h.session.record?.principal).toEqual(alice);
    h.rehydrate();
    expect(h.session.record?.principal).toEqual(alice);
    const g = new AuthHarness([]);
    g.connectAs(5, undefined, { username: "guest" });
    expect(g.session.record?.principal).toEqual({ clientId: "c1", method: "anonymous", username: "guest" });
  });

  it("presence and the connection carry the authenticated user name, not the CONNECT's", () => {
    const h = new AuthHarness([]);
    const effects = h.connectAs(5, { clientId: "c1", username: "device-42", method: "certificate" }, { username: "whatever" });
    expect(pick(effects, "presence")[0]!.event.username).toBe("device-42");
    expect(h.session.record?.connection?.username).toBe("device-42");
  });

  it("without an authorizer everything is allowed, as before", () => {
    const h = new Harness();
    h.connect(5);
    expect(kinds(h.packet(publish("$SYS/x", "p", 0)))).toEqual(["route"]);
  });
});

describe("15 authorization: PUBLISH", () => {
  for (const v of [4, 5] as const) {
    it(`v${v} QoS 0: denied, dropped; allowed, routed`, () => {
      const h = new AuthHarness(aliceRules());
      h.connectAs(v, alice);
      expect(kinds(h.packet(publish("bob/x", "p", 0)))).toEqual(["denied"]);
      expect(denials(h.packet(publish("alice/locked/key", "p", 0)))).toEqual(["publish:alice/locked/key:1"]);
      expect(kinds(h.packet(publish("alice/x", "p", 0)))).toEqual(["route"]);
      expect(kinds(h.packet(publish("$SYS/broker/uptime", "p", 0)))).toEqual(["denied"]); // nobody publishes to $
    });
  }

  it("5.0 QoS 1: PUBACK 0x87, not routed", () => {
    const h = new AuthHarness(aliceRules());
    h.connectAs(5, alice);
    const effects = h.packet(publish("bob/x", "p", 1, 4));
    expect(pick(effects, "route")).toEqual([]);
    expect(h.one(effects, "puback")).toEqual({ type: "puback", packetId: 4, reasonCode: ReasonCode.NotAuthorized });
    expect(denials(effects)).toEqual(["publish:bob/x:1"]);
  });

  it("3.1.1 QoS 1: a plain PUBACK, not routed (the specification allows it)", () => {
    const h = new AuthHarness(aliceRules());
    h.connectAs(4, alice);
    const effects = h.packet(publish("bob/x", "p", 1, 4));
    expect(pick(effects, "route")).toEqual([]);
    expect(h.one(effects, "puback")).toEqual({ type: "puback", packetId: 4 });
  });

  it("a denied PUBACK waits its turn behind a publish still being routed [MQTT-4.6.0-2]", () => {
    const h = new AuthHarness(aliceRules());
    h.connectAs(5, alice);
    const ticket = pick(h.packet(publish("alice/a", "p", 1, 1)), "route")[0]!.ticket!;
    const denied = h.packet(publish("bob/x", "p", 1, 2));
    expect(h.sentOf(denied, "puback")).toEqual([]);
    const acks = h.sentOf(h.session.routed(ticket, 1), "puback");
    expect(acks).toEqual([{ type: "puback", packetId: 1 }, { type: "puback", packetId: 2, reasonCode: 0x87 }]);
  });

  it("5.0 QoS 2: PUBREC 0x87 ends the exchange, nothing kept; a retransmission is a new message [MQTT-4.3.3-9]", () => {
    const h = new AuthHarness(aliceRules());
    h.connectAs(5, alice);
    const effects = h.packet(publish("bob/x", "p", 2, 9));
    expect(pick(effects, "route")).toEqual([]);
    expect(h.one(effects, "pubrec")).toEqual({ type: "pubrec", packetId: 9, reasonCode: 0x87 });
    expect(h.store.inboundQos2Count()).toBe(0);
    const again = h.packet(publish("bob/x", "p", 2, 9, { dup: true }));
    expect(h.one(again, "pubrec")).toEqual({ type: "pubrec", packetId: 9, reasonCode: 0x87 });
    expect(pick(again, "route")).toEqual([]);
    // The same identifier for an allowed message afterwards is routed as new.
    expect(pick(h.packet(publish("alice/x", "p", 2, 9)), "route")).toHaveLength(1);
  });

  it("3.1.1 QoS 2: PUBREC, then PUBCOMP for the PUBREL, never routed, also across a restart mid-flow", () => {
    const h = new AuthHarness(aliceRules());
    h.connectAs(4, alice, { clean: false });
    const effects = h.packet(publish("bob/x", "p", 2, 9));
    expect(kinds(effects)).toEqual(["send:pubrec", "denied"]);
    expect(h.one(effects, "pubrec")).toEqual({ type: "pubrec", packetId: 9 });
    // The object restarts; the client reconnects and retransmits the PUBLISH, then sends PUBREL.
    h.rehydrate();
    h.session.connectionLost(ReasonCode.UnspecifiedError, h.now);
    h.connectAs(4, alice, { clean: false });
    const again = h.packet(publish("bob/x", "p", 2, 9, { dup: true }));
    expect(kinds(again)).toEqual(["send:pubrec"]); // answered as before; not even checked again
    expect(h.one(h.packet(ack("pubrel", 9)), "pubcomp")).toEqual({ type: "pubcomp", packetId: 9 });
    expect(h.store.inboundQos2Count()).toBe(0);
    // And without a restart, a PUBREL straight after.
    h.packet(publish("bob/y", "p", 2, 10));
    expect(h.one(h.packet(ack("pubrel", 10)), "pubcomp")).toEqual({ type: "pubcomp", packetId: 10 });
  });

  it("checked after topic alias resolution (5.0)", () => {
    const h = new AuthHarness(aliceRules());
    h.connectAs(5, alice);
    expect(kinds(h.packet(publish("bob/x", "p", 0, undefined, { properties: { topicAlias: 1 } })))).toEqual(["denied"]);
    expect(denials(h.packet(publish("", "p", 0, undefined, { properties: { topicAlias: 1 } })))).toEqual(["publish:bob/x:1"]);
  });

  it("a rule change reaches the next PUBLISH", () => {
    const h = new AuthHarness(aliceRules());
    h.connectAs(5, alice);
    expect(kinds(h.packet(publish("alice/x", "p", 0)))).toEqual(["route"]);
    h.rules.set([rule("alice/x", "publish", false)], true);
    expect(kinds(h.packet(publish("alice/x", "p", 0)))).toEqual(["denied"]);
  });
});

describe("15 authorization: SUBSCRIBE", () => {
  for (const v of [4, 5] as const) {
    it(`v${v}: allowed and denied filters in one packet, each answered; the denied ones not stored`, () => {
      const h = new AuthHarness(aliceRules());
      h.connectAs(v, alice);
      const effects = h.packet({
        type: "subscribe",
        packetId: 3,
        subscriptions: [sub("alice/+", 1), sub("bob/#", 1), sub("alice/#", 2), sub("a/#/b", 0), sub("$SYS/#", 0)],
      });
      expect(denials(effects)).toEqual(["subscribe:bob/#:1", "subscribe:alice/#:1", "subscribe:$SYS/#:1"]);
      const request = pick(effects, "subscribe")[0]!;
      expect(request.subscriptions.map((s) => s.subscription.filter)).toEqual(["alice/+"]);
      const suback = h.one(h.session.subscribed(request.ticket), "suback");
      // alice/# overlaps the DENY on alice/locked/key; alice/+ does not.
      expect(suback.reasonCodes).toEqual(v === 5 ? [1, 0x87, 0x87, 0x8f, 0x87] : [1, 0x80, 0x80, 0x80, 0x80]);
      expect(h.store.subscriptions().map((s) => s.filter)).toEqual(["alice/+"]);
    });
  }

  it("every filter denied: SUBACK at once, nothing registered", () => {
    const h = new AuthHarness(aliceRules());
    h.connectAs(5, alice);
    const effects = h.packet({ type: "subscribe", packetId: 3, subscriptions: [sub("bob/#", 1)] });
    expect(kinds(effects)).toEqual(["denied", "send:suback"]);
    expect(h.one(effects, "suback").reasonCodes).toEqual([0x87]);
  });

  it("a shared subscription is checked as its inner filter", () => {
    const h = new AuthHarness(aliceRules());
    h.connectAs(5, alice);
    expect(h.subscribe(1, sub("$share/g/alice/+", 1), sub("$share/g/bob/+", 1))).toEqual([1, 0x87]);
  });
});

describe("15 authorization: delivery", () => {
  it("retained messages on topics the subscriber may not read are not sent", () => {
    const h = new AuthHarness([rule("news/#", "subscribe", true), rule("news/internal/#", "subscribe", false)]);
    h.connectAs(5, { clientId: "c1", method: "anonymous" });
    h.subscribe(1, sub("news/public/#", 1));
    const retained = [
      delivery("news/public/a", "1", 1, { retain: true }),
      delivery("news/internal/x", "2", 1, { retain: true }),
      delivery("news/internal/y", "3", 0, { retain: true }),
      delivery("news/public/b", "4", 0, { retain: true }),
    ];
    const effects = h.deliver(...retained);
    expect(h.sentOf(effects, "publish").map((p) => p.topic)).toEqual(["news/public/a", "news/public/b"]);
    expect(denials(effects)).toEqual(["read:news/internal/x:2"]);
    expect(h.store.outboundCount()).toBe(1); // only the one in flight
  });

  for (const v of [4, 5] as const) {
    it(`v${v}: a message the principal may not read is not queued for an offline session either`, () => {
      const h = new AuthHarness(aliceRules());
      h.connectAs(v, alice, v === 5 ? { clean: false, properties: { sessionExpiryInterval: 600 } } : { clean: false });
      h.session.connectionLost(ReasonCode.NormalDisconnection, h.now);
      const effects = h.deliver(delivery("alice/a", "1"), delivery("bob/b", "2"), delivery("alice/locked/key", "3"));
      expect(denials(effects)).toEqual(["read:bob/b:2"]);
      expect(h.store.outbound(10).map((e) => e.delivery.message.topic)).toEqual(["alice/a"]);
    });
  }

  it("queued under old rules, dropped on reconnect if the new rules deny it", () => {
    const h = new AuthHarness(aliceRules());
    h.connectAs(5, alice, { clean: false, properties: { sessionExpiryInterval: 600 } });
    h.session.connectionLost(ReasonCode.NormalDisconnection, h.now);
    h.deliver(delivery("alice/a", "1"), delivery("alice/b", "2"));
    h.rules.set([rule("alice/#", "all", true, { username: "alice" }), rule("alice/b", "all", false)]);
    const effects = h.connectAs(5, alice, { clean: false, properties: { sessionExpiryInterval: 600 } });
    expect(h.sentOf(effects, "publish").map((p) => p.topic)).toEqual(["alice/a"]);
    expect(denials(effects)).toEqual(["read:alice/b:1"]);
    expect(h.store.outboundCount()).toBe(1);
  });

  it("in flight under old rules: not sent again on reconnect if denied now", () => {
    const h = new AuthHarness(aliceRules());
    h.connectAs(4, alice, { clean: false });
    expect(h.sentOf(h.deliver(delivery("alice/a", "1"), delivery("alice/b", "2")), "publish")).toHaveLength(2);
    h.session.connectionLost(ReasonCode.UnspecifiedError, h.now);
    h.rules.set([rule("alice/#", "all", true, { username: "alice" }), rule("alice/b", "all", false)]);
    const effects = h.connectAs(4, alice, { clean: false });
    expect(h.sentOf(effects, "publish").map((p) => [p.topic, p.dup])).toEqual([["alice/a", true]]);
    expect(denials(effects)).toEqual(["read:alice/b:1"]);
  });
});

describe("15 authorization: the Will", () => {
  const will = (topic: string, extra: Partial<Will> = {}): Will => ({ topic, payload: bytes("gone"), qos: 1, retain: false, ...extra });

  for (const v of [4, 5] as const) {
    it(`v${v}: a Will its principal may not publish refuses the CONNECT (0x87 / 5), nothing of the session touched`, () => {
      const h = new AuthHarness(aliceRules());
      h.connectAs(v, alice, { clean: false, will: will("alice/status", { properties: v === 5 ? { willDelayInterval: 60 } : {} }),
        ...(v === 5 && { properties: { sessionExpiryInterval: 600 } }) });
      h.subscribe(1, sub("alice/+", 1));
      h.session.connectionLost(ReasonCode.UnspecifiedError, h.now);
      const before = h.session.record;
      // What the host asks before it takes over a connection:
      expect(h.session.access.willAllowed(connectPacket(v, { will: will("bob/status") }), alice)).toBe(false);
      expect(h.session.access.willAllowed(connectPacket(v, { will: will("alice/status") }), alice)).toBe(true);
      expect(h.session.access.willAllowed(connectPacket(v, {}), alice)).toBe(true);
      const effects = h.connectAs(v, alice, { clean: true, will: will("bob/status") });
      expect(kinds(effects)).toEqual(["send:connack", "close", "denied"]);
      expect(h.one(effects, "connack").reasonCode).toBe(v === 5 ? 0x87 : 5);
      expect(h.session.record).toEqual(before); // the old Will still pending (5.0) or gone as before, not replaced
      expect(h.store.subscriptions().map((s) => s.filter)).toEqual(["alice/+"]);
    });
  }

  it("a Will to a $ topic is refused", () => {
    const h = new AuthHarness([], true);
    expect(h.one(h.connectAs(5, alice, { will: will("$SYS/x") }), "connack").reasonCode).toBe(0x87);
  });

  for (const v of [4, 5] as const) {
    it(`v${v}: allowed at CONNECT, denied by rules changed before it fires: not published`, () => {
      const h = new AuthHarness(aliceRules());
      h.connectAs(v, alice, { will: will("alice/status") });
      h.rules.set([rule("alice/status", "publish", false)], true);
      const effects = h.session.connectionLost(ReasonCode.KeepAliveTimeout, h.now);
      expect(pick(effects, "route")).toEqual([]);
      expect(denials(effects)).toEqual(["publish:alice/status:1"]);
      expect(pick(effects, "presence")[0]!.event.willFired).toBe(false);
    });
  }

  it("a delayed Will is checked when the delay elapses, and when the session ends first", () => {
    const h = new AuthHarness(aliceRules());
    const opts = { clean: false, will: will("alice/status", { properties: { willDelayInterval: 30 } }), properties: { sessionExpiryInterval: 600 } };
    h.connectAs(5, alice, opts);
    h.session.connectionLost(ReasonCode.KeepAliveTimeout, h.now);
    h.rules.set([]);
    const fired = h.session.alarm(h.now + 30_000);
    expect(pick(fired, "route")).toEqual([]);
    expect(denials(fired)).toEqual(["publish:alice/status:1"]);
    expect(h.session.record?.will).toBeUndefined();

    const g = new AuthHarness(aliceRules());
    g.connectAs(5, alice, { ...opts, properties: { sessionExpiryInterval: 10 } });
    g.session.connectionLost(ReasonCode.KeepAliveTimeout, g.now);
    const allowed = g.session.alarm(g.now + 10_000); // the session expires before the Will Delay: the Will goes now
    expect(pick(allowed, "route").map((r) => r.message.topic)).toEqual(["alice/status"]);
  });

  it("allowed, it fires as before", () => {
    const h = new AuthHarness(aliceRules());
    h.connectAs(4, alice, { will: will("alice/status") });
    const effects = h.session.connectionLost(ReasonCode.KeepAliveTimeout, h.now);
    expect(pick(effects, "route").map((r) => r.message.topic)).toEqual(["alice/status"]);
    expect(pick(effects, "presence")[0]!.event.willFired).toBe(true);
  });
});
