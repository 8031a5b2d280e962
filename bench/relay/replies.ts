// The fixed MQTT replies of the benchmark's reference relays (bench/relay/worker.ts,
// bench/runtime/hops/worker.ts), read off the first bytes of a packet: they assume one whole
// packet per WebSocket message, as the bench's lean client sends.

export const CONNACK_V4 = new Uint8Array([0x20, 0x02, 0x00, 0x00]);
export const CONNACK_V5 = new Uint8Array([0x20, 0x03, 0x00, 0x00, 0x00]);
export const PINGRESP = new Uint8Array([0xd0, 0x00]);

/** Where the variable header starts: after the fixed header's byte and its Remaining Length (1..4 bytes). */
function variableHeaderAt(bytes: Uint8Array): number {
  let i = 1;
  while (i < 5 && (bytes[i]! & 0x80) !== 0) i++;
  return i + 1;
}

/** Whether a CONNECT asks for MQTT 5.0 (its protocol level, after the 6-byte protocol name). */
export function connectIsV5(bytes: Uint8Array): boolean {
  return bytes[variableHeaderAt(bytes) + 6] === 5;
}

/** A SUBACK granting QoS 0 to a SUBSCRIBE, with its packet identifier. */
export function subackFor(bytes: Uint8Array, v5: boolean): Uint8Array {
  const at = variableHeaderAt(bytes);
  const [pid0, pid1] = [bytes[at]!, bytes[at + 1]!];
  return v5 ? new Uint8Array([0x90, 0x04, pid0, pid1, 0x00, 0x00]) : new Uint8Array([0x90, 0x03, pid0, pid1, 0x00]);
}
