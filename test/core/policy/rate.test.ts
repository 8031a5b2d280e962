import { describe, expect, it } from "vitest";
import { BURST_SECONDS, PublishLimiter, TokenBucket } from "../../../core/policy";

const T0 = 1_700_000_000_000;
const limits = { publishRate: 100, publishBytesRate: 10_000, maximumPacketSize: 1000 };

describe("TokenBucket", () => {
  it("starts full, refills at its rate, never above its capacity", () => {
    const b = new TokenBucket(10, 20, T0);
    for (let i = 0; i < 20; i++) expect(b.take(1, T0)).toBe(true);
    expect(b.take(1, T0)).toBe(false);
    expect(b.take(1, T0 + 100)).toBe(true); // 0.1 s at 10/s: one token
    expect(b.take(1, T0 + 100)).toBe(false);
    expect(b.take(21, T0 + 1_000_000)).toBe(false); // capped at 20
    expect(b.take(20, T0 + 1_000_000)).toBe(true);
  });

  it("a clock that goes back refills nothing", () => {
    const b = new TokenBucket(10, 1, T0);
    expect(b.take(1, T0)).toBe(true);
    expect(b.take(1, T0 - 5000)).toBe(false);
  });
});

describe("PublishLimiter", () => {
  it("a burst of BURST_SECONDS of the rate passes; the next message is refused with 0x96", () => {
    const l = new PublishLimiter(limits, T0);
    for (let i = 0; i < 100 * BURST_SECONDS; i++) expect(l.admit(10, T0)).toBeUndefined();
    expect(l.admit(10, T0)).toEqual({ reasonCode: 0x96, message: "message rate too high" });
  });

  it("a client that keeps to its rate is never refused", () => {
    const l = new PublishLimiter(limits, T0);
    for (let i = 0; i < 10_000; i++) expect(l.admit(50, T0 + i * 10)).toBeUndefined(); // 100/s, 5,000 B/s
  });

  it("bytes beyond the byte rate are refused with 0x97 Quota exceeded", () => {
    const l = new PublishLimiter({ ...limits, publishRate: 0 }, T0);
    expect(l.admit(20_000, T0)).toBeUndefined(); // the burst: 2 s of 10,000 B/s
    expect(l.admit(1, T0)?.reasonCode).toBe(0x97);
  });

  it("the byte bucket holds at least one packet of the maximum size", () => {
    const l = new PublishLimiter({ publishRate: 0, publishBytesRate: 10, maximumPacketSize: 5000 }, T0);
    expect(l.admit(5000, T0)).toBeUndefined();
    expect(l.admit(5000, T0)?.reasonCode).toBe(0x97);
  });

  it("0 turns a limit off", () => {
    const l = new PublishLimiter({ publishRate: 0, publishBytesRate: 0, maximumPacketSize: 5000 }, T0);
    expect(l.unlimited).toBe(true);
    for (let i = 0; i < 100_000; i++) expect(l.admit(5000, T0)).toBeUndefined();
  });
});
