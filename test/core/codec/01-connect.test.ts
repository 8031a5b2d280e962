// CONNECT vectors: MQTT 3.1 (level 3, "MQIsdp"), 3.1.1 (level 4) and 5.0 (level 5).
// Spec: MQTT 3.1.1 section 3.1, MQTT 5.0 section 3.1.
import { runVectors, u8, type Vector } from "./vectors.js";

const vectors: Vector[] = [
  {
    name: "minimal, clean session",
    version: 4,
    bytes: [
      16, 16, // header: CONNECT, remaining length 16
      0, 4, 77, 81, 84, 84, // protocol name "MQTT"
      4, // protocol level 4
      2, // connect flags: clean session
      0, 60, // keep alive 60 s
      0, 4, 116, 101, 115, 116, // client id "test"
    ],
    packet: { type: "connect", protocolName: "MQTT", protocolVersion: 4, clean: true, keepAlive: 60, clientId: "test" },
  },
  {
    name: "empty client id, keep alive 0",
    version: 4,
    bytes: [
      16, 12, // header
      0, 4, 77, 81, 84, 84, // "MQTT"
      4, // level 4
      2, // flags: clean session
      0, 0, // keep alive 0 (disabled)
      0, 0, // client id "" [MQTT-3.1.3-6]
    ],
    packet: { type: "connect", protocolName: "MQTT", protocolVersion: 4, clean: true, keepAlive: 0, clientId: "" },
  },
  {
    name: "will (QoS 1, retain), username, password, persistent session",
    version: 4,
    bytes: [
      16, 32, // header
      0, 4, 77, 81, 84, 84, // "MQTT"
      4, // level 4
      236, // flags 1110 1100: username, password, will retain, will QoS 1, will flag; clean 0
      0, 30, // keep alive 30
      0, 2, 99, 49, // client id "c1"
      0, 3, 108, 119, 116, // will topic "lwt"
      0, 3, 98, 121, 101, // will payload "bye"
      0, 1, 117, // username "u"
      0, 3, 1, 2, 3, // password 01 02 03
    ],
    packet: {
      type: "connect", protocolName: "MQTT", protocolVersion: 4, clean: false, keepAlive: 30, clientId: "c1",
      will: { topic: "lwt", payload: u8(98, 121, 101), qos: 1, retain: true },
      username: "u", password: u8(1, 2, 3),
    },
  },
  {
    name: "username without password, will QoS 2 with empty payload",
    version: 4,
    bytes: [
      16, 26, // header
      0, 4, 77, 81, 84, 84, // "MQTT"
      4, // level 4
      150, // flags 1001 0110: username, will QoS 2, will flag, clean
      255, 255, // keep alive 65535
      0, 1, 97, // client id "a"
      0, 3, 97, 47, 98, // will topic "a/b"
      0, 0, // will payload (empty)
      0, 4, 117, 115, 101, 114, // username "user"
    ],
    packet: {
      type: "connect", protocolName: "MQTT", protocolVersion: 4, clean: true, keepAlive: 65535, clientId: "a",
      will: { topic: "a/b", payload: u8(), qos: 2, retain: false },
      username: "user",
    },
  },
  {
    name: "MQTT 3.1 (MQIsdp, level 3)",
    version: 3,
    bytes: [
      16, 18, // header
      0, 6, 77, 81, 73, 115, 100, 112, // protocol name "MQIsdp"
      3, // protocol level 3
      2, // flags: clean session
      0, 10, // keep alive 10
      0, 4, 109, 111, 115, 113, // client id "mosq"
    ],
    packet: { type: "connect", protocolName: "MQIsdp", protocolVersion: 3, clean: true, keepAlive: 10, clientId: "mosq" },
  },
  {
    name: "MQTT 3.1 with username and password",
    version: 3,
    bytes: [
      16, 25, // header
      0, 6, 77, 81, 73, 115, 100, 112, // "MQIsdp"
      3, // level 3
      194, // flags 1100 0010: username, password, clean
      0, 10, // keep alive 10
      0, 4, 109, 111, 115, 113, // client id "mosq"
      0, 2, 109, 101, // username "me"
      0, 1, 42, // password 2a
    ],
    packet: {
      type: "connect", protocolName: "MQIsdp", protocolVersion: 3, clean: true, keepAlive: 10, clientId: "mosq",
      username: "me", password: u8(42),
    },
  },
  {
    name: "minimal, no properties",
    version: 5,
    bytes: [
      16, 17, // header
      0, 4, 77, 81, 84, 84, // "MQTT"
      5, // level 5
      2, // flags: clean start
      0, 60, // keep alive 60
      0, // property length 0
      0, 4, 116, 101, 115, 116, // client id "test"
    ],
    packet: { type: "connect", protocolName: "MQTT", protocolVersion: 5, clean: true, keepAlive: 60, clientId: "test" },
  },
  {
    name: "password without username (allowed in 5.0)",
    version: 5,
    bytes: [
      16, 18, // header
      0, 4, 77, 81, 84, 84, // "MQTT"
      5, // level 5
      64, // flags 0100 0000: password only, clean 0
      0, 5, // keep alive 5
      0, // property length 0
      0, 1, 120, // client id "x"
      0, 2, 112, 119, // password "pw"
    ],
    packet: {
      type: "connect", protocolName: "MQTT", protocolVersion: 5, clean: false, keepAlive: 5, clientId: "x",
      password: u8(112, 119),
    },
  },
  {
    name: "every CONNECT property and every Will property",
    version: 5,
    bytes: [
      16, 97, // header: remaining length 97
      0, 4, 77, 81, 84, 84, // "MQTT"
      5, // level 5
      214, // flags 1101 0110: username, password, will QoS 2, will flag, clean start
      0, 0, // keep alive 0
      36, // property length 36
      17, 0, 0, 14, 16, // 0x11 session expiry interval (four-byte) 3600
      21, 0, 1, 109, // 0x15 authentication method (UTF-8) "m"
      22, 0, 2, 1, 2, // 0x16 authentication data (binary) 01 02
      23, 0, // 0x17 request problem information (byte) 0
      25, 1, // 0x19 request response information (byte) 1
      33, 0, 20, // 0x21 receive maximum (two-byte) 20
      34, 0, 10, // 0x22 topic alias maximum (two-byte) 10
      38, 0, 1, 97, 0, 1, 98, // 0x26 user property (string pair) "a" = "b"
      39, 0, 16, 0, 0, // 0x27 maximum packet size (four-byte) 1048576
      0, 3, 99, 105, 100, // client id "cid"
      31, // will property length 31
      1, 1, // 0x01 payload format indicator (byte) 1: UTF-8
      2, 0, 0, 0, 60, // 0x02 message expiry interval (four-byte) 60
      3, 0, 1, 116, // 0x03 content type (UTF-8) "t"
      8, 0, 1, 114, // 0x08 response topic (UTF-8) "r"
      9, 0, 1, 9, // 0x09 correlation data (binary) 09
      24, 0, 0, 0, 5, // 0x18 will delay interval (four-byte) 5
      38, 0, 1, 107, 0, 1, 118, // 0x26 user property "k" = "v"
      0, 3, 119, 47, 116, // will topic "w/t"
      0, 0, // will payload (empty, valid UTF-8)
      0, 1, 117, // username "u"
      0, 1, 112, // password "p"
    ],
    packet: {
      type: "connect", protocolName: "MQTT", protocolVersion: 5, clean: true, keepAlive: 0, clientId: "cid",
      properties: {
        sessionExpiryInterval: 3600,
        authenticationMethod: "m",
        authenticationData: u8(1, 2),
        requestProblemInformation: 0,
        requestResponseInformation: 1,
        receiveMaximum: 20,
        topicAliasMaximum: 10,
        userProperties: [["a", "b"]],
        maximumPacketSize: 1048576,
      },
      will: {
        topic: "w/t", payload: u8(), qos: 2, retain: false,
        properties: {
          payloadFormatIndicator: 1,
          messageExpiryInterval: 60,
          contentType: "t",
          responseTopic: "r",
          correlationData: u8(9),
          willDelayInterval: 5,
          userProperties: [["k", "v"]],
        },
      },
      username: "u", password: u8(112),
    },
  },
  {
    name: "will without will properties, retained",
    version: 5,
    bytes: [
      16, 22, // header
      0, 4, 77, 81, 84, 84, // "MQTT"
      5, // level 5
      36, // flags 0010 0100: will retain, will QoS 0, will flag
      0, 10, // keep alive 10
      0, // property length 0
      0, 1, 99, // client id "c"
      0, // will property length 0
      0, 1, 119, // will topic "w"
      0, 2, 0, 255, // will payload 00 ff
    ],
    packet: {
      type: "connect", protocolName: "MQTT", protocolVersion: 5, clean: false, keepAlive: 10, clientId: "c",
      will: { topic: "w", payload: u8(0, 255), qos: 0, retain: true },
    },
  },
];

runVectors("01 CONNECT", vectors);
