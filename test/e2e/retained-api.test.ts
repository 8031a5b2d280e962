// The retained-message lifecycle over HTTP against a real broker (as `npm start` runs it, 8
// shards): messages retained with MQTT.js, listed in pages across shards, got, deleted one
// by one and by filter (dry run, older_than), swept by age on demand and on schedule; a new
// MQTT subscriber then gets exactly what is left.
import { afterEach, describe, expect, it } from "vitest";
import { shardOfTopic } from "../../core/topics";
import { ADMIN_AUTH, useBroker, type TestBroker } from "./broker";
import { closeAll, connect, sleep, topicBase } from "./clients";

afterEach(closeAll);

const SHARDS = 8;

interface Item {
  topic: string;
  payload: string;
  payload_text?: string;
  size: number;
  qos: number;
  stored_at: string;
  expires_at: string | null;
  publisher: string | null;
  properties: Record<string, unknown>;
}
interface Page {
  items: Item[];
  next_cursor: string | null;
}

async function api(b: TestBroker, method: string, path: string, headers: Record<string, string> = ADMIN_AUTH): Promise<Response> {
  return fetch(`${b.httpUrl}/api/v1/retained${path}`, { method, headers });
}

async function json<T>(res: Response, status = 200): Promise<T> {
  const body = await res.text();
  expect(res.status, body).toBe(status);
  return JSON.parse(body) as T;
}

/** Every page of a listing; fails on a repeated topic. */
async function listAll(b: TestBroker, filter: string, limit: number, extra = ""): Promise<{ items: Item[]; pages: number }> {
  const items: Item[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const q = `?filter=${encodeURIComponent(filter)}&limit=${limit}${extra}${cursor ? `&cursor=${cursor}` : ""}`;
    const page: Page = await json<Page>(await api(b, "GET", q));
    expect(page.items.length).toBeLessThanOrEqual(limit);
    items.push(...page.items);
    cursor = page.next_cursor;
    pages++;
    if (pages > 500) throw new Error("the listing never ends");
  } while (cursor);
  const topics = items.map((i) => i.topic);
  expect(new Set(topics).size, "every message comes exactly once").toBe(topics.length);
  return { items, pages };
}

async function retainAll(b: TestBroker, topics: string[], payload: (t: string) => string = (t) => `v:${t}`): Promise<string> {
  const pub = await connect(b.url, { version: 5 });
  for (const t of topics) await pub.publish(t, payload(t), { qos: 1, retain: true });
  await pub.end();
  return pub.clientId;
}

/** What a new subscriber to `filter` receives as retained messages. */
async function retainedOnSubscribe(b: TestBroker, filter: string, expected: number): Promise<string[]> {
  const sub = await connect(b.url, { version: 5 });
  await sub.subscribe(filter, { qos: 1 });
  if (expected > 0) await sub.inbox.waitFor(expected, 10_000);
  await sub.inbox.settle(700);
  return sub.inbox.topics().sort();
}

describe("retained API (sweeper off)", () => {
  const broker = useBroker({ vars: { MAX_PUBLISH_RATE: "0" } });

  it("lists every retained message across shards, in small pages, each exactly once, with its fields", async () => {
    const base = topicBase("list");
    const topics = Array.from({ length: 60 }, (_, i) => `${base}/d${i}/state`);
    const before = Date.now();
    const publisher = await retainAll(broker(), [...topics, `${base}/d0/other`]);
    expect(new Set(topics.map((t) => shardOfTopic(t, SHARDS))).size, "on every shard").toBe(SHARDS);

    const { items, pages } = await listAll(broker(), `${base}/+/state`, 7);
    expect(items.map((i) => i.topic).sort()).toEqual([...topics].sort());
    expect(pages).toBeGreaterThanOrEqual(9);
    for (const item of items) {
      expect(item.payload_text).toBe(`v:${item.topic}`);
      expect(Buffer.from(item.payload, "base64").toString()).toBe(`v:${item.topic}`);
      expect(item.size).toBe(Buffer.byteLength(`v:${item.topic}`));
      expect(item.qos).toBe(1);
      expect(item.publisher).toBe(publisher);
      expect(item.expires_at).toBeNull();
      expect(Date.parse(item.stored_at)).toBeGreaterThanOrEqual(before - 1000);
    }
    // The default filter, `#`, sees them too (with whatever else the broker holds).
    const all = await listAll(broker(), "#", 1000);
    expect(all.items.filter((i) => i.topic.startsWith(`${base}/`)).length).toBe(61);
  });

  it("get and delete one; a new subscriber no longer gets it", async () => {
    const base = topicBase("one");
    await retainAll(broker(), [`${base}/a`, `${base}/b`]);
    const item = await json<Item>(await api(broker(), "GET", `/${base}/a`));
    expect(item).toMatchObject({ topic: `${base}/a`, payload_text: `v:${base}/a` });
    expect((await api(broker(), "DELETE", `/${base}/a`)).status).toBe(204);
    expect((await api(broker(), "GET", `/${base}/a`)).status).toBe(404);
    expect((await api(broker(), "DELETE", `/${base}/a`)).status).toBe(404);
    expect(await retainedOnSubscribe(broker(), `${base}/#`, 1)).toEqual([`${base}/b`]);
  });

  it("a filter delete clears exactly the matching messages across shards; its dry run clears nothing", async () => {
    const base = topicBase("del");
    const doomed = Array.from({ length: 24 }, (_, i) => `${base}/site-a/dev${i}/t`);
    const kept = [...Array.from({ length: 16 }, (_, i) => `${base}/site-b/dev${i}/t`), `${base}/site-a/dev0/humidity`, `${base}/site-a`];
    await retainAll(broker(), [...doomed, ...kept]);
    const filter = encodeURIComponent(`${base}/site-a/+/t`);

    expect(await json(await api(broker(), "DELETE", `?filter=${filter}&dry_run=true`))).toEqual({ matched: 24, cleared: 0, dry_run: true });
    expect((await listAll(broker(), `${base}/#`, 100)).items.length, "the dry run cleared nothing").toBe(42);

    expect(await json(await api(broker(), "DELETE", `?filter=${filter}`))).toEqual({ matched: 24, cleared: 24, dry_run: false });
    expect((await listAll(broker(), `${base}/#`, 5)).items.map((i) => i.topic).sort()).toEqual([...kept].sort());
    expect(await retainedOnSubscribe(broker(), `${base}/#`, kept.length)).toEqual([...kept].sort());
    // Again: nothing left to match.
    expect(await json(await api(broker(), "DELETE", `?filter=${filter}`))).toEqual({ matched: 0, cleared: 0, dry_run: false });
  });

  it("older_than selects by stored-at, in listings and deletes", async () => {
    const base = topicBase("age");
    const old = Array.from({ length: 10 }, (_, i) => `${base}/old${i}`);
    const fresh = Array.from({ length: 10 }, (_, i) => `${base}/new${i}`);
    await retainAll(broker(), old);
    await sleep(2_500);
    await retainAll(broker(), fresh);
    const filter = encodeURIComponent(`${base}/#`);
    expect((await listAll(broker(), `${base}/#`, 3, "&older_than=2")).items.map((i) => i.topic).sort()).toEqual([...old].sort());
    expect(await json(await api(broker(), "DELETE", `?filter=${filter}&older_than=2`))).toEqual({ matched: 10, cleared: 10, dry_run: false });
    expect(await retainedOnSubscribe(broker(), `${base}/#`, 10)).toEqual([...fresh].sort());
  });

  it("refusals: no token, wrong token, bad filter, no filter on a bulk delete, wildcard in a topic, bad cursor", async () => {
    const b = broker();
    const problem = async (res: Response, status: number, type: string) => {
      expect(res.status).toBe(status);
      expect(res.headers.get("content-type")).toBe("application/problem+json");
      expect(((await res.json()) as { type: string }).type).toBe(`urn:edge-mqtt:problem:${type}`);
    };
    await problem(await api(b, "GET", "", {}), 401, "unauthorized");
    await problem(await api(b, "DELETE", "?filter=%23", { Authorization: "Bearer nope" }), 401, "unauthorized");
    await problem(await api(b, "POST", "/sweep?older_than=1", {}), 401, "unauthorized");
    await problem(await api(b, "GET", "?filter=a/%23/b"), 400, "invalid-topic-filter");
    await problem(await api(b, "DELETE", "?filter=sport%2B"), 400, "invalid-topic-filter");
    await problem(await api(b, "DELETE", ""), 400, "filter-required");
    await problem(await api(b, "GET", "/a/%2B/b"), 400, "invalid-topic");
    await problem(await api(b, "GET", "?cursor=xyz"), 400, "invalid-cursor");
    await problem(await api(b, "POST", "/sweep"), 400, "max-age-required");
    // Nothing was cleared by any of them.
    const base = topicBase("ref");
    await retainAll(b, [`${base}/x`]);
    await problem(await api(b, "DELETE", `?filter=${encodeURIComponent(`${base}/#`)}`, {}), 401, "unauthorized");
    expect((await api(b, "GET", `/${base}/x`)).status).toBe(200);
  });
});

describe("retained API: stale sweep (RETAINED_MAX_AGE 4 s, every second)", () => {
  const broker = useBroker({ vars: { MAX_PUBLISH_RATE: "0", RETAINED_MAX_AGE: "4", RETAINED_SWEEP_INTERVAL: "1" } });

  it("POST /sweep with older_than: the dry run counts, the sweep clears exactly the old ones", async () => {
    const base = topicBase("sweep");
    const old = Array.from({ length: 12 }, (_, i) => `${base}/old/${i}`);
    const fresh = Array.from({ length: 12 }, (_, i) => `${base}/new/${i}`);
    await retainAll(broker(), old);
    await sleep(1_500);
    await retainAll(broker(), fresh);
    // The first test on this broker: nothing else is stored, so the sweep's totals are ours.
    expect(await json(await api(broker(), "POST", "/sweep?older_than=1&dry_run=true"))).toEqual({ matched: 12, cleared: 0, dry_run: true, older_than: 1 });
    expect((await listAll(broker(), `${base}/#`, 50)).items.length).toBe(24);
    expect(await json(await api(broker(), "POST", "/sweep?older_than=1"))).toEqual({ matched: 12, cleared: 12, dry_run: false, older_than: 1 });
    expect((await listAll(broker(), `${base}/#`, 50)).items.map((i) => i.topic).sort()).toEqual([...fresh].sort());
    // Without older_than the sweep uses RETAINED_MAX_AGE.
    expect(await json<{ older_than: number }>(await api(broker(), "POST", "/sweep?dry_run=true"))).toMatchObject({ older_than: 4 });
  });

  it("the scheduled sweep clears the messages older than RETAINED_MAX_AGE and keeps the younger ones", async () => {
    const base = topicBase("sched");
    const old = Array.from({ length: 12 }, (_, i) => `${base}/old/${i}`);
    const fresh = Array.from({ length: 12 }, (_, i) => `${base}/new/${i}`);
    await retainAll(broker(), old);
    const oldAt = Date.now();
    await sleep(2_500);
    await retainAll(broker(), fresh);
    const freshAt = Date.now();
    // Old ones go 4 s after they were stored, at the next sweep (every second); the fresh ones
    // are 4 s old only 2.5 s later.
    let left: string[] = [];
    while (Date.now() - oldAt < 12_000) {
      left = (await listAll(broker(), `${base}/#`, 100)).items.map((i) => i.topic);
      if (!left.some((t) => t.includes("/old/"))) break;
      await sleep(200);
    }
    const observedAt = Date.now();
    expect(left.filter((t) => t.includes("/old/")), "old ones swept").toEqual([]);
    if (observedAt - freshAt < 4_000) expect(left.sort()).toEqual([...fresh].sort());
    else expect.soft(observedAt - freshAt, "the machine was too slow to see the fresh ones before they aged").toBeLessThan(4_000);
    expect(broker().output()).toMatch(/retained sweep shard-\d: \d+ message\(s\) older than 4 s found, \d+ cleared/);
  });
});
