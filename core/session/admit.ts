import { ConnectReturnCode311, ReasonCode, type ConnectPacket, type ProtocolVersion } from "../mqtt/packets";
import { encodePacket, type ProtocolViolation } from "../mqtt/codec";

export type Admission =
  | { ok: true; clientId: string; assigned: boolean }
  | { ok: false; reason: number; reply?: Uint8Array };

/**
 * Decide which session a CONNECT belongs to, before any session is touched: the client
 * identifier, or one we assign, or a refusal with the CONNACK to send.
 */
export function admitConnect(packet: ConnectPacket, newClientId: () => string, hint?: string): Admission {
  const v = packet.protocolVersion;
  let clientId = packet.clientId;
  let assigned = false;
  if (clientId === "") {
    if (v !== 5 && !packet.clean) {
      // 3.1.1: an empty identifier needs Clean Session = 1, else return code 0x02 [MQTT-3.1.3-8].
      return refuse(v, ReasonCode.ClientIdentifierNotValid);
    }
    if (v === 3) return refuse(v, ReasonCode.ClientIdentifierNotValid); // 3.1 requires 1 to 23 characters
    clientId = hint ?? newClientId(); // [MQTT-3.1.3-6] a unique identifier assigned by the server
    assigned = true;
  } else if (hint !== undefined && hint !== clientId) {
    // The URL named one session and the CONNECT another. A Reason String on CONNACK is allowed
    // whatever Request Problem Information says [MQTT-3.1.2-29]; 3.1.1 has no properties.
    return refuse(
      v,
      ReasonCode.ClientIdentifierNotValid,
      `the client identifier in CONNECT ("${clip(clientId)}") differs from the one in the URL ("${clip(hint)}"): connect to /mqtt/<your client identifier>, or to /mqtt`,
      packet.properties?.maximumPacketSize,
    );
  }
  return { ok: true, clientId, assigned };
}

/** A decoding failure before or at CONNECT: the CONNACK to send, if the spec asks for one. */
export function refuseMalformedConnect(error: ProtocolViolation, version: ProtocolVersion | undefined): Admission {
  if (error.reasonCode === ReasonCode.UnsupportedProtocolVersion) {
    // Unsupported protocol level: CONNACK 0x01 (3.1.1) / 0x84 (5.0), then close [MQTT-3.1.2-2].
    return refuse(version === 5 ? 5 : 4, ReasonCode.UnsupportedProtocolVersion);
  }
  if (version === 5) return refuse(5, error.reasonCode);
  // 3.1.1: a malformed CONNECT just closes the connection [MQTT-4.8.0-1].
  return { ok: false, reason: error.reasonCode };
}

function refuse(v: ProtocolVersion, reason: number, reasonString?: string, clientMaximumPacketSize?: number): Admission {
  const reasonCode = v === 5 ? reason : to311ReturnCode(reason);
  const bare = encodePacket({ type: "connack", sessionPresent: false, reasonCode }, v);
  if (v !== 5 || reasonString === undefined) return { ok: false, reason, reply: bare };
  const explained = encodePacket({ type: "connack", sessionPresent: false, reasonCode, properties: { reasonString } }, v);
  // No Reason String that would make the CONNACK larger than the client accepts [MQTT-3.2.2-19].
  const fits = clientMaximumPacketSize === undefined || explained.length <= clientMaximumPacketSize;
  return { ok: false, reason, reply: fits ? explained : bare };
}

/** A client identifier quoted in a Reason String: bounded, so the CONNACK stays small. */
function clip(id: string): string {
  return id.length > 64 ? `${id.slice(0, 64)}...` : id;
}

/** The 3.1.1 CONNACK return code closest to a 5.0 reason code. */
export function to311ReturnCode(reason: number): number {
  switch (reason) {
    case ReasonCode.UnsupportedProtocolVersion:
      return ConnectReturnCode311.UnacceptableProtocolVersion;
    case ReasonCode.ClientIdentifierNotValid:
      return ConnectReturnCode311.IdentifierRejected;
    case ReasonCode.BadUserNameOrPassword:
      return ConnectReturnCode311.BadUserNameOrPassword;
    case ReasonCode.NotAuthorized:
      return ConnectReturnCode311.NotAuthorized;
    default:
      return ConnectReturnCode311.ServerUnavailable;
  }
}
