/** HTTP ingest, pure: requests into MQTT messages. Re-exports only. */
export { aclRefusal, apiKeyPrincipal, apiKeyUsername, type IngestAcl } from "./acl";
export { decodeBase64 } from "./base64";
export {
  MAX_EXPIRY_INTERVAL,
  RAW_HEADERS,
  RAW_QUERY_PARAMETERS,
  checkBatch,
  checkDraft,
  draftMessage,
  inScope,
  isMqttString,
  jsonItemDraft,
  parseExpiry,
  parseQos,
  parseRetain,
  parseUserPropertyHeader,
  publishPacketSize,
  rawDraft,
  type Draft,
  type IngestLimits,
  type IngestPolicy,
  type IngestRefusal,
  type ItemRefusal,
  type JsonItem,
  type JsonProperties,
  type Parsed,
  type RawRequest,
} from "./draft";
export { scopeProblem } from "./scope";
