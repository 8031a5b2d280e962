/**
 * The SessionStore contract against SqlSessionStore over real Durable Object SQLite, inside
 * workerd. `ctx.storage.sql` may only be used from within its object's I/O context (used
 * outside, workerd throws "Cannot perform I/O on behalf of a different Durable Object"), so
 * every test, its beforeEach hooks included, runs inside `runInDurableObject` through
 * `aroundEach`, each on a fresh SessionDO of its own.
 */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { aroundEach, describe, expect, it } from "vitest";
import { SqlSessionStore } from "../../durable-objects/storage/sql-session-store";
import { sessionStoreContract } from "../contracts/session-store";

let objectNumber = 0;
let sql: SqlStorage | undefined;

/** Runs each test of the enclosing suite, hooks included, inside a fresh SessionDO. */
function inFreshObject(): void {
  aroundEach(async (runTest) => {
    const stub = env.SESSIONS.get(env.SESSIONS.idFromName(`session-store-${objectNumber++}-${crypto.randomUUID()}`));
    await runInDurableObject(stub, async (_instance, state) => {
      sql = state.storage.sql;
      try {
        await runTest();
      } finally {
        sql = undefined;
      }
    });
  });
}

function currentSql(): SqlStorage {
  if (!sql) throw new Error("SqlSessionStore used outside runInDurableObject");
  return sql;
}

describe("inside a Durable Object", () => {
  inFreshObject();

  sessionStoreContract("SqlSessionStore (Durable Object SQLite)", () => new SqlSessionStore(currentSql()));

  it("keeps no state in memory: a second store over the same database sees every write", () => {
    const a = new SqlSessionStore(currentSql());
    a.save({ clientId: "c", protocolVersion: 5, expiryInterval: 60, connected: false, lastPacketId: 3 });
    a.putSubscription({ filter: "x/#", qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 });
    const seq = a.enqueue(
      { message: { topic: "x/1", payload: new Uint8Array([1]), qos: 1, retain: false }, qos: 1, retain: false },
      "sent",
      4,
    );
    a.addInboundQos2(9, "m-9");
    const b = new SqlSessionStore(currentSql());
    expect(b.load()).toMatchObject({ clientId: "c", lastPacketId: 3 });
    expect(b.subscriptions().map((s) => s.filter)).toEqual(["x/#"]);
    expect(b.outboundByPacketId(4)?.seq).toBe(seq);
    expect(b.inboundQos2(9)).toEqual({ messageId: "m-9", routed: false });
  });

  it("uses the tables named in docs/architecture.md", () => {
    new SqlSessionStore(currentSql());
    const tables = currentSql()
      .exec<{ name: string }>(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
      .toArray()
      .map((r) => r.name);
    expect(tables).toEqual(expect.arrayContaining(["inbound_qos2_messages", "outbound", "seen_messages", "session", "subscriptions"]));
    expect(tables).not.toContain("inbound_qos2");
  });
});

describe("SqlSessionStore across eviction", () => {
  it("what one instance wrote is there after the object is evicted and rebuilt", async () => {
    const stub = env.SESSIONS.get(env.SESSIONS.idFromName(`session-store-evict-${crypto.randomUUID()}`));
    const seq = await runInDurableObject(stub, (_i, state) => {
      const store = new SqlSessionStore(state.storage.sql);
      store.save({ clientId: "evicted", protocolVersion: 4, expiryInterval: 0xffffffff, connected: false, lastPacketId: 12 });
      return store.enqueue(
        { message: { topic: "q", payload: new Uint8Array([0xff, 0]), qos: 2, retain: true }, qos: 2, retain: true },
        "released",
        12,
      );
    });
    await evictDurableObject(stub);
    const after = await runInDurableObject(stub, (_i, state) => {
      const store = new SqlSessionStore(state.storage.sql);
      const entry = store.outboundByPacketId(12);
      return { record: store.load(), entry: entry && { seq: entry.seq, state: entry.state, payload: [...entry.delivery.message.payload] } };
    });
    expect(after.record).toEqual({ clientId: "evicted", protocolVersion: 4, expiryInterval: 0xffffffff, connected: false, lastPacketId: 12 });
    expect(after.entry).toEqual({ seq, state: "released", payload: [0xff, 0] });
  });
});
