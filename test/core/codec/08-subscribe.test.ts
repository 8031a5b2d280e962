// SUBSCRIBE and SUBACK vectors. Spec: MQTT 3.1.1 sections 3.8 and 3.9, MQTT 5.0 sections 3.8, 3.9.
import { runVectors, str, type Vector } from "./vectors.js";

const vectors: Vector[] = [
  {
    name: "SUBSCRIBE two filters",
    version: 4,
    bytes: [
      130, 14, // header: SUBSCRIBE, flags 0010, remaining length 14
      0, 1, // packet id 1
      0, 3, 97, 47, 98, // filter "a/b"
      0, // requested QoS 0
      0, 3, 99, 47, 35, // filter "c/#"
      2, // requested QoS 2
    ],
    packet: {
      type: "subscribe", packetId: 1,
      subscriptions: [{ topicFilter: "a/b", qos: 0 }, { topicFilter: "c/#", qos: 2 }],
    },
  },
  {
    name: "SUBSCRIBE (level 3)",
    version: 3,
    bytes: [
      130, 6, // header
      0, 9, // packet id 9
      0, 1, 43, // filter "+"
      1, // requested QoS 1
    ],
    packet: { type: "subscribe", packetId: 9, subscriptions: [{ topicFilter: "+", qos: 1 }] },
  },
  {
    name: "SUBACK granted QoS 0, 1, 2 and failure 0x80",
    version: 4,
    bytes: [
      144, 6, // header: SUBACK, remaining length 6
      0, 1, // packet id 1
      0, 1, 2, // granted QoS 0, 1, 2
      128, // failure
    ],
    packet: { type: "suback", packetId: 1, reasonCodes: [0, 1, 2, 0x80] },
  },
  {
    name: "SUBSCRIBE minimal",
    version: 5,
    bytes: [
      130, 7, // header
      0, 10, // packet id 10
      0, // property length 0
      0, 1, 97, // filter "a"
      0, // options: QoS 0
    ],
    packet: { type: "subscribe", packetId: 10, subscriptions: [{ topicFilter: "a", qos: 0 }] },
  },
  {
    name: "SUBSCRIBE with subscription identifier, user property and every option",
    version: 5,
    bytes: [
      130, 32, // header: remaining length 32
      0, 2, // packet id 2
      10, // property length 10
      11, 128, 1, // 0x0B subscription identifier (varint, 2 bytes) 128
      38, 0, 1, 107, 0, 1, 118, // 0x26 user property "k" = "v"
      0, 3, 120, 47, 43, // filter "x/+"
      45, // options 0010 1101: retain handling 2, retain as published, no local, QoS 1
      ...str("$share/g/y"), // filter "$share/g/y"
      16, // options 0001 0000: retain handling 1, QoS 0
    ],
    packet: {
      type: "subscribe", packetId: 2,
      properties: { subscriptionIdentifiers: [128], userProperties: [["k", "v"]] },
      subscriptions: [
        { topicFilter: "x/+", qos: 1, noLocal: true, retainAsPublished: true, retainHandling: 2 },
        { topicFilter: "$share/g/y", qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 1 },
      ],
    },
  },
  {
    name: "SUBSCRIBE QoS 2 with retain as published only",
    version: 5,
    bytes: [
      130, 8, // header
      0, 3, // packet id 3
      0, // property length 0
      0, 2, 35, 35, // filter "##" (decodes; validity of a filter is a SUBACK 0x8F matter)
      10, // options 0000 1010: retain as published, QoS 2
    ],
    packet: {
      type: "subscribe", packetId: 3,
      subscriptions: [{ topicFilter: "##", qos: 2, retainAsPublished: true }],
    },
  },
  {
    name: "SUBACK minimal",
    version: 5,
    bytes: [
      144, 4, // header
      0, 1, // packet id 1
      0, // property length 0
      1, // granted QoS 1
    ],
    packet: { type: "suback", packetId: 1, reasonCodes: [1] },
  },
  {
    name: "SUBACK with reason string and 5.0 failure codes",
    version: 5,
    bytes: [
      144, 10, // header
      0, 1, // packet id 1
      4, // property length 4
      31, 0, 1, 120, // 0x1F reason string "x"
      0, // granted QoS 0
      2, // granted QoS 2
      162, // 0xA2 wildcard subscriptions not supported
    ],
    packet: { type: "suback", packetId: 1, reasonCodes: [0, 2, 0xa2], properties: { reasonString: "x" } },
  },
];

runVectors("08 SUBSCRIBE / SUBACK", vectors);
