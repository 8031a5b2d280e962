// PUBACK, PUBREC, PUBREL, PUBCOMP vectors. Spec: MQTT 3.1.1 sections 3.4 to 3.7,
// MQTT 5.0 sections 3.4 to 3.7 (short forms: 3.4.2.1 "The Reason Code and Property Length can
// be omitted if the Reason Code is 0x00 (Success) and there are no Properties").
import { runVectors, type Vector } from "./vectors.js";

const vectors: Vector[] = [
  // 3.1.1: packet id only; the decoded packet has no reasonCode and no properties.
  { name: "PUBACK", version: 4, bytes: [64, 2, /* header */ 0, 1 /* packet id 1 */], packet: { type: "puback", packetId: 1 } },
  { name: "PUBREC", version: 4, bytes: [80, 2, /* header */ 0, 2 /* packet id 2 */], packet: { type: "pubrec", packetId: 2 } },
  { name: "PUBREL (flags 0010)", version: 4, bytes: [98, 2, /* header */ 1, 0 /* packet id 256 */], packet: { type: "pubrel", packetId: 256 } },
  { name: "PUBCOMP", version: 4, bytes: [112, 2, /* header */ 255, 255 /* packet id 65535 */], packet: { type: "pubcomp", packetId: 65535 } },
  { name: "PUBACK (level 3)", version: 3, bytes: [64, 2, /* header */ 0, 7 /* packet id 7 */], packet: { type: "puback", packetId: 7 } },

  // 5.0, remaining length 2: reason code 0x00 and no properties implied.
  { name: "PUBACK short form (length 2)", version: 5, bytes: [64, 2, /* header */ 0, 1 /* packet id */], packet: { type: "puback", packetId: 1 } },
  { name: "PUBREC short form (length 2)", version: 5, bytes: [80, 2, /* header */ 0, 2 /* packet id */], packet: { type: "pubrec", packetId: 2 } },
  { name: "PUBREL short form (length 2)", version: 5, bytes: [98, 2, /* header */ 0, 3 /* packet id */], packet: { type: "pubrel", packetId: 3 } },
  { name: "PUBCOMP short form (length 2)", version: 5, bytes: [112, 2, /* header */ 0, 4 /* packet id */], packet: { type: "pubcomp", packetId: 4 } },

  // 5.0, remaining length 3: reason code, property length 0 implied [MQTT-3.4.2-1].
  {
    name: "PUBACK 0x10 no matching subscribers (length 3)",
    version: 5,
    bytes: [
      64, 3, // header
      0, 1, // packet id 1
      16, // reason code 0x10
    ],
    packet: { type: "puback", packetId: 1, reasonCode: 0x10 },
  },
  {
    name: "PUBREC 0x80 unspecified error (length 3)",
    version: 5,
    bytes: [
      80, 3, // header
      0, 2, // packet id 2
      128, // reason code 0x80
    ],
    packet: { type: "pubrec", packetId: 2, reasonCode: 0x80 },
  },
  {
    name: "PUBREL 0x92 packet identifier not found (length 3)",
    version: 5,
    bytes: [
      98, 3, // header
      0, 3, // packet id 3
      146, // reason code 0x92
    ],
    packet: { type: "pubrel", packetId: 3, reasonCode: 0x92 },
  },
  {
    name: "PUBCOMP 0x92 packet identifier not found (length 3)",
    version: 5,
    bytes: [
      112, 3, // header
      0, 4, // packet id 4
      146, // reason code 0x92
    ],
    packet: { type: "pubcomp", packetId: 4, reasonCode: 0x92 },
  },

  // 5.0 with properties.
  {
    name: "PUBACK 0x87 with reason string and user property",
    version: 5,
    bytes: [
      64, 16, // header: remaining length 16
      0, 9, // packet id 9
      135, // reason code 0x87 not authorized
      12, // property length 12
      31, 0, 2, 110, 111, // 0x1F reason string "no"
      38, 0, 1, 97, 0, 1, 98, // 0x26 user property "a" = "b"
    ],
    packet: {
      type: "puback", packetId: 9, reasonCode: 0x87,
      properties: { reasonString: "no", userProperties: [["a", "b"]] },
    },
  },
  {
    name: "PUBREC success with a reason string (reason code written because properties follow)",
    version: 5,
    bytes: [
      80, 9, // header
      0, 5, // packet id 5
      0, // reason code 0x00
      5, // property length 5
      31, 0, 2, 111, 107, // 0x1F reason string "ok"
    ],
    packet: { type: "pubrec", packetId: 5, properties: { reasonString: "ok" } },
  },
  {
    name: "PUBCOMP success with user properties",
    version: 5,
    bytes: [
      112, 18, // header
      0, 6, // packet id 6
      0, // reason code 0x00
      14, // property length 14
      38, 0, 1, 120, 0, 1, 49, // 0x26 user property "x" = "1"
      38, 0, 1, 120, 0, 1, 49, // 0x26 user property "x" = "1" again (duplicates are kept)
    ],
    packet: { type: "pubcomp", packetId: 6, properties: { userProperties: [["x", "1"], ["x", "1"]] } },
  },

  // 5.0 valid but non-canonical spellings of success: decoded, not produced by the encoder.
  {
    name: "PUBACK success spelled out (length 3, reason 0x00)",
    version: 5,
    decodeOnly: true,
    bytes: [64, 3, /* header */ 0, 1, /* packet id */ 0 /* reason code 0x00 */],
    packet: { type: "puback", packetId: 1 },
  },
  {
    name: "PUBREL success with empty properties (length 4)",
    version: 5,
    decodeOnly: true,
    bytes: [98, 4, /* header */ 0, 1, /* packet id */ 0, /* reason code 0x00 */ 0 /* property length 0 */],
    packet: { type: "pubrel", packetId: 1 },
  },
  {
    name: "PUBREC 0x10 with empty properties (length 4)",
    version: 5,
    decodeOnly: true,
    bytes: [80, 4, /* header */ 0, 1, /* packet id */ 16, /* reason code 0x10 */ 0 /* property length 0 */],
    packet: { type: "pubrec", packetId: 1, reasonCode: 0x10 },
  },
];

runVectors("04 PUBACK / PUBREC / PUBREL / PUBCOMP", vectors);
