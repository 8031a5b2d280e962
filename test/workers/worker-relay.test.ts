/**
 * The Worker relay of plain /mqtt (worker/relay.ts): how it reads the first packet before the
 * session is reached, which messages it may drop for a client that does not read, and one
 * whole exchange through it inside workerd (this pool runs MQTT_RELAY = "object" for the
 * suites that look inside the ConnectionDO, so the relay is asked for here explicitly).
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { decodePacket, encodePacket, splitFrames } from "../../core/mqtt/codec";
import type { ConnectPacket, Packet } from "../../core/mqtt/packets";
import { upgradeToMqtt } from "../../worker/routes/mqtt";
import { FirstPacketReader, withoutDroppable } from "../../worker/relay-framing";
import { concatBytes } from "../../core/util/bytes";
import { relayMode } from "../../worker/relay";
import type { Env } from "../../worker/env";

const MAX = 1024;

function connect(clientId: string, version: 4 | 5 = 4): ConnectPacket {
  return { type: "connect", protocolName: "MQTT", protocolVersion: version, clean: true, keepAlive: 30, clientId };
}

function buffer(bytes: Uint8Array | number[]): ArrayBuffer {
  return new Uint8Array(bytes).slice().buffer;
}

describe("FirstPacketReader: the bytes before the session is reached", () => {
  it("a CONNECT in three messages, with a packet pipelined behind it: whole once the last byte arrives, everything kept in order", () => {
    const reader = new FirstPacketReader(MAX);
    const bytes = encodePacket(connect("pieces"), 4);
    const ping = [0xc0, 0x00];
    expect(reader.push(buffer(bytes.subarray(0, 1)))).toEqual({ kind: "more" }); // header byte only
    expect(reader.push(buffer(bytes.subarray(1, 4)))).toEqual({ kind: "more" });
    const step = reader.push(buffer([...bytes.subarray(4), ...ping]));
    if (step.kind !== "connect") throw new Error(`expected the CONNECT, got ${JSON.stringify(step)}`);
    expect([...step.frame]).toEqual([...bytes]);
    expect([...step.bytes]).toEqual([...bytes, ...ping]);
    const decoded = decodePacket(step.frame);
    expect(decoded.ok && decoded.packet.type === "connect" && decoded.packet.clientId).toBe("pieces");
  });

  it.each([
    ["a PUBLISH", [0x30, 0x02, 0x00, 0x00]],
    ["a PINGREQ", [0xc0, 0x00]],
    ["0x11: CONNECT's type with reserved flags set", [0x11, 0x00]],
  ])("%s as the first byte: refused at once [MQTT-3.1.0-1]", (_name, bytes) => {
    expect(new FirstPacketReader(MAX).push(buffer(bytes))).toEqual({ kind: "refuse", reason: "CONNECT expected" });
  });

  it("a text message: refused [MQTT-6.0.0-1]", () => {
    expect(new FirstPacketReader(MAX).push("MQTT")).toEqual({ kind: "refuse", reason: "CONNECT expected" });
  });

  it("a Remaining Length past the maximum packet size: refused on the header, before the body comes", () => {
    const step = new FirstPacketReader(MAX).push(buffer([0x10, 0x80, 0x08])); // 1,024 + 3 bytes
    expect(step.kind).toBe("refuse");
    expect(step.kind === "refuse" && step.reason).toMatch(/exceeds Maximum Packet Size 1024/);
  });

  it("a Remaining Length of five bytes: refused as malformed", () => {
    const step = new FirstPacketReader(Number.MAX_SAFE_INTEGER).push(buffer([0x10, 0xff, 0xff, 0xff, 0xff, 0x01]));
    expect(step).toEqual({ kind: "refuse", reason: "Remaining Length longer than four bytes" });
  });

  it("empty messages are ignored, and what is held is counted", () => {
    const reader = new FirstPacketReader(MAX);
    expect(reader.push(new ArrayBuffer(0))).toEqual({ kind: "more" });
    expect(reader.push(buffer([0x10, 0x20, 0x00]))).toEqual({ kind: "more" });
    expect(reader.bytes).toBe(3);
  });
});

describe("withoutDroppable: what the relay still sends a client that does not read", () => {
  const publish = (qos: 0 | 1, version: 4 | 5, topic = "a/b", properties?: { topicAlias: number }): Uint8Array =>
    encodePacket(
      { type: "publish", topic, payload: new Uint8Array([1, 2, 3]), qos, retain: false, dup: false, ...(qos > 0 && { packetId: 7 }), ...(properties && { properties }) },
      version,
    );
  const message = (...packets: Uint8Array[]): ArrayBuffer => buffer(concatBytes(packets));
  const PINGRESP = new Uint8Array([0xd0, 0x00]);
  const CONNACK = new Uint8Array([0x20, 0x02, 0x00, 0x00]);

  it("one QoS 0 PUBLISH: dropped (3.1.1 and 5.0)", () => {
    expect(withoutDroppable(message(publish(0, 4)), 4)).toEqual({ kept: undefined, dropped: 1 });
    expect(withoutDroppable(message(publish(0, 5)), 5)).toEqual({ kept: undefined, dropped: 1 });
  });

  it("QoS 1, or any other packet: kept, the very message", () => {
    for (const [m, v] of [[message(publish(1, 4)), 4], [message(PINGRESP), 4], [message(CONNACK), 4]] as const) {
      const out = withoutDroppable(m, v);
      expect(out.dropped).toBe(0);
      expect(out.kept).toBe(m);
    }
    expect(withoutDroppable("text", 4)).toEqual({ kept: "text", dropped: 0 });
  });

  it("5.0: not a PUBLISH that sets up a Topic Alias (it names the topic); one that only uses it, yes [MQTT-3.3.2-12]", () => {
    expect(withoutDroppable(message(publish(0, 5, "a/b", { topicAlias: 3 })), 5).dropped).toBe(0);
    expect(withoutDroppable(message(publish(0, 5, "", { topicAlias: 3 })), 5).dropped).toBe(1);
  });

  it("several packets in a message (PACKETS_PER_MESSAGE_BYTES): the QoS 0 PUBLISHes go, the rest stays, in order", () => {
    const q1 = publish(1, 5, "keep/1");
    const alias = publish(0, 5, "keep/alias", { topicAlias: 2 });
    const out = withoutDroppable(message(publish(0, 5), q1, publish(0, 5, "x"), PINGRESP, alias, publish(0, 5, "", { topicAlias: 2 })), 5);
    expect(out.dropped).toBe(3);
    expect([...(out.kept as Uint8Array)]).toEqual([...concatBytes([q1, PINGRESP, alias])]);
    expect(withoutDroppable(message(publish(0, 4), publish(0, 4, "c/d")), 4)).toEqual({ kept: undefined, dropped: 2 });
  });

  it("bytes that are not whole packets go as they are", () => {
    const cut = message(publish(0, 4), publish(0, 4).subarray(0, 3));
    expect(withoutDroppable(cut, 4)).toEqual({ kept: cut, dropped: 0 });
  });
});

describe("MQTT_RELAY", () => {
  it('"object" keeps the ConnectionDO; anything else (or nothing) is the Worker relay', () => {
    expect(relayMode({ MQTT_RELAY: "object" })).toBe("object");
    expect(relayMode({ MQTT_RELAY: " Object " })).toBe("object");
    expect(relayMode({ MQTT_RELAY: "worker" })).toBe("worker");
    expect(relayMode({})).toBe("worker");
  });
});

describe("through the Worker relay inside workerd", () => {
  it("5.0 CONNECT with an empty identifier: the session assigns the relay's one; a message goes round through the relay", async () => {
    const relayEnv = { ...(env as unknown as Env), MQTT_RELAY: "worker" };
    const request = new Request("http://broker.test/mqtt", { headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": "mqtt" } });
    const res = await upgradeToMqtt(relayEnv, request, { waitUntil: () => undefined });
    expect(res.status).toBe(101);
    expect(res.headers.get("Sec-WebSocket-Protocol")).toBe("mqtt");
    const ws = res.webSocket!;
    ws.binaryType = "arraybuffer";
    ws.accept();
    const received: Packet[] = [];
    let pending: Uint8Array = new Uint8Array(0);
    ws.addEventListener("message", (event) => {
      const { frames, rest } = splitFrames(pending, new Uint8Array(event.data as ArrayBuffer));
      pending = rest;
      for (const f of frames) {
        const d = decodePacket(f, { protocolVersion: 5 });
        if (d.ok) received.push(d.packet);
      }
    });
    const until = async (pred: () => boolean, what: string) => {
      const deadline = Date.now() + 3000;
      while (!pred()) {
        if (Date.now() > deadline) throw new Error(`no ${what}; received ${JSON.stringify(received.map((p) => p.type))}`);
        await scheduler.wait(5);
      }
    };
    ws.send(encodePacket(connect("", 5), 5));
    await until(() => received.some((p) => p.type === "connack"), "CONNACK");
    const connack = received.find((p) => p.type === "connack")!;
    expect(connack.type === "connack" && connack.reasonCode).toBe(0);
    expect(connack.type === "connack" && connack.properties?.assignedClientIdentifier).toMatch(/^[0-9a-f-]{36}$/);
    ws.send(encodePacket({ type: "subscribe", packetId: 1, subscriptions: [{ topicFilter: "relay/unit/#", qos: 0 }] }, 5));
    await until(() => received.some((p) => p.type === "suback"), "SUBACK");
    ws.send(encodePacket({ type: "publish", topic: "relay/unit/x", payload: new TextEncoder().encode("round"), qos: 0, retain: false, dup: false }, 5));
    await until(() => received.some((p) => p.type === "publish"), "PUBLISH");
    const got = received.find((p) => p.type === "publish")!;
    expect(got.type === "publish" && new TextDecoder().decode(got.payload)).toBe("round");
    // End it as a client does, and let the session finish what that starts (its subscription
    // leaving the shards) before the file ends: the test environment closes under pending calls.
    const closed = new Promise((resolve) => ws.addEventListener("close", resolve));
    ws.send(encodePacket({ type: "disconnect", reasonCode: 0 }, 5));
    await closed;
    await scheduler.wait(500);
  });
});
