// UNSUBSCRIBE and UNSUBACK vectors. Spec: MQTT 3.1.1 sections 3.10, 3.11; MQTT 5.0 3.10, 3.11.
import { runVectors, type Vector } from "./vectors.js";

const vectors: Vector[] = [
  {
    name: "UNSUBSCRIBE two filters",
    version: 4,
    bytes: [
      162, 10, // header: UNSUBSCRIBE, flags 0010, remaining length 10
      0, 3, // packet id 3
      0, 3, 97, 47, 98, // filter "a/b"
      0, 1, 35, // filter "#"
    ],
    packet: { type: "unsubscribe", packetId: 3, topicFilters: ["a/b", "#"] },
  },
  {
    name: "UNSUBACK (no payload in 3.1.1)",
    version: 4,
    bytes: [
      176, 2, // header: UNSUBACK, remaining length 2
      0, 3, // packet id 3
    ],
    packet: { type: "unsuback", packetId: 3 },
  },
  {
    name: "UNSUBSCRIBE with a user property",
    version: 5,
    bytes: [
      162, 13, // header
      0, 4, // packet id 4
      7, // property length 7
      38, 0, 1, 97, 0, 1, 98, // 0x26 user property "a" = "b"
      0, 1, 97, // filter "a"
    ],
    packet: { type: "unsubscribe", packetId: 4, topicFilters: ["a"], properties: { userProperties: [["a", "b"]] } },
  },
  {
    name: "UNSUBSCRIBE minimal",
    version: 5,
    bytes: [
      162, 6, // header
      0, 5, // packet id 5
      0, // property length 0
      0, 1, 43, // filter "+"
    ],
    packet: { type: "unsubscribe", packetId: 5, topicFilters: ["+"] },
  },
  {
    name: "UNSUBACK success and 0x11 no subscription existed",
    version: 5,
    bytes: [
      176, 5, // header
      0, 3, // packet id 3
      0, // property length 0
      0, // 0x00 success
      17, // 0x11 no subscription existed
    ],
    packet: { type: "unsuback", packetId: 3, reasonCodes: [0, 0x11] },
  },
  {
    name: "UNSUBACK with reason string",
    version: 5,
    bytes: [
      176, 8, // header
      0, 3, // packet id 3
      4, // property length 4
      31, 0, 1, 120, // 0x1F reason string "x"
      135, // 0x87 not authorized
    ],
    packet: { type: "unsuback", packetId: 3, reasonCodes: [0x87], properties: { reasonString: "x" } },
  },
];

runVectors("10 UNSUBSCRIBE / UNSUBACK", vectors);
