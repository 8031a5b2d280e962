// PINGREQ, PINGRESP, DISCONNECT and AUTH vectors. Spec: MQTT 3.1.1 sections 3.12 to 3.14,
// MQTT 5.0 sections 3.12 to 3.15 (DISCONNECT and AUTH may have remaining length 0).
import { runVectors, u8, type Vector } from "./vectors.js";

const vectors: Vector[] = [
  { name: "PINGREQ", version: 4, bytes: [192, 0 /* header: PINGREQ, remaining length 0 */], packet: { type: "pingreq" } },
  { name: "PINGRESP", version: 4, bytes: [208, 0 /* header: PINGRESP, remaining length 0 */], packet: { type: "pingresp" } },
  { name: "DISCONNECT", version: 4, bytes: [224, 0 /* header: DISCONNECT, remaining length 0 */], packet: { type: "disconnect" } },
  { name: "PINGREQ (level 3)", version: 3, bytes: [192, 0 /* header */], packet: { type: "pingreq" } },
  { name: "DISCONNECT (level 3)", version: 3, bytes: [224, 0 /* header */], packet: { type: "disconnect" } },
  { name: "PINGREQ", version: 5, bytes: [192, 0 /* header */], packet: { type: "pingreq" } },
  { name: "PINGRESP", version: 5, bytes: [208, 0 /* header */], packet: { type: "pingresp" } },
  {
    name: "DISCONNECT short form (length 0: normal disconnection)",
    version: 5,
    bytes: [224, 0 /* header: remaining length 0 */],
    packet: { type: "disconnect" },
  },
  {
    name: "DISCONNECT 0x04 disconnect with Will (length 1)",
    version: 5,
    bytes: [
      224, 1, // header
      4, // reason code 0x04
    ],
    packet: { type: "disconnect", reasonCode: 0x04 },
  },
  {
    name: "DISCONNECT 0x9C use another server, with properties",
    version: 5,
    bytes: [
      224, 25, // header: remaining length 25
      156, // reason code 0x9C
      23, // property length 23
      17, 0, 0, 0, 0, // 0x11 session expiry interval 0
      28, 0, 2, 115, 50, // 0x1C server reference "s2"
      31, 0, 3, 98, 121, 101, // 0x1F reason string "bye"
      38, 0, 1, 97, 0, 1, 98, // 0x26 user property "a" = "b"
    ],
    packet: {
      type: "disconnect", reasonCode: 0x9c,
      properties: { sessionExpiryInterval: 0, serverReference: "s2", reasonString: "bye", userProperties: [["a", "b"]] },
    },
  },
  {
    name: "DISCONNECT normal with a reason string",
    version: 5,
    bytes: [
      224, 6, // header
      0, // reason code 0x00
      4, // property length 4
      31, 0, 1, 122, // 0x1F reason string "z"
    ],
    packet: { type: "disconnect", properties: { reasonString: "z" } },
  },
  {
    name: "DISCONNECT normal spelled out (length 1)",
    version: 5,
    decodeOnly: true,
    bytes: [224, 1, /* header */ 0 /* reason code 0x00 */],
    packet: { type: "disconnect" },
  },
  {
    name: "DISCONNECT normal with empty properties (length 2)",
    version: 5,
    decodeOnly: true,
    bytes: [224, 2, /* header */ 0, /* reason code 0x00 */ 0 /* property length 0 */],
    packet: { type: "disconnect" },
  },
  {
    name: "AUTH short form (length 0: success)",
    version: 5,
    bytes: [240, 0 /* header: AUTH, remaining length 0 */],
    packet: { type: "auth" },
  },
  {
    name: "AUTH 0x18 continue authentication",
    version: 5,
    bytes: [
      240, 16, // header
      24, // reason code 0x18
      14, // property length 14
      21, 0, 1, 109, // 0x15 authentication method "m"
      22, 0, 3, 1, 2, 3, // 0x16 authentication data 01 02 03
      31, 0, 1, 114, // 0x1F reason string "r"
    ],
    packet: {
      type: "auth", reasonCode: 0x18,
      properties: { authenticationMethod: "m", authenticationData: u8(1, 2, 3), reasonString: "r" },
    },
  },
  {
    name: "AUTH 0x19 re-authenticate with user property",
    version: 5,
    bytes: [
      240, 13, // header
      25, // reason code 0x19
      11, // property length 11
      21, 0, 1, 109, // 0x15 authentication method "m"
      38, 0, 1, 97, 0, 1, 98, // 0x26 user property "a" = "b"
    ],
    packet: {
      type: "auth", reasonCode: 0x19,
      properties: { authenticationMethod: "m", userProperties: [["a", "b"]] },
    },
  },
];

runVectors("12 PINGREQ / PINGRESP / DISCONNECT / AUTH", vectors);
