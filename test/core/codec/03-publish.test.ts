// PUBLISH vectors. Spec: MQTT 3.1.1 section 3.3, MQTT 5.0 section 3.3.
import { runVectors, str, u8, utf8, type Vector } from "./vectors.js";

const vectors: Vector[] = [
  {
    name: "QoS 0",
    version: 4,
    bytes: [
      48, 7, // header: PUBLISH, QoS 0, remaining length 7
      0, 3, 97, 47, 98, // topic "a/b"
      104, 105, // payload "hi"
    ],
    packet: { type: "publish", topic: "a/b", payload: u8(104, 105), qos: 0, retain: false, dup: false },
  },
  {
    name: "QoS 0, empty payload",
    version: 4,
    bytes: [
      48, 3, // header
      0, 1, 116, // topic "t"
    ],
    packet: { type: "publish", topic: "t", payload: u8(), qos: 0, retain: false, dup: false },
  },
  {
    name: "QoS 1, retained",
    version: 4,
    bytes: [
      51, 8, // header 0011 0011: PUBLISH, QoS 1, retain
      0, 1, 116, // topic "t"
      0, 10, // packet id 10
      1, 2, 3, // payload 01 02 03
    ],
    packet: { type: "publish", topic: "t", payload: u8(1, 2, 3), qos: 1, retain: true, dup: false, packetId: 10 },
  },
  {
    name: "QoS 2, DUP, packet id 65535, empty payload",
    version: 4,
    bytes: [
      60, 5, // header 0011 1100: PUBLISH, DUP, QoS 2
      0, 1, 116, // topic "t"
      255, 255, // packet id 65535
    ],
    packet: { type: "publish", topic: "t", payload: u8(), qos: 2, retain: false, dup: true, packetId: 65535 },
  },
  {
    name: "multi-byte UTF-8 topic (2-, 3- and 4-byte sequences), binary payload",
    version: 4,
    bytes: [
      48, 17, // header
      0, 11, // topic length 11
      195, 188, // "ü" U+00FC
      47, // "/"
      226, 130, 172, // "€" U+20AC
      47, // "/"
      240, 157, 132, 158, // "𝄞" U+1D11E (a surrogate pair in JavaScript)
      0, 255, 0, 128, // payload 00 ff 00 80 (binary, zeros included)
    ],
    packet: { type: "publish", topic: "ü/€/𝄞", payload: u8(0, 255, 0, 128), qos: 0, retain: false, dup: false },
  },
  {
    name: "topic starting with U+FEFF: the BOM is kept, not stripped [MQTT-1.5.4-3]",
    version: 4,
    bytes: [
      48, 6, // header
      0, 4, // topic length 4
      239, 187, 191, // U+FEFF ZERO WIDTH NO-BREAK SPACE
      97, // "a"
    ],
    packet: { type: "publish", topic: "\uFEFFa", payload: u8(), qos: 0, retain: false, dup: false },
  },
  {
    name: "level 3 session, QoS 1",
    version: 3,
    bytes: [
      50, 6, // header 0011 0010: QoS 1
      0, 1, 116, // topic "t"
      0, 1, // packet id 1
      120, // payload "x"
    ],
    packet: { type: "publish", topic: "t", payload: u8(120), qos: 1, retain: false, dup: false, packetId: 1 },
  },
  {
    name: "QoS 0, no properties",
    version: 5,
    bytes: [
      48, 8, // header
      0, 3, 97, 47, 98, // topic "a/b"
      0, // property length 0
      104, 105, // payload "hi"
    ],
    packet: { type: "publish", topic: "a/b", payload: u8(104, 105), qos: 0, retain: false, dup: false },
  },
  {
    name: "QoS 1 with every client-to-server PUBLISH property",
    version: 5,
    bytes: [
      50, 63, // header: QoS 1, remaining length 63
      0, 3, 116, 47, 49, // topic "t/1"
      0, 1, // packet id 1
      53, // property length 53
      1, 1, // 0x01 payload format indicator 1 (UTF-8)
      2, 0, 0, 14, 16, // 0x02 message expiry interval 3600
      3, ...str("text/plain"), // 0x03 content type "text/plain"
      8, ...str("reply/1"), // 0x08 response topic "reply/1"
      9, 0, 2, 222, 173, // 0x09 correlation data de ad
      35, 0, 5, // 0x23 topic alias (two-byte) 5
      38, ...str("source"), ...str("test"), // 0x26 user property "source" = "test"
      111, 107, // payload "ok"
    ],
    packet: {
      type: "publish", topic: "t/1", payload: u8(111, 107), qos: 1, retain: false, dup: false, packetId: 1,
      properties: {
        payloadFormatIndicator: 1,
        messageExpiryInterval: 3600,
        contentType: "text/plain",
        responseTopic: "reply/1",
        correlationData: u8(222, 173),
        topicAlias: 5,
        userProperties: [["source", "test"]],
      },
    },
  },
  {
    name: "server-to-client: several subscription identifiers (varint of 1, 2 and 4 bytes)",
    version: 5,
    bytes: [
      48, 14, // header
      0, 1, 115, // topic "s"
      10, // property length 10
      11, 1, // 0x0B subscription identifier (varint) 1
      11, 200, 1, // 0x0B subscription identifier 200
      11, 255, 255, 255, 127, // 0x0B subscription identifier 268435455 (the maximum)
    ],
    packet: {
      type: "publish", topic: "s", payload: u8(), qos: 0, retain: false, dup: false,
      properties: { subscriptionIdentifiers: [1, 200, 268435455] },
    },
  },
  {
    name: "empty topic with a topic alias",
    version: 5,
    bytes: [
      48, 7, // header
      0, 0, // topic "" (the alias stands for it)
      3, // property length 3
      35, 0, 1, // 0x23 topic alias 1
      120, // payload "x"
    ],
    packet: {
      type: "publish", topic: "", payload: u8(120), qos: 0, retain: false, dup: false,
      properties: { topicAlias: 1 },
    },
  },
  {
    name: "QoS 2, retain, DUP, payload format 0 and user properties in order",
    version: 5,
    bytes: [
      61, 25, // header 0011 1101: DUP, QoS 2, retain
      0, 2, 47, 47, // topic "//"
      1, 0, // packet id 256
      16, // property length 16
      1, 0, // 0x01 payload format indicator 0 (unspecified bytes)
      38, 0, 1, 98, 0, 1, 49, // 0x26 user property "b" = "1"
      38, 0, 1, 97, 0, 1, 50, // 0x26 user property "a" = "2"
      ...utf8("  "), // payload two spaces
    ],
    packet: {
      type: "publish", topic: "//", payload: u8(32, 32), qos: 2, retain: true, dup: true, packetId: 256,
      properties: { payloadFormatIndicator: 0, userProperties: [["b", "1"], ["a", "2"]] },
    },
  },
];

runVectors("03 PUBLISH", vectors);
