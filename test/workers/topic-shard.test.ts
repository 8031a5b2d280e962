/**
 * TopicShardDO through its RPC methods, inside workerd: retained store, subscription index,
 * fan-out to real SessionDOs. Every test uses its own shard object and its own client
 * identifiers, so no test depends on another or on storage isolation.
 *
 * Subscriber sessions are seeded offline (a record with `connected: false`): a QoS 1/2
 * delivery is then queued in the session's `outbound` table exactly as the shard built it,
 * which is what these tests read back.
 */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { QoS } from "../../core/mqtt/packets";
import type { Delivery, Message, SubscribeRequest, Subscription } from "../../core/session/types";
import { topicMatches } from "../../core/topics";
import { SqlSessionStore } from "../../durable-objects/storage/sql-session-store";

let counter = 0;
const unique = (prefix: string): string => `${prefix}-${counter++}-${crypto.randomUUID().slice(0, 8)}`;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

function newShard() {
  return env.SHARDS.get(env.SHARDS.idFromName(unique("t")));
}

function sessionStub(clientId: string) {
  return env.SESSIONS.get(env.SESSIONS.idFromName(clientId));
}

/** A live (offline, not expired) session: deliveries to it are accepted and QoS 1/2 ones queued. */
async function seedSession(prefix = "client"): Promise<string> {
  const clientId = unique(prefix);
  await runInDurableObject(sessionStub(clientId), (_i, state) => {
    new SqlSessionStore(state.storage.sql).save({
      clientId,
      protocolVersion: 5,
      expiryInterval: 3600,
      connected: false,
      lastPacketId: 0,
    });
  });
  return clientId;
}

async function queued(clientId: string): Promise<Delivery[]> {
  return runInDurableObject(sessionStub(clientId), (_i, state) =>
    new SqlSessionStore(state.storage.sql).outbound(1000).map((e) => e.delivery),
  );
}

function sub(filter: string, extra: Partial<Subscription> = {}): Subscription {
  return { filter, qos: 2, noLocal: false, retainAsPublished: false, retainHandling: 0, ...extra };
}

function req(filter: string, extra: Partial<Subscription> = {}, wantRetained = true): SubscribeRequest {
  return { subscription: sub(filter, extra), wantRetained };
}

function msg(topic: string, payload: string, qos: QoS = 1, extra: Partial<Message> = {}): Message {
  return { topic, payload: enc(payload), qos, retain: false, ...extra };
}

type Shard = ReturnType<typeof newShard>;

async function subscribe(shard: Shard, clientId: string, ...requests: SubscribeRequest[]): Promise<Delivery[]> {
  return (await shard.subscribe(clientId, requests)) as Delivery[];
}

async function shardRows(shard: Shard, table: "subscriptions" | "retained"): Promise<Record<string, unknown>[]> {
  return runInDurableObject(shard, (_i, state) =>
    state.storage.sql.exec(table === "subscriptions" ? `SELECT filter, client_id FROM subscriptions ORDER BY filter, client_id` : `SELECT topic FROM retained ORDER BY topic`).toArray(),
  );
}

describe("retained messages on subscribe", () => {
  it("returns the retained messages matching the filter, RETAIN set, QoS min(message, granted) [MQTT-3.3.1-8] [MQTT-3.8.4-8]", async () => {
    const shard = newShard();
    await shard.publish(msg("r/1", "one", 2, { retain: true }));
    await shard.publish(msg("r/2", "two", 0, { retain: true }));
    await shard.publish(msg("other/1", "no", 1, { retain: true }));
    const retained = await subscribe(shard, unique("c"), req("r/+", { qos: 1, subscriptionId: 7 }));
    const byTopic = [...retained].sort((a, b) => a.message.topic.localeCompare(b.message.topic));
    expect(byTopic.map((d) => [d.message.topic, text(d.message.payload), d.qos, d.retain, d.subscriptionIds])).toEqual([
      ["r/1", "one", 1, true, [7]],
      ["r/2", "two", 0, true, [7]],
    ]);
    expect(byTopic[0]!.message.payload).toBeInstanceOf(Uint8Array);
  });

  it("a retained QoS 2 message is replayed without its message identifier, on every subscribe", async () => {
    const shard = newShard();
    await shard.publish(msg("q2/r", "kept", 2, { retain: true, messageId: "live-1" }));
    for (const client of [unique("c"), unique("c")]) {
      const [replay] = await subscribe(shard, client, req("q2/#", { qos: 2 }));
      expect(text(replay!.message.payload)).toBe("kept");
      expect(replay!.message.messageId).toBeUndefined();
    }
  });

  it("returns nothing when the session did not ask for retained messages", async () => {
    const shard = newShard();
    await shard.publish(msg("r/1", "one", 1, { retain: true }));
    expect(await subscribe(shard, unique("c"), req("r/#", {}, false))).toEqual([]);
  });

  it("keeps the message properties and expiry", async () => {
    const shard = newShard();
    const expiresAt = Date.now() + 60_000;
    await shard.publish(
      msg("p/1", "x", 1, {
        retain: true,
        expiresAt,
        properties: { contentType: "text/plain", correlationData: new Uint8Array([1, 2]), userProperties: [["k", "v"], ["k", "w"]] },
      }),
    );
    const [d] = await subscribe(shard, unique("c"), req("p/1"));
    expect(d!.message.expiresAt).toBe(expiresAt);
    expect(d!.message.properties).toEqual({ contentType: "text/plain", correlationData: new Uint8Array([1, 2]), userProperties: [["k", "v"], ["k", "w"]] });
  });

  it("a newer retained message replaces the older one [MQTT-3.3.1-5]", async () => {
    const shard = newShard();
    await shard.publish(msg("r/x", "v1", 1, { retain: true }));
    await shard.publish(msg("r/x", "v2", 0, { retain: true }));
    const retained = await subscribe(shard, unique("c"), req("r/x"));
    expect(retained.map((d) => [text(d.message.payload), d.qos])).toEqual([["v2", 0]]);
    expect(await shardRows(shard, "retained")).toEqual([{ topic: "r/x" }]);
  });

  it("an empty retained payload deletes the retained message [MQTT-3.3.1-6]", async () => {
    const shard = newShard();
    await shard.publish(msg("r/x", "v1", 1, { retain: true }));
    await shard.publish(msg("r/y", "keep", 1, { retain: true }));
    await shard.publish(msg("r/x", "", 0, { retain: true }));
    const retained = await subscribe(shard, unique("c"), req("r/#"));
    expect(retained.map((d) => d.message.topic)).toEqual(["r/y"]);
    expect(await shardRows(shard, "retained")).toEqual([{ topic: "r/y" }]);
  });

  it("a non-retained publish leaves the retained message alone", async () => {
    const shard = newShard();
    await shard.publish(msg("r/x", "kept", 1, { retain: true }));
    await shard.publish(msg("r/x", "live only", 1));
    await shard.publish(msg("r/x", "", 1));
    expect((await subscribe(shard, unique("c"), req("r/x"))).map((d) => text(d.message.payload))).toEqual(["kept"]);
  });

  it("an expired retained message is not returned and is removed [MQTT-3.3.2-5]", async () => {
    const shard = newShard();
    await shard.publish(msg("e/old", "gone", 1, { retain: true, expiresAt: Date.now() - 1 }));
    await shard.publish(msg("e/soon", "gone too", 1, { retain: true, expiresAt: Date.now() + 30 }));
    await shard.publish(msg("e/new", "here", 1, { retain: true, expiresAt: Date.now() + 60_000 }));
    await scheduler.wait(50);
    const retained = await subscribe(shard, unique("c"), req("e/#"));
    expect(retained.map((d) => d.message.topic)).toEqual(["e/new"]);
    expect(await shardRows(shard, "retained")).toEqual([{ topic: "e/new" }]);
  });

  it("a filter starting with a wildcard does not match $ topics [MQTT-4.7.2-1]", async () => {
    const shard = newShard();
    await shard.publish(msg("$SYS/uptime", "1", 0, { retain: true }));
    await shard.publish(msg("plain", "2", 0, { retain: true }));
    expect((await subscribe(shard, unique("c"), req("#"))).map((d) => d.message.topic)).toEqual(["plain"]);
    expect((await subscribe(shard, unique("c"), req("$SYS/#"))).map((d) => d.message.topic)).toEqual(["$SYS/uptime"]);
  });
});

describe("retained messages on subscribe: reads what can match, through the topic index", () => {
  /**
   * Calls subscribe() inside the shard and sums `rowsRead` over every SQL statement it ran
   * (what the shard's Meter reports), by wrapping the object's `ctx.storage.sql.exec`.
   */
  async function subscribeCountingRows(shard: Shard, clientId: string, requests: SubscribeRequest[]) {
    return runInDurableObject(shard, async (instance, state) => {
      const sql = state.storage.sql;
      const exec = sql.exec;
      const cursors: { readonly rowsRead: number }[] = [];
      sql.exec = <T extends Record<string, SqlStorageValue>>(query: string, ...bindings: unknown[]) => {
        const cursor = exec.call(sql, query, ...bindings) as SqlStorageCursor<T>;
        cursors.push(cursor);
        return cursor;
      };
      try {
        const retained = (await instance.subscribe(clientId, requests)) as Delivery[];
        return { retained, statements: cursors.length, rowsRead: cursors.reduce((n, c) => n + c.rowsRead, 0) };
      } finally {
        sql.exec = exec;
      }
    });
  }

  it("2,000 retained messages, 200 wildcard filters: rows read in proportion to the matches, not to the table", async () => {
    const shard = newShard();
    const stored = 2_000;
    for (let n = 0; n < stored; n += 500) {
      await shard.publishBatch(Array.from({ length: 500 }, (_, i) => msg(`data/${n + i}/value`, `v${n + i}`, 0, { retain: true })));
    }
    const requests: SubscribeRequest[] = [];
    for (let i = 0; i < 95; i++) requests.push(req(`other/${i}/+/x`), req(`data/none-${i}/#`));
    for (let i = 0; i < 5; i++) requests.push(req(`data/${i * 7}/#`), req(`data/${i * 7 + 1}/+`));
    expect(requests).toHaveLength(200);

    const { retained, statements, rowsRead } = await subscribeCountingRows(shard, unique("c"), requests);
    expect(retained.map((d) => d.message.topic).sort()).toEqual(
      [0, 1, 7, 8, 14, 15, 21, 22, 28, 29].map((n) => `data/${n}/value`).sort(),
    );
    // A scan of the table per filter reads 200 × 2,000 = 400,000 rows. An index lookup reads
    // the rows it returns, plus at most the one row past the end of each range.
    expect(statements).toBeGreaterThan(0);
    expect(rowsRead).toBeLessThanOrEqual(retained.length + requests.length);
  });

  it("the index ranges hold exactly what topicMatches matches, non-ASCII names included (UTF-8 byte order)", async () => {
    const shard = newShard();
    const topics = [
      "é", "é/1", "é/1/2", "é0", "éa/1", "e/1",
      "\uffff/a", "\uffff", "\uffff0/a", "\u{10000}/a", "\u{10000}", "\u{1f600}/b/c",
      "\ud7ff/a", "\ue000/a", "\u{10ffff}/x", "x\u{10ffff}/y", "x\u{10ffff}", "y/\u{10ffff}",
      "$SYS/a", "$", "%", "#x", "/", "//", "/a", "a", "a/", "a/b", "a0/b", "a.b/c",
    ];
    for (const topic of topics) await shard.publish(msg(topic, topic, 0, { retain: true }));
    const filters = [
      "#", "+", "+/+", "+/#", "/#", "/+", "a/#", "a/+", "a/b", "$SYS/#", "$/#",
      "é/#", "é/+", "é/+/+", "é", "\uffff/#", "\uffff/+", "\u{10000}/#", "\u{1f600}/+/c",
      "\ud7ff/#", "\ue000/+", "\u{10ffff}/#", "x\u{10ffff}/#", "y/+", "y/\u{10ffff}",
    ];
    for (const filter of filters) {
      const got = (await subscribe(shard, unique("c"), req(filter))).map((d) => d.message.topic).sort();
      expect(got, filter).toEqual(topics.filter((t) => topicMatches(filter, t)).sort());
    }
  });
});

describe("publish fan-out", () => {
  it("delivers to every subscribed session, QoS min(message, granted), and counts them", async () => {
    const shard = newShard();
    const a = await seedSession("a");
    const b = await seedSession("b");
    await subscribe(shard, a, req("f/+", { qos: 1 }));
    await subscribe(shard, b, req("f/x", { qos: 2 }));
    expect(await shard.publish(msg("f/x", "hello", 2))).toEqual({ matched: 2 });
    const [da] = await queued(a);
    const [db] = await queued(b);
    expect([text(da!.message.payload), da!.qos, da!.retain]).toEqual(["hello", 1, false]);
    expect([text(db!.message.payload), db!.qos, db!.retain]).toEqual(["hello", 2, false]);
    expect(await shard.publish(msg("f/y", "only a", 1))).toEqual({ matched: 1 });
    expect((await queued(a)).map((d) => text(d.message.payload))).toEqual(["hello", "only a"]);
    expect(await queued(b)).toHaveLength(1);
  });

  it("matches nobody: matched 0", async () => {
    const shard = newShard();
    expect(await shard.publish(msg("nobody/here", "x", 1))).toEqual({ matched: 0 });
  });

  it("a session without a record answers live=false and the shard forgets its subscriptions", async () => {
    const shard = newShard();
    const live = await seedSession("live");
    const ghost = unique("ghost"); // never connected: SessionDO has no record
    await subscribe(shard, live, req("g/#"));
    await subscribe(shard, ghost, req("g/#"), req("g/+/x"), req("h/1"));
    expect((await shardRows(shard, "subscriptions")).filter((r) => r.client_id === ghost)).toHaveLength(3);
    expect(await shard.publish(msg("g/1/x", "m", 1))).toEqual({ matched: 1 });
    expect((await shardRows(shard, "subscriptions")).map((r) => r.client_id)).toEqual([live]);
    // Gone from the in-memory index too: the next publish does not call it.
    expect(await shard.publish(msg("h/1", "m", 1))).toEqual({ matched: 0 });
    expect(await queued(live)).toHaveLength(1);
  });

  it("overlapping subscriptions of one session: one delivery, highest QoS, every subscription identifier [MQTT-3.3.4-2] [MQTT-3.3.4-3] [MQTT-3.3.4-5]", async () => {
    const shard = newShard();
    const c = await seedSession();
    await subscribe(shard, c, req("o/+", { qos: 1, subscriptionId: 1 }), req("o/#", { qos: 2, subscriptionId: 2 }), req("o/x", { qos: 1 }));
    await subscribe(shard, c, req("+/x", { qos: 0, subscriptionId: 3 }));
    expect(await shard.publish(msg("o/x", "once", 2))).toEqual({ matched: 1 });
    const deliveries = await queued(c);
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]!.qos).toBe(2);
    expect([...deliveries[0]!.subscriptionIds!].sort()).toEqual([1, 2, 3]);
  });

  it("a subscription to the same filter replaces the previous one on the shard", async () => {
    const shard = newShard();
    const c = await seedSession();
    await subscribe(shard, c, req("same/x", { qos: 2, subscriptionId: 4 }));
    await subscribe(shard, c, req("same/x", { qos: 1 }));
    await shard.publish(msg("same/x", "m", 2));
    const [d] = await queued(c);
    expect(d!.qos).toBe(1);
    expect(d!.subscriptionIds).toBeUndefined();
    expect(await shardRows(shard, "subscriptions")).toEqual([{ filter: "same/x", client_id: c }]);
  });

  it("No Local: not delivered back to the publisher's own subscription [MQTT-3.8.3-3]", async () => {
    const shard = newShard();
    const self = await seedSession("self");
    const other = await seedSession("other");
    await subscribe(shard, self, req("n/t", { noLocal: true }));
    await subscribe(shard, other, req("n/t", { noLocal: true }));
    expect(await shard.publish(msg("n/t", "from self", 1, { origin: self }))).toEqual({ matched: 1 });
    expect(await queued(self)).toEqual([]);
    expect((await queued(other)).map((d) => text(d.message.payload))).toEqual(["from self"]);
    // From someone else, or from HTTP ingest (no origin): delivered.
    await shard.publish(msg("n/t", "from other", 1, { origin: other }));
    await shard.publish(msg("n/t", "ingest", 1));
    expect((await queued(self)).map((d) => text(d.message.payload))).toEqual(["from other", "ingest"]);
  });

  it("No Local on one subscription does not hide a match of another subscription of the same session", async () => {
    const shard = newShard();
    const c = await seedSession();
    await subscribe(shard, c, req("nl/a", { noLocal: true, subscriptionId: 1 }), req("nl/+", { subscriptionId: 2 }));
    await shard.publish(msg("nl/a", "m", 1, { origin: c }));
    const deliveries = await queued(c);
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]!.subscriptionIds).toEqual([2]);
  });

  it("Retain As Published keeps RETAIN; otherwise it is cleared on forwarding [MQTT-3.3.1-12] [MQTT-3.3.1-13]", async () => {
    const shard = newShard();
    const rap = await seedSession("rap");
    const plain = await seedSession("plain");
    await subscribe(shard, rap, req("rap/t", { retainAsPublished: true }, false));
    await subscribe(shard, plain, req("rap/t", {}, false));
    await shard.publish(msg("rap/t", "retained", 1, { retain: true }));
    await shard.publish(msg("rap/t", "not retained", 1));
    expect((await queued(rap)).map((d) => [text(d.message.payload), d.retain])).toEqual([
      ["retained", true],
      ["not retained", false],
    ]);
    expect((await queued(plain)).map((d) => [text(d.message.payload), d.retain])).toEqual([
      ["retained", false],
      ["not retained", false],
    ]);
  });

  it("a shared subscription delivers each message to exactly one member, in rotation [MQTT-4.8.2]", async () => {
    const shard = newShard();
    const members = [await seedSession("m1"), await seedSession("m2"), await seedSession("m3")];
    const outsider = await seedSession("outsider");
    for (const m of members) await subscribe(shard, m, req("$share/g/s/+"));
    await subscribe(shard, outsider, req("s/+"));
    for (let i = 0; i < 6; i++) expect(await shard.publish(msg(`s/${i}`, String(i), 1))).toEqual({ matched: 2 });
    const got = await Promise.all(members.map(queued));
    expect(got.map((list) => list.length)).toEqual([2, 2, 2]);
    expect(got.flat().map((d) => Number(text(d.message.payload))).sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(await queued(outsider)).toHaveLength(6);
  });

  // BUG (durable-objects/topic-shard.ts, publish/#deliveries): the shared member is picked
  // before delivery; when the pick is a session that no longer exists (live=false), the
  // message is dropped for the whole group (and a QoS 1 publisher gets 0x10) although a live
  // member remains. Expected to fail until publish picks again among the remaining members.
  it("a shared message picked for a session that no longer exists goes to a live member instead", async () => {
    const shard = newShard();
    const live = await seedSession("zz-live");
    const ghost = unique("aa-ghost"); // sorts first: the rotation starts with it
    await subscribe(shard, ghost, req("$share/g/dead/t"));
    await subscribe(shard, live, req("$share/g/dead/t"));
    expect(await shard.publish(msg("dead/t", "first", 1))).toEqual({ matched: 1 });
    expect((await queued(live)).map((d) => text(d.message.payload))).toEqual(["first"]);
  });

  it("two shared groups on one filter each get the message once", async () => {
    const shard = newShard();
    const g1 = [await seedSession("g1a"), await seedSession("g1b")];
    const g2 = [await seedSession("g2a")];
    for (const m of g1) await subscribe(shard, m, req("$share/one/sg/t"));
    for (const m of g2) await subscribe(shard, m, req("$share/two/sg/t"));
    expect(await shard.publish(msg("sg/t", "x", 1))).toEqual({ matched: 2 });
    expect((await Promise.all(g1.map(queued))).flat()).toHaveLength(1);
    expect(await queued(g2[0]!)).toHaveLength(1);
  });

  it("QoS 0 to an offline session is accepted (live) but not queued", async () => {
    const shard = newShard();
    const c = await seedSession();
    await subscribe(shard, c, req("q0/t"));
    expect(await shard.publish(msg("q0/t", "x", 0))).toEqual({ matched: 1 });
    expect(await queued(c)).toEqual([]);
  });

  it("unsubscribe removes the subscription from the index and the table", async () => {
    const shard = newShard();
    const c = await seedSession();
    await subscribe(shard, c, req("u/+"), req("u/x"));
    await shard.unsubscribe(c, ["u/+"]);
    expect(await shardRows(shard, "subscriptions")).toEqual([{ filter: "u/x", client_id: c }]);
    expect(await shard.publish(msg("u/y", "m", 1))).toEqual({ matched: 0 });
    expect(await shard.publish(msg("u/x", "m", 1))).toEqual({ matched: 1 });
  });
});

describe("persistence", () => {
  it("subscriptions and retained messages survive the object being evicted", async () => {
    const shard = newShard();
    const c = await seedSession();
    await subscribe(shard, c, req("p/+", { qos: 1, subscriptionId: 9, retainAsPublished: true }), req("$share/g/p/#", { qos: 2 }));
    await shard.publish(msg("p/r", "retained", 1, { retain: true }));
    await evictDurableObject(shard);

    expect(await shardRows(shard, "subscriptions")).toEqual([
      { filter: "$share/g/p/#", client_id: c },
      { filter: "p/+", client_id: c },
    ]);
    // The trie is rebuilt from SQLite on wake: options included.
    expect(await shard.publish(msg("p/x", "after restart", 2, { retain: true }))).toEqual({ matched: 1 });
    const deliveries = await queued(c);
    expect(deliveries.map((d) => [text(d.message.payload), d.qos, d.retain, d.subscriptionIds])).toEqual([
      ["retained", 1, true, [9]],
      ["after restart", 2, true, [9]],
    ]);
    const retained = await subscribe(shard, unique("c"), req("p/#"));
    expect(retained.map((d) => text(d.message.payload)).sort()).toEqual(["after restart", "retained"]);
  });
});
