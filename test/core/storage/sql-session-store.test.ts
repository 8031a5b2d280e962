/**
 * SqlSessionStore over a real SQLite in Node (node:sqlite, Node >= 22.5), through an adapter
 * with the shape of Durable Object SQL storage: exec(query, ...bindings) -> { toArray() }.
 * The same contract runs against Durable Object SQLite in workerd (test/workers).
 */
import { describe, expect, it } from "vitest";
import { SqlSessionStore } from "../../../durable-objects/storage/sql-session-store.js";
import { nodeSql } from "./node-sql.js";
import { sessionStoreContract } from "../../contracts/session-store.js";
import { MemorySessionStore } from "../../../core/session/memory-store.js";
import { Session } from "../../../core/session/session.js";
import { defaultLimits } from "../../../core/session/types.js";

describe("environment", () => {
  it("runs under Node 22 or later (node:sqlite)", () => {
    expect(Number(process.versions.node.split(".")[0])).toBeGreaterThanOrEqual(22);
  });
});

sessionStoreContract("SqlSessionStore (node:sqlite)", () => new SqlSessionStore(nodeSql()));

describe("SqlSessionStore specifics", () => {
  it("a second store over the same database sees the same state (schema is idempotent)", () => {
    const sql = nodeSql();
    const a = new SqlSessionStore(sql);
    a.save({ clientId: "c", protocolVersion: 4, expiryInterval: 60, connected: false, lastPacketId: 3 });
    a.putSubscription({ filter: "t", qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 });
    const seq = a.enqueue({ message: { topic: "t", payload: new Uint8Array([1]), qos: 1, retain: false }, qos: 1, retain: false }, "queued");
    a.addInboundQos2(9, "m-9");
    const b = new SqlSessionStore(sql);
    expect(b.load()?.lastPacketId).toBe(3);
    expect(b.subscriptions().map((s) => s.filter)).toEqual(["t"]);
    expect(b.outbound(5).map((e) => e.seq)).toEqual([seq]);
    expect(b.inboundQos2(9)).toEqual({ messageId: "m-9", routed: false });
  });

  it("a store written before message identifiers: its QoS 2 entries count as routed (PUBREC was sent for them), the old table goes", () => {
    const sql = nodeSql();
    sql.exec(`CREATE TABLE inbound_qos2 (packet_id INTEGER PRIMARY KEY)`);
    sql.exec(`INSERT INTO inbound_qos2 (packet_id) VALUES (5), (6)`);
    const store = new SqlSessionStore(sql);
    expect(store.inboundQos2Count()).toBe(2);
    expect(store.inboundQos2(5)).toEqual({ messageId: "legacy-5", routed: true });
    const tables = sql.exec(`SELECT name FROM sqlite_master WHERE type = 'table'`).toArray().map((r) => r.name);
    expect(tables).not.toContain("inbound_qos2");
    expect(new SqlSessionStore(sql).inboundQos2Count()).toBe(2); // and again: nothing to move
  });

  it("a large payload round-trips", () => {
    const store = new SqlSessionStore(nodeSql());
    const payload = new Uint8Array(200_000).map((_, i) => i % 251);
    store.enqueue({ message: { topic: "t", payload, qos: 1, retain: false }, qos: 1, retain: false }, "queued");
    expect(store.outbound(1)[0]!.delivery.message.payload).toEqual(payload);
  });

  it("the session state machine runs the same over SQLite as over memory", () => {
    const run = (store: ConstructorParameters<typeof Session>[0]) => {
      const s = new Session(store, defaultLimits);
      const out: unknown[] = [];
      const t = 1_700_000_000_000;
      const connect = { type: "connect", protocolName: "MQTT", protocolVersion: 5, clean: false, keepAlive: 30, clientId: "c", properties: { sessionExpiryInterval: 60, receiveMaximum: 1 } } as const;
      out.push(s.connect(connect, t));
      const sub = s.packet({ type: "subscribe", packetId: 1, subscriptions: [{ topicFilter: "a/#", qos: 2 }] }, t);
      out.push(sub);
      const ticket = sub.find((e) => e.kind === "subscribe");
      out.push(ticket && ticket.kind === "subscribe" ? s.subscribed(ticket.ticket) : []);
      const d = (p: number) => ({ message: { topic: "a/b", payload: new Uint8Array([p]), qos: 2 as const, retain: false }, qos: 2 as const, retain: false });
      out.push(s.deliver([d(1), d(2)], t).effects);
      out.push(s.packet({ type: "pubrec", packetId: 1 }, t));
      out.push(s.connectionLost(0x8d, t + 1000));
      out.push(s.connect(connect, t + 2000));
      out.push(s.packet({ type: "pubcomp", packetId: 1 }, t + 2000));
      out.push(s.alarm(t + 2000));
      return out.map((effects) => (effects as { kind: string; bytes?: Uint8Array }[]).map((e) => (e.bytes ? [...e.bytes] : e)));
    };
    expect(run(new SqlSessionStore(nodeSql()))).toEqual(run(new MemorySessionStore()));
  });
});
