import type { Properties } from "../mqtt/packets";
import type { SessionRecord } from "./store";
import type { Message, MessageProperties } from "./types";

/** The properties of a PUBLISH (or a Will) that travel with its message to subscribers. */
export function messageProperties(props: Properties): { properties?: MessageProperties } {
  const out: MessageProperties = {};
  if (props.payloadFormatIndicator !== undefined) out.payloadFormatIndicator = props.payloadFormatIndicator;
  if (props.contentType !== undefined) out.contentType = props.contentType;
  if (props.responseTopic !== undefined) out.responseTopic = props.responseTopic;
  if (props.correlationData !== undefined) out.correlationData = props.correlationData;
  if (props.userProperties !== undefined) out.userProperties = props.userProperties; // [MQTT-3.3.2-17]
  return Object.keys(out).length ? { properties: out } : {};
}

/** The application message of a Will, as published at `now`. */
export function willMessage(will: NonNullable<SessionRecord["will"]>, clientId: string, now: number): Message {
  const p = will.properties ?? {};
  return {
    topic: will.topic,
    payload: will.payload,
    qos: will.qos,
    retain: will.retain,
    origin: clientId,
    ...messageProperties(p),
    ...(p.messageExpiryInterval !== undefined && { expiresAt: now + p.messageExpiryInterval * 1000 }),
  };
}
