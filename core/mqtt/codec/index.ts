/** The MQTT 3.1 / 3.1.1 / 5.0 codec. Re-exports only. */
export type { DecodeResult, ProtocolViolation } from "./errors";
export { type DecodeOptions, decodePacket } from "./decode";
export { encodePacket } from "./encode";
export { type FrameResult, packetLength, splitFrames } from "./framer";
export { validateTopicFilter, validateTopicName } from "./topic-syntax";
export { isWellFormedUtf8 } from "./utf8";
export { PROPERTIES, type PropertyDef } from "./properties";
