import { describe, expect, it } from "vitest";
import { LinkFrameKind, decodeLinkFrame, encodeCall, encodeCast, encodeError, encodeResult } from "../../../core/util/link-frame";
import type { Delivery } from "../../../core/session/types";

describe("link frames", () => {
  it("carries a call with messages whose bytes stay bytes, anywhere in the arguments", () => {
    const deliveries: Delivery[] = [
      {
        message: {
          topic: "a/b",
          payload: new Uint8Array([0, 1, 2, 255]),
          qos: 1,
          retain: false,
          properties: { correlationData: new Uint8Array([9, 8]), userProperties: [["k", "v"]], contentType: 'x "$b": [0, 1]' },
          origin: "pub",
        },
        qos: 1,
        retain: false,
        subscriptionIds: [3],
      },
      { message: { topic: "empty", payload: new Uint8Array(0), qos: 0, retain: true }, qos: 0, retain: true },
    ];
    const frame = encodeCall(7, "deliver", [deliveries, null, 3]);
    const decoded = decodeLinkFrame(frame.buffer as ArrayBuffer);
    expect(decoded).toEqual({ kind: LinkFrameKind.Call, id: 7, method: "deliver", args: [deliveries, null, 3] });
    if (decoded.kind !== LinkFrameKind.Call) throw new Error("not a call");
    const payload = (decoded.args[0] as Delivery[])[0]!.message.payload;
    expect(payload).toBeInstanceOf(Uint8Array);
    // A copy: keeping the payload does not keep the frame.
    expect(payload.buffer.byteLength).toBe(4);
  });

  it("carries a cast like a call, with its own kind", () => {
    expect(decodeLinkFrame(encodeCast(9, "publishBatch", [[{ topic: "t", payload: new Uint8Array([1]) }], [null]]))).toEqual({
      kind: LinkFrameKind.Cast,
      id: 9,
      method: "publishBatch",
      args: [[{ topic: "t", payload: new Uint8Array([1]) }], [null]],
    });
  });

  it("carries results (undefined as null) and errors with their call number", () => {
    expect(decodeLinkFrame(encodeResult(2 ** 32 - 1, [{ matched: 2 }]))).toEqual({ kind: LinkFrameKind.Result, id: 2 ** 32 - 1, value: [{ matched: 2 }] });
    expect(decodeLinkFrame(encodeResult(1, undefined))).toEqual({ kind: LinkFrameKind.Result, id: 1, value: null });
    expect(decodeLinkFrame(encodeError(5, "boom"))).toEqual({ kind: LinkFrameKind.Error, id: 5, message: "boom" });
  });

  it("reads a frame that is a view into a larger buffer", () => {
    const frame = encodeResult(3, { bytes: new Uint8Array([4, 5]) });
    const bigger = new Uint8Array(frame.byteLength + 10);
    bigger.set(frame, 10);
    expect(decodeLinkFrame(bigger.subarray(10))).toEqual({ kind: LinkFrameKind.Result, id: 3, value: { bytes: new Uint8Array([4, 5]) } });
  });

  it("refuses what is not a whole frame", () => {
    const frame = encodeCall(1, "m", [new Uint8Array(8)]);
    expect(() => decodeLinkFrame(frame.subarray(0, 5))).toThrow(/too short/);
    expect(() => decodeLinkFrame(frame.subarray(0, 12))).toThrow(/past the end/);
    expect(() => decodeLinkFrame(frame.subarray(0, frame.byteLength - 1))).toThrow(/bytes past the end/);
    const unknown = frame.slice();
    unknown[0] = 9;
    expect(() => decodeLinkFrame(unknown)).toThrow(/unknown kind/);
    expect(() => decodeLinkFrame(encodeResult(1, "not a call").map((b, i) => (i === 0 ? LinkFrameKind.Call : b)))).toThrow(/malformed call/);
  });
});
