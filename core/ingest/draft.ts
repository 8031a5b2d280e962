/**
 * HTTP ingest, the pure part: turning what a request says (a raw body with query and
 * headers, or EMQX-shaped JSON items) into MQTT application messages, with the same rules
 * an MQTT PUBLISH is held to. No I/O: the Worker reads the request and routes the result.
 */
import { encodePacket, isWellFormedUtf8, validateTopicName } from "../mqtt/codec";
import type { QoS, UserProperty } from "../mqtt/packets";
import type { Message, MessageProperties } from "../session/types";
import { checkTopicNameLimits, topicMatches, utf8ByteLength } from "../topics";
import { aclRefusal, type IngestAcl } from "./acl";
import { decodeBase64 } from "./base64";

/** Why a request (or one item of it) is refused: an HTTP status and a problem name. */
export interface IngestRefusal {
  status: 400 | 403 | 413;
  /** Problem type name (`urn:edge-mqtt:problem:<problem>`). */
  problem: string;
  detail: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; refusal: IngestRefusal };

/** One message as a request described it, before the checks that depend on who sent it. */
export interface Draft {
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  properties: MessageProperties;
  /** Message Expiry Interval in seconds (5.0 3.3.2.3.3). */
  messageExpiryInterval?: number;
  /** The device (client identifier) the message comes from, if the request names one. */
  device?: string;
}

/** Largest Four Byte Integer: the ceiling of Message Expiry Interval. */
export const MAX_EXPIRY_INTERVAL = 0xffff_ffff;
/** A UTF-8 Encoded String is at most 65,535 bytes [MQTT-1.5.4]. */
const MAX_STRING_BYTES = 0xffff;

const encoder = new TextEncoder();

export function refusal(status: IngestRefusal["status"], problem: string, detail: string): { ok: false; refusal: IngestRefusal } {
  return { ok: false, refusal: { status, problem, detail } };
}

// ------------------------------------------------------------------------------ values

export function parseQos(text: string | undefined): Parsed<QoS> {
  if (text === undefined || text === "") return { ok: true, value: 0 };
  if (text === "0" || text === "1" || text === "2") return { ok: true, value: Number(text) as QoS };
  return refusal(400, "invalid-qos", `qos must be 0, 1 or 2, not ${JSON.stringify(text)}.`);
}

export function parseRetain(text: string | undefined): Parsed<boolean> {
  if (text === undefined || text === "") return { ok: true, value: false };
  const t = text.toLowerCase();
  if (t === "true" || t === "1") return { ok: true, value: true };
  if (t === "false" || t === "0") return { ok: true, value: false };
  return refusal(400, "invalid-retain", `retain must be true, false, 1 or 0, not ${JSON.stringify(text)}.`);
}

export function parseExpiry(text: string | undefined, name: string): Parsed<number | undefined> {
  if (text === undefined || text === "") return { ok: true, value: undefined };
  if (!/^\d{1,10}$/.test(text) || Number(text) > MAX_EXPIRY_INTERVAL) {
    return refusal(400, "invalid-property", `${name} must be a whole number of seconds from 0 to ${MAX_EXPIRY_INTERVAL}, not ${JSON.stringify(text)}.`);
  }
  return { ok: true, value: Number(text) };
}

function parseFormatIndicator(text: string | undefined, name: string): Parsed<0 | 1 | undefined> {
  if (text === undefined || text === "") return { ok: true, value: undefined };
  if (text === "0" || text === "1") return { ok: true, value: Number(text) as 0 | 1 };
  return refusal(400, "invalid-property", `${name} must be 0 or 1, not ${JSON.stringify(text)}.`);
}

/**
 * Whether a string can travel as an MQTT UTF-8 Encoded String: well-formed (no lone
 * surrogate) [MQTT-1.5.4-1], no U+0000 [MQTT-1.5.4-2], at most 65,535 bytes.
 */
export function isMqttString(s: string): boolean {
  if (s.length > MAX_STRING_BYTES || utf8ByteLength(s) > MAX_STRING_BYTES) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0) return false;
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return false;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return false;
  }
  return true;
}

function checkString(value: string | undefined, name: string): IngestRefusal | undefined {
  if (value === undefined || isMqttString(value)) return undefined;
  return { status: 400, problem: "invalid-property", detail: `${name} is not a valid MQTT string (U+0000, a lone surrogate, or over 65,535 bytes).` };
}

/** The device an item names (`clientid`, EMQX's name, or `device`): both given must agree. */
function parseDevice(clientid: string | undefined, device: string | undefined): Parsed<string | undefined> {
  if (clientid !== undefined && device !== undefined && clientid !== device) {
    return refusal(400, "invalid-device", `clientid ${JSON.stringify(clientid)} and device ${JSON.stringify(device)} name different devices.`);
  }
  const id = clientid ?? device;
  if (id === undefined) return { ok: true, value: undefined };
  if (id === "" || !isMqttString(id)) return refusal(400, "invalid-device", "The device (client identifier) must be a non-empty MQTT string.");
  return { ok: true, value: id };
}

/** Properties shared by both request shapes, checked the way a PUBLISH's would be. */
function finishProperties(props: MessageProperties, payload: Uint8Array): IngestRefusal | undefined {
  const bad = checkString(props.contentType, "content_type") ?? checkString(props.responseTopic, "response_topic");
  if (bad) return bad;
  for (const [name, value] of props.userProperties ?? []) {
    const badPair = checkString(name, "a user property name") ?? checkString(value, `user property ${JSON.stringify(name)}`);
    if (badPair) return badPair;
  }
  // The Response Topic is a Topic Name: no wildcards [MQTT-3.3.2-14].
  if (props.responseTopic !== undefined && validateTopicName(props.responseTopic) !== undefined) {
    return { status: 400, problem: "invalid-property", detail: "response_topic must be a topic name: non-empty, without + or #." };
  }
  // Payload Format Indicator 1: the payload is UTF-8 character data (5.0 3.3.2.3.2; 0x99 over MQTT).
  if (props.payloadFormatIndicator === 1 && !isWellFormedUtf8(payload)) {
    return { status: 400, problem: "payload-format-invalid", detail: "payload_format_indicator is 1 but the payload is not well-formed UTF-8." };
  }
  return undefined;
}

function withoutUndefined(props: MessageProperties): MessageProperties {
  const out: MessageProperties = {};
  for (const [k, v] of Object.entries(props)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

// ------------------------------------------------------------------------------ JSON items

/** One message of `POST /publish` or `POST /publish/bulk`, in EMQX's shape. */
export interface JsonItem {
  topic: string;
  payload: string;
  payload_encoding?: "plain" | "base64";
  qos?: number;
  retain?: boolean;
  /** EMQX's name for the device a message comes from. */
  clientid?: string;
  /** The same, by this API's name. */
  device?: string;
  properties?: JsonProperties;
}

export interface JsonProperties {
  payload_format_indicator?: number;
  message_expiry_interval?: number;
  content_type?: string;
  response_topic?: string;
  /** Taken as plain text: its UTF-8 bytes are the Correlation Data (as EMQX does). */
  correlation_data?: string;
  user_properties?: Record<string, string>;
}

/** The draft an EMQX-shaped item describes, or why it cannot be one. */
export function jsonItemDraft(item: JsonItem): Parsed<Draft> {
  let payload: Uint8Array;
  const encoding = item.payload_encoding ?? "plain";
  if (encoding === "base64") {
    const decoded = decodeBase64(item.payload);
    if (!decoded) return refusal(400, "invalid-payload-encoding", "payload_encoding is base64 but the payload is not base64.");
    payload = decoded;
  } else if (encoding === "plain") {
    payload = encoder.encode(item.payload);
  } else {
    return refusal(400, "invalid-payload-encoding", `payload_encoding must be "plain" or "base64", not ${JSON.stringify(encoding)}.`);
  }
  const qos = item.qos ?? 0;
  if (qos !== 0 && qos !== 1 && qos !== 2) return refusal(400, "invalid-qos", `qos must be 0, 1 or 2, not ${JSON.stringify(qos)}.`);
  const device = parseDevice(item.clientid, item.device);
  if (!device.ok) return device;

  const p = item.properties ?? {};
  const pfi = p.payload_format_indicator;
  if (pfi !== undefined && pfi !== 0 && pfi !== 1) return refusal(400, "invalid-property", "payload_format_indicator must be 0 or 1.");
  const expiry = p.message_expiry_interval;
  if (expiry !== undefined && !(Number.isInteger(expiry) && expiry >= 0 && expiry <= MAX_EXPIRY_INTERVAL)) {
    return refusal(400, "invalid-property", `message_expiry_interval must be a whole number of seconds from 0 to ${MAX_EXPIRY_INTERVAL}.`);
  }
  const userProperties: UserProperty[] | undefined = p.user_properties
    ? Object.entries(p.user_properties).map(([k, v]) => [k, String(v)] as UserProperty)
    : undefined;
  const properties = withoutUndefined({
    payloadFormatIndicator: pfi as 0 | 1 | undefined,
    contentType: p.content_type,
    responseTopic: p.response_topic,
    correlationData: p.correlation_data === undefined ? undefined : encoder.encode(p.correlation_data),
    userProperties: userProperties?.length ? userProperties : undefined,
  });
  const bad = finishProperties(properties, payload);
  if (bad) return { ok: false, refusal: bad };
  return {
    ok: true,
    value: {
      topic: item.topic,
      payload,
      qos,
      retain: item.retain ?? false,
      properties,
      ...(expiry !== undefined && { messageExpiryInterval: expiry }),
      ...(device.value !== undefined && { device: device.value }),
    },
  };
}

// ------------------------------------------------------------------------------ raw body

/**
 * `POST /publish/<topic>`: the body is the payload; everything else comes from the query
 * string or from `MQTT-*` headers (the query wins when both say something).
 */
export interface RawRequest {
  /** The topic, already URL-decoded. */
  topic: string;
  body: Uint8Array;
  /** Every value of a query parameter, in order. */
  query(name: string): string[];
  /** Names of every query parameter present. */
  queryNames(): string[];
  /** A header's value; repeated headers arrive joined with ", " (Fetch's Headers.get). */
  header(name: string): string | null;
}

/** The query parameters the raw endpoint reads (anything else is refused: a typo is not ignored). */
export const RAW_QUERY_PARAMETERS = [
  "qos",
  "retain",
  "message_expiry_interval",
  "content_type",
  "response_topic",
  "correlation_data",
  "payload_format_indicator",
  "user_property",
  "device",
  "clientid",
] as const;

/** The `MQTT-*` request headers the raw endpoint reads. */
export const RAW_HEADERS = {
  messageExpiryInterval: "MQTT-Message-Expiry-Interval",
  contentType: "MQTT-Content-Type",
  responseTopic: "MQTT-Response-Topic",
  correlationData: "MQTT-Correlation-Data",
  payloadFormatIndicator: "MQTT-Payload-Format-Indicator",
  userProperty: "MQTT-User-Property",
} as const;

export function rawDraft(req: RawRequest): Parsed<Draft> {
  for (const name of req.queryNames()) {
    if (!(RAW_QUERY_PARAMETERS as readonly string[]).includes(name)) {
      return refusal(400, "unknown-parameter", `Unknown query parameter ${JSON.stringify(name)}; known: ${RAW_QUERY_PARAMETERS.join(", ")}.`);
    }
  }
  for (const name of ["qos", "retain", "message_expiry_interval", "content_type", "response_topic", "correlation_data", "payload_format_indicator", "device", "clientid"]) {
    if (req.query(name).length > 1) return refusal(400, "invalid-parameter", `Query parameter ${name} given more than once.`);
  }
  const one = (name: string): string | undefined => req.query(name)[0];
  const either = (name: string, header: string): string | undefined => one(name) ?? req.header(header) ?? undefined;

  const qos = parseQos(one("qos"));
  if (!qos.ok) return qos;
  const retain = parseRetain(one("retain"));
  if (!retain.ok) return retain;
  const expiry = parseExpiry(either("message_expiry_interval", RAW_HEADERS.messageExpiryInterval), "message_expiry_interval");
  if (!expiry.ok) return expiry;
  const pfi = parseFormatIndicator(either("payload_format_indicator", RAW_HEADERS.payloadFormatIndicator), "payload_format_indicator");
  if (!pfi.ok) return pfi;
  const device = parseDevice(one("clientid"), one("device"));
  if (!device.ok) return device;

  let correlationData: Uint8Array | undefined;
  const correlation = either("correlation_data", RAW_HEADERS.correlationData);
  if (correlation !== undefined) {
    correlationData = decodeBase64(correlation);
    if (!correlationData) return refusal(400, "invalid-property", "correlation_data (query or MQTT-Correlation-Data) must be base64.");
  }
  const userProperties: UserProperty[] = [];
  for (const pair of req.query("user_property")) {
    const colon = pair.indexOf(":");
    if (colon <= 0) return refusal(400, "invalid-property", `user_property must be name:value, not ${JSON.stringify(pair)}.`);
    userProperties.push([pair.slice(0, colon), pair.slice(colon + 1)]);
  }
  const headerPairs = parseUserPropertyHeader(req.header(RAW_HEADERS.userProperty));
  if (!headerPairs.ok) return headerPairs;
  userProperties.push(...headerPairs.value);

  const properties = withoutUndefined({
    payloadFormatIndicator: pfi.value,
    // The request's own Content-Type is the payload's, unless the query or MQTT-Content-Type says otherwise.
    contentType: either("content_type", RAW_HEADERS.contentType) ?? req.header("Content-Type") ?? undefined,
    responseTopic: either("response_topic", RAW_HEADERS.responseTopic),
    correlationData,
    userProperties: userProperties.length ? userProperties : undefined,
  });
  const bad = finishProperties(properties, req.body);
  if (bad) return { ok: false, refusal: bad };
  return {
    ok: true,
    value: {
      topic: req.topic,
      payload: req.body,
      qos: qos.value,
      retain: retain.value,
      properties,
      ...(expiry.value !== undefined && { messageExpiryInterval: expiry.value }),
      ...(device.value !== undefined && { device: device.value }),
    },
  };
}

/**
 * `MQTT-User-Property: name=value`: name and value percent-encoded (as in a form), so a
 * comma, "=" or any byte can be sent. The header may repeat, or carry several pairs
 * separated by commas (a repeated header arrives joined with ", "). Order is kept
 * [MQTT-3.3.2-18].
 */
export function parseUserPropertyHeader(value: string | null): Parsed<UserProperty[]> {
  if (value === null || value.trim() === "") return { ok: true, value: [] };
  const pairs: UserProperty[] = [];
  for (const part of value.split(",")) {
    const text = part.trim();
    const eq = text.indexOf("=");
    if (eq <= 0) return refusal(400, "invalid-property", `${RAW_HEADERS.userProperty} must be name=value (percent-encoded), not ${JSON.stringify(text)}.`);
    try {
      pairs.push([decodeURIComponent(text.slice(0, eq)), decodeURIComponent(text.slice(eq + 1))]);
    } catch {
      return refusal(400, "invalid-property", `${RAW_HEADERS.userProperty}: bad percent-encoding in ${JSON.stringify(text)}.`);
    }
  }
  return { ok: true, value: pairs };
}

// ------------------------------------------------------------------------------ who may publish what

export interface IngestLimits {
  /** MAX_PACKET_SIZE: the PUBLISH packet this message would be, in bytes. */
  maxPacketSize: number;
  maxTopicLength: number;
  maxTopicLevels: number;
}

/** What the caller may do: its key's scopes and device, and the broker's limits. */
export interface IngestPolicy {
  limits: IngestLimits;
  /** Topic filters the caller may publish to; undefined: anywhere but `$` topics (the admin token). */
  scopes?: readonly string[];
  /** A key issued to one device speaks for that device only. */
  keyDevice?: string;
  /** The ACL rules, as for an MQTT PUBLISH (core/ingest/acl.ts); undefined: not checked (the admin token). */
  acl?: IngestAcl;
}

/** Checks a draft as the broker checks a PUBLISH, plus the caller's scope: undefined when it may go. */
export function checkDraft(draft: Draft, policy: IngestPolicy): IngestRefusal | undefined {
  const { topic } = draft;
  // No wildcards in a Topic Name [MQTT-3.3.2-2] [MQTT-4.7.0-1], at least one character
  // [MQTT-4.7.3-1], no U+0000 [MQTT-4.7.3-2].
  if (topic.includes("+") || topic.includes("#")) {
    return { status: 400, problem: "wildcard-in-topic", detail: `A topic name has no wildcards (+ or #): ${JSON.stringify(topic)}.` };
  }
  if (validateTopicName(topic) !== undefined || !isMqttString(topic)) {
    return { status: 400, problem: "invalid-topic", detail: `Not a valid topic name: ${JSON.stringify(topic)}.` };
  }
  // Topics starting with $ are the broker's ($SYS/...) [MQTT-4.7.2-1]: not for clients to publish.
  if (topic.startsWith("$")) {
    return { status: 403, problem: "reserved-topic", detail: `Topics starting with $ belong to the broker: ${JSON.stringify(topic)}.` };
  }
  if (checkTopicNameLimits(topic, { maxBytes: policy.limits.maxTopicLength, maxLevels: policy.limits.maxTopicLevels }) !== undefined) {
    return {
      status: 400,
      problem: "invalid-topic",
      detail: `Topic longer than ${policy.limits.maxTopicLength} bytes or ${policy.limits.maxTopicLevels} levels (MAX_TOPIC_LENGTH, MAX_TOPIC_LEVELS).`,
    };
  }
  const size = publishPacketSize(draft);
  if (size > policy.limits.maxPacketSize) {
    return {
      status: 413,
      problem: "payload-too-large",
      detail: `The message would be a ${size}-byte PUBLISH packet; the broker accepts at most ${policy.limits.maxPacketSize} (MAX_PACKET_SIZE).`,
    };
  }
  if (policy.scopes && !inScope(policy.scopes, topic)) {
    return { status: 403, problem: "out-of-scope", detail: `This API key may not publish to ${JSON.stringify(topic)} (its scopes: ${policy.scopes.join(", ")}).` };
  }
  if (policy.keyDevice !== undefined && draft.device !== undefined && draft.device !== policy.keyDevice) {
    return { status: 403, problem: "other-device", detail: `This API key belongs to device ${JSON.stringify(policy.keyDevice)}; it cannot speak for ${JSON.stringify(draft.device)}.` };
  }
  const denied = policy.acl && aclRefusal(policy.acl, topic, draft.device);
  if (denied !== undefined) return { status: 403, problem: "acl-denied", detail: denied };
  return undefined;
}

/** Whether one of `scopes` (topic filters) matches `topic`. */
export function inScope(scopes: readonly string[], topic: string): boolean {
  return scopes.some((scope) => topicMatches(scope, topic));
}

/** Size in bytes of the MQTT 5.0 PUBLISH packet that would carry the draft (what MAX_PACKET_SIZE bounds). */
export function publishPacketSize(draft: Draft): number {
  return encodePacket(
    {
      type: "publish",
      topic: draft.topic,
      payload: draft.payload,
      qos: draft.qos,
      retain: draft.retain,
      dup: false,
      ...(draft.qos > 0 && { packetId: 1 }),
      properties: {
        ...draft.properties,
        ...(draft.messageExpiryInterval !== undefined && { messageExpiryInterval: draft.messageExpiryInterval }),
      },
    },
    5,
  ).byteLength;
}

/** One refused item of a batch, by its position. */
export interface ItemRefusal extends IngestRefusal {
  index: number;
}

/** Every refused draft of a batch (a refused batch publishes none of its items). */
export function checkBatch(drafts: readonly Draft[], policy: IngestPolicy): ItemRefusal[] {
  const out: ItemRefusal[] = [];
  drafts.forEach((d, index) => {
    const r = checkDraft(d, policy);
    if (r) out.push({ index, ...r });
  });
  return out;
}

/**
 * The message to route. `origin` is the device the draft names, else the caller's
 * (`http:<key id>`); `messageId` is given to QoS 2 messages only, so that a subscriber's
 * session drops a copy of one published again after a crash [MQTT-4.3.3].
 */
export function draftMessage(draft: Draft, at: { now: number; origin: string; id: string }): Message {
  const hasProps = Object.keys(draft.properties).length > 0;
  return {
    topic: draft.topic,
    payload: draft.payload,
    qos: draft.qos,
    retain: draft.retain,
    origin: draft.device ?? at.origin,
    ...(hasProps && { properties: draft.properties }),
    ...(draft.messageExpiryInterval !== undefined && { expiresAt: at.now + draft.messageExpiryInterval * 1000 }),
    ...(draft.qos === 2 && { messageId: at.id }),
  };
}
