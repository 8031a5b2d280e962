/** The JSON of Durable Object SQLite columns: bytes survive as bytes, on workerd's own base64. */
import { describe, expect, it } from "vitest";
import { decodeJson, encodeJson } from "../../durable-objects/storage/json";

describe("encodeJson / decodeJson", () => {
  it("keeps every byte value, empty and nested byte arrays", () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const value = { payload: all, empty: new Uint8Array(0), nested: [{ data: new Uint8Array([0, 255, 10]) }], text: "é" };
    const back = decodeJson<typeof value>(encodeJson(value));
    expect(back.payload).toBeInstanceOf(Uint8Array);
    expect([...back.payload]).toEqual([...all]);
    expect(back.empty.byteLength).toBe(0);
    expect([...back.nested[0]!.data]).toEqual([0, 255, 10]);
    expect(back.text).toBe("é");
  });

  it("writes standard base64 (the same text as btoa over the bytes), so rows stored before read back", () => {
    const bytes = new Uint8Array([0xfb, 0xff, 0x00, 0x41]);
    const legacy = JSON.stringify({ p: { $b64: btoa(String.fromCharCode(...bytes)) } });
    expect(encodeJson({ p: bytes })).toBe(legacy);
    expect([...decodeJson<{ p: Uint8Array }>(legacy).p]).toEqual([...bytes]);
  });
});
