// ACL decisions end to end, with MQTT.js against a broker started as `npm start` starts it,
// users and rules made through the admin API (/api/v1/credentials, /api/v1/acl): publish,
// subscribe (one filter of several), retained and live delivery, Wills, %c and %u, the
// default with ALLOW_ANONYMOUS off and on, $SYS and $ topics, and a rule change reaching a
// live session within ACL_CACHE_SECONDS. 3.1.1 and 5.0 both.
import { afterEach, describe, expect, it } from "vitest";
import { ADMIN_AUTH, useBroker, type TestBroker } from "./broker";
import { VERSIONS, closeAll, connect, sleep, topicBase, uid, type Conn, type ConnectOptions, type Version } from "./clients";

afterEach(closeAll);

/** Quiet period used to assert that something does NOT arrive. */
const QUIET_MS = 600;
const NOT_AUTHORIZED = 0x87;
const SUBACK_FAILURE_311 = 0x80;
const PASSWORD = "a long enough password";
/** ACL_CACHE_SECONDS of these brokers. */
const ACL_CACHE_SECONDS = 1;

const VARS = {
  ACL_CACHE_SECONDS: String(ACL_CACHE_SECONDS),
  AUTH_CACHE_SECONDS: "1",
  PBKDF2_ITERATIONS: "1000",
  MAX_PUBLISH_RATE: "0",
  HTTP_PUBLISH_RATE: "0",
};

// ------------------------------------------------------------------------------ helpers

async function adminApi(b: TestBroker, method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${b.httpUrl}/api/v1${path}`, {
    method,
    headers: { ...ADMIN_AUTH, ...(body !== undefined && { "Content-Type": "application/json" }) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
}

async function createUser(b: TestBroker, username: string, admin = false): Promise<void> {
  const res = await adminApi(b, "POST", "/credentials", { username, password: PASSWORD, ...(admin && { admin }) });
  if (res.status !== 201) throw new Error(`creating ${username}: ${res.status} ${await res.text()}`);
}

interface RuleBody {
  username?: string;
  clientid?: string;
  topic: string;
  action: "publish" | "subscribe" | "all";
  allow: boolean;
}

async function addRule(b: TestBroker, rule: RuleBody): Promise<number> {
  const res = await adminApi(b, "POST", "/acl", rule);
  if (res.status !== 201) throw new Error(`rule ${JSON.stringify(rule)}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: number }).id;
}

async function deleteRule(b: TestBroker, id: number): Promise<void> {
  const res = await adminApi(b, "DELETE", `/acl/${id}`);
  if (res.status !== 204) throw new Error(`deleting rule ${id}: ${res.status} ${await res.text()}`);
}

/** A user with a password and its rules (the rules name it). */
async function user(b: TestBroker, prefix: string, rules: Array<Omit<RuleBody, "username">> = [], admin = false): Promise<string> {
  const username = uid(prefix);
  await createUser(b, username, admin);
  for (const r of rules) await addRule(b, { ...r, username });
  return username;
}

function login(b: TestBroker, version: Version, username: string, extra: Partial<ConnectOptions> = {}): Promise<Conn> {
  return connect(b.url, { version, username, password: PASSWORD, label: `${username} (v${version})`, ...extra });
}

/** The CONNACK code of a refused CONNECT (MQTT.js rejects with it as `code`). */
async function refusedCode(promise: Promise<Conn>): Promise<number | undefined> {
  try {
    await promise;
  } catch (err) {
    return (err as { code?: number }).code;
  }
  throw new Error("the CONNECT was accepted");
}

/** The reason code a QoS 1/2 PUBLISH was answered with: 0 when accepted (3.1.1 always). */
async function publishCode(c: Conn, topic: string, payload: string, qos: 1 | 2 = 1): Promise<number> {
  try {
    await c.publish(topic, payload, { qos });
    return 0;
  } catch (err) {
    const code = (err as { code?: number }).code;
    if (typeof code !== "number") throw err;
    return code;
  }
}

type Filters = Parameters<Conn["subscribe"]>[0];

/** The SUBACK codes of a SUBSCRIBE, refused filters included (MQTT.js rejects when one is refused). */
async function granted(c: Conn, filters: Filters, qos: 0 | 1 | 2 = 1): Promise<number[]> {
  try {
    return await c.subscribe(filters, { qos });
  } catch (err) {
    const codes = (err as { packet?: { granted?: number[] } }).packet?.granted;
    if (!codes) throw err;
    return codes;
  }
}

/** The code a denied SUBSCRIBE filter gets: 0x87 in 5.0, 0x80 in 3.1.1 [MQTT-3.9.3-2]. */
const subscribeRefused = (version: Version) => (version === 5 ? NOT_AUTHORIZED : SUBACK_FAILURE_311);

/** Polls `attempt` until it returns true: a rule change reaches a live session within ACL_CACHE_SECONDS. */
async function eventually(what: string, attempt: () => Promise<boolean>, timeoutMs = ACL_CACHE_SECONDS * 1000 + 8_000): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await attempt()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(100);
  }
}

/** Whether a QoS 1 PUBLISH of `c` to `topic` reaches `watcher` (subscribed to it). */
async function delivered(c: Conn, watcher: Conn, topic: string): Promise<boolean> {
  const payload = uid("probe");
  await publishCode(c, topic, payload);
  try {
    await watcher.inbox.waitFor(1, QUIET_MS, (m) => m.topic === topic && m.payload.toString() === payload);
    return true;
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------------------ ALLOW_ANONYMOUS off

describe("ALLOW_ANONYMOUS off", () => {
  const broker = useBroker({ vars: { ...VARS, ALLOW_ANONYMOUS: "false" } });

  describe.each(VERSIONS)("v%i", (version) => {
    /** A user who may subscribe to (and read) everything under `base`. */
    async function watcher(base: string, filter = `${base}/#`): Promise<Conn> {
      const name = await user(broker(), "watch", [{ topic: `${base}/#`, action: "subscribe", allow: true }]);
      const w = await login(broker(), version, name);
      expect(await granted(w, filter)).toEqual([1]);
      return w;
    }

    it("anonymous clients are refused; a user with no rule may neither publish nor subscribe (the default is deny)", async () => {
      const code = await refusedCode(connect(broker().url, { version }));
      expect(code).toBe(version === 5 ? NOT_AUTHORIZED : 5);
      const base = topicBase("acl-default");
      const w = await watcher(base);
      const c = await login(broker(), version, await user(broker(), "norule"));
      expect(await granted(c, `${base}/x`)).toEqual([subscribeRefused(version)]);
      expect(await publishCode(c, `${base}/x`, "nope")).toBe(version === 5 ? NOT_AUTHORIZED : 0);
      await c.publish(`${base}/x`, "nope-qos0", { qos: 0 });
      expect(await w.inbox.settle(QUIET_MS)).toEqual([]);
    });

    it("PUBLISH: allowed where a rule allows, denied elsewhere and where a deny rule matches (5.0 0x87 at QoS 1 and 2; 3.1.1 acknowledged and dropped)", async () => {
      const base = topicBase("acl-pub");
      const w = await watcher(base);
      const name = await user(broker(), "pub", [
        { topic: `${base}/ok/#`, action: "publish", allow: true },
        { topic: `${base}/ok/secret`, action: "publish", allow: false },
      ]);
      const c = await login(broker(), version, name);
      expect(await publishCode(c, `${base}/ok/1`, "yes")).toBe(0);
      await w.inbox.waitForTopic(`${base}/ok/1`);
      const denied = version === 5 ? NOT_AUTHORIZED : 0;
      for (const qos of [1, 2] as const) {
        expect(await publishCode(c, `${base}/other`, `no-${qos}`, qos), `QoS ${qos}, no rule`).toBe(denied);
        expect(await publishCode(c, `${base}/ok/secret`, `no-${qos}`, qos), `QoS ${qos}, deny rule`).toBe(denied);
      }
      await c.publish(`${base}/ok/secret`, "no-0", { qos: 0 });
      // Still connected and publishing after the denials.
      expect(await publishCode(c, `${base}/ok/2`, "yes again", 2)).toBe(0);
      await w.inbox.waitForTopic(`${base}/ok/2`);
      await w.inbox.settle(QUIET_MS);
      expect(w.inbox.topics().sort()).toEqual([`${base}/ok/1`, `${base}/ok/2`]);
    });

    it("SUBSCRIBE: a denied filter gets 0x87 (5.0) / 0x80 (3.1.1), the others of the packet are granted", async () => {
      const base = topicBase("acl-sub");
      const name = await user(broker(), "sub", [
        { topic: `${base}/a/#`, action: "subscribe", allow: true },
        { topic: `${base}/pub/#`, action: "publish", allow: true },
      ]);
      const c = await login(broker(), version, name);
      const codes = await granted(c, { [`${base}/a/#`]: { qos: 1 }, [`${base}/b`]: { qos: 1 }, [`${base}/a/x`]: { qos: 0 }, [`${base}/pub/x`]: { qos: 0 } });
      expect(codes).toEqual([1, subscribeRefused(version), 0, subscribeRefused(version)]);
      // The granted one delivers, the refused ones do not.
      const p = await login(broker(), version, await user(broker(), "subpub", [{ topic: `${base}/#`, action: "publish", allow: true }]));
      await p.publish(`${base}/b`, "not for you", { qos: 1 });
      await p.publish(`${base}/a/1`, "for you", { qos: 1 });
      await c.inbox.waitForTopic(`${base}/a/1`);
      await c.inbox.settle(QUIET_MS);
      expect(c.inbox.topics()).toEqual([`${base}/a/1`]);
    });

    it("retained and live messages are not delivered where reading is denied (a deny on secret/# under an allowed subscription)", async () => {
      const base = topicBase("acl-read");
      const publisher = await login(broker(), version, await user(broker(), "rpub", [{ topic: `${base}/#`, action: "publish", allow: true }]));
      await publisher.publish(`${base}/secret/x`, "retained secret", { qos: 1, retain: true });
      await publisher.publish(`${base}/open/x`, "retained open", { qos: 1, retain: true });
      const name = await user(broker(), "reader", [{ topic: `${base}/#`, action: "subscribe", allow: true }]);
      const reader = await login(broker(), version, name);
      // Subscribed while nothing denied it: both retained messages.
      expect(await granted(reader, `${base}/#`)).toEqual([1]);
      await reader.inbox.waitFor(2);
      const denyId = await addRule(broker(), { username: name, topic: `${base}/secret/#`, action: "subscribe", allow: false });
      // Live: once the session has the rule, secret/x no longer arrives, open/x still does.
      await eventually("the deny rule reaches the reader's session", async () => !(await delivered(publisher, reader, `${base}/secret/x`)));
      for (let i = 0; i < 3; i++) {
        await publisher.publish(`${base}/secret/x`, `live secret ${i}`, { qos: 1 });
        await publisher.publish(`${base}/open/x`, `live open ${i}`, { qos: 1 });
      }
      await reader.inbox.waitFor(1, 5_000, (m) => m.payload.toString() === "live open 2");
      await reader.inbox.settle(QUIET_MS);
      expect(reader.inbox.payloads().filter((p) => p.startsWith("live"))).toEqual(["live open 0", "live open 1", "live open 2"]);
      // Retained: a new subscription the deny rule overlaps is refused and sends nothing; one
      // beside it gets its retained message.
      const fresh = await login(broker(), version, name);
      const codes = await granted(fresh, { [`${base}/secret/#`]: { qos: 1 }, [`${base}/+/x`]: { qos: 1 }, [`${base}/open/#`]: { qos: 1 } });
      expect(codes).toEqual([subscribeRefused(version), subscribeRefused(version), 1]);
      await fresh.inbox.waitFor(1);
      await fresh.inbox.settle(QUIET_MS);
      expect(fresh.inbox.payloads()).toEqual(["retained open"]);
      await deleteRule(broker(), denyId);
    });

    it("a Will is refused at CONNECT where its publisher may not publish, and dropped when a rule denies it before it fires", async () => {
      const base = topicBase("acl-will");
      const w = await watcher(base);
      const name = await user(broker(), "will", [{ topic: `${base}/allowed/#`, action: "publish", allow: true }]);
      const will = (topic: string) => ({ will: { topic, payload: Buffer.from(`will of ${topic}`), qos: 1 as const, retain: false } });
      // Refused: CONNACK 0x87 / return code 5, nothing published.
      expect(await refusedCode(login(broker(), version, name, will(`${base}/denied`)))).toBe(version === 5 ? NOT_AUTHORIZED : 5);
      // Allowed: published when the connection drops.
      const first = await login(broker(), version, name, will(`${base}/allowed/1`));
      await first.drop();
      await w.inbox.waitForTopic(`${base}/allowed/1`);
      // Accepted, then a rule denies the Will's topic: once the session applies it, the Will is not published.
      const second = await login(broker(), version, name, will(`${base}/allowed/2`));
      await addRule(broker(), { username: name, topic: `${base}/allowed/2`, action: "publish", allow: false });
      await eventually("the deny rule reaches the session", async () => !(await delivered(second, w, `${base}/allowed/2`)));
      await second.drop();
      await w.inbox.settle(QUIET_MS * 2);
      expect(w.inbox.messages.filter((m) => m.payload.toString() === `will of ${base}/allowed/2`)).toEqual([]);
    });

    it("%c and %u stand for the client identifier and the user name", async () => {
      const base = topicBase("acl-pattern");
      const w = await watcher(base);
      // Rules for everyone, with the placeholders.
      await addRule(broker(), { topic: `${base}/c/%c/#`, action: "all", allow: true });
      await addRule(broker(), { topic: `${base}/u/%u/#`, action: "all", allow: true });
      const name = await user(broker(), "pat");
      const clientId = uid("pat-client");
      const c = await login(broker(), version, name, { clientId });
      const denied = version === 5 ? NOT_AUTHORIZED : 0;
      expect(await publishCode(c, `${base}/c/${clientId}/x`, "mine")).toBe(0);
      expect(await publishCode(c, `${base}/u/${name}/x`, "mine")).toBe(0);
      expect(await publishCode(c, `${base}/c/someone-else/x`, "theirs")).toBe(denied);
      expect(await publishCode(c, `${base}/u/someone-else/x`, "theirs")).toBe(denied);
      expect(await granted(c, { [`${base}/u/${name}/#`]: { qos: 1 }, [`${base}/c/${clientId}/+`]: { qos: 1 }, [`${base}/u/+/#`]: { qos: 1 }, [`${base}/c/other/#`]: { qos: 1 } })).toEqual([
        1,
        1,
        subscribeRefused(version),
        subscribeRefused(version),
      ]);
      await w.inbox.waitFor(2);
      await w.inbox.settle(QUIET_MS);
      expect(w.inbox.topics().sort()).toEqual([`${base}/c/${clientId}/x`, `${base}/u/${name}/x`].sort());
    });

    it("$SYS/# is subscribed only by an admin user, whatever the rules say; nobody publishes to $SYS/x", async () => {
      const everything = [{ topic: "#", action: "all" as const, allow: true }, { topic: "$SYS/#", action: "all" as const, allow: true }];
      const plain = await login(broker(), version, await user(broker(), "plain", everything));
      const admin = await login(broker(), version, await user(broker(), "admin", everything, true));
      expect(await granted(plain, "$SYS/#", 0)).toEqual([subscribeRefused(version)]);
      expect(await granted(admin, "$SYS/#", 0)).toEqual([0]);
      const probe = uid("sys-probe");
      expect(await publishCode(admin, `$SYS/${probe}`, "forged")).toBe(version === 5 ? NOT_AUTHORIZED : 0);
      expect(await publishCode(plain, `$SYS/${probe}`, "forged")).toBe(version === 5 ? NOT_AUTHORIZED : 0);
      await admin.inbox.settle(QUIET_MS);
      expect(admin.inbox.messages.filter((m) => m.topic.includes(probe))).toEqual([]);
    });

    it("a rule change reaches a live session within ACL_CACHE_SECONDS, both ways", async () => {
      const base = topicBase("acl-live");
      const w = await watcher(base);
      const name = await user(broker(), "live", [{ topic: `${base}/#`, action: "publish", allow: true }]);
      const c = await login(broker(), version, name);
      expect(await delivered(c, w, `${base}/t`)).toBe(true);
      const id = await addRule(broker(), { username: name, topic: `${base}/t`, action: "publish", allow: false });
      const deniedAfter = await eventually("the deny rule reaches the session", async () =>
        version === 5 ? (await publishCode(c, `${base}/t`, "probe")) === NOT_AUTHORIZED : !(await delivered(c, w, `${base}/t`)),
      );
      await deleteRule(broker(), id);
      const allowedAfter = await eventually("the deletion reaches the session", () => delivered(c, w, `${base}/t`));
      // Reported, not asserted against a tight bound (a shared machine): the poll's timeout is the bound.
      console.log(`v${version}: deny seen after ${deniedAfter} ms, its deletion after ${allowedAfter} ms (ACL_CACHE_SECONDS=${ACL_CACHE_SECONDS})`);
    });
  });

  it("HTTP API keys: within their scopes with no rule they publish; a deny rule naming key:<id> refuses (403 acl-denied)", async () => {
    const base = topicBase("acl-key");
    const res = await adminApi(broker(), "POST", "/keys", { name: "acl test", scopes: [`${base}/#`] });
    expect(res.status).toBe(201);
    const { id, key } = (await res.json()) as { id: string; key: string };
    const publish = (topic: string) =>
      fetch(`${broker().httpUrl}/api/v1/publish`, {
        method: "POST",
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
        body: JSON.stringify({ topic, payload: "x" }),
      });
    expect((await publish(`${base}/a`)).status).toBeLessThan(300);
    await addRule(broker(), { username: `key:${id}`, topic: `${base}/a`, action: "publish", allow: false });
    const denied = await publish(`${base}/a`);
    expect(denied.status).toBe(403);
    expect(await denied.json()).toMatchObject({ type: "urn:edge-mqtt:problem:acl-denied" });
    expect((await publish(`${base}/b`)).status).toBeLessThan(300);
  });
});

// ------------------------------------------------------------------------------ ALLOW_ANONYMOUS on

describe("ALLOW_ANONYMOUS on", () => {
  const broker = useBroker({ vars: { ...VARS, ALLOW_ANONYMOUS: "true" } });

  describe.each(VERSIONS)("v%i", (version) => {
    it("no rule: anonymous clients publish and subscribe; a deny rule for everyone still closes a topic", async () => {
      const base = topicBase("anon");
      const sub = await connect(broker().url, { version });
      const pub = await connect(broker().url, { version });
      expect(await granted(sub, `${base}/open/#`)).toEqual([1]);
      expect(await publishCode(pub, `${base}/open/x`, "hello")).toBe(0);
      await sub.inbox.waitForTopic(`${base}/open/x`);

      await addRule(broker(), { topic: `${base}/closed/#`, action: "all", allow: false });
      await eventually("the deny rule reaches the session", async () => (await granted(sub, `${base}/closed/x`)).includes(subscribeRefused(version)));
      // Subscribing where a deny rule overlaps is refused, a filter beside it is not.
      expect(await granted(sub, { [`${base}/closed/#`]: { qos: 1 }, [`${base}/#`]: { qos: 1 }, [`${base}/other`]: { qos: 1 } })).toEqual([
        subscribeRefused(version),
        subscribeRefused(version),
        1,
      ]);
      // Publishing there is denied (5.0: 0x87) and nothing is delivered.
      expect(await publishCode(pub, `${base}/closed/x`, "no")).toBe(version === 5 ? NOT_AUTHORIZED : 0);
      await sub.inbox.settle(QUIET_MS);
      expect(sub.inbox.topics()).toEqual([`${base}/open/x`]);
    });

    it("anonymous clients do not subscribe to $SYS/# nor publish to $SYS/x", async () => {
      const c = await connect(broker().url, { version });
      expect(await granted(c, "$SYS/#", 0)).toEqual([subscribeRefused(version)]);
      expect(await publishCode(c, `$SYS/${uid("x")}`, "forged")).toBe(version === 5 ? NOT_AUTHORIZED : 0);
    });
  });
});
