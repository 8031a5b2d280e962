// CONNACK vectors. Spec: MQTT 3.1.1 section 3.2, MQTT 5.0 section 3.2.
import { runVectors, u8, type Vector } from "./vectors.js";

const vectors: Vector[] = [
  {
    name: "accepted, no session",
    version: 4,
    bytes: [
      32, 2, // header: CONNACK, remaining length 2
      0, // acknowledge flags: session present 0
      0, // return code 0: accepted
    ],
    packet: { type: "connack", sessionPresent: false, reasonCode: 0 },
  },
  {
    name: "accepted, session present",
    version: 4,
    bytes: [
      32, 2, // header
      1, // acknowledge flags: session present 1
      0, // return code 0
    ],
    packet: { type: "connack", sessionPresent: true, reasonCode: 0 },
  },
  {
    name: "refused: not authorized",
    version: 4,
    bytes: [
      32, 2, // header
      0, // flags
      5, // return code 5: not authorized
    ],
    packet: { type: "connack", sessionPresent: false, reasonCode: 5 },
  },
  {
    name: "refused: unacceptable protocol version (level 3 session)",
    version: 3,
    bytes: [
      32, 2, // header
      0, // flags
      1, // return code 1: unacceptable protocol version
    ],
    packet: { type: "connack", sessionPresent: false, reasonCode: 1 },
  },
  {
    name: "success, no properties",
    version: 5,
    bytes: [
      32, 3, // header: remaining length 3
      0, // flags
      0, // reason code 0x00 success
      0, // property length 0
    ],
    packet: { type: "connack", sessionPresent: false, reasonCode: 0 },
  },
  {
    name: "refused: not authorized (0x87)",
    version: 5,
    bytes: [
      32, 3, // header
      0, // flags
      135, // reason code 0x87 not authorized
      0, // property length 0
    ],
    packet: { type: "connack", sessionPresent: false, reasonCode: 0x87 },
  },
  {
    name: "session present with the server's capabilities",
    version: 5,
    bytes: [
      32, 46, // header: remaining length 46
      1, // flags: session present
      0, // reason code 0x00
      43, // property length 43
      17, 0, 0, 0, 120, // 0x11 session expiry interval (four-byte) 120
      18, 0, 6, 97, 117, 116, 111, 45, 49, // 0x12 assigned client identifier (UTF-8) "auto-1"
      19, 1, 44, // 0x13 server keep alive (two-byte) 300
      26, 0, 2, 114, 105, // 0x1A response information (UTF-8) "ri"
      33, 0, 100, // 0x21 receive maximum (two-byte) 100
      34, 0, 16, // 0x22 topic alias maximum (two-byte) 16
      36, 1, // 0x24 maximum QoS (byte) 1
      37, 0, // 0x25 retain available (byte) 0
      39, 0, 1, 0, 0, // 0x27 maximum packet size (four-byte) 65536
      40, 1, // 0x28 wildcard subscription available (byte) 1
      41, 0, // 0x29 subscription identifiers available (byte) 0
      42, 1, // 0x2A shared subscription available (byte) 1
    ],
    packet: {
      type: "connack", sessionPresent: true, reasonCode: 0,
      properties: {
        sessionExpiryInterval: 120,
        assignedClientIdentifier: "auto-1",
        serverKeepAlive: 300,
        responseInformation: "ri",
        receiveMaximum: 100,
        topicAliasMaximum: 16,
        maximumQoS: 1,
        retainAvailable: 0,
        maximumPacketSize: 65536,
        wildcardSubscriptionAvailable: 1,
        subscriptionIdentifierAvailable: 0,
        sharedSubscriptionAvailable: 1,
      },
    },
  },
  {
    name: "use another server (0x9C), with authentication and repeated user property",
    version: 5,
    bytes: [
      32, 41, // header: remaining length 41
      0, // flags
      156, // reason code 0x9C use another server
      38, // property length 38
      21, 0, 1, 109, // 0x15 authentication method "m"
      22, 0, 1, 171, // 0x16 authentication data ab
      28, 0, 5, 111, 116, 104, 101, 114, // 0x1C server reference (UTF-8) "other"
      31, 0, 5, 109, 111, 118, 101, 100, // 0x1F reason string (UTF-8) "moved"
      38, 0, 1, 120, 0, 1, 49, // 0x26 user property "x" = "1"
      38, 0, 1, 120, 0, 1, 50, // 0x26 user property "x" = "2" (same name again: allowed, order kept)
    ],
    packet: {
      type: "connack", sessionPresent: false, reasonCode: 0x9c,
      properties: {
        authenticationMethod: "m",
        authenticationData: u8(171),
        serverReference: "other",
        reasonString: "moved",
        userProperties: [["x", "1"], ["x", "2"]],
      },
    },
  },
];

runVectors("02 CONNACK", vectors);
