/**
 * Authentication on the CONNECT path, through the Worker and the objects inside workerd (both
 * routes: the SessionDO holding the socket, and a ConnectionDO relaying to it). ALLOW_ANONYMOUS
 * is "true" here, so what is refused is refused for its credentials: a user name is always
 * checked against D1.
 */
import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { decodePacket, encodePacket, splitFrames } from "../../core/mqtt/codec";
import type { ConnectPacket, Packet, ProtocolVersion } from "../../core/mqtt/packets";
import { createDb, schema } from "../../db";
import { SqlSessionStore } from "../../durable-objects/storage/sql-session-store";
import { CERT_USER_HEADER } from "../../worker/security/certificates";
import { hashPassword } from "../../worker/security/passwords";

const BASE = "http://broker.test";
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
let counter = 0;
const unique = (prefix: string): string => `${prefix}-${counter++}-${crypto.randomUUID().slice(0, 8)}`;
type Route = "relay" | "fast";
const ROUTES: Route[] = ["fast", "relay"];

class Client {
  readonly received: Array<{ packet: Packet; at: number }> = [];
  closed: { code: number; at: number } | undefined;
  #read = 0;
  #pending: Uint8Array = new Uint8Array(0);

  constructor(
    readonly ws: WebSocket,
    readonly version: ProtocolVersion,
  ) {
    ws.accept();
    ws.binaryType = "arraybuffer";
    ws.addEventListener("message", (event) => {
      const { frames, rest } = splitFrames(this.#pending, new Uint8Array(event.data as ArrayBuffer));
      this.#pending = rest;
      for (const frame of frames) {
        const decoded = decodePacket(frame, { protocolVersion: this.version });
        if (decoded.ok) this.received.push({ packet: decoded.packet, at: Date.now() });
      }
    });
    ws.addEventListener("close", (event) => {
      this.closed = { code: event.code, at: Date.now() };
    });
  }

  send(...packets: Packet[]): void {
    // All in one WebSocket message: what follows the CONNECT waits for its authentication.
    const parts = packets.map((p) => encodePacket(p, this.version));
    const bytes = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
    let at = 0;
    for (const p of parts) bytes.set(p, (at += p.byteLength) - p.byteLength);
    this.ws.send(bytes);
  }

  async next<T extends Packet["type"]>(type: T, timeoutMs = 5000): Promise<Extract<Packet, { type: T }> & { at: number }> {
    await until(() => this.received.length > this.#read, timeoutMs, () => `no ${type} (got ${this.types()})`);
    const { packet, at } = this.received[this.#read++]!;
    expect(packet.type, this.types()).toBe(type);
    return Object.assign(packet as Extract<Packet, { type: T }>, { at });
  }

  async waitClosed(timeoutMs = 5000): Promise<void> {
    await until(() => this.closed !== undefined, timeoutMs, () => `not closed (got ${this.types()})`);
  }

  types(): string {
    return JSON.stringify(this.received.map((r) => r.packet.type));
  }

  close(): void {
    try {
      this.ws.close(1000);
    } catch {
      // closed
    }
  }
}

async function until(condition: () => boolean, timeoutMs: number, message: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(message());
    await scheduler.wait(5);
  }
}

function upgrade(path: string, headers: Record<string, string> = {}): Request {
  return new Request(`${BASE}${path}`, { headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": "mqtt", ...headers } });
}

async function open(route: Route, clientId: string, version: ProtocolVersion, headers: Record<string, string> = {}): Promise<Client> {
  const res = await exports.default.fetch(upgrade(route === "fast" ? `/mqtt/${encodeURIComponent(clientId)}` : "/mqtt", headers));
  expect(res.status).toBe(101);
  return new Client(res.webSocket!, version);
}

/** Straight to the object, as the Worker forwards an upgrade (with the headers only the Worker may set). */
async function openAtObject(route: Route, clientId: string, version: ProtocolVersion, headers: Record<string, string>): Promise<Client> {
  const stub = route === "fast" ? env.SESSIONS.get(env.SESSIONS.idFromName(clientId)) : env.CONNECTIONS.get(env.CONNECTIONS.newUniqueId());
  const res = await stub.fetch(upgrade(route === "fast" ? `/mqtt/${encodeURIComponent(clientId)}` : "/mqtt", headers));
  expect(res.status).toBe(101);
  return new Client(res.webSocket!, version);
}

function connectPacket(version: ProtocolVersion, clientId: string, o: Partial<ConnectPacket> = {}): ConnectPacket {
  return { type: "connect", protocolName: "MQTT", protocolVersion: version, clean: true, keepAlive: 60, clientId, ...o };
}

async function addUser(username: string, password: string): Promise<void> {
  const hash = await hashPassword(password, 100_000); // the production cost: authentication really awaits
  await createDb(env.DB).insert(schema.credentials).values({ username, ...hash, createdAt: Date.now() });
}

async function principalOf(clientId: string) {
  return runInDurableObject(env.SESSIONS.get(env.SESSIONS.idFromName(clientId)), (_i, state) => new SqlSessionStore(state.storage.sql).load()?.principal);
}

describe.each(ROUTES)("CONNECT authentication (%s route)", (route) => {
  it("refuses an unknown user and a wrong password: 5.0 0x86, 3.1.1 return code 4; socket closed", async () => {
    const user = unique("u");
    await addUser(user, "right");
    for (const [version, code] of [[5, 0x86], [4, 4]] as const) {
      for (const [username, password] of [[unique("nobody"), "right"], [user, "wrong"]]) {
        const id = unique("c");
        const c = await open(route, id, version);
        c.send(connectPacket(version, id, { username, password: enc(password!) }));
        const connack = await c.next("connack");
        expect(connack.reasonCode).toBe(code);
        expect(connack.sessionPresent).toBe(false);
        await c.waitClosed();
        expect(await principalOf(id)).toBeUndefined(); // no session was made
      }
    }
  });

  it("accepts the right password; packets sent with the CONNECT wait for it and keep their order", async () => {
    const user = unique("u");
    await addUser(user, "s3cret");
    const id = unique("c");
    const c = await open(route, id, 5);
    const topic = `auth/${id}`;
    c.send(
      connectPacket(5, id, { username: user, password: enc("s3cret") }),
      { type: "subscribe", packetId: 1, subscriptions: [{ topicFilter: topic, qos: 1 }] },
      { type: "publish", topic, payload: enc("one"), qos: 1, retain: false, dup: false, packetId: 2 },
    );
    // And one more WebSocket message while PBKDF2 still runs.
    c.send({ type: "publish", topic, payload: enc("two"), qos: 1, retain: false, dup: false, packetId: 3 });
    expect((await c.next("connack")).reasonCode).toBe(0);
    expect((await c.next("suback")).reasonCodes).toEqual([1]);
    const seen: string[] = [];
    await until(() => c.received.filter((r) => r.packet.type === "publish").length === 2, 5000, () => c.types());
    for (const r of c.received) if (r.packet.type === "publish") seen.push(new TextDecoder().decode(r.packet.payload));
    expect(seen).toEqual(["one", "two"]);
    expect(await principalOf(id)).toEqual({ clientId: id, username: user, method: "password" });
    c.close();
  });

  it("a refused CONNECT leaves the live connection and the queued messages of that client identifier alone", async () => {
    const user = unique("u");
    await addUser(user, "pw");
    const id = unique("victim");
    const topic = `auth/${id}`;
    // The session: subscribed, connected, kept after disconnect.
    const owner = await open(route, id, 5);
    owner.send(connectPacket(5, id, { username: user, password: enc("pw"), clean: false, properties: { sessionExpiryInterval: 600 } }));
    expect((await owner.next("connack")).reasonCode).toBe(0);
    owner.send({ type: "subscribe", packetId: 1, subscriptions: [{ topicFilter: topic, qos: 1 }] });
    await owner.next("suback");

    const pubId = unique("pub");
    const pub = await open("relay", pubId, 5);
    pub.send(connectPacket(5, pubId));
    expect((await pub.next("connack")).reasonCode).toBe(0);

    // An intruder with the same client identifier and a wrong password, on either route.
    for (const via of ROUTES) {
      const intruder = await open(via, id, 5);
      intruder.send(connectPacket(5, id, { username: user, password: enc("guess"), will: { topic, payload: enc("evil"), qos: 0, retain: false } }));
      expect((await intruder.next("connack", 10_000)).reasonCode).toBe(0x86);
      await intruder.waitClosed();
    }
    // The owner is still connected and still receives.
    pub.send({ type: "publish", topic, payload: enc("live"), qos: 1, retain: false, dup: false, packetId: 1 });
    await pub.next("puback");
    const live = await owner.next("publish");
    expect(new TextDecoder().decode(live.payload)).toBe("live");
    owner.send({ type: "puback", packetId: live.packetId! });
    expect(owner.closed).toBeUndefined();

    // Offline with a message queued; another refused attempt; the owner gets the session and the message back.
    owner.send({ type: "disconnect", reasonCode: 0 });
    await owner.waitClosed();
    pub.send({ type: "publish", topic, payload: enc("queued"), qos: 1, retain: false, dup: false, packetId: 2 });
    await pub.next("puback");
    const intruder = await open(route, id, 4);
    intruder.send(connectPacket(4, id, { clean: true, username: unique("nobody"), password: enc("x") }));
    expect((await intruder.next("connack", 10_000)).reasonCode).toBe(4);
    await intruder.waitClosed();
    const back = await open(route, id, 5);
    back.send(connectPacket(5, id, { username: user, password: enc("pw"), clean: false, properties: { sessionExpiryInterval: 600 } }));
    const connack = await back.next("connack", 10_000);
    expect(connack).toMatchObject({ reasonCode: 0, sessionPresent: true });
    expect(new TextDecoder().decode((await back.next("publish")).payload)).toBe("queued");
    back.close();
    pub.close();
  }, 30_000); // three failures: the penalty makes the later attempts wait 1 + 2 + 4 s

  it("failures of a client identifier slow its next attempt (AUTH_FAIL_DELAY, 1 s here)", async () => {
    const user = unique("u");
    await addUser(user, "pw");
    const id = unique("slow");
    const first = await open(route, id, 5);
    first.send(connectPacket(5, id, { username: user, password: enc("wrong") }));
    const refused = await first.next("connack");
    expect(refused.reasonCode).toBe(0x86);
    const second = await open(route, id, 5);
    second.send(connectPacket(5, id, { username: user, password: enc("pw") }));
    const accepted = await second.next("connack", 10_000);
    expect(accepted.reasonCode).toBe(0);
    // Not answered before the penalty of the first failure was over (generous slack for clocks).
    expect(accepted.at - refused.at).toBeGreaterThanOrEqual(800);
    second.close();
  });

  it("a certificate user named by the Worker authenticates the client; a client cannot send that header itself", async () => {
    const id = unique("cert");
    const c = await openAtObject(route, id, 5, { [CERT_USER_HEADER]: "gateway-2" });
    c.send(connectPacket(5, id, { username: "whoever", password: enc("whatever") }));
    expect((await c.next("connack")).reasonCode).toBe(0);
    expect(await principalOf(id)).toEqual({ clientId: id, username: "gateway-2", method: "certificate" });
    // The session (presence, the devices API) knows the client by the certificate's user name.
    const username = await runInDurableObject(env.SESSIONS.get(env.SESSIONS.idFromName(id)), (_i, state) => new SqlSessionStore(state.storage.sql).load()?.connection?.username);
    expect(username).toBe("gateway-2");
    c.close();

    // Through the Worker the header is dropped: anonymous (allowed here), not "gateway-2".
    const id2 = unique("forged");
    const forged = await open(route, id2, 5, { [CERT_USER_HEADER]: "gateway-2" });
    forged.send(connectPacket(5, id2));
    expect((await forged.next("connack")).reasonCode).toBe(0);
    expect(await principalOf(id2)).toEqual({ clientId: id2, method: "anonymous" });
    forged.close();
  });
});
