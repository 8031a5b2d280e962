/**
 * The frames of a link: a WebSocket between two Durable Objects that carries calls and their
 * answers instead of one RPC per call (durable-objects/link.ts; docs/architecture.md, "Links").
 *
 *   byte 0      kind: 1 call, 2 result, 3 error, 4 cast (a call answered only when its
 *               result is one the callee reports: see durable-objects/link.ts)
 *   bytes 1-4   call number (u32, big endian): the answer carries its call's
 *   bytes 5-8   length n of the JSON part (u32)
 *   9 .. 9+n    JSON (UTF-8): [method, args] for a call or cast, the value for a result, the message
 *               for an error; each Uint8Array in it is written as {"$b": [offset, length]}
 *   9+n ..      the bytes of those arrays, one after the other (offsets count from here)
 *
 * Bytes stay bytes (a payload is not base64-encoded), and a decoded array is a copy, so a
 * message kept in a queue does not hold the whole frame.
 */

export const LinkFrameKind = { Call: 1, Result: 2, Error: 3, Cast: 4 } as const;
export type LinkFrameKind = (typeof LinkFrameKind)[keyof typeof LinkFrameKind];

export type LinkFrame =
  | { kind: typeof LinkFrameKind.Call | typeof LinkFrameKind.Cast; id: number; method: string; args: unknown[] }
  | { kind: typeof LinkFrameKind.Result; id: number; value: unknown }
  | { kind: typeof LinkFrameKind.Error; id: number; message: string };

const HEADER = 9;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeCall(id: number, method: string, args: unknown[]): Uint8Array {
  return encode(LinkFrameKind.Call, id, [method, args]);
}

export function encodeCast(id: number, method: string, args: unknown[]): Uint8Array {
  return encode(LinkFrameKind.Cast, id, [method, args]);
}

export function encodeResult(id: number, value: unknown): Uint8Array {
  return encode(LinkFrameKind.Result, id, value === undefined ? null : value);
}

export function encodeError(id: number, message: string): Uint8Array {
  return encode(LinkFrameKind.Error, id, message);
}

function encode(kind: LinkFrameKind, id: number, value: unknown): Uint8Array {
  const blobs: Uint8Array[] = [];
  let offset = 0;
  const json = encoder.encode(
    JSON.stringify(value, (_key, v: unknown) => {
      if (!(v instanceof Uint8Array)) return v;
      blobs.push(v);
      const at = offset;
      offset += v.byteLength;
      return { $b: [at, v.byteLength] };
    }),
  );
  const frame = new Uint8Array(HEADER + json.byteLength + offset);
  const view = new DataView(frame.buffer);
  frame[0] = kind;
  view.setUint32(1, id);
  view.setUint32(5, json.byteLength);
  frame.set(json, HEADER);
  let at = HEADER + json.byteLength;
  for (const b of blobs) {
    frame.set(b, at);
    at += b.byteLength;
  }
  return frame;
}

/** A frame as received; throws on anything that is not one (a truncated or foreign message). */
export function decodeLinkFrame(data: ArrayBuffer | Uint8Array): LinkFrame {
  const frame = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (frame.byteLength < HEADER) throw new Error("link frame: too short");
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const kind = frame[0];
  const id = view.getUint32(1);
  const n = view.getUint32(5);
  if (HEADER + n > frame.byteLength) throw new Error("link frame: JSON part past the end");
  const blobs = frame.subarray(HEADER + n);
  const text = decoder.decode(frame.subarray(HEADER, HEADER + n));
  const value: unknown = text.includes('"$b":')
    ? JSON.parse(text, (_key, v: unknown) => {
        if (v === null || typeof v !== "object" || !("$b" in v)) return v;
        const [at, length] = (v as { $b: [number, number] }).$b;
        if (!(at >= 0 && length >= 0 && at + length <= blobs.byteLength)) throw new Error("link frame: bytes past the end");
        return blobs.slice(at, at + length);
      })
    : JSON.parse(text);
  switch (kind) {
    case LinkFrameKind.Call:
    case LinkFrameKind.Cast: {
      if (!Array.isArray(value) || typeof value[0] !== "string" || !Array.isArray(value[1])) throw new Error("link frame: malformed call");
      return { kind, id, method: value[0], args: value[1] as unknown[] };
    }
    case LinkFrameKind.Result:
      return { kind, id, value };
    case LinkFrameKind.Error:
      return { kind, id, message: String(value) };
    default:
      throw new Error(`link frame: unknown kind ${String(kind)}`);
  }
}
