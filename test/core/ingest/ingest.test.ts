import { describe, expect, it } from "vitest";
import {
  checkBatch,
  checkDraft,
  decodeBase64,
  draftMessage,
  inScope,
  jsonItemDraft,
  parseUserPropertyHeader,
  publishPacketSize,
  rawDraft,
  scopeProblem,
  type Draft,
  type IngestPolicy,
  type Parsed,
  type RawRequest,
} from "../../../core/ingest";

const enc = (s: string) => new TextEncoder().encode(s);
const policy: IngestPolicy = { limits: { maxPacketSize: 1024, maxTopicLength: 64, maxTopicLevels: 4 } };

function ok<T>(p: Parsed<T>): T {
  if (!p.ok) throw new Error(`refused: ${p.refusal.problem}: ${p.refusal.detail}`);
  return p.value;
}
function refused<T>(p: Parsed<T>): { status: number; problem: string } {
  if (p.ok) throw new Error("accepted");
  return p.refusal;
}

function raw(topic: string, query: Record<string, string | string[]> = {}, headers: Record<string, string> = {}, body = enc("x")): RawRequest {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) for (const one of [v].flat()) params.append(k, one);
  const h = new Headers(headers);
  return { topic, body, query: (n) => params.getAll(n), queryNames: () => [...new Set(params.keys())], header: (n) => h.get(n) };
}

describe("base64", () => {
  it("decodes both alphabets, with or without padding", () => {
    expect(decodeBase64("aGVsbG8=")).toEqual(enc("hello"));
    expect(decodeBase64("aGVsbG8")).toEqual(enc("hello"));
    expect(decodeBase64("")).toEqual(new Uint8Array(0));
    expect(decodeBase64("+/8=")).toEqual(new Uint8Array([0xfb, 0xff]));
    expect(decodeBase64("-_8")).toEqual(new Uint8Array([0xfb, 0xff]));
    const all = new Uint8Array(256).map((_, i) => i);
    expect(decodeBase64(Buffer.from(all).toString("base64"))).toEqual(all);
  });
  it("refuses what is not base64", () => {
    for (const bad of ["a", "aGVsbG8=x", "aGV sbG8=", "aGVsbG9=", "é", "a===", "ab*d"]) expect(decodeBase64(bad), bad).toBeUndefined();
  });
});

describe("JSON items (EMQX's shape)", () => {
  it("maps every field and property", () => {
    const d = ok(
      jsonItemDraft({
        topic: "a/b",
        payload: "aGk=",
        payload_encoding: "base64",
        qos: 1,
        retain: true,
        clientid: "gw-1",
        properties: {
          payload_format_indicator: 1,
          message_expiry_interval: 60,
          content_type: "text/plain",
          response_topic: "r/1",
          correlation_data: "corr",
          user_properties: { a: "1", b: "2" },
        },
      }),
    );
    expect(d).toEqual({
      topic: "a/b",
      payload: enc("hi"),
      qos: 1,
      retain: true,
      device: "gw-1",
      messageExpiryInterval: 60,
      properties: { payloadFormatIndicator: 1, contentType: "text/plain", responseTopic: "r/1", correlationData: enc("corr"), userProperties: [["a", "1"], ["b", "2"]] },
    });
  });
  it("defaults: plain, QoS 0, not retained, no properties", () => {
    expect(ok(jsonItemDraft({ topic: "t", payload: "é" }))).toEqual({ topic: "t", payload: enc("é"), qos: 0, retain: false, properties: {} });
    expect(ok(jsonItemDraft({ topic: "t", payload: "x", device: "d" })).device).toBe("d");
  });
  it("refuses bad encodings, QoS, properties and conflicting devices", () => {
    expect(refused(jsonItemDraft({ topic: "t", payload: "!!", payload_encoding: "base64" }))).toMatchObject({ status: 400, problem: "invalid-payload-encoding" });
    expect(refused(jsonItemDraft({ topic: "t", payload: "x", payload_encoding: "hex" as "plain" }))).toMatchObject({ status: 400, problem: "invalid-payload-encoding" });
    expect(refused(jsonItemDraft({ topic: "t", payload: "x", qos: 3 }))).toMatchObject({ status: 400, problem: "invalid-qos" });
    expect(refused(jsonItemDraft({ topic: "t", payload: "x", properties: { message_expiry_interval: -1 } }))).toMatchObject({ problem: "invalid-property" });
    expect(refused(jsonItemDraft({ topic: "t", payload: "x", properties: { response_topic: "r/#" } }))).toMatchObject({ problem: "invalid-property" });
    expect(refused(jsonItemDraft({ topic: "t", payload: "x", properties: { user_properties: { "a\u0000": "v" } } }))).toMatchObject({ problem: "invalid-property" });
    expect(refused(jsonItemDraft({ topic: "t", payload: "x", properties: { content_type: "\ud800" } }))).toMatchObject({ problem: "invalid-property" });
    // Payload Format Indicator 1 promises UTF-8.
    expect(refused(jsonItemDraft({ topic: "t", payload: "/w==", payload_encoding: "base64", properties: { payload_format_indicator: 1 } }))).toMatchObject({ problem: "payload-format-invalid" });
    expect(refused(jsonItemDraft({ topic: "t", payload: "x", clientid: "a", device: "b" }))).toMatchObject({ problem: "invalid-device" });
  });
});

describe("raw body with query and MQTT-* headers", () => {
  it("reads QoS, retain and every property from the query", () => {
    const d = ok(
      rawDraft(
        raw("a/b", {
          qos: "2",
          retain: "true",
          message_expiry_interval: "30",
          content_type: "application/cbor",
          response_topic: "re/sp",
          correlation_data: "AAEC",
          payload_format_indicator: "0",
          user_property: ["k:v", "k:w:x"],
          device: "gw-9",
        }),
      ),
    );
    expect(d).toMatchObject({ topic: "a/b", qos: 2, retain: true, messageExpiryInterval: 30, device: "gw-9" });
    expect(d.properties).toEqual({
      payloadFormatIndicator: 0,
      contentType: "application/cbor",
      responseTopic: "re/sp",
      correlationData: new Uint8Array([0, 1, 2]),
      userProperties: [["k", "v"], ["k", "w:x"]],
    });
  });
  it("reads the same from headers; the request's Content-Type is the payload's", () => {
    const d = ok(
      rawDraft(
        raw(
          "t",
          {},
          {
            "Content-Type": "application/json",
            "MQTT-Message-Expiry-Interval": "5",
            "MQTT-Response-Topic": "r",
            "MQTT-Correlation-Data": "-_8",
            "MQTT-Payload-Format-Indicator": "1",
            "MQTT-User-Property": "a=1, b%2Cc=x%3Dy",
          },
        ),
      ),
    );
    expect(d.messageExpiryInterval).toBe(5);
    expect(d.properties).toEqual({
      payloadFormatIndicator: 1,
      contentType: "application/json",
      responseTopic: "r",
      correlationData: new Uint8Array([0xfb, 0xff]),
      userProperties: [["a", "1"], ["b,c", "x=y"]],
    });
    // MQTT-Content-Type (or content_type) overrides the request's.
    expect(ok(rawDraft(raw("t", {}, { "Content-Type": "text/plain", "MQTT-Content-Type": "a/b" }))).properties.contentType).toBe("a/b");
    expect(ok(rawDraft(raw("t", { content_type: "q/q" }, { "MQTT-Content-Type": "a/b" }))).properties.contentType).toBe("q/q");
  });
  it("accepts retain as true/false/1/0 and QoS 0 to 2 only", () => {
    for (const [v, r] of [["1", true], ["0", false], ["TRUE", true], ["false", false]] as const) expect(ok(rawDraft(raw("t", { retain: v }))).retain).toBe(r);
    expect(refused(rawDraft(raw("t", { retain: "yes" })))).toMatchObject({ status: 400, problem: "invalid-retain" });
    expect(refused(rawDraft(raw("t", { qos: "3" })))).toMatchObject({ status: 400, problem: "invalid-qos" });
    expect(refused(rawDraft(raw("t", { qos: ["1", "2"] })))).toMatchObject({ status: 400, problem: "invalid-parameter" });
  });
  it("refuses unknown parameters, bad expiry, bad base64, bad user properties", () => {
    expect(refused(rawDraft(raw("t", { qso: "1" })))).toMatchObject({ problem: "unknown-parameter" });
    expect(refused(rawDraft(raw("t", { message_expiry_interval: "1.5" })))).toMatchObject({ problem: "invalid-property" });
    expect(refused(rawDraft(raw("t", { message_expiry_interval: "4294967296" })))).toMatchObject({ problem: "invalid-property" });
    expect(refused(rawDraft(raw("t", { correlation_data: "***" })))).toMatchObject({ problem: "invalid-property" });
    expect(refused(rawDraft(raw("t", { user_property: "novalue" })))).toMatchObject({ problem: "invalid-property" });
    expect(refused(rawDraft(raw("t", {}, { "MQTT-User-Property": "=x" })))).toMatchObject({ problem: "invalid-property" });
    expect(refused(rawDraft(raw("t", {}, { "MQTT-User-Property": "a=%E0%A4%A" })))).toMatchObject({ problem: "invalid-property" });
  });
  it("parses repeated MQTT-User-Property headers as joined by Fetch", () => {
    expect(ok(parseUserPropertyHeader("a=1, a=2"))).toEqual([["a", "1"], ["a", "2"]]);
    expect(ok(parseUserPropertyHeader(null))).toEqual([]);
  });
});

describe("checks: topic, size, scope, device", () => {
  const draft = (topic: string, extra: Partial<Draft> = {}): Draft => ({ topic, payload: enc("x"), qos: 0, retain: false, properties: {}, ...extra });
  it("accepts a valid topic", () => {
    expect(checkDraft(draft("a/b/c"), policy)).toBeUndefined();
  });
  it("refuses wildcards, empty and invalid topics with 400", () => {
    expect(checkDraft(draft("a/+"), policy)).toMatchObject({ status: 400, problem: "wildcard-in-topic" });
    expect(checkDraft(draft("a/#"), policy)).toMatchObject({ status: 400, problem: "wildcard-in-topic" });
    expect(checkDraft(draft(""), policy)).toMatchObject({ status: 400, problem: "invalid-topic" });
    expect(checkDraft(draft("a\u0000b"), policy)).toMatchObject({ status: 400, problem: "invalid-topic" });
    expect(checkDraft(draft("a/\udc00"), policy)).toMatchObject({ status: 400, problem: "invalid-topic" });
  });
  it("refuses $ topics with 403", () => {
    expect(checkDraft(draft("$SYS/broker/x"), policy)).toMatchObject({ status: 403, problem: "reserved-topic" });
    expect(checkDraft(draft("$anything"), { ...policy, scopes: ["#"] })).toMatchObject({ status: 403, problem: "reserved-topic" });
  });
  it("applies MAX_TOPIC_LENGTH and MAX_TOPIC_LEVELS", () => {
    expect(checkDraft(draft("a".repeat(65)), policy)).toMatchObject({ status: 400, problem: "invalid-topic" });
    expect(checkDraft(draft("a/b/c/d/e"), policy)).toMatchObject({ status: 400, problem: "invalid-topic" });
    expect(checkDraft(draft("a/b/c/d"), policy)).toBeUndefined();
  });
  it("measures the PUBLISH packet against MAX_PACKET_SIZE (413)", () => {
    // Fixed header 1 + remaining length 2 + topic 2+1 + properties length 1 + payload.
    const over = draft("t", { payload: new Uint8Array(1018) });
    expect(publishPacketSize(over)).toBe(1025);
    expect(checkDraft(over, policy)).toMatchObject({ status: 413, problem: "payload-too-large" });
    const smaller = draft("t", { payload: new Uint8Array(1017) });
    expect(publishPacketSize(smaller)).toBe(1024);
    expect(checkDraft(smaller, policy)).toBeUndefined();
  });
  it("keeps a key inside its scopes (403)", () => {
    const scoped = { ...policy, scopes: ["devices/gw-1/#", "sites/+/temp"] };
    expect(checkDraft(draft("devices/gw-1"), scoped)).toBeUndefined();
    expect(checkDraft(draft("devices/gw-1/a/b"), scoped)).toBeUndefined();
    expect(checkDraft(draft("sites/berlin/temp"), scoped)).toBeUndefined();
    expect(checkDraft(draft("devices/gw-2/a"), scoped)).toMatchObject({ status: 403, problem: "out-of-scope" });
    expect(checkDraft(draft("sites/berlin/hum"), scoped)).toMatchObject({ status: 403, problem: "out-of-scope" });
    expect(inScope(["#"], "anything/at/all")).toBe(true);
    expect(inScope([], "a")).toBe(false);
  });
  it("a key issued to a device speaks for it only", () => {
    const keyed = { ...policy, keyDevice: "gw-1" };
    expect(checkDraft(draft("t", { device: "gw-1" }), keyed)).toBeUndefined();
    expect(checkDraft(draft("t", { device: "gw-2" }), keyed)).toMatchObject({ status: 403, problem: "other-device" });
  });
  it("reports every refused item of a batch by index", () => {
    expect(checkBatch([draft("ok"), draft("a/#"), draft("ok2"), draft("$x")], policy).map((r) => [r.index, r.status])).toEqual([
      [1, 400],
      [3, 403],
    ]);
  });
});

describe("scopes of a key", () => {
  it("must be valid filters, not shared, not $", () => {
    for (const good of ["#", "a/+/b", "devices/gw-1/#", "x"]) expect(scopeProblem(good), good).toBeUndefined();
    for (const bad of ["", "a/#/b", "a+", "$share/g/a", "$SYS/#", "a\u0000"]) expect(scopeProblem(bad), bad).toBeDefined();
  });
});

describe("the routed message", () => {
  it("carries origin, expiry, properties; QoS 2 gets the message identifier", () => {
    const d: Draft = { topic: "t", payload: enc("p"), qos: 2, retain: true, properties: { contentType: "c" }, messageExpiryInterval: 10, device: "gw" };
    expect(draftMessage(d, { now: 1000, origin: "http:k", id: "id-1" })).toEqual({
      topic: "t",
      payload: enc("p"),
      qos: 2,
      retain: true,
      origin: "gw",
      properties: { contentType: "c" },
      expiresAt: 11_000,
      messageId: "id-1",
    });
    const plain = draftMessage({ topic: "t", payload: enc(""), qos: 1, retain: false, properties: {} }, { now: 0, origin: "http:k", id: "x" });
    expect(plain).toEqual({ topic: "t", payload: enc(""), qos: 1, retain: false, origin: "http:k" });
  });
});
