/**
 * The retained-message lifecycle inside workerd: the TopicShardDO's admin RPCs (list through
 * the topic index with a cursor, get, delete, delete matching with dry run and age, count),
 * the RetainedStore (column migration, bounded clears), the stale-sweep alarm, the gauges,
 * and the /api/v1/retained routes across the real shards.
 *
 * Shard RPC tests use a shard object of their own; route tests use the real "shard-N"
 * objects with topics under a prefix unique to the test.
 */
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { QoS } from "../../core/mqtt/packets";
import type { Message } from "../../core/session/types";
import { shardOfTopic } from "../../core/topics";
import { shardCountFromEnv, shardName } from "../../durable-objects/config";
import { RetainedStore, type ListPage, type RetainedInfo } from "../../durable-objects/storage/retained-store";
import { encodeJson } from "../../durable-objects/storage/json";

let counter = 0;
const unique = (prefix: string): string => `${prefix}-${counter++}-${crypto.randomUUID().slice(0, 8)}`;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const BASE = "http://broker.test";
const ADMIN = { Authorization: "Bearer test-admin-token-0123456789" };

function newShard(name = unique("retained-shard")) {
  return env.SHARDS.get(env.SHARDS.idFromName(name));
}
type Shard = ReturnType<typeof newShard>;

function retained(topic: string, payload: string, extra: Partial<Message> = {}): Message {
  return { topic, payload: enc(payload), qos: 1 as QoS, retain: true, ...extra };
}

async function store(shard: Shard, ...messages: Message[]): Promise<void> {
  for (const m of messages) await shard.publish(m);
}

/** Every page of a shard's listing, following `last` while not `done`. */
async function listAll(shard: Shard, filter: string, limit: number, cutoff?: number): Promise<{ topics: string[]; pages: number }> {
  const topics: string[] = [];
  let after: string | undefined;
  let pages = 0;
  for (;;) {
    const page = (await shard.retainedList({ filter, cutoff, after }, limit)) as ListPage;
    pages++;
    expect(page.items.length).toBeLessThanOrEqual(limit);
    topics.push(...page.items.map((i) => i.topic));
    if (page.done) return { topics, pages };
    after = page.last;
  }
}

async function sqlCount(shard: Shard): Promise<number> {
  return runInDurableObject(shard, (_i, state) => state.storage.sql.exec(`SELECT COUNT(*) AS n FROM retained`).one().n as number);
}

/** Moves a topic's "stored at" into the past. */
async function age(shard: Shard, topic: string, ms: number): Promise<void> {
  await runInDurableObject(shard, (_i, state) => {
    state.storage.sql.exec(`UPDATE retained SET updated_at = updated_at - ? WHERE topic = ?`, ms, topic);
  });
}

describe("RetainedStore", () => {
  it("adds publisher and size to a table stored before them, filled from the messages", async () => {
    // Any object's SQLite will do: the store is plain SQL.
    const stub = env.SESSIONS.get(env.SESSIONS.idFromName(unique("migration")));
    await runInDurableObject(stub, (_i, state) => {
      const sql = state.storage.sql;
      sql.exec(`CREATE TABLE retained (topic TEXT PRIMARY KEY, message TEXT NOT NULL, expires_at INTEGER, updated_at INTEGER NOT NULL)`);
      for (const [topic, payload, origin] of [["a", "hello", "pub-1"], ["b", "xy", undefined], ["c", "\u00e9\u00e9\u00e9", "pub-2"]] as const) {
        const m = retained(topic, payload, origin ? { origin } : {});
        sql.exec(`INSERT INTO retained VALUES (?, ?, NULL, 1000)`, topic, encodeJson(m));
      }
      const s = new RetainedStore(sql);
      expect(s.count).toBe(3);
      const rows = sql.exec(`SELECT topic, publisher, size FROM retained ORDER BY topic`).toArray();
      expect(rows).toEqual([
        { topic: "a", publisher: "pub-1", size: 5 },
        { topic: "b", publisher: null, size: 2 },
        { topic: "c", publisher: "pub-2", size: 6 },
      ]);
      // A second start does not migrate again.
      expect(new RetainedStore(sql).count).toBe(3);
    });
  });

  it("counts in memory: insert +1, replace 0, delete -1; a replace rewrites one row, not the index", async () => {
    const stub = env.SESSIONS.get(env.SESSIONS.idFromName(unique("count")));
    await runInDurableObject(stub, (_i, state) => {
      let written = 0;
      const sql = {
        exec: (q: string, ...b: unknown[]) => {
          const c = state.storage.sql.exec(q, ...b);
          const rows = c.toArray();
          written += c.rowsWritten;
          return { toArray: () => rows };
        },
      };
      const s = new RetainedStore(sql);
      s.put(retained("x/1", "a"), 1);
      s.put(retained("x/2", "b"), 1);
      expect(s.count).toBe(2);
      written = 0;
      s.put(retained("x/1", "c", { origin: "p" }), 2);
      expect(s.count).toBe(2);
      expect(written, "an update in place: the table row only").toBe(1);
      expect(s.get("x/1", 3)).toMatchObject({ publisher: "p", size: 1, storedAt: 2 });
      expect(s.delete("x/1")).toBe(true);
      expect(s.delete("x/1")).toBe(false);
      expect(s.count).toBe(1);
    });
  });

  it("a clear walks a bounded number of rows per call and resumes from its last topic", async () => {
    const stub = env.SESSIONS.get(env.SESSIONS.idFromName(unique("clear")));
    await runInDurableObject(stub, (_i, state) => {
      const s = new RetainedStore(state.storage.sql);
      for (let i = 0; i < 1200; i++) s.put(retained(`k/${String(i).padStart(4, "0")}`, "v"), 1);
      s.put(retained("other/1", "v"), 1);
      let after: string | undefined;
      let calls = 0;
      let matched = 0;
      for (;;) {
        const r = s.clear({ filter: "k/+", after }, true, 10, 250);
        calls++;
        matched += r.matched;
        expect(r.cleared).toBe(0);
        if (r.done) break;
        after = r.last;
      }
      expect(matched).toBe(1200);
      expect(calls).toBe(5); // 250 rows walked per call; the last finds the range exhausted
      expect(s.count).toBe(1201);
      const all = s.clear({ filter: "k/#" }, false, 10, 100_000);
      expect(all).toMatchObject({ matched: 1200, cleared: 1200, done: true });
      expect(s.count).toBe(1);
    });
  });
});

describe("TopicShardDO retained admin RPCs", () => {
  const topics = ["a", "a/b", "a/b/c", "a/bc", "a/x/c", "a/\u00e9", "a/\u{1F600}/c", "b/1", "$SYS/x", "a/b/c/d"];

  it("lists through the topic index in UTF-8 order, every match exactly once over pages of any size", async () => {
    const shard = newShard();
    await store(shard, ...topics.map((t) => retained(t, `p-${t}`)));
    for (const filter of ["#", "a/#", "a/+/c", "+/b/#", "$SYS/#", "a/b", "nothing/#"]) {
      const expected = topics.filter((t) => matchesFilter(filter, t));
      for (const limit of [1, 2, 3, 100]) {
        const { topics: got } = await listAll(shard, filter, limit);
        expect(new Set(got).size, `${filter} limit ${limit}: no duplicates`).toBe(got.length);
        expect([...got].sort(), `${filter} limit ${limit}`).toEqual([...expected].sort());
        expect(got, "topic order").toEqual([...got].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))));
      }
    }
  });

  it("lists each message with payload, size, stored at, expiry, publisher and properties", async () => {
    const shard = newShard();
    const before = Date.now();
    const expiresAt = Date.now() + 60_000;
    await store(
      shard,
      retained("m/1", "h\u00e9llo", { origin: "pub-9", qos: 2, messageId: "q2", expiresAt, properties: { contentType: "text/plain", userProperties: [["k", "v"], ["k", "w"]] } }),
    );
    const page = (await shard.retainedList({ filter: "m/1" }, 10)) as ListPage;
    expect(page.done).toBe(true);
    const [item] = page.items as RetainedInfo[];
    expect(item).toMatchObject({ topic: "m/1", publisher: "pub-9", size: 6, expiresAt });
    expect(item!.storedAt).toBeGreaterThanOrEqual(before);
    expect(text(item!.message.payload)).toBe("h\u00e9llo");
    expect(item!.message.qos).toBe(2);
    expect(item!.message.messageId, "stored without the live QoS 2 identifier").toBeUndefined();
    expect(item!.message.properties?.userProperties).toEqual([["k", "v"], ["k", "w"]]);
  });

  it("expired messages are neither listed, got nor counted, and are removed [MQTT-3.3.2-5]", async () => {
    const shard = newShard();
    await store(shard, retained("e/live", "x"), retained("e/gone", "x", { expiresAt: Date.now() + 50 }), retained("e/gone2", "x", { expiresAt: Date.now() + 50 }));
    expect(await shard.retainedCount()).toBe(3);
    await sleep(80);
    expect(await shard.retainedDelete("e/gone2"), "an expired message is not there to delete").toBe(false);
    expect((await listAll(shard, "e/#", 10)).topics).toEqual(["e/live"]);
    expect(await shard.retainedGet("e/gone")).toBeNull();
    expect(await shard.retainedClear({ filter: "#" }, true)).toMatchObject({ matched: 1, cleared: 0, done: true });
    expect(await shard.retainedCount()).toBe(1);
    expect(await sqlCount(shard)).toBe(1);
  });

  it("get, delete one, and the count follow publishes, replacements and empty retained payloads", async () => {
    const shard = newShard();
    await store(shard, retained("g/1", "one"), retained("g/2", "two"), retained("g/1", "uno"));
    expect(await shard.retainedCount()).toBe(2);
    const got = (await shard.retainedGet("g/1")) as RetainedInfo;
    expect(text(got.message.payload)).toBe("uno");
    expect(await shard.retainedGet("g/none")).toBeNull();
    expect(await shard.retainedDelete("g/1")).toBe(true);
    expect(await shard.retainedDelete("g/1")).toBe(false);
    await store(shard, retained("g/2", "")); // [MQTT-3.3.1-6]
    expect(await shard.retainedCount()).toBe(0);
    expect(await sqlCount(shard)).toBe(0);
  });

  it("delete matching: a dry run counts and clears nothing; then exactly the matching ones go", async () => {
    const shard = newShard();
    await store(shard, ...topics.map((t) => retained(t, "v")));
    const dry = await shard.retainedClear({ filter: "a/+/c" }, true);
    expect(dry).toMatchObject({ matched: 3, cleared: 0, done: true }); // a/b/c, a/x/c, a/😀/c
    expect(await shard.retainedCount()).toBe(topics.length);
    const real = await shard.retainedClear({ filter: "a/+/c" }, false);
    expect(real.cleared).toBe(real.matched);
    expect((await listAll(shard, "#", 100)).topics.sort()).toEqual(topics.filter((t) => !matchesFilter("a/+/c", t) && !t.startsWith("$")).sort());
    expect(await shard.retainedCount()).toBe(topics.length - real.cleared);
  });

  it("older than: only messages stored at or before the cutoff are listed and cleared", async () => {
    const shard = newShard();
    await store(shard, retained("o/old1", "v"), retained("o/old2", "v"), retained("o/new", "v"));
    await age(shard, "o/old1", 120_000);
    await age(shard, "o/old2", 120_000);
    const cutoff = Date.now() - 60_000;
    expect((await listAll(shard, "o/#", 10, cutoff)).topics).toEqual(["o/old1", "o/old2"]);
    expect(await shard.retainedClear({ filter: "o/#", cutoff }, false)).toMatchObject({ matched: 2, cleared: 2 });
    expect((await listAll(shard, "o/#", 10)).topics).toEqual(["o/new"]);
  });

  it("# does not reach $ topics; $SYS/# does [MQTT-4.7.2-1]", async () => {
    const shard = newShard();
    await store(shard, retained("$SYS/old", "v"), retained("plain/old", "v"));
    expect(await shard.retainedClear({ filter: "#" }, true)).toMatchObject({ matched: 1 });
    expect(await shard.retainedClear({ filter: "$SYS/#" }, true)).toMatchObject({ matched: 1 });
  });

  it("the SUBSCRIBE path still reads only the rows under the filter", async () => {
    const shard = newShard();
    await store(shard, ...Array.from({ length: 50 }, (_, i) => retained(`noise/${i}`, "v")), retained("wanted/1", "v"));
    const deliveries = await shard.subscribe(unique("c"), [
      { subscription: { filter: "wanted/#", qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }, wantRetained: true },
    ]);
    expect(deliveries.map((d) => d.message.topic)).toEqual(["wanted/1"]);
  });
});

describe("stale sweep alarm", () => {
  it("clears the messages older than RETAINED_MAX_AGE (not $ topics), keeps the rest, re-arms every RETAINED_SWEEP_INTERVAL", async () => {
    const shard = newShard();
    await store(shard, retained("s/old", "v"), retained("$SYS/old", "v"), retained("s/new", "v"));
    await age(shard, "s/old", 7_200_000);
    await age(shard, "$SYS/old", 7_200_000);
    await runInDurableObject(shard, async (instance, state) => {
      // The sweeper is off in wrangler.toml; this object runs with it on.
      (instance as unknown as { env: Record<string, unknown> }).env = { ...env, RETAINED_MAX_AGE: "3600", RETAINED_SWEEP_INTERVAL: "600" };
      await state.storage.setAlarm(Date.now() + 60_000);
    });
    expect(await runDurableObjectAlarm(shard)).toBe(true);
    expect((await listAll(shard, "#", 10)).topics).toEqual(["s/new"]);
    expect((await listAll(shard, "$SYS/#", 10)).topics, "the broker's own topics are not swept").toEqual(["$SYS/old"]);
    expect(await shard.retainedCount()).toBe(2);
    const next = await runInDurableObject(shard, (_i, state) => state.storage.getAlarm());
    expect(next).not.toBeNull();
    expect(next! - Date.now()).toBeGreaterThan(500_000);
    expect(next! - Date.now()).toBeLessThanOrEqual(600_000);
  });

  it("a shard past the rows one alarm walks is swept in slices, a second apart, each going on where the last stopped", async () => {
    const name = unique("big-shard");
    const shard = newShard(name);
    await store(shard, retained("zz/new", "v"));
    await runInDurableObject(shard, (_i, state) => {
      // 150,000 messages in one statement (the store's count is read again below): the first
      // 100,000 (in topic order) young, the last 50,000 old, so the old ones are only reached
      // by a second slice that goes on after the first.
      state.storage.sql.exec(
        `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 149999)
         INSERT INTO retained (topic, message, expires_at, updated_at, publisher, size)
         SELECT 'bulk/' || printf('%06d', i), '{}', NULL, CASE WHEN i < 100000 THEN ? ELSE 0 END, NULL, 1 FROM n`,
        Date.now(),
      );
    });
    await evictDurableObject(shard);
    const sweeping = async () =>
      runInDurableObject(shard, async (instance, state) => {
        (instance as unknown as { env: Record<string, unknown> }).env = { ...env, RETAINED_MAX_AGE: "3600", RETAINED_SWEEP_INTERVAL: "600" };
        if ((await state.storage.getAlarm()) === null) await state.storage.setAlarm(Date.now() + 60_000);
      });
    await sweeping();
    expect(await shard.retainedCount()).toBe(150_001);
    expect(await runDurableObjectAlarm(shard)).toBe(true);
    expect(await shard.retainedCount(), "the first slice: 100,000 young rows walked, none old").toBe(150_001);
    let next = await runInDurableObject(shard, (_i, state) => state.storage.getAlarm());
    expect(next! - Date.now(), "the next slice a second later").toBeLessThanOrEqual(1_000);
    await sweeping();
    expect(await runDurableObjectAlarm(shard)).toBe(true);
    expect(await shard.retainedCount(), "the second slice cleared the 50,000 old ones").toBe(100_001);
    next = await runInDurableObject(shard, (_i, state) => state.storage.getAlarm());
    expect(next! - Date.now(), "done: the next sweep after the interval").toBeGreaterThan(500_000);
    // Down again, so the retained gauge of this shard does not keep the metrics' alert raised.
    let r = await shard.retainedClear({ filter: "bulk/#" }, false);
    while (!r.done) r = await shard.retainedClear({ filter: "bulk/#", after: r.last }, false);
    expect(await shard.retainedCount()).toBe(1);
  }, 60_000);

  it("with the sweeper off the alarm clears nothing and is not re-armed", async () => {
    const shard = newShard();
    await store(shard, retained("s/old", "v"));
    await age(shard, "s/old", 7_200_000);
    await runInDurableObject(shard, (_i, state) => state.storage.setAlarm(Date.now() + 60_000));
    expect(await runDurableObjectAlarm(shard)).toBe(true);
    expect(await shard.retainedCount(), "nothing cleared").toBe(1);
    expect(await runInDurableObject(shard, (_i, state) => state.storage.getAlarm())).toBeNull();
  });
});

describe("gauges", () => {
  it("each shard reports its retained and subscriptions counts, labelled with its name", async () => {
    const name = unique("gauge-shard");
    const shard = newShard(name);
    await store(shard, retained("gg/1", "v"), retained("gg/2", "v"), retained("gg/3", "v"), retained("gg/2", ""));
    await shard.subscribe(unique("c"), [
      { subscription: { filter: "gg/#", qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }, wantRetained: false },
      { subscription: { filter: "gg/exact", qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }, wantRetained: false },
    ]);
    const metrics = env.METRICS.get(env.METRICS.idFromName("metrics"));
    let gauges: { retained: { byShard: Record<string, number> }; subscriptions: { byShard: Record<string, number> } } | undefined;
    for (let i = 0; i < 40; i++) {
      await sleep(100);
      gauges = ((await metrics.snapshot()) as unknown as { gauges: typeof gauges }).gauges;
      if (gauges?.retained.byShard[name] !== undefined && gauges.subscriptions.byShard[name] !== undefined) break;
    }
    expect(gauges?.retained.byShard[name]).toBe(2);
    // The exact filter only: a wildcard filter is on every shard and counted by shard-0 alone.
    expect(gauges?.subscriptions.byShard[name]).toBe(1);
  });
});

// ----------------------------------------------------------------------------- routes

function api(method: string, path: string, headers: HeadersInit = ADMIN): Promise<Response> {
  return exports.default.fetch(new Request(`${BASE}/api/v1/retained${path}`, { method, headers }));
}

async function problem(res: Response, status: number, type?: string): Promise<Record<string, unknown>> {
  expect(res.status).toBe(status);
  expect(res.headers.get("Content-Type")).toBe("application/problem+json");
  const body = (await res.json()) as Record<string, unknown>;
  if (type) expect(body.type).toBe(`urn:edge-mqtt:problem:${type}`);
  return body;
}

/** Stores retained messages on the real shards ("shard-N"), each on its topic's shard. */
async function storeEverywhere(...messages: Message[]): Promise<void> {
  const n = shardCountFromEnv(env);
  for (const m of messages) await env.SHARDS.get(env.SHARDS.idFromName(shardName(shardOfTopic(m.topic, n)))).publish(m);
}

interface Page {
  items: Array<Record<string, unknown> & { topic: string }>;
  next_cursor: string | null;
}

describe("/api/v1/retained", () => {
  it("lists across every shard in pages; each message once", async () => {
    const base = unique("r");
    const topics = Array.from({ length: 23 }, (_, i) => `${base}/t${i}`);
    await storeEverywhere(...topics.map((t) => retained(t, `p-${t}`)));
    expect(new Set(topics.map((t) => shardOfTopic(t, shardCountFromEnv(env)))).size, "spread over several shards").toBeGreaterThan(3);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q = new URLSearchParams({ filter: `${base}/+`, limit: "4" });
      if (cursor) q.set("cursor", cursor);
      const res = await api("GET", `?${q}`);
      expect(res.status).toBe(200);
      const page = (await res.json()) as Page;
      expect(page.items.length).toBeLessThanOrEqual(4);
      seen.push(...page.items.map((i) => i.topic));
      cursor = page.next_cursor;
      pages++;
    } while (cursor && pages < 50);
    expect(seen.sort()).toEqual([...topics].sort());
    expect(pages).toBeGreaterThanOrEqual(6);
  });

  it("shows one message with its fields; deletes it; 404 after", async () => {
    const topic = `${unique("one")}/dev/state`;
    const expiresAt = Date.now() + 3_600_000;
    await storeEverywhere(
      retained(topic, '{"t":1}', {
        origin: "dev-1",
        expiresAt,
        properties: { contentType: "application/json", correlationData: new Uint8Array([0xff, 0]), userProperties: [["a", "1"]] },
      }),
    );
    const res = await api("GET", `/${topic}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      topic,
      payload: btoa('{"t":1}'),
      payload_text: '{"t":1}',
      size: 7,
      qos: 1,
      publisher: "dev-1",
      expires_at: new Date(expiresAt).toISOString(),
      properties: { content_type: "application/json", correlation_data: "/wA=", user_properties: [{ name: "a", value: "1" }] },
    });
    expect(Date.parse(body.stored_at as string)).toBeGreaterThan(Date.now() - 60_000);
    expect((body.properties as Record<string, number>).message_expiry_interval).toBeGreaterThan(3590);

    expect((await api("DELETE", `/${topic}`)).status).toBe(204);
    await problem(await api("GET", `/${topic}`), 404, "not-found");
    await problem(await api("DELETE", `/${topic}`), 404, "not-found");
  });

  it("a binary payload has no payload_text; a topic with encoded characters is found", async () => {
    const topic = `${unique("bin")}/a b/%/\u00e9`;
    await storeEverywhere({ topic, payload: new Uint8Array([0xc3, 0x28]), qos: 0, retain: true });
    const res = await api("GET", `/${topic.split("/").map(encodeURIComponent).join("/")}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body.payload).toBe("wyg=");
    expect(body).not.toHaveProperty("payload_text");
  });

  it("delete matching: dry run, older_than, then the real thing; exactly the matching ones", async () => {
    const base = unique("del");
    const keep = Array.from({ length: 6 }, (_, i) => `${base}/keep/${i}`);
    const drop = Array.from({ length: 9 }, (_, i) => `${base}/drop/${i}`);
    await storeEverywhere(...[...keep, ...drop].map((t) => retained(t, "v")));
    const filter = encodeURIComponent(`${base}/drop/#`);

    let res = await api("DELETE", `?filter=${filter}&dry_run=true`);
    expect(await res.json()).toEqual({ matched: 9, cleared: 0, dry_run: true });
    res = await api("DELETE", `?filter=${filter}&older_than=3600`);
    expect(await res.json()).toEqual({ matched: 0, cleared: 0, dry_run: false });
    res = await api("DELETE", `?filter=${filter}`);
    expect(await res.json()).toEqual({ matched: 9, cleared: 9, dry_run: false });

    const page = (await (await api("GET", `?filter=${encodeURIComponent(`${base}/#`)}&limit=1000`)).json()) as Page;
    expect(page.items.map((i) => i.topic).sort()).toEqual([...keep].sort());
  });

  it("sweep: older_than or RETAINED_MAX_AGE; refused when neither", async () => {
    await problem(await api("POST", "/sweep"), 400, "max-age-required");
    const res = await api("POST", "/sweep?older_than=315360000&dry_run=true"); // ten years: nothing that old
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ matched: 0, cleared: 0, dry_run: true, older_than: 315360000 });
  });

  it("refusals: token, filter, topic, cursor, limit", async () => {
    await problem(await api("GET", "", {}), 401, "unauthorized");
    await problem(await api("GET", "", { Authorization: "Bearer wrong" }), 401, "unauthorized");
    await problem(await api("DELETE", "?filter=%23", {}), 401, "unauthorized");
    await problem(await api("GET", "/a/b", {}), 401, "unauthorized");
    await problem(await api("DELETE", ""), 400, "filter-required");
    await problem(await api("DELETE", "?filter=a/%23/b"), 400, "invalid-topic-filter");
    await problem(await api("GET", "?filter=a%2B/b"), 400, "invalid-topic-filter");
    await problem(await api("GET", "?filter=%24share/g/a"), 400, "invalid-topic-filter");
    await problem(await api("GET", "/a/%2B/b"), 400, "invalid-topic");
    await problem(await api("GET", "?cursor=garbage"), 400, "invalid-cursor");
    await problem(await api("GET", "?limit=0"), 400, "invalid-request");
    await problem(await api("GET", "?limit=1001"), 400, "invalid-request");
    await problem(await api("GET", "?older_than=-1"), 400, "invalid-request");
    await problem(await api("DELETE", "?filter=%23&dry_run=maybe"), 400, "invalid-request");
    // A cursor of one filter is refused with another.
    const base = unique("cur");
    await storeEverywhere(...Array.from({ length: 3 }, (_, i) => retained(`${base}/${i}`, "v")));
    const page = (await (await api("GET", `?filter=${encodeURIComponent(`${base}/#`)}&limit=1`)).json()) as Page;
    expect(page.next_cursor).toBeTruthy();
    await problem(await api("GET", `?filter=other/%23&cursor=${page.next_cursor}`), 400, "invalid-cursor");
  });

  it("is described in the OpenAPI document, topic paths as /retained/{topic}", async () => {
    const doc = (await (await exports.default.fetch(new Request(`${BASE}/api/v1/openapi.json`))).json()) as { paths: Record<string, Record<string, unknown>> };
    // Paths are relative to the API's root, /api/v1.
    expect(Object.keys(doc.paths["/retained"] ?? {}).sort()).toEqual(["delete", "get"]);
    expect(Object.keys(doc.paths["/retained/{topic}"] ?? {}).sort()).toEqual(["delete", "get"]);
    expect(Object.keys(doc.paths["/retained/sweep"] ?? {})).toEqual(["post"]);
    expect(JSON.stringify(doc.paths), "no Hono pattern leaks into the document").not.toContain("{.+}");
  });
});

/** MQTT matching for the expectations (the implementation's topicMatches is what is tested). */
function matchesFilter(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  if (topic.startsWith("$") && (f[0] === "+" || f[0] === "#")) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}
