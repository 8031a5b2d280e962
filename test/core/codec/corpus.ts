/**
 * Random valid packets for the fuzz and differential tests. Everything generated is valid
 * for the given version (spec-valid values, allowed properties only), so an unmutated packet
 * must encode and decode back to itself. User properties are generated grouped by name so
 * that mqtt-packet's object form ({ name: value | value[] }) maps back without reordering.
 */
import type { Packet, Properties, ProtocolVersion, QoS, UserProperty, Will, WillProperties } from "../../../core/mqtt/packets.js";
import type { Prng } from "./prng.js";

const WORDS = ["a", "b", "sport", "tennis", "player1", "ü", "€uro", "𝄞", "x y", "$SYS", "0", "ζ", "-_."];

export function randomString(r: Prng, max = 3): string {
  const n = r.range(0, max);
  let s = "";
  for (let i = 0; i < n; i++) s += r.pick(WORDS);
  return s;
}

export function randomTopic(r: Prng): string {
  const levels = r.range(1, 4);
  const parts: string[] = [];
  for (let i = 0; i < levels; i++) parts.push(r.bool(0.1) ? "" : randomString(r, 2));
  const t = parts.join("/");
  return t === "" ? "t" : t;
}

export function randomFilter(r: Prng): string {
  const levels = r.range(1, 4);
  const parts: string[] = [];
  for (let i = 0; i < levels; i++) parts.push(r.bool(0.2) ? "+" : r.bool(0.1) ? "" : randomString(r, 2) || "l");
  if (r.bool(0.3)) parts.push("#");
  return parts.join("/");
}

const u32 = (r: Prng) => (r.bool(0.3) ? r.pick([0, 1, 0xffffffff]) : r.next());
const u16 = (r: Prng) => (r.bool(0.3) ? r.pick([0, 1, 0xffff]) : r.int(0x10000));
const bin = (r: Prng) => r.bytes(r.range(0, 8));
const bit = (r: Prng) => r.int(2) as 0 | 1;

function userProperties(r: Prng): UserProperty[] {
  const names = r.range(1, 3);
  const out: UserProperty[] = [];
  for (let i = 0; i < names; i++) {
    const name = `${randomString(r, 2)}#${i}`; // distinct names
    const values = r.range(1, 2);
    // A repeated name gets non-empty values: mqtt-packet's parser drops a repeated user
    // property whose first value is "" (differential.test.ts shows it).
    for (let j = 0; j < values; j++) out.push([name, values > 1 ? `${randomString(r, 2)}~${j}` : randomString(r, 2)]);
  }
  return out;
}

type Gen = Partial<Record<keyof Properties, (r: Prng) => unknown>>;

function props<T extends Properties>(r: Prng, gens: Gen, p = 0.4): T | undefined {
  const out: Record<string, unknown> = {};
  for (const [name, gen] of Object.entries(gens)) if (gen && r.bool(p)) out[name] = gen(r);
  return Object.keys(out).length > 0 ? (out as T) : undefined;
}

const ack: Gen = { reasonString: (r) => randomString(r), userProperties };

export const REASONS = {
  connack5: [0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x90, 0x95, 0x97, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9f],
  pubackPubrec: [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99],
  pubrelPubcomp: [0x00, 0x92],
  suback5: [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2],
  unsuback5: [0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91],
  disconnect: [0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d, 0x8e, 0x8f, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2],
  auth: [0x00, 0x18, 0x19],
};

export const TYPES = ["connect", "connack", "publish", "puback", "pubrec", "pubrel", "pubcomp", "subscribe", "suback", "unsubscribe", "unsuback", "pingreq", "pingresp", "disconnect", "auth"] as const;

function payload(r: Prng, utf8: boolean): Uint8Array {
  if (utf8) return new TextEncoder().encode(randomString(r, 6));
  return r.bytes(r.bool(0.1) ? r.range(128, 400) : r.range(0, 40));
}

export function randomPacket(r: Prng, version: ProtocolVersion, type: (typeof TYPES)[number] = r.pick(TYPES)): Packet {
  const v5 = version === 5;
  if (type === "auth" && !v5) type = "pingreq";
  const id = () => r.range(1, 0xffff);
  const reason = (list: number[]) => r.pick(list);
  switch (type) {
    case "connect": {
      const username = r.bool(0.5) ? randomString(r) : undefined;
      const password = (v5 || username !== undefined) && r.bool(0.5) ? bin(r) : undefined;
      let will: Will | undefined;
      if (r.bool(0.4)) {
        const wp = v5 ? props<WillProperties>(r, {
          willDelayInterval: u32, payloadFormatIndicator: bit, messageExpiryInterval: u32,
          contentType: (x) => randomString(x), responseTopic: randomTopic, correlationData: bin, userProperties,
        }) : undefined;
        will = {
          topic: randomTopic(r), payload: payload(r, wp?.payloadFormatIndicator === 1),
          qos: r.int(3) as QoS, retain: r.bool(), ...(wp ? { properties: wp } : {}),
        };
      }
      const p = v5 ? props<Properties>(r, {
        sessionExpiryInterval: u32, receiveMaximum: (x) => x.range(1, 0xffff), maximumPacketSize: (x) => x.range(1, 0x7fffffff),
        topicAliasMaximum: u16, requestResponseInformation: bit, requestProblemInformation: bit, userProperties,
        authenticationMethod: (x) => randomString(x),
      }) : undefined;
      if (p?.authenticationMethod !== undefined && r.bool()) p.authenticationData = bin(r);
      const clientId = version === 3 ? "c" + String(r.int(1e6)) : r.bool(0.1) ? "" : randomString(r, 4);
      return {
        // 3.1.1: a zero-byte client id comes with Clean Session 1 [MQTT-3.1.3-7].
        type, protocolName: version === 3 ? "MQIsdp" : "MQTT", protocolVersion: version, clean: (!v5 && clientId === "") || r.bool(),
        keepAlive: u16(r), clientId,
        ...(will ? { will } : {}), ...(username !== undefined ? { username } : {}), ...(password ? { password } : {}), ...(p ? { properties: p } : {}),
      };
    }
    case "connack": {
      const p = v5 ? props<Properties>(r, {
        sessionExpiryInterval: u32, receiveMaximum: (x) => x.range(1, 0xffff), maximumQoS: bit, retainAvailable: bit,
        maximumPacketSize: (x) => x.range(1, 0x7fffffff), assignedClientIdentifier: (x) => randomString(x), topicAliasMaximum: u16,
        reasonString: (x) => randomString(x), userProperties, wildcardSubscriptionAvailable: bit, subscriptionIdentifierAvailable: bit,
        sharedSubscriptionAvailable: bit, serverKeepAlive: u16, responseInformation: (x) => randomString(x),
        serverReference: (x) => randomString(x), authenticationMethod: (x) => randomString(x), authenticationData: bin,
      }, 0.25) : undefined;
      return { type, sessionPresent: r.bool(), reasonCode: v5 ? reason(REASONS.connack5) : r.int(6), ...(p ? { properties: p } : {}) };
    }
    case "publish": {
      const qos = r.int(3) as QoS;
      const p = v5 ? props<Properties>(r, {
        payloadFormatIndicator: bit, messageExpiryInterval: u32, topicAlias: (x) => x.range(1, 0xffff),
        responseTopic: randomTopic, correlationData: bin, userProperties,
        subscriptionIdentifiers: (x) => Array.from({ length: x.range(1, 3) }, () => x.range(1, 268435455)),
        contentType: (x) => randomString(x),
      }) : undefined;
      const topic = p?.topicAlias !== undefined && r.bool(0.5) ? "" : randomTopic(r);
      return {
        type, topic, payload: payload(r, p?.payloadFormatIndicator === 1), qos, retain: r.bool(), dup: qos > 0 && r.bool(0.3),
        ...(qos > 0 ? { packetId: id() } : {}), ...(p ? { properties: p } : {}),
      };
    }
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp": {
      if (!v5) return { type, packetId: id() };
      const rc = reason(type === "puback" || type === "pubrec" ? REASONS.pubackPubrec : REASONS.pubrelPubcomp);
      const p = props<Properties>(r, ack);
      return { type, packetId: id(), ...(rc !== 0 ? { reasonCode: rc } : {}), ...(p ? { properties: p } : {}) };
    }
    case "subscribe": {
      const n = r.range(1, 4);
      const subscriptions = Array.from({ length: n }, () => {
        const topicFilter = r.bool(0.15) ? `$share/g${r.int(9)}/${randomFilter(r)}` : randomFilter(r);
        const qos = r.int(3) as QoS;
        if (!v5) return { topicFilter, qos };
        return {
          topicFilter, qos, noLocal: !topicFilter.startsWith("$share/") && r.bool(),
          retainAsPublished: r.bool(), retainHandling: r.int(3) as 0 | 1 | 2,
        };
      });
      const p = v5 ? props<Properties>(r, { subscriptionIdentifiers: (x) => [x.range(1, 268435455)], userProperties }) : undefined;
      return { type, packetId: id(), subscriptions, ...(p ? { properties: p } : {}) };
    }
    case "suback": {
      const n = r.range(1, 5);
      const reasonCodes = Array.from({ length: n }, () => (v5 ? reason(REASONS.suback5) : r.pick([0, 1, 2, 0x80])));
      const p = v5 ? props<Properties>(r, ack) : undefined;
      return { type, packetId: id(), reasonCodes, ...(p ? { properties: p } : {}) };
    }
    case "unsubscribe": {
      const topicFilters = Array.from({ length: r.range(1, 4) }, () => randomFilter(r));
      const p = v5 ? props<Properties>(r, { userProperties }) : undefined;
      return { type, packetId: id(), topicFilters, ...(p ? { properties: p } : {}) };
    }
    case "unsuback": {
      if (!v5) return { type, packetId: id() };
      const p = props<Properties>(r, ack);
      return { type, packetId: id(), reasonCodes: Array.from({ length: r.range(1, 4) }, () => reason(REASONS.unsuback5)), ...(p ? { properties: p } : {}) };
    }
    case "pingreq":
    case "pingresp":
      return { type };
    case "disconnect": {
      if (!v5) return { type };
      const rc = reason(REASONS.disconnect);
      const p = props<Properties>(r, { sessionExpiryInterval: u32, reasonString: (x) => randomString(x), serverReference: (x) => randomString(x), userProperties });
      return { type, ...(rc !== 0 ? { reasonCode: rc } : {}), ...(p ? { properties: p } : {}) };
    }
    case "auth": {
      const rc = reason(REASONS.auth);
      const p = props<Properties>(r, { authenticationMethod: (x) => randomString(x), authenticationData: bin, reasonString: (x) => randomString(x), userProperties });
      if (p?.authenticationData !== undefined && p.authenticationMethod === undefined) p.authenticationMethod = "m";
      return { type, ...(rc !== 0 ? { reasonCode: rc } : {}), ...(p ? { properties: p } : {}) };
    }
  }
}
